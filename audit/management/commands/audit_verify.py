"""Check every practice's audit hash chain (or one, with --practice), and
the chain against its signed checkpoints (audit.anchoring): those in the
anchor sink (AUDIT_ANCHOR_DIR, or --anchor-dir for a copy fetched from
write-once storage) and those in the database.

Exits 0 when every chain is intact and agrees with every checkpoint;
otherwise prints the first broken link and the first contradicted checkpoint
of each practice and exits 1, so cron or CI can alert on it."""

import time
from collections import defaultdict
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.anchor_keys import anchor_public_keys
from audit.anchoring import anchor_sink_read
from audit.errors import AnchorKeyError
from audit.verify import audit_anchor_verify, audit_chain_verify
from notes.models import Practice


class Command(BaseCommand):
    help = "Verify the append-only audit log's hash chain and its signed checkpoints, per practice."

    def add_arguments(self, parser):
        parser.add_argument("--practice", help="Slug or id of one practice (default: all)")
        parser.add_argument(
            "--anchor-dir", help="Directory of checkpoint JSON lines (default: AUDIT_ANCHOR_DIR)", default=None
        )

    def handle(self, *args, practice=None, anchor_dir=None, **options):
        practices = Practice.objects.order_by("pk")
        if practice:
            practices = practices.filter(pk=int(practice)) if practice.isdigit() else practices.filter(slug=practice)
            if not practices.exists():
                raise CommandError(f"No practice “{practice}”.")
        try:
            keys = anchor_public_keys()
        except AnchorKeyError as exc:
            raise CommandError(str(exc)) from None
        directory = Path(anchor_dir or settings.AUDIT_ANCHOR_DIR)
        sink_lines, unreadable = anchor_sink_read(directory)
        sink = defaultdict(list)
        for line in sink_lines:
            sink[line.practice_id].append(line)

        broken = 0
        if unreadable:
            broken += 1
            shown = ", ".join(unreadable[:5]) + (" …" if len(unreadable) > 5 else "")
            self.stderr.write(f"anchor sink {directory}: {len(unreadable)} unreadable line(s): {shown}")
        checked = set()
        for p in practices.only("pk", "slug"):
            checked.add(p.pk)
            if not self._verify_practice(p, sink=sink.get(p.pk, []), keys=keys):
                broken += 1
        if not practice:
            for practice_id in sorted(set(sink) - checked):
                broken += 1
                self.stderr.write(
                    f"anchor sink {directory}: checkpoints of practice id {practice_id}, "
                    "which is not in the database (or the sink belongs to another installation)"
                )
        if broken:
            raise CommandError(f"{broken} practice chain{'s are' if broken > 1 else ' is'} broken.")

    def _verify_practice(self, p, *, sink, keys) -> bool:
        started = time.perf_counter()
        report = audit_chain_verify(practice_id=p.pk)
        anchors = audit_anchor_verify(practice_id=p.pk, sink=sink, keys=keys)
        elapsed = time.perf_counter() - started
        if report.ok and anchors.ok:
            if anchors.last is None:
                agreed = "no checkpoints yet"
            else:
                agreed = (
                    f"{anchors.checkpoints} checkpoint{'s agree' if anchors.checkpoints != 1 else ' agrees'}, the last "
                    f"at seq {anchors.last.seq} signed {anchors.last.signed_at.isoformat()}"
                )
            self.stdout.write(f"{p.slug}: {report.events} events, chain intact; {agreed} ({elapsed:.2f}s)")
            return True
        if not report.ok:
            link = report.first_break
            event = f" (event id {link.event_id})" if link.event_id is not None else ""
            self.stderr.write(
                f"{p.slug}: BROKEN at seq {link.seq}{event}: {link.reason}; {report.events} events before it verified"
            )
        if not anchors.ok:
            first = anchors.first_problem
            others = len(anchors.problems) - 1
            more = f" ({others} later checkpoint{'s' if others > 1 else ''} also contradicted)" if others else ""
            self.stderr.write(
                f"{p.slug}: CHECKPOINT at seq {first.seq} signed {first.signed_at.isoformat()} "
                f"contradicted: {first.reason}{more}"
            )
        return False
