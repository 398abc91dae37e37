"""Issue 6 §2: each practice's events form a hash chain; `manage.py
audit_verify` checks it, names the first broken link and exits non-zero."""

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from audit import verify as audit_verify_module
from audit.context import RequestContext, current_request
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_event_digest, jsonb_text
from audit.verify import audit_chain_verify
from notes import services
from tests.factories import note_factory, note_sign_now

pytestmark = pytest.mark.django_db


def _busy_practice(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    # An IPv4-mapped IPv6 address: PostgreSQL's inet prints it back differently
    # unless audit_record normalises it, which would break the chain.
    token = current_request.set(RequestContext("r-1", "::ffff:192.0.2.1", "UA \u2603"))
    try:
        services.note_edit_section(
            note=note, section_key="plan", text="Plan with “quotes” and ünïcödé.", actor=world.clinician
        )
        note_sign_now(note, world.clinician)
    finally:
        current_request.reset(token)
    return note


def _tamper(sql: str, params) -> None:
    """Rewrite history as a database superuser would: with triggers off for
    this session (the test database role is a superuser)."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = origin")


def test_each_event_carries_the_previous_events_hash(world):
    _busy_practice(world)
    events = list(AuditEvent.objects.filter(practice=world.practice).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == "0" * 64
    for previous, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == previous.hash
    head = AuditChainHead.objects.get(practice=world.practice)
    assert (head.seq, head.hash) == (events[-1].seq, events[-1].hash)


def test_the_hash_can_be_rederived_from_the_row_by_anyone(world):
    """SHA-256 of the previous hash and the JSON array of the row's values, its
    JSON columns as PostgreSQL prints them: a third party needs no code of ours."""
    _busy_practice(world)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, after::text, before::text, detail::text FROM audit_auditevent WHERE practice_id = %s",
            [world.practice.pk],
        )
        printed = {row[0]: row[1:] for row in cursor.fetchall()}
    for event in AuditEvent.objects.filter(practice=world.practice):
        after, before, detail = printed[event.pk]
        values = [
            json.dumps(event.action, ensure_ascii=False),
            json.dumps(event.actor_ai_source_id),
            json.dumps(event.actor_label, ensure_ascii=False),
            json.dumps(event.actor_type),
            json.dumps(event.actor_user_id),
            after or "null",
            before or "null",
            json.dumps(event.client_id),
            json.dumps(event.created_at.isoformat()),
            detail or "null",
            json.dumps(event.ip_address),
            json.dumps(event.note_id),
            json.dumps(event.object_id, ensure_ascii=False),
            json.dumps(event.object_type),
            json.dumps(event.practice_id),
            json.dumps(event.request_id, ensure_ascii=False),
            json.dumps(event.seq),
            json.dumps(event.user_agent, ensure_ascii=False),
        ]
        canonical = "[" + ", ".join(values) + "]"
        assert event.hash == hashlib.sha256((event.prev_hash + canonical).encode()).hexdigest()
        assert event.hash == audit_event_digest(event, prev_hash=event.prev_hash)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="compares with PostgreSQL's jsonb output")
@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        {"b": 1, "a": [1, 2.5, None, True, False], "aa": {"z": "", "y": {}}, "é": "ü", "ab": "x"},
        {"floats": [0.1, 1.0, -0.0, 1e-07, 1.5e-10, 1e16, 1.5e16, 123456789.125, -2.5]},
        {"big": 2**70, "neg": -17},
        {"text": 'quote " backslash \\ tab \t newline \n bell \x07 del \x7f emoji 😀 “curly”'},
        {"long key first?": 1, "k": 2, "kk": 3},
        "just a string",
        [{"b": 1, "a": 2}, ["nested", ["deeper"]]],
    ],
)
def test_the_python_rendering_of_json_matches_postgresqls_jsonb(value):
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::jsonb::text", [json.dumps(value)])
        assert jsonb_text(value) == cursor.fetchone()[0]


def _append_crafted(practice, **fields) -> AuditEvent:
    """Append an event with chosen field values, hashed by the write path's
    own function, as audit_record would."""
    head = AuditChainHead.objects.get(practice=practice)
    event = AuditEvent(
        practice=practice,
        seq=head.seq + 1,
        actor_type="person",
        action="crafted",
        object_type="t",
        object_id="1",
        prev_hash=head.hash,
        **fields,
    )
    event.hash = audit_event_digest(event, prev_hash=head.hash)
    event.save()
    AuditChainHead.objects.filter(pk=head.pk).update(seq=event.seq, hash=event.hash)
    return event


@pytest.mark.parametrize(
    "fields",
    [
        {"created_at": datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC), "actor_label": "José Núñez"},
        {"created_at": datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC), "user_agent": "UA 😀 \x7f \t \u2028"},
        {"created_at": datetime(2026, 3, 1, 7, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5))), "ip_address": "::1"},
        {"created_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "ip_address": "2001:db8::8a2e:370:7334"},
        {"created_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "detail": {"ratio": 0.1, "n": 1e-07, "z": -0.0}},
        {"created_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "before": {"text": "a\nb"}, "after": {"text": 'ü"c'}},
        {"created_at": datetime(2026, 3, 1, 12, 0, tzinfo=UTC), "request_id": 'x"\\y', "detail": {"": [], "k": {}}},
    ],
)
def test_the_database_and_python_agree_on_awkward_values(world, fields):
    fields.setdefault("actor_label", "A")
    fields.setdefault("detail", {})
    for _ in range(2):  # twice: the second one also checks the link from the first
        _append_crafted(world.practice, **fields)
    events = list(AuditEvent.objects.filter(practice=world.practice, action="crafted"))
    for event in events:  # as stored and read back by the ORM
        assert event.hash == audit_event_digest(event, prev_hash=event.prev_hash)
    report = audit_chain_verify(practice_id=world.practice.pk)  # rebuilt by PostgreSQL
    assert report.ok, report.first_break


def test_verify_passes_on_an_intact_chain_for_every_practice(world):
    _busy_practice(world)
    note_factory(practice=world.other_practice, clinician=world.outsider)
    out = StringIO()
    call_command("audit_verify", stdout=out)
    assert f"{world.practice.slug}: " in out.getvalue() and "chain intact" in out.getvalue()
    assert f"{world.other_practice.slug}: " in out.getvalue()
    assert AuditEvent.objects.filter(practice=world.practice, ip_address="192.0.2.1").exists()
    report = audit_chain_verify(practice_id=world.practice.pk)
    assert report.ok and report.events == AuditEvent.objects.filter(practice=world.practice).count()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL's session_replication_role")
def test_a_row_changed_behind_the_triggers_back_is_caught_and_named(world):
    note = _busy_practice(world)
    edit = AuditEvent.objects.get(note=note, action="note.edit")
    _tamper(
        "UPDATE audit_auditevent SET after = jsonb_set(after, '{text}', '\"Plan rewritten later.\"') WHERE id = %s",
        [edit.pk],
    )
    assert AuditEvent.objects.get(pk=edit.pk).after["text"] == "Plan rewritten later."  # the forgery is in place

    err = StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("audit_verify", stderr=err, stdout=StringIO())
    assert "1 practice chain is broken" in str(exc.value)
    assert f"{world.practice.slug}: BROKEN at seq {edit.seq} (event id {edit.pk})" in err.getvalue()
    assert "content does not match its hash" in err.getvalue()
    # The other practice's chain is unaffected.
    call_command("audit_verify", practice=world.other_practice.slug, stdout=StringIO())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL's session_replication_role")
def test_a_forged_hash_does_not_hide_the_change_from_the_next_link(world):
    """Recomputing the tampered row's own hash only moves the break to the next event."""
    _busy_practice(world)
    events = list(AuditEvent.objects.filter(practice=world.practice).order_by("seq"))
    victim = events[3]
    victim.actor_label = "Somebody Else"
    forged = audit_event_digest(victim, prev_hash=victim.prev_hash)
    _tamper(
        "UPDATE audit_auditevent SET actor_label = %s, hash = %s WHERE id = %s", ["Somebody Else", forged, victim.pk]
    )
    report = audit_chain_verify(practice_id=world.practice.pk)
    assert report.first_break.seq == victim.seq + 1
    assert report.first_break.reason == "prev_hash does not match the previous event's hash"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL's session_replication_role")
def test_a_deleted_event_in_the_middle_is_caught(world):
    _busy_practice(world)
    victim = AuditEvent.objects.filter(practice=world.practice).order_by("seq")[4]
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [victim.pk])
    report = audit_chain_verify(practice_id=world.practice.pk)
    assert report.first_break.seq == victim.seq
    assert report.first_break.reason == f"event seq {victim.seq} is missing"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL's session_replication_role")
