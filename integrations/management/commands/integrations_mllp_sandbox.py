"""Run the HL7 sandbox (integrations.sandbox.mllp) for one practice: an MLLP
receiver on 127.0.0.1 that knows the practice's synthetic clients and
simulates either HL7 patient check. With --connect the practice's active
connection becomes an HL7 sandbox connection to it."""

import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations import services
from integrations.errors import ConnectionInvalid
from integrations.models import EHRConnection
from integrations.sandbox.mllp import PDQ, RECEIVER, SandboxMLLP, sandbox_patients
from notes.models import Practice


class Command(BaseCommand):
    help = "Run an HL7 v2 (MLLP) sandbox receiver on 127.0.0.1 simulating the pdq or receiver patient check."

    def add_arguments(self, parser):
        parser.add_argument("--practice", required=True, help="Practice slug")
        parser.add_argument("--check", choices=[PDQ, RECEIVER], default=PDQ, help="Which patient check to simulate")
        parser.add_argument("--authority", default="", help="Assigning authority of the patient ids (PID-3.4)")
        parser.add_argument("--port", type=int, default=2575)
        parser.add_argument(
            "--connect", action="store_true", help="Make an HL7 sandbox connection to it the practice's active one"
        )

    def handle(self, *args, practice: str, check: str, authority: str, port: int, connect: bool, **options):
        if not settings.SANDBOX_EHR_ENABLED:
            raise CommandError("The sandbox is off on this server (SANDBOX_EHR_ENABLED).")
        found = Practice.objects.filter(slug=practice).first()
        if found is None:
            raise CommandError(f"No practice with slug {practice!r}.")
        if check == RECEIVER and not authority:
            raise CommandError("--check receiver needs --authority (the domain of the patient ids, PID-3.4).")
        server = SandboxMLLP(check=check, authority=authority, port=port, patients=lambda: sandbox_patients(found.pk))
        try:
            server.start()
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        if connect:
            try:
                services.connection_create(
                    practice=found,
                    name=f"HL7 sandbox ({check})",
                    kind=EHRConnection.Kind.HL7,
                    base_url=server.url,
                    is_sandbox=True,
                    hl7_patient_check=check,
                    hl7_assigning_authority=authority,
                )
            except ConnectionInvalid as exc:
                server.stop()
                raise CommandError(exc.message) from exc
        count = len(sandbox_patients(found.pk))
        self.stdout.write(
            f"{found.name}: HL7 sandbox on {server.url}, patient check {check}"
            f"{f', assigning authority {authority}' if authority else ''}; {count} synthetic patients. Ctrl-C stops it."
        )
        self.stdout.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
