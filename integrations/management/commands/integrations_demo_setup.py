"""Point a (demo) practice at the built-in sandbox EHR. Idempotent: run it
as often as you like (seed_demo calls it)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations import services
from integrations.models import EHRConnection
from integrations.sandbox.views import patient_resource, sandbox_patient_put
from notes.models import Client, Practice


class Command(BaseCommand):
    help = "Give the practice a sandbox EHR connection to the built-in sandbox and seed its synthetic patients."

    def add_arguments(self, parser):
        parser.add_argument("--practice", required=True, help="Practice slug")
        parser.add_argument("--base-url", default=settings.PSYFI_SANDBOX_BASE_URL)

    def handle(self, *args, practice: str, base_url: str, **options):
        if not settings.SANDBOX_EHR_ENABLED:
            raise CommandError("The built-in sandbox is off on this server (SANDBOX_EHR_ENABLED).")
        found = Practice.objects.filter(slug=practice).first()
        if found is None:
            raise CommandError(f"No practice with slug {practice!r}.")
        connection = EHRConnection.objects.filter(practice=found, is_active=True).first()
        # A connection made before the sandbox required its token is replaced.
        if (
            connection is None
            or connection.kind != EHRConnection.Kind.SANDBOX
            or connection.base_url != base_url
            or connection.auth != EHRConnection.Auth.BEARER
        ):
            connection = services.connection_create(
                practice=found,
                name="Built-in sandbox EHR",
                kind=EHRConnection.Kind.SANDBOX,
                base_url=base_url,
                is_sandbox=True,
            )
        seeded = 0
        for client in Client.objects.filter(practice=found, synthetic=True).exclude(ehr_patient_id=""):
            sandbox_patient_put(practice=found, logical_id=client.ehr_patient_id, body=patient_resource(client))
            seeded += 1
        self.stdout.write(f"{found.name}: delivering to {connection.base_url} (sandbox); {seeded} synthetic patients")
