from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from notes.demo_data import DEMO_SLUG


class Command(BaseCommand):
    help = "Print the current one-time code of a demo login (demo practice only)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        device = TOTPDevice.objects.filter(user__username=username, user__membership__practice__slug=DEMO_SLUG).first()
        if device is None:
            raise CommandError(f"No demo login called {username!r}.")
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        self.stdout.write(f"{totp.token():0{device.digits}d}")
