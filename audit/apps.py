from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        # Connects the Celery signals that carry the acting user into tasks.
        from audit import history  # noqa: F401
        from audit.anchor_keys import anchor_settings_check
        from audit.errors import AnchorKeyError

        # A malformed anchor key stops every process at start-up, not the
        # first hourly checkpoint (or the first audit_verify) after it.
        try:
            anchor_settings_check()
        except AnchorKeyError as exc:
            raise ImproperlyConfigured(str(exc)) from None
        if settings.AUDIT_ANCHOR_INTERVAL_MINUTES < 1:
            raise ImproperlyConfigured("AUDIT_ANCHOR_INTERVAL_MINUTES must be at least 1.")
