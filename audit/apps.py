from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"

    def ready(self) -> None:
        # Connects the Celery signals that carry the acting user into tasks.
        from audit import history  # noqa: F401
