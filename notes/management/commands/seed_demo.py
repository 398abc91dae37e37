from django.core.management import call_command
from django.core.management.base import BaseCommand

from notes.demo_data import demo_practice_seed


class Command(BaseCommand):
    help = "Create the synthetic demo practice (idempotent)."

    def handle(self, *args, **options):
        practice = demo_practice_seed()
        # The EHR side of the demo: the built-in sandbox.
        call_command("integrations_demo_setup", practice=practice.slug)
        self.stdout.write(f"Demo practice ready: {practice.name}")
