"""Production profile: `DJANGO_SETTINGS_MODULE=psyfi_review.settings_production`.

Passes `manage.py check --deploy` with no warnings. Secrets have no default:
a missing SECRET_KEY or DATABASE_URL stops start-up with its name.
"""

from integrations.egress import egress_allow_setting
from psyfi_review.settings import *  # noqa: F403
from psyfi_review.settings import env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
# Nothing private, loopback or link-local is reachable unless listed here
# (host names and CIDR blocks; docs/deployment.md, "Outbound egress policy").
EHR_EGRESS_ALLOW = egress_allow_setting("EHR_EGRESS_ALLOW", env.list("EHR_EGRESS_ALLOW", default=[]))

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
