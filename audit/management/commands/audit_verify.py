"""Check every practice's audit hash chain (or one, with --practice).

Exits 0 when every chain is intact; otherwise prints the first broken link of
each broken chain and exits 1, so cron or CI can alert on it."""

import time

from django.core.management.base import BaseCommand, CommandError

from audit.verify import audit_chain_verify
from notes.models import Practice


class Command(BaseCommand):
    help = "Verify the append-only audit log's hash chain, per practice."

    def add_arguments(self, parser):
        parser.add_argument("--practice", help="Slug or id of one practice (default: all)")

    def handle(self, *args, practice=None, **options):
        practices = Practice.objects.order_by("pk")
        if practice:
            practices = practices.filter(pk=int(practice)) if practice.isdigit() else practices.filter(slug=practice)
            if not practices.exists():
                raise CommandError(f"No practice “{practice}”.")
        broken = 0
        for p in practices.only("pk", "slug"):
            started = time.perf_counter()
            report = audit_chain_verify(practice_id=p.pk)
            elapsed = time.perf_counter() - started
            if report.ok:
                self.stdout.write(f"{p.slug}: {report.events} events, chain intact ({elapsed:.2f}s)")
                continue
            broken += 1
            link = report.first_break
            event = f" (event id {link.event_id})" if link.event_id is not None else ""
            self.stderr.write(
                f"{p.slug}: BROKEN at seq {link.seq}{event}: {link.reason}; {report.events} events before it verified"
            )
        if broken:
            raise CommandError(f"{broken} practice chain{'s are' if broken > 1 else ' is'} broken.")