def test_a_deleted_tail_is_caught_by_the_chain_head(world):
    _busy_practice(world)
    last = AuditEvent.objects.filter(practice=world.practice).order_by("-seq").first()
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [last.pk])
    report = audit_chain_verify(practice_id=world.practice.pk)
    assert not report.ok
    assert report.first_break.seq == last.seq
    assert report.first_break.reason == f"event seq {last.seq} is missing"  # the head still counts it
    with pytest.raises(CommandError):
        call_command("audit_verify", practice=str(world.practice.pk), stdout=StringIO(), stderr=StringIO())


def test_verify_refuses_an_unknown_practice(world):
    with pytest.raises(CommandError, match="No practice"):
        call_command("audit_verify", practice="no-such-practice")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the parallel check runs on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_a_long_chain_checked_in_parallel_ranges_still_names_the_first_break(world, monkeypatch):
    monkeypatch.setattr("audit.verify.PARALLEL_MIN_EVENTS", 0)  # this chain is short; split it anyway
    splits = []
    real_split = audit_verify_module._verify_parallel
    monkeypatch.setattr("audit.verify._verify_parallel", lambda *args: splits.append(args) or real_split(*args))
    for _ in range(3):
        _busy_practice(world)
    total = AuditEvent.objects.filter(practice=world.practice).count()
    intact = audit_chain_verify(practice_id=world.practice.pk, workers=3)
    assert intact.ok and intact.events == total
    assert splits  # it did go the parallel way

    events = list(AuditEvent.objects.filter(practice=world.practice).order_by("seq"))
    early, late = events[total // 2 - 2], events[-3]  # in different ranges
    _tamper("UPDATE audit_auditevent SET actor_label = 'forged' WHERE id IN (%s, %s)", [early.pk, late.pk])
    report = audit_chain_verify(practice_id=world.practice.pk, workers=3)
    assert (report.first_break.seq, report.events) == (early.seq, early.seq - 1)

    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [events[total // 3 + 1].pk])
    report = audit_chain_verify(practice_id=world.practice.pk, workers=3)
    assert report.first_break.seq == min(early.seq, events[total // 3 + 1].seq)


def test_an_event_slipped_in_past_the_chain_head_is_caught(world):
    _busy_practice(world)
    head = AuditChainHead.objects.get(practice=world.practice)
    forged = _append_crafted(world.practice, created_at=datetime(2026, 3, 1, tzinfo=UTC), actor_label="X", detail={})
    AuditChainHead.objects.filter(pk=head.pk).update(seq=head.seq, hash=head.hash)  # as if never recorded
    report = audit_chain_verify(practice_id=world.practice.pk)
    assert (report.first_break.seq, report.first_break.event_id) == (forged.seq, forged.pk)
    assert report.first_break.reason == "an event lies beyond the chain head"


def test_a_removed_chain_head_is_caught(world):
    _busy_practice(world)
    AuditChainHead.objects.filter(practice=world.practice).delete()
    report = audit_chain_verify(practice_id=world.practice.pk)
    assert report.first_break.reason == "the practice has events but no chain head"


def test_a_head_pointing_at_another_hash_is_caught(world):
    _busy_practice(world)
    AuditChainHead.objects.filter(practice=world.practice).update(hash="f" * 64)
    report = audit_chain_verify(practice_id=world.practice.pk)
    assert report.first_break.reason == "the last event's hash is not the one the chain head recorded"


@pytest.mark.parametrize(
    "fields",
    [
        {"before": None, "after": {"text": 'ü"c\n', "n": 0.1, "z": -0.0, "big": 2**70}, "detail": {"": [], "k": {}}},
        {"before": {"when": datetime(2026, 3, 1, tzinfo=UTC)}, "after": ["a", {"b": 1, "a": 2}], "detail": None},
    ],
)
def test_an_event_hashed_by_the_database_is_the_one_python_rederives(world, fields):
    """audit_record hashes in PostgreSQL (one statement); the stored row must
    hash the same in Python, which other databases and readers use."""
    from audit.services import actor_person, audit_record

    token = current_request.set(RequestContext('r"\\1', "::ffff:192.0.2.9", "UA 😀 \x7f \t \u2028"))
    try:
        returned = audit_record(
            practice=world.practice, actor=actor_person(world.clinician), action="crafted", obj=world.practice, **fields
        )
    finally:
        current_request.reset(token)
    stored = AuditEvent.objects.get(pk=returned.pk)
    assert (stored.seq, stored.hash, stored.prev_hash) == (returned.seq, returned.hash, returned.prev_hash)
    assert stored.ip_address == "192.0.2.9"
    assert stored.hash == audit_event_digest(stored, prev_hash=stored.prev_hash)


def test_events_appended_by_the_orm_path_and_the_database_path_form_one_chain(world):
    """The ORM append (other databases) and PostgreSQL's one-statement append
    link to each other, so a database moved between them still verifies."""
    from django.db import transaction
    from django.utils import timezone as django_timezone

    from audit.services import _append_python, actor_system, audit_record

    audit_record(practice=world.practice, actor=actor_system("t"), action="by-database", detail={"n": 1})
    with transaction.atomic():
        _append_python(
            AuditEvent(
                practice=world.practice,
                created_at=django_timezone.now(),
                actor_type="system",
                actor_label="t",
                action="by-orm",
                object_type="t",
                object_id="1",
                detail={"n": 2.5},
            )
        )
    audit_record(practice=world.practice, actor=actor_system("t"), action="by-database", detail={"n": 3})
    actions = list(AuditEvent.objects.filter(practice=world.practice).order_by("seq").values_list("action", flat=True))
    assert actions[-3:] == ["by-database", "by-orm", "by-database"]
    assert audit_chain_verify(practice_id=world.practice.pk).ok


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_gap_free_chain():
    """Eight threads on their own connections append at once: the chain head
    lock serialises them, so seq has no gap or repeat and the chain verifies."""
    import threading

    from audit.services import actor_system, audit_record
    from tests.factories import world_factory

    world = world_factory()
    start = AuditChainHead.objects.filter(practice=world.practice).values_list("seq", flat=True).first() or 0
    n, each = 8, 10
    barrier = threading.Barrier(n)
    errors: list = []

    def write(i):
        try:
            barrier.wait()
            for j in range(each):
                audit_record(practice=world.practice, actor=actor_system(f"w{i}"), action="concurrent", detail={"j": j})
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = list(AuditEvent.objects.filter(practice=world.practice).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, start + n * each + 1))
    assert AuditChainHead.objects.get(practice=world.practice).seq == start + n * each
    assert audit_chain_verify(practice_id=world.practice.pk).ok
