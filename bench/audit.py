"""Audit log benchmark (issue 6 §9).

Builds a throwaway PostgreSQL database (psyfi_bench_audit), migrates it,
creates one practice with 50,000 notes and 1,000,000 hash-chained audit
events (COPY; hashes computed by audit.services.audit_digest, the Python
twin of the expression audit_record has PostgreSQL compute; tests hold the
two together),
then prints:

- the median time of one note's timeline query (audit.selectors
  .note_timeline_for_user: access check, lineage, events), over 300 notes;
- the rate of `manage.py audit_verify` over the practice's whole chain, in
  events per second (median of three runs).

Targets: timeline <= 50 ms, verify >= 100,000 events/s. The last line is the
headline. Usage:

    .venv/bin/python bench/audit.py [--events 1000000] [--keep]

The server is DATABASE_URL's (default postgres://postgres@127.0.0.1:5432);
the database is dropped at the end unless --keep.
"""

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

BENCH_DB = "psyfi_bench_audit"
EVENTS_PER_NOTE = 20
TEXT = (
    "Client reports sleeping better, about six hours most nights. Mood brighter; "
    "fewer ruminations at work. Practised behavioural activation three times this week."
)


def _server_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/psyfi")


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _recreate_database() -> str:
    admin = _with_db(_server_url(), "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return _with_db(_server_url(), BENCH_DB)


def _drop_database() -> None:
    from django.db import connections

    connections.close_all()
    with psycopg.connect(_with_db(_server_url(), "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psyfi_review.settings")
    # An anchor sink of the bench database's own: the demo's checkpoints in
    # var/ are of another database, and audit_verify would report them.
    os.environ["AUDIT_ANCHOR_DIR"] = tempfile.mkdtemp(prefix="psyfi-bench-anchors-")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _seed_world():
    from notes import services
    from notes.models import AISource, Membership, NoteTemplateVersion
    from tests.factories import ai_output

    practice = services.practice_create(name="Bench Practice", slug="bench")
    clinician = services.member_create(
        practice=practice, username="bench-clin", password="x" * 16, role=Membership.Role.CLINICIAN
    ).user
    auditor = services.member_create(
        practice=practice, username="bench-audit", password="x" * 16, role=Membership.Role.AUDITOR
    ).user
    client = services.client_create(
        practice=practice,
        clinician=clinician,
        given_name="Bench",
        family_name="Client",
        date_of_birth=datetime(1990, 1, 1).date(),
        actor=clinician,
    )
    ai_source = AISource.objects.create(practice=practice, name="Bench Scribe", model_name="m", model_version="1")
    version = NoteTemplateVersion.objects.get(template__practice=practice, template__key="soap", is_active=True)
    note = services.draft_ingest(
        ai_source=ai_source,
        client=client,
        clinician=clinician,
        template_version=version,
        payload=ai_output(),
        session_start=datetime(2026, 1, 5, 15, tzinfo=UTC),
        session_duration_minutes=50,
        model_name="m",
        model_version="1",
    )
    return practice, clinician, auditor, client, ai_source, note


def _clone_notes(template_note, count: int) -> list[int]:
    """count more notes like the template one, each its own lineage, in SQL."""
    from django.db import connection

    from notes.models import Note

    columns = [f.column for f in Note._meta.concrete_fields if f.column not in ("id", "lineage")]
    column_list = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO notes_note ({column_list}, "lineage") '  # noqa: S608 - column names from the model
            f"SELECT {column_list}, gen_random_uuid() FROM notes_note, generate_series(1, %s) WHERE id = %s",
            [count, template_note.pk],
        )
    return list(Note.objects.order_by("pk").values_list("pk", flat=True))


def _events(*, practice_id, clinician, client_id, ai_source_id, note_ids, total, start_seq, prev_hash):
    """Yield (prev_hash, row values) for `total` events: per note a draft, an
    open, edits with before/after, flag resolutions, sign, delivery events and
    views, interleaved across 1,000 notes at a time like a busy practice."""
    from audit.services import HASHED_COLUMNS, audit_digest

    assert HASHED_COLUMNS[0] == "action"
    start = datetime(2026, 1, 5, 15, tzinfo=UTC)
    script = (
        ["note.draft", "note.open"]
        + ["note.edit"] * 6
        + ["flag.resolve"] * 2
        + ["note.sign", "delivery.create", "delivery.attempt"]
        + ["phi.view"] * 7
    )
    assert len(script) == EVENTS_PER_NOTE
    window = 1000
    label = clinician.get_full_name() or clinician.username
    prev = prev_hash
    for i in range(total):
        seq = start_seq + i
        block, offset = divmod(i, window * EVENTS_PER_NOTE)
        step, slot = divmod(offset, window)
        note_id = note_ids[(block * window + slot) % len(note_ids)]
        action = script[step]
        created_at = start + timedelta(microseconds=37 * seq + 1)
        before = after = None
        detail = {}
        if action == "note.draft":
            actor = ("ai", None, ai_source_id, "Bench Scribe (m 1)")
            after = {"draft": note_id, "sections": {"subjective": TEXT}}
        elif action in ("delivery.create", "delivery.attempt"):
            actor = ("system", None, None, "delivery worker")
            after = {"state": "pending" if action == "delivery.create" else "delivered"}
        else:
            actor = ("person", clinician.pk, None, label)
            if action == "note.edit":
                before = {"text": TEXT[: 40 + step * 10], "codes": []}
                after = {"text": TEXT[: 50 + step * 10] + " (edited)", "codes": []}
                detail = {"section": "subjective"}
            elif action in ("note.open", "note.sign"):
                before, after = {"state": "draft"}, {"state": "in_review" if action == "note.open" else "signed"}
        person = actor[0] == "person"
        values = (
            action,
            actor[2],
            actor[3],
            actor[0],
            actor[1],
            after,
            before,
            client_id,
            created_at,
            detail,
            "192.0.2.10" if person else None,
            note_id,
            str(note_id),
            "notes.note",
            practice_id,
            f"req-{seq:08d}",
            seq,
            "Mozilla/5.0 (bench)" if person else "",
        )
        digest = audit_digest(prev, values)
        yield prev, digest, values
        prev = digest


def _load_events(*, total: int, **kwargs) -> tuple[int, str]:
    from django.db import connection

    from audit.services import HASHED_COLUMNS

    db_columns = [*HASHED_COLUMNS, "prev_hash", "hash"]
    json_at = {HASHED_COLUMNS.index(c) for c in ("after", "before", "detail")}
    last = (0, "0" * 64)
    connection.ensure_connection()
    raw = connection.connection  # the psycopg connection Django opened
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY audit_auditevent ({', '.join(db_columns)}) FROM STDIN") as copy:
            for prev, digest, values in _events(total=total, **kwargs):
                row = [json.dumps(v) if i in json_at and v is not None else v for i, v in enumerate(values)]
                copy.write_row([*row, prev, digest])
                last = (values[-2], digest)
    raw.commit()
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--timeline-samples", type=int, default=300)
    args = parser.parse_args()

    url = _recreate_database()
    try:
        _setup_django(url)
        from django.core.management import call_command
        from django.db import connection

        from audit.models import AuditChainHead, AuditEvent
        from audit.selectors import note_timeline_for_user

        practice, clinician, auditor, client, ai_source, note = _seed_world()
        note_count = max(1, args.events // EVENTS_PER_NOTE)
        started = time.perf_counter()
        note_ids = _clone_notes(note, note_count - 1)
        print(f"notes: {len(note_ids):,} in {time.perf_counter() - started:.1f}s", flush=True)

        # The bench events continue the practice's chain after the few events
        # the seeding wrote through audit_record.
        head = AuditChainHead.objects.get(practice=practice)
        started = time.perf_counter()
        last_seq, last_hash = _load_events(
            total=args.events - head.seq,
            start_seq=head.seq + 1,
            prev_hash=head.hash,
            practice_id=practice.pk,
            clinician=clinician,
            client_id=client.pk,
            ai_source_id=ai_source.pk,
            note_ids=note_ids,
        )
        AuditChainHead.objects.filter(pk=head.pk).update(seq=last_seq, hash=last_hash)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE audit_auditevent")
            cursor.execute("ANALYZE notes_note")
        count = AuditEvent.objects.filter(practice=practice).count()
        print(f"events: {count:,} loaded in {time.perf_counter() - started:.1f}s", flush=True)

        sample = random.Random(6).sample(note_ids, min(args.timeline_samples, len(note_ids)))
        for note_id in sample[:10]:  # warm the cache as a running server would be
            note_timeline_for_user(user=auditor, note_id=note_id)
        timings = []
        sizes = []
        for note_id in sample:
            started = time.perf_counter()
            _, events = note_timeline_for_user(user=auditor, note_id=note_id)
            timings.append((time.perf_counter() - started) * 1000)
            sizes.append(len(events))
        timeline_ms = statistics.median(timings)
        print(
            f"timeline: median {timeline_ms:.2f} ms, p95 {statistics.quantiles(timings, n=20)[-1]:.2f} ms "
            f"over {len(sample)} notes of {statistics.median(sizes):.0f} events each",
            flush=True,
        )

        rates = []
        for run in range(3):
            out = io.StringIO()
            started = time.perf_counter()
            call_command("audit_verify", practice=practice.slug, stdout=out)  # exits non-zero on a break
            elapsed = time.perf_counter() - started
            rates.append(count / elapsed)
            print(f"audit_verify run {run + 1}: {count:,} events in {elapsed:.2f}s = {rates[-1]:,.0f} events/s")
        rate = statistics.median(rates)
        timeline_ok = "ok" if timeline_ms <= 50 else "MISSED"
        verify_ok = "ok" if rate >= 100_000 else "MISSED"
        print(
            f"audit bench ({count:,} events): timeline median {timeline_ms:.2f} ms (target <= 50, {timeline_ok}); "
            f"audit_verify {rate:,.0f} events/s (target >= 100,000, {verify_ok}; {os.cpu_count()} CPUs)"
        )
    finally:
        if not args.keep:
            _drop_database()


if __name__ == "__main__":
    main()
