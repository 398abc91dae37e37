"""#13 point 9: the worker's two writes (the claim with its ledger row, the
outcome with the ledger row's completion) are one PostgreSQL statement each
(integrations.services.outbox_statements). They must write exactly what the
ORM path (the demo's SQLite) writes, and move a row under the same
conditions: only a claimable, due row is claimed; only the claimant's
outcome lands."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_event_build
from audit.verify import audit_chain_verify
from integrations.models import Delivery, DeliveryAttempt
from integrations.outcomes import sent
from integrations.services import delivery as outbox
from integrations.services import outbox_statements
from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import fhir_connection

S = Delivery.State
DELIVERY_FIELDS = [
    "state",
    "attempts",
    "first_attempt_at",
    "next_attempt_at",
    "updated_at",
    "needs_reconcile",
    "ehr_id",
    "last_error",
    "delivered_at",
    "patient_checked_at",
    "provenance_state",
    "provenance_ehr_id",
]
LEDGER = {"delivered": "sent", "retrying": "unknown", "failed": "failed"}
ATTEMPT_FIELDS = ["number", "started_at", "finished_at", "outcome", "http_status", "ehr_id", "detail"]


@pytest.fixture
def pair(world) -> tuple[Delivery, Delivery]:
    """Two signed notes' deliveries, pending, alike but for their ids. No
    request is made: the connection's address is never dialled here."""
    fhir_connection(world.practice, "http://127.0.0.1:9/fhir")
    notes = []
    for _ in range(2):
        client = client_factory(world.practice, world.clinician)
        note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
        notes.append(note_sign_now(note, world.clinician))
    return tuple(Delivery.objects.filter(note__in=notes).order_by("pk"))


def _delivery_row(delivery: Delivery) -> dict:
    return Delivery.objects.filter(pk=delivery.pk).values(*DELIVERY_FIELDS).get()


def _attempt_rows(delivery: Delivery) -> list[dict]:
    return list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("pk").values(*ATTEMPT_FIELDS))


def _claim_both(pair, now):
    statement, orm = pair
    attempt = outbox_statements.claim(delivery_id=statement.pk, now=now)
    claimed = outbox._claim_orm(delivery_id=orm.pk, now=now)
    return attempt, claimed


def test_a_claim_writes_what_the_orm_claim_writes(pair):
    now = timezone.now()
    attempt, (orm_delivery, orm_attempt) = _claim_both(pair, now)
    statement, orm = pair
    assert _delivery_row(statement) == _delivery_row(orm)
    row = _delivery_row(statement)
    assert (row["state"], row["attempts"], row["first_attempt_at"], row["updated_at"]) == (S.SENDING, 1, now, now)
    assert _attempt_rows(statement) == _attempt_rows(orm)
    assert _attempt_rows(statement) == [
        {
            "number": 1,
            "started_at": now,
            "finished_at": None,
            "outcome": DeliveryAttempt.Outcome.SENDING,
            "http_status": None,
            "ehr_id": "",
            "detail": "",
        }
    ]
    # The in-memory ledger row is the stored one, ready to be completed.
    assert attempt.pk == DeliveryAttempt.objects.get(delivery=statement).pk
    assert {f: getattr(attempt, f) for f in ATTEMPT_FIELDS} == _attempt_rows(statement)[0]
    assert not attempt._state.adding


def test_a_retry_keeps_its_first_attempt_time_and_counts_on(pair):
    first = timezone.now() - timedelta(minutes=5)
    for delivery in pair:
        Delivery.objects.filter(pk=delivery.pk).update(
            state=S.RETRYING, attempts=3, first_attempt_at=first, next_attempt_at=first
        )
    now = timezone.now()
    attempt, (_, orm_attempt) = _claim_both(pair, now)
    statement, orm = pair
    assert _delivery_row(statement) == _delivery_row(orm)
    assert _delivery_row(statement)["first_attempt_at"] == first
    assert attempt.number == orm_attempt.number == 4


