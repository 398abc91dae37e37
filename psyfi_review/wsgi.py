"""
WSGI config for psyfi_review project.

It exposes the WSGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/wsgi/
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psyfi_review.settings")

application = get_wsgi_application()

# Production workers build the risk-language pipeline (spaCy, a few seconds)
# while they boot, not inside their first intake request, which a busy box
# could push past the worker timeout (notes.risk_language). The development
# server (DEBUG, the demo) listens at once and builds it on first use.
from django.conf import settings  # noqa: E402

if not settings.DEBUG:
    from notes.risk_language import risk_pipeline

    risk_pipeline()
