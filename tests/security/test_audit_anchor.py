"""Issue 11 §4: the audit chain is anchored outside the database. Whoever
owns the table can switch its trigger off, rewrite an event and re-hash every
later one, and the chain check alone then passes; signed checkpoints, kept
in a sink outside the database, make audit_verify fail and name the first
checkpoint the rewrite contradicts."""

import base64
import json
import os
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit.anchor_keys import anchor_key_id, anchor_public_key_text
from audit.anchoring import anchor_sink_read, audit_anchor_checkpoints
from audit.errors import AnchorKeyMissing
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.services import audit_event_digest
from audit.tasks import audit_anchor_checkpoints_task
from audit.verify import audit_chain_verify
from notes import services
from psyfi_review.celery import app as celery_app
from tests.factories import note_factory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="rewrites history as PostgreSQL's table owner"
)
ROOT = Path(__file__).resolve().parent.parent.parent
GENESIS = "0" * 64


def _raw(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(
        key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    ).decode()


@pytest.fixture
def anchor(settings, tmp_path):
    """A signing key in the environment's form and a sink of the test's own."""
    key = Ed25519PrivateKey.generate()
    settings.AUDIT_ANCHOR_SIGNING_KEY = _raw(key)
    settings.AUDIT_ANCHOR_KEY_FILE = ""
    settings.AUDIT_ANCHOR_PUBLIC_KEYS = []
    settings.AUDIT_ANCHOR_DIR = str(tmp_path / "anchors")
    return key


def _activity(world, text: str):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_edit_section(note=note, section_key="plan", text=text, actor=world.clinician)
    return note


def _owner_sql(sql: str, params=None, *, table: str = "audit_auditevent") -> None:
    """Run sql as the table's owner does it: the append-only trigger switched
    off for the statement (an owner needs no superuser for that)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE waits for no deferred check of this test's rows
        cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def _rewrite_and_rehash(practice, *, seq: int) -> None:
    """Change one event's content, then recompute that event's hash and every
    later one with the application's own canonical function, and move the
    chain head: afterwards the chain is internally whole."""
    _owner_sql(
        "UPDATE audit_auditevent SET detail = '{\"rewritten\": true}'::jsonb WHERE practice_id = %s AND seq = %s",
        [practice.pk, seq],
    )
    previous = AuditEvent.objects.filter(practice=practice, seq=seq - 1).values_list("hash", flat=True).first()
    previous = previous or GENESIS
    for event in AuditEvent.objects.filter(practice=practice, seq__gte=seq).order_by("seq"):
        digest = audit_event_digest(event, prev_hash=previous)
        _owner_sql("UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s", [previous, digest, event.pk])
        previous = digest
    AuditChainHead.objects.filter(practice=practice).update(hash=previous)


def _audit_verify_process(*, anchor_dir: str, public_keys: str) -> subprocess.CompletedProcess:
    """`manage.py audit_verify` as cron runs it, against the test database, by
    a verifier that holds only the public key."""
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_ANCHOR")}
    env.update(
        DJANGO_SETTINGS_MODULE="psyfi_review.settings_test",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        AUDIT_ANCHOR_DIR=anchor_dir,
        AUDIT_ANCHOR_PUBLIC_KEYS=public_keys,
        AUDIT_ANCHOR_GENERATE_KEY="false",
    )
    return subprocess.run(
        [sys.executable, "manage.py", "audit_verify"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.django_db(transaction=True)
def test_a_chain_rewritten_and_rehashed_by_the_table_owner_fails_audit_verify_at_the_first_checkpoint(world, anchor):
    _activity(world, "First session plan.")
    first = audit_anchor_checkpoints_task()  # as beat runs it
    _activity(world, "Second session plan.")
    audit_anchor_checkpoints_task()
    checkpoints = list(AuditCheckpoint.objects.filter(practice=world.practice).order_by("seq"))
    assert first >= 1 and len(checkpoints) == 2
    public = anchor_public_key_text(anchor.public_key())
    intact = _audit_verify_process(anchor_dir=settings.AUDIT_ANCHOR_DIR, public_keys=public)
    assert intact.returncode == 0, intact.stderr
    assert f"{world.practice.slug}: " in intact.stdout and "2 checkpoints agree" in intact.stdout

    _rewrite_and_rehash(world.practice, seq=2)

    # The chain check alone is fooled: every link is whole again.
    assert audit_chain_verify(practice_id=world.practice.pk).ok
    assert AuditEvent.objects.get(practice=world.practice, seq=2).detail == {"rewritten": True}
    result = _audit_verify_process(anchor_dir=settings.AUDIT_ANCHOR_DIR, public_keys=public)
    assert result.returncode == 1
    first_cp = checkpoints[0]
    assert (
        f"{world.practice.slug}: CHECKPOINT at seq {first_cp.seq} signed {first_cp.signed_at.isoformat()} "
        f"contradicted: the chain no longer hashes to the signed hash at seq {first_cp.seq} (rewritten)"
    ) in result.stderr
    assert "(1 later checkpoint also contradicted)" in result.stderr
    assert "1 practice chain is broken" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_without_checkpoints_the_same_rewrite_passes_audit_verify(world, anchor):
    """What the checkpoints add: the same rewrite on a chain that was never
    anchored goes unnoticed."""
    _activity(world, "First session plan.")
    _activity(world, "Second session plan.")
    _rewrite_and_rehash(world.practice, seq=2)
    result = _audit_verify_process(
        anchor_dir=settings.AUDIT_ANCHOR_DIR, public_keys=anchor_public_key_text(anchor.public_key())
    )
    assert result.returncode == 0, result.stderr
    assert f"{world.practice.slug}: " in result.stdout and "chain intact; no checkpoints yet" in result.stdout


def _anchor_now(world) -> AuditCheckpoint:
    """Run the checkpoint service; the world practice's new checkpoint."""
    made = [c for c in audit_anchor_checkpoints() if c.practice_id == world.practice.pk]
    assert len(made) == 1
    return made[0]


def _verify_fails(**options) -> str:
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("audit_verify", stdout=StringIO(), stderr=err, **options)
    return err.getvalue()


def test_a_rewrite_is_caught_even_when_the_owner_also_deletes_the_stored_checkpoints(world, anchor):
    _activity(world, "Plan.")
    checkpoint = _anchor_now(world)
    _rewrite_and_rehash(world.practice, seq=1)
    _owner_sql("DELETE FROM audit_auditcheckpoint", table="audit_auditcheckpoint")
    assert not AuditCheckpoint.objects.exists()

    err = _verify_fails()
    assert f"CHECKPOINT at seq {checkpoint.seq} signed {checkpoint.signed_at.isoformat()} contradicted" in err
    assert "(rewritten)" in err and "the anchor sink's checkpoint is missing from the database" in err


def test_a_rewrite_is_caught_even_when_the_owner_also_edits_the_stored_checkpoints(world, anchor):
    _activity(world, "Plan.")
    checkpoint = _anchor_now(world)
    _rewrite_and_rehash(world.practice, seq=1)
    new_head = AuditChainHead.objects.get(practice=world.practice).hash
    _owner_sql(
        "UPDATE audit_auditcheckpoint SET hash = %s WHERE id = %s",
        [new_head, checkpoint.pk],
        table="audit_auditcheckpoint",
    )
    err = _verify_fails()
    assert f"CHECKPOINT at seq {checkpoint.seq}" in err
    # The table's copy now agrees with the chain, but its signature and the sink do not.
    assert "the signature does not match the checkpoint" in err
    assert "the stored checkpoint is not in the anchor sink" in err
    assert "(rewritten)" in err  # the sink's line, signed, still holds the old hash


def test_a_checkpoint_stored_but_never_written_to_the_sink_fails(world, anchor, tmp_path):
    """The sink is the anchor: a stored checkpoint the sink does not hold is
    not trusted (say, a copy of the sink from before a restore)."""
    _activity(world, "Plan.")
    checkpoint = _anchor_now(world)
    call_command("audit_verify", stdout=StringIO())  # the real sink: intact
    err = _verify_fails(anchor_dir=str(tmp_path / "empty-copy"))
    assert f"CHECKPOINT at seq {checkpoint.seq}" in err and "not in the anchor sink" in err


def test_a_forged_sink_line_is_refused(world, anchor):
    _activity(world, "Plan.")
    audit_anchor_checkpoints()
    (path,) = Path(settings.AUDIT_ANCHOR_DIR).glob("*.jsonl")
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    for line in lines:
        if line["practice_id"] == world.practice.pk:
            line["signed_at"] = (
                datetime.fromisoformat(line["signed_at"]) - timedelta(hours=1)
            ).isoformat()  # backdated
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    err = _verify_fails()
    assert "the signature does not match the checkpoint" in err


def test_a_checkpoint_signed_by_an_unknown_key_is_refused(world, anchor, settings):
    _activity(world, "Plan.")
    audit_anchor_checkpoints()
    settings.AUDIT_ANCHOR_SIGNING_KEY = _raw(Ed25519PrivateKey.generate())  # a different key, say the attacker's
    err = _verify_fails()
    assert f"signed by key {anchor_key_id(anchor.public_key())}, which is not among the public keys" in err


def test_checkpoints_sign_the_chain_head_once_and_land_in_the_table_and_the_sink_alike(world, anchor):
    _activity(world, "Plan.")
    made = audit_anchor_checkpoints()
    heads = AuditChainHead.objects.filter(seq__gt=0)
    assert sorted((c.practice_id, c.seq, c.hash) for c in made) == sorted(
        heads.values_list("practice_id", "seq", "hash")
    )
    assert audit_anchor_checkpoints() == []  # heads unchanged: nothing new to sign
    row = AuditCheckpoint.objects.get(practice=world.practice)
    assert row.key_id == anchor_key_id(anchor.public_key())
    lines, unreadable = anchor_sink_read(Path(settings.AUDIT_ANCHOR_DIR))
    assert unreadable == []
    assert sorted((c.practice_id, c.seq, c.hash, c.signed_at, c.signature) for c in lines) == sorted(
        AuditCheckpoint.objects.values_list("practice_id", "seq", "hash", "signed_at", "signature")
    )
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert f"{world.practice.slug}: " in out.getvalue()
    assert f"1 checkpoint agrees, the last at seq {row.seq}" in out.getvalue()


def test_no_checkpoint_is_stored_when_the_sink_cannot_be_written(world, anchor, settings, tmp_path):
    _activity(world, "Plan.")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.AUDIT_ANCHOR_DIR = str(blocker / "anchors")  # below a file: cannot exist
    with pytest.raises(OSError):
        audit_anchor_checkpoints()
    assert not AuditCheckpoint.objects.exists()


def test_after_a_key_rotation_the_old_public_key_still_verifies_old_checkpoints(world, anchor, settings):
    _activity(world, "Plan.")
    audit_anchor_checkpoints()
    settings.AUDIT_ANCHOR_SIGNING_KEY = _raw(Ed25519PrivateKey.generate())
    settings.AUDIT_ANCHOR_PUBLIC_KEYS = [anchor_public_key_text(anchor.public_key())]
    _activity(world, "Another plan.")
    audit_anchor_checkpoints()
    assert AuditCheckpoint.objects.filter(practice=world.practice).values("key_id").distinct().count() == 2
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert "2 checkpoints agree" in out.getvalue()


def test_the_demo_makes_an_owner_only_key_file_on_first_use_and_production_does_not(world, settings, tmp_path):
    settings.AUDIT_ANCHOR_SIGNING_KEY = ""
    settings.AUDIT_ANCHOR_DIR = str(tmp_path / "anchors")
    settings.AUDIT_ANCHOR_KEY_FILE = str(tmp_path / "keys" / "anchor.pem")
    _activity(world, "Plan.")

    settings.AUDIT_ANCHOR_GENERATE_KEY = False  # as in settings_production
    with pytest.raises(AnchorKeyMissing, match="AUDIT_ANCHOR_SIGNING_KEY or AUDIT_ANCHOR_KEY_FILE"):
        audit_anchor_checkpoints()
    assert not AuditCheckpoint.objects.exists() and not Path(settings.AUDIT_ANCHOR_KEY_FILE).exists()

    settings.AUDIT_ANCHOR_GENERATE_KEY = True
    row = _anchor_now(world)
    key_file = Path(settings.AUDIT_ANCHOR_KEY_FILE)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert row.key_id == anchor_key_id(key.public_key())
    _activity(world, "Another plan.")
    later = _anchor_now(world)
    assert later.key_id == row.key_id  # the file is kept, not replaced


def test_the_key_command_never_overwrites_a_key_file(tmp_path):
    path = tmp_path / "anchor.pem"
    out = StringIO()
    call_command("audit_anchor", new_key=str(path), stdout=out)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "public key: " in out.getvalue()
    before = path.read_bytes()
    with pytest.raises(CommandError, match="never overwritten"):
        call_command("audit_anchor", new_key=str(path), stdout=StringIO())
    assert path.read_bytes() == before


def test_beat_runs_the_checkpoint_task_hourly_unless_configured(world):
    entry = settings.CELERY_BEAT_SCHEDULE["audit-anchor-checkpoints"]
    assert entry["task"] == audit_anchor_checkpoints_task.name and entry["task"] in celery_app.tasks
    assert entry["schedule"] == timedelta(minutes=60)
    code = (
        "import django, os; django.setup(); from django.conf import settings as s;"
        "print(s.CELERY_BEAT_SCHEDULE['audit-anchor-checkpoints']['schedule'].total_seconds())"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "psyfi_review.settings", "AUDIT_ANCHOR_INTERVAL_MINUTES": "15"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.strip() == "900.0", result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUDIT_ANCHOR_SIGNING_KEY", "not-a-key"),
        ("AUDIT_ANCHOR_PUBLIC_KEYS", "AAAA"),
        ("AUDIT_ANCHOR_INTERVAL_MINUTES", "0"),
    ],
)
def test_a_malformed_anchor_setting_stops_start_up_with_its_name(variable, value):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "psyfi_review.settings", variable: value}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and variable in result.stderr
    assert value not in result.stderr or value == "0"  # key material is never echoed