@pytest.mark.parametrize(
    "change",
    [
        {"state": S.RETRYING, "next_attempt_at": "future"},  # not due yet
        {"state": S.SENDING},  # another worker holds it
        {"state": S.DELIVERED},
        {"state": S.FAILED},
        {"state": S.WAITING},
        {"state": S.AWAITING_FILING},
    ],
)
def test_a_row_that_is_not_claimable_now_is_claimed_by_neither(pair, change):
    now = timezone.now()
    change = {**change}
    if change.get("next_attempt_at") == "future":
        change["next_attempt_at"] = now + timedelta(seconds=30)
    for delivery in pair:
        Delivery.objects.filter(pk=delivery.pk).update(**change)
    attempt, claimed = _claim_both(pair, now)
    assert attempt is None and claimed is None
    for delivery in pair:
        assert _attempt_rows(delivery) == []
        assert _delivery_row(delivery)["attempts"] == 0


def _outcomes(now):
    """The delivery fields _record writes for each kind of outcome."""
    learnt = {"patient_checked_at": now, "provenance_state": "", "provenance_ehr_id": ""}
    return {
        "delivered": {
            "updated_at": now,
            "last_error": "",
            **learnt,
            "state": S.DELIVERED,
            "ehr_id": "doc-1",
            "delivered_at": now,
            "needs_reconcile": False,
            "next_attempt_at": None,
        },
        "retrying": {
            "updated_at": now,
            "last_error": "HTTP 503 from the EHR",
            **learnt,
            "state": S.UNKNOWN,
            "next_attempt_at": now + timedelta(seconds=40),
            "needs_reconcile": True,
        },
        "failed": {"updated_at": now, "last_error": "HTTP 422: no such patient", **learnt, "state": S.FAILED},
    }


@pytest.mark.parametrize("kind", ["delivered", "retrying", "failed"])
def test_an_outcome_writes_what_the_orm_writes(pair, kind):
    claimed_at = timezone.now() - timedelta(seconds=2)
    attempt, (orm_delivery, orm_attempt) = _claim_both(pair, claimed_at)
    statement, orm = pair
    statement_delivery = Delivery.objects.get(pk=statement.pk)
    now = timezone.now()
    fields = _outcomes(now)[kind]
    results = []
    for delivery, ledger in ((statement_delivery, attempt), (orm_delivery, orm_attempt)):
        ledger.finished_at, ledger.outcome, ledger.http_status = now, LEDGER[kind], 201
        ledger.ehr_id, ledger.detail = "doc-1", "the EHR's answer"
        write = outbox_statements.record if delivery is statement_delivery else outbox._outcome_write_orm
        results.append(write(delivery=delivery, attempt=ledger, fields=fields))
    assert results == [True, True]
    assert _delivery_row(statement) == _delivery_row(orm)
    assert {k: v for k, v in _delivery_row(statement).items() if k in fields} == fields
    assert _attempt_rows(statement) == _attempt_rows(orm)
    assert _attempt_rows(statement)[0]["detail"] == "the EHR's answer"


def test_an_outcome_after_a_takeover_moves_nothing_and_says_so_in_the_ledger(pair):
    attempt, (orm_delivery, orm_attempt) = _claim_both(pair, timezone.now())
    statement, orm = pair
    statement_delivery = Delivery.objects.get(pk=statement.pk)
    # The sweeper declared the worker dead and handed both rows on.
    for delivery in pair:
        Delivery.objects.filter(pk=delivery.pk).update(state=S.UNKNOWN, needs_reconcile=True)
    before = _delivery_row(statement)
    fields = _outcomes(timezone.now())["delivered"]
    for ledger in (attempt, orm_attempt):
        ledger.finished_at, ledger.outcome, ledger.detail = timezone.now(), "sent", "stored"
    assert outbox_statements.record(delivery=statement_delivery, attempt=attempt, fields=fields) is False
    assert outbox._outcome_write_orm(delivery=orm_delivery, attempt=orm_attempt, fields=fields) is False
    assert _delivery_row(statement) == before
    assert _delivery_row(statement)["state"] == _delivery_row(orm)["state"] == S.UNKNOWN
    assert [r["detail"] for r in _attempt_rows(statement)] == ["stored" + outbox_statements.TAKEN_OVER]
    assert [r["detail"] for r in _attempt_rows(orm)] == ["stored" + outbox_statements.TAKEN_OVER]


