"""After prepending a new key to PSYFI_CREDENTIALS_KEYS: re-encrypt every
stored secret under it, so the old key can then be dropped."""

from django.core.management.base import BaseCommand

from integrations.services import credentials_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt EHR credentials and signing keys under the newest PSYFI_CREDENTIALS_KEYS key."

    def handle(self, *args, **options):
        count = credentials_reencrypt()
        self.stdout.write(f"Re-encrypted {count} secrets.")
