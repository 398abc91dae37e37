from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "People and practice settings"
    default_auto_field = "django.db.models.BigAutoField"