# ---------------------------------------------------------------- outcome with its audit event


def _attempt_event(delivery: Delivery, fields: dict) -> AuditEvent:
    """The event _record appends for a delivered attempt, built by its own helper."""
    plan = outbox._Recording(now=fields["updated_at"], fields=fields, ledger="sent", reschedule=None, alert_kind="")
    outcome = sent("doc-1", http_status=201, reason="Stored")
    return audit_event_build(**outbox._attempt_event(delivery=delivery, outcome=outcome, plan=plan))


def test_an_outcome_and_its_audit_event_are_written_together_and_chained(pair, world):
    attempt, (orm_delivery, orm_attempt) = _claim_both(pair, timezone.now())
    statement, orm = pair
    statement_delivery = Delivery.objects.get(pk=statement.pk)
    fields = _outcomes(timezone.now())["delivered"]
    for ledger in (attempt, orm_attempt):
        ledger.finished_at, ledger.outcome, ledger.http_status, ledger.ehr_id = timezone.now(), "sent", 201, "doc-1"
        ledger.detail = "Stored"
    head_before = AuditChainHead.objects.get(practice=world.practice).seq
    event = _attempt_event(statement_delivery, fields)
    moved = outbox_statements.record_audited(delivery=statement_delivery, attempt=attempt, fields=fields, event=event)
    assert moved is True
    assert outbox._outcome_write_orm(delivery=orm_delivery, attempt=orm_attempt, fields=fields) is True
    assert _delivery_row(statement) == {**_delivery_row(orm), "updated_at": _delivery_row(statement)["updated_at"]}
    assert _attempt_rows(statement)[0] == {
        **_attempt_rows(orm)[0],
        "finished_at": _attempt_rows(statement)[0]["finished_at"],
    }
    # The event is the chain's next link, stored as built, and the chain verifies.
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.seq == event.seq == head_before + 1
    assert (stored.action, stored.object_id, stored.after["state"]) == (
        "delivery.attempt",
        str(statement.pk),
        S.DELIVERED,
    )
    assert AuditChainHead.objects.get(practice=world.practice).seq == head_before + 1
    assert audit_chain_verify(practice_id=world.practice.pk).ok


def test_an_outcome_after_a_takeover_appends_no_audit_event(pair, world):
    attempt, _ = _claim_both(pair, timezone.now())
    statement, _ = pair
    statement_delivery = Delivery.objects.get(pk=statement.pk)
    Delivery.objects.filter(pk=statement.pk).update(state=S.UNKNOWN)
    fields = _outcomes(timezone.now())["delivered"]
    attempt.finished_at, attempt.outcome, attempt.detail = timezone.now(), "sent", "stored"
    events_before = AuditEvent.objects.filter(practice=world.practice).count()
    event = _attempt_event(statement_delivery, fields)
    assert (
        outbox_statements.record_audited(delivery=statement_delivery, attempt=attempt, fields=fields, event=event)
        is False
    )
    assert event.pk is None
    assert AuditEvent.objects.filter(practice=world.practice).count() == events_before
    assert _delivery_row(statement)["state"] == S.UNKNOWN
    assert [r["detail"] for r in _attempt_rows(statement)] == ["stored" + outbox_statements.TAKEN_OVER]


def test_without_an_audit_chain_the_outcome_statement_writes_nothing(pair, world):
    attempt, _ = _claim_both(pair, timezone.now())
    statement, _ = pair
    statement_delivery = Delivery.objects.get(pk=statement.pk)
    fields = _outcomes(timezone.now())["delivered"]
    attempt.finished_at, attempt.outcome, attempt.detail = timezone.now(), "sent", "stored"
    AuditChainHead.objects.filter(practice=world.practice).delete()
    event = _attempt_event(statement_delivery, fields)
    before = (_delivery_row(statement), _attempt_rows(statement))
    assert (
        outbox_statements.record_audited(delivery=statement_delivery, attempt=attempt, fields=fields, event=event)
        is None
    )
    assert (_delivery_row(statement), _attempt_rows(statement)) == before
    assert event.pk is None
