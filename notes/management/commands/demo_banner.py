from base64 import b32encode

from django.core.management.base import BaseCommand
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from notes.demo_data import DEMO_PASSWORD, DEMO_SLUG
from notes.models import Membership


class Command(BaseCommand):
    help = "Print the demo URL and logins with their second factors."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, url, **options):
        out = self.stdout.write
        out("")
        out("=" * 72)
        out(f"psyfi-review demo: {url}")
        out(f"Password for every demo login: {DEMO_PASSWORD}")
        out("Second factor: a backup code below (each works once), or add the TOTP")
        out("secret to an authenticator app, or print the current code with")
        out("  .venv/bin/python manage.py demo_otp <username>")
        out("-" * 72)
        memberships = Membership.objects.filter(practice__slug=DEMO_SLUG).select_related("user").order_by("pk")
        for m in memberships:
            totp = TOTPDevice.objects.filter(user=m.user).first()
            secret = b32encode(totp.bin_key).decode() if totp else "-"
            tokens = StaticToken.objects.filter(device__user=m.user).values_list("token", flat=True)
            out(f"{m.user.username:<14} {m.get_role_display():<15} TOTP secret {secret}")
            out(f"{'':<14} backup codes: {' '.join(tokens) or '(all used)'}")
        out("=" * 72)
