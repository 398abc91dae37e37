from django.apps import AppConfig


class PracticeAdminConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "practice_admin"
    verbose_name = "Practice administration"
