"""Production profile: `DJANGO_SETTINGS_MODULE=psyfi_review.settings_production`.

Passes `manage.py check --deploy` with no warnings. Secrets have no default:
a missing SECRET_KEY, DATABASE_URL, PSYFI_CREDENTIALS_KEYS or
PSYFI_IDENTIFIER_SYSTEM stops start-up with its name.
"""

import copy

from django.core.exceptions import ImproperlyConfigured

from integrations.egress import egress_allow_setting
from psyfi_review.env_checks import absolute_uri, fernet_keys
from psyfi_review.settings import *  # noqa: F403
from psyfi_review.settings import env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
DATABASES = {"default": env.db("DATABASE_URL")}
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
# EHR credentials under keys of their own, never derived from SECRET_KEY:
# rotating SECRET_KEY must not make them unreadable (docs/deployment.md).
PSYFI_CREDENTIALS_KEYS = fernet_keys("PSYFI_CREDENTIALS_KEYS", env.list("PSYFI_CREDENTIALS_KEYS"), required=True)
# No default: the system is part of every note's identifier at the EHR, so it
# is chosen once, on purpose (an install that ran on the demo default keeps it).
PSYFI_IDENTIFIER_SYSTEM = absolute_uri("PSYFI_IDENTIFIER_SYSTEM", env.str("PSYFI_IDENTIFIER_SYSTEM"))
# The built-in sandbox EHR is for the demo and tests; a staging install may
# switch it on explicitly.
SANDBOX_EHR_ENABLED = env.bool("SANDBOX_EHR_ENABLED", default=False)
# Nothing private, loopback or link-local is reachable unless listed here
# (host names and CIDR blocks; docs/deployment.md, "Outbound egress policy").
EHR_EGRESS_ALLOW = egress_allow_setting("EHR_EGRESS_ALLOW", env.list("EHR_EGRESS_ALLOW", default=[]))
# The audit anchor's signing key is provisioned, never made up on first use
# (docs/deployment.md, "Audit chain anchoring").
AUDIT_ANCHOR_GENERATE_KEY = env.bool("AUDIT_ANCHOR_GENERATE_KEY", default=False)

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

# Structured logs: one JSON object per line with the request id, through the
# same database-error filter (operations/logs.py; LOG_FORMAT=text to read them
# in a terminal). The worker's handlers follow (psyfi_review/celery.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be text or json.")
LOGGING = copy.deepcopy(LOGGING)  # noqa: F405
if LOG_FORMAT == "json":
    LOGGING["handlers"]["console"]["formatter"] = "json"
