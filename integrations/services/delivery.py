"""The outbox. The row is the truth; the Celery message only a nudge.

delivery_send claims a row by conditional update (one row or stop), commits
the ledger row before any byte leaves, performs the attempt over the
connection's protocol (integrations.services.perform) and records its
outcome (_record): state, backoff, alerts, audit."""

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from audit.services import actor_person, actor_system, audit_event_build, audit_record
from integrations.errors import (
    ConnectionInvalid,
    CredentialsUnreadable,
    DeliveryRefused,
    MappingInvalid,
    PayloadInvalid,
)
from integrations.models import Alert, Delivery, DeliveryAttempt, FieldMapping
from integrations.outcomes import Outcome, failed
from integrations.services import outbox_statements
from integrations.services.alerts import (
    alert_raise,
    alert_rules_for,
    alerts_resolve_for_delivery,
    alerts_resolve_settled,
)
from integrations.services.connections import _active_connection
from integrations.services.invariants import delivery_check_deliverable
from integrations.services.perform import _perform
from notes.errors import NotPermitted
from notes.models import Membership, Note
from psyfi_review.compiled_reads import CompiledRead
from psyfi_review.db_retry import retry_on_conflict

logger = logging.getLogger(__name__)
S = Delivery.State

# ---------------------------------------------------------------- outbox


def delivery_create_for_note(*, note: Note) -> Delivery | None:
    """Called inside note_sign's transaction. Returns None for psychotherapy
    notes, which are signed but stay here. Pins the connection and the
    template's active field mapping at signing."""
    if note.template_version.template.is_psychotherapy_notes:
        return None
    delivery_check_deliverable(note)
    mapping = FieldMapping.objects.filter(template=note.template_version.template, is_active=True).first()
    # An amendment replaces its earlier version at the EHR, so it cannot go
    # before that version is there (it would be a second current note).
    replaces = Delivery.objects.filter(note_id=note.amends_id).first() if note.amends_id else None
    waits = replaces is not None and replaces.state != S.DELIVERED
    delivery = Delivery.objects.create(
        note=note,
        practice=note.practice,
        connection=_active_connection(note.practice),
        mapping=mapping,
        idempotency_key=f"{note.lineage}:{note.version}",
        replaces=replaces,
        state=S.WAITING if waits else S.PENDING,
        last_error=delivery_waiting_reason(note) if waits else "",
    )
    audit_record(
        practice=note.practice,
        actor=actor_system("outbox"),
        action="delivery.create",
        obj=delivery,
        note=note,
        client=note.client,
        after={
            "state": delivery.state,
            "idempotency_key": delivery.idempotency_key,
            "connection": delivery.connection_id,
            "mapping_version": mapping.version if mapping else 0,
            "replaces": replaces.pk if replaces else None,
        },
    )
    if waits:
        # The earlier version may be delivered between our read and our
        # commit; its own release ran before it could see this row. Looking
        # again after commit closes that gap (the sweeper is the backstop).
        transaction.on_commit(lambda: delivery_release_waiting(delivery_id=delivery.pk))
    else:
        transaction.on_commit(lambda: _enqueue(delivery.pk))
    return delivery


def delivery_waiting_reason(note: Note) -> str:
    return f"Waiting for version {note.amends.version} to reach the EHR; it is sent as its replacement then."


def delivery_release_waiting(
    *, replaces_id: int | None = None, delivery_id: int | None = None, now: datetime | None = None
) -> list[int]:
    """Waiting amendments whose earlier version is now delivered become
    pending and are nudged. Called after the earlier version's delivery
    commits, after an amendment's own signing commits, and by the sweeper.
    Each release is a conditional update, so callers racing each other
    release a row once. Returns the released ids."""
    now = now or timezone.now()
    waiting = Delivery.objects.filter(state=S.WAITING, replaces__state=S.DELIVERED)
    if replaces_id is not None:
        waiting = waiting.filter(replaces_id=replaces_id)
    if delivery_id is not None:
        waiting = waiting.filter(pk=delivery_id)
    released = []
    for delivery in waiting.select_related("practice", "replaces", "note__client"):
        with transaction.atomic():
            changed = Delivery.objects.filter(pk=delivery.pk, state=S.WAITING).update(
                state=S.PENDING, last_error="", updated_at=now
            )
            if not changed:
                continue
            audit_record(
                practice=delivery.practice,
                actor=actor_system("outbox"),
                action="delivery.release",
                obj=delivery,
                note=delivery.note,
                client=delivery.note.client,
                before={"state": S.WAITING},
                after={"state": S.PENDING, "replaces_ehr_id": delivery.replaces.ehr_id},
            )
        released.append(delivery.pk)
        transaction.on_commit(lambda pk=delivery.pk: _enqueue(pk))
    return released


def _enqueue(delivery_id: int, *, countdown: float | None = None) -> None:
    from integrations.tasks import delivery_send_task

    try:
        delivery_send_task.apply_async((delivery_id,), countdown=countdown)
    except Exception:  # noqa: BLE001 - a broker that is down delays delivery; the sweeper re-enqueues
        logger.warning("Could not enqueue delivery %s; the sweeper will pick it up", delivery_id)


def delivery_backoff(*, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter; an EHR's Retry-After is a floor."""
    base = settings.PSYFI_DELIVERY_BACKOFF_BASE
    cap = settings.PSYFI_DELIVERY_BACKOFF_CAP
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not security
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


@dataclass(frozen=True)
class SendResult:
    state: str
    reschedule_in: float | None = None
    outcome: Outcome | None = None


def delivery_send(*, delivery_id: int, now: datetime | None = None) -> SendResult:
    """Claim the row (pending/retrying/unknown -> sending, one row or stop),
    send, and record the attempt. Never raises for an EHR's answer."""
    now = now or timezone.now()
    claim = _claim(delivery_id=delivery_id, now=now)
    if claim is None:
        row = Delivery.objects.filter(pk=delivery_id).values("state", "next_attempt_at").first()
        if row is None:
            return SendResult("missing")
        if row["state"] in (S.RETRYING, S.UNKNOWN) and row["next_attempt_at"] and row["next_attempt_at"] > now:
            # A nudge that came early (a timer firing a little ahead, a
            # duplicate): wait for the due time rather than drop it.
            return SendResult(row["state"], reschedule_in=(row["next_attempt_at"] - now).total_seconds() + 0.01)
        return SendResult(row["state"])
    delivery, attempt = claim
    try:
        outcome = _perform(delivery)
    except (MappingInvalid, PayloadInvalid) as exc:
        # What the pinned mapping built does not fit: a person fixes the mapping.
        outcome = failed(exc.message, alert=Alert.Kind.MAPPING_ERROR)
    except (DeliveryRefused, CredentialsUnreadable, ConnectionInvalid) as exc:
        outcome = failed(exc.message, alert="configuration")
    except Exception as exc:  # noqa: BLE001 - an unexpected error must not strand the row in "sending"
        logger.exception("Delivery %s: unexpected error", delivery_id)
        outcome = Outcome(Outcome.RETRY, reason=f"Internal error: {type(exc).__name__}")
    if outcome.kind == DeliveryAttempt.Outcome.TO_FILE:
        from integrations.manual_filing import manual_filing_open

        return manual_filing_open(delivery=delivery, attempt=attempt, outcome=outcome)
    return _record(delivery=delivery, attempt=attempt, outcome=outcome)


# The claimed row with everything an attempt reads about it, in one read
# compiled once per connection and prepared on PostgreSQL (psyfi_review.
# compiled_reads): building this SQL cost more CPU than the rest of an
# attempt, and a prepared statement is planned once, so the join's width
# costs nothing per delivery. The draft's payload (the scribe's whole JSON)
# is not needed to deliver.
_CLAIMED_DELIVERY = CompiledRead(
    lambda pk: (
        Delivery.objects.select_related(
            "connection",
            "mapping",
            "practice",
            "note__client",
            "note__draft__ai_source",
            "note__signed_by__membership",
            "note__template_version__template",
        )
        .defer("note__draft__payload")
        .filter(pk=pk)
    )
)


def _claim(*, delivery_id: int, now: datetime) -> tuple[Delivery, DeliveryAttempt] | None:
    """The claim (one row or none) and its ledger row, committed together
    before any byte leaves; the ledger row is completed with the answer. A
    worker killed after the EHR committed, or a recording transaction
    aborted, still leaves the row that says a request may have reached the
    EHR (the sweeper marks it unknown and reconciliation follows). One
    commit, not two: a commit waits for the disk. On PostgreSQL one
    statement (outbox_statements.claim), then the claimed row's read."""
    if connection.vendor == "postgresql":
        attempt = outbox_statements.claim(delivery_id=delivery_id, now=now)
        if attempt is None:
            return None
        delivery = _CLAIMED_DELIVERY.get(delivery_id)
        attempt.delivery = delivery
        return delivery, attempt
    return _claim_orm(delivery_id=delivery_id, now=now)


@transaction.atomic
def _claim_orm(*, delivery_id: int, now: datetime) -> tuple[Delivery, DeliveryAttempt] | None:
    claimed = (
        Delivery.objects.filter(pk=delivery_id, state__in=outbox_statements.CLAIMABLE)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(
            state=S.SENDING,
            attempts=F("attempts") + 1,
            first_attempt_at=Coalesce(F("first_attempt_at"), Value(now)),
            updated_at=now,
        )
    )
    if claimed != 1:
        return None
    delivery = _CLAIMED_DELIVERY.get(delivery_id)
    attempt = DeliveryAttempt.objects.create(
        delivery=delivery, number=delivery.attempts, started_at=now, outcome=DeliveryAttempt.Outcome.SENDING
    )
    return delivery, attempt


@dataclass(frozen=True)
class _Recording:
    """What an attempt's outcome does to its row (_record_plan)."""

    now: datetime
    fields: dict  # the delivery's columns to write
    ledger: str  # the ledger row's outcome
    reschedule: float | None
    alert_kind: str


def _record_plan(*, delivery: Delivery, outcome: Outcome) -> _Recording:
    now = timezone.now()
    n = delivery.attempts
    retrying_for = now - (delivery.first_attempt_at or now)
    budget_spent = retrying_for > timedelta(hours=settings.PSYFI_DELIVERY_RETRY_BUDGET_HOURS)
    fields: dict = {"updated_at": now, "last_error": "" if outcome.kind == Outcome.SENT else outcome.reason[:2000]}
    # What the attempt learnt on the way (perform: patient check, Provenance
    # support), written with its outcome in the one UPDATE.
    fields.update(
        patient_checked_at=delivery.patient_checked_at,
        provenance_state=delivery.provenance_state,
        provenance_ehr_id=delivery.provenance_ehr_id,
    )
    reschedule = None
    alert_kind = ""
    if outcome.kind == Outcome.SENT:
        fields.update(
            state=S.DELIVERED, ehr_id=outcome.ehr_id, delivered_at=now, needs_reconcile=False, next_attempt_at=None
        )
        ledger = DeliveryAttempt.Outcome.RECONCILED if outcome.reconciled else DeliveryAttempt.Outcome.SENT
    elif outcome.kind == Outcome.FAILED or budget_spent:
        fields.update(state=S.FAILED, next_attempt_at=None)
        if outcome.kind == Outcome.UNKNOWN:
            fields["needs_reconcile"] = True
        if outcome.kind != Outcome.FAILED:
            hours = settings.PSYFI_DELIVERY_RETRY_BUDGET_HOURS
            fields["last_error"] = f"Gave up after {hours:g} hours of retrying ({n} attempts): {outcome.reason}"[:2000]
        alert_kind = Alert.Kind.DEAD_LETTER
        if outcome.kind == Outcome.FAILED and outcome.alert in Alert.Kind.values:
            alert_kind = outcome.alert
        ledger = outcome.kind
    else:
        reschedule = delivery_backoff(attempt=n, retry_after=outcome.retry_after)
        fields.update(
            state=S.UNKNOWN if outcome.kind == Outcome.UNKNOWN else S.RETRYING,
            next_attempt_at=now + timedelta(seconds=reschedule),
        )
        if outcome.kind == Outcome.UNKNOWN:
            fields["needs_reconcile"] = True
        ledger = outcome.kind
        if retrying_for > timedelta(minutes=_long_retry_minutes(delivery.practice)):
            alert_kind = Alert.Kind.LONG_RETRY
    if outcome.ehr_id:  # the note is at the EHR, even when something it needs (its Provenance) is owed
        fields["ehr_id"] = outcome.ehr_id
    return _Recording(now, fields, ledger, reschedule, alert_kind)


def _record(*, delivery: Delivery, attempt: DeliveryAttempt, outcome: Outcome) -> SendResult:
    """The attempt's outcome: the row's new state (for the claimant only: a
    sweeper that declared this worker dead has already handed the row on),
    the completed ledger row, the audit event, alerts raised or closed."""
    plan = _record_plan(delivery=delivery, outcome=outcome)
    attempt.finished_at = plan.now
    attempt.outcome = plan.ledger
    attempt.http_status = outcome.http_status
    attempt.ehr_id = outcome.ehr_id
    attempt.detail = (attempt.detail + " " if attempt.detail else "") + outcome.reason[:2000]
    return _record_write(delivery=delivery, attempt=attempt, outcome=outcome, plan=plan)


@retry_on_conflict
def _record_write(*, delivery: Delivery, attempt: DeliveryAttempt, outcome: Outcome, plan: _Recording) -> SendResult:
    if connection.vendor == "postgresql" and not _record_touches_alerts(delivery=delivery, outcome=outcome, plan=plan):
        written = _record_in_one_statement(delivery=delivery, attempt=attempt, outcome=outcome, plan=plan)
        if written is not None:
            return written
    return _record_in_transaction(delivery=delivery, attempt=attempt, outcome=outcome, plan=plan)


def _record_touches_alerts(*, delivery: Delivery, outcome: Outcome, plan: _Recording) -> bool:
    """Whether recording raises or closes an alert (_record_in_transaction's
    alert steps); most attempts, a first one delivered, do neither."""
    if plan.alert_kind or (plan.fields["state"] in (S.DELIVERED, S.FAILED) and delivery.attempts > 1):
        return True
    return outcome.alert == "unreachable" and delivery.attempts >= _unreachable_after(delivery.practice)


def _attempt_event(*, delivery: Delivery, outcome: Outcome, plan: _Recording) -> dict:
    """audit_record's arguments for an attempt: the row as the outcome leaves it."""
    state, ehr_id = plan.fields["state"], plan.fields.get("ehr_id", delivery.ehr_id)
    return {
        "practice": delivery.practice,
        "actor": actor_system("delivery worker"),
        "action": "delivery.attempt",
        "obj": delivery,
        "note": delivery.note,
        "client": delivery.note.client,
        "after": {"state": state, "attempt": delivery.attempts, "outcome": plan.ledger, "ehr_id": ehr_id},
        "detail": {"reason": outcome.reason[:500], "http_status": outcome.http_status},
    }


def _record_in_one_statement(
    *, delivery: Delivery, attempt: DeliveryAttempt, outcome: Outcome, plan: _Recording
) -> SendResult | None:
    """On PostgreSQL, an outcome that touches no alert: the row, the ledger
    row and the audit event in one statement (outbox_statements.record_audited).
    None when the practice has no audit chain yet (the transaction path
    starts it)."""
    event = audit_event_build(**_attempt_event(delivery=delivery, outcome=outcome, plan=plan))
    moved = outbox_statements.record_audited(delivery=delivery, attempt=attempt, fields=plan.fields, event=event)
    if moved is None:
        return None
    if not moved:
        return _taken_over(delivery)
    _recorded(delivery, plan)
    return SendResult(delivery.state, reschedule_in=plan.reschedule, outcome=outcome)


def _taken_over(delivery: Delivery) -> SendResult:
    """The result of an attempt whose row the sweeper handed on: its state now."""
    return SendResult(Delivery.objects.filter(pk=delivery.pk).values_list("state", flat=True).first() or "")


def _recorded(delivery: Delivery, plan: _Recording) -> None:
    """The row as written, in memory; a delivered version lets an amendment
    waiting for it go next (after commit, so it reads this row as delivered;
    at once when not in a transaction)."""
    for name, value in plan.fields.items():
        setattr(delivery, name, value)
    if delivery.state == S.DELIVERED:
        transaction.on_commit(lambda: _release_after(delivery.pk))


@transaction.atomic
def _record_in_transaction(
    *, delivery: Delivery, attempt: DeliveryAttempt, outcome: Outcome, plan: _Recording
) -> SendResult:
    n = delivery.attempts
    if not _outcome_write(delivery=delivery, attempt=attempt, fields=plan.fields):
        return _taken_over(delivery)
    _recorded(delivery, plan)
    if delivery.state in (S.DELIVERED, S.FAILED) and n > 1:
        # Its long-retry alert is over: delivered, or superseded by the dead
        # letter's. Before the attempt's audit event: alert row, then chain
        # head, the order a person's alert_resolve takes them in. A first
        # attempt has none to close: the alert is raised by a retry's record,
        # and reprocessing (which restarts the count) closes the delivery's alerts.
        alerts_resolve_settled(delivery=delivery, kind=Alert.Kind.LONG_RETRY, why=delivery.state)
    audit_record(**_attempt_event(delivery=delivery, outcome=outcome, plan=plan))
    alert_kind = plan.alert_kind
    if alert_kind == Alert.Kind.LONG_RETRY:
        since = delivery.first_attempt_at or plan.now
        alert_raise(
            practice=delivery.practice,
            kind=alert_kind,
            delivery=delivery,
            connection=delivery.connection,
            reason=f"Retrying since {since:%Y-%m-%d %H:%M} UTC ({n} attempts); it will keep trying until "
            f"{since + timedelta(hours=settings.PSYFI_DELIVERY_RETRY_BUDGET_HOURS):%Y-%m-%d %H:%M} UTC. "
            f"Last answer: {outcome.reason}",
        )
    elif alert_kind:
        alert_raise(
            practice=delivery.practice,
            kind=alert_kind,
            delivery=delivery,
            connection=delivery.connection,
            reason=plan.fields.get("last_error") or outcome.reason,
        )
    elif outcome.alert == "unreachable" and n >= _unreachable_after(delivery.practice):
        alert_raise(
            practice=delivery.practice,
            kind=Alert.Kind.UNREACHABLE,
            connection=delivery.connection,
            reason=f"The EHR has not answered for {n} attempts: {outcome.reason}",
        )
    return SendResult(delivery.state, reschedule_in=plan.reschedule, outcome=outcome)


def _outcome_write(*, delivery: Delivery, attempt: DeliveryAttempt, fields: dict) -> bool:
    """The delivery's new fields, for the claimant only (a sweeper that
    declared this worker dead has already handed the row on), and the
    completed ledger row. Whether the delivery row moved. On PostgreSQL one
    statement (outbox_statements.record)."""
    if connection.vendor == "postgresql":
        return outbox_statements.record(delivery=delivery, attempt=attempt, fields=fields)
    return _outcome_write_orm(delivery=delivery, attempt=attempt, fields=fields)


def _outcome_write_orm(*, delivery: Delivery, attempt: DeliveryAttempt, fields: dict) -> bool:
    changed = Delivery.objects.filter(pk=delivery.pk, state=S.SENDING, attempts=delivery.attempts).update(**fields)
    if not changed:
        attempt.detail += outbox_statements.TAKEN_OVER
    attempt.save(update_fields=["finished_at", "outcome", "http_status", "ehr_id", "detail"])
    return bool(changed)


def _long_retry_minutes(practice) -> float:
    """The practice's threshold (AlertRules), else the server's default."""
    minutes = alert_rules_for(practice).long_retry_minutes
    return settings.PSYFI_DELIVERY_LONG_RETRY_ALERT_MINUTES if minutes is None else minutes


def _unreachable_after(practice) -> int:
    attempts = alert_rules_for(practice).unreachable_after_attempts
    return settings.PSYFI_DELIVERY_ALERT_AFTER_ATTEMPTS if attempts is None else attempts


def _release_after(delivery_id: int) -> None:
    """delivery_release_waiting for a version just delivered; most have no
    amendment waiting, and asking that first is one light query."""
    if _WAITING_FOR.all(delivery_id):
        delivery_release_waiting(replaces_id=delivery_id)


_WAITING_FOR = CompiledRead(lambda pk: Delivery.objects.filter(replaces_id=pk, state=S.WAITING).only("pk")[:1])


@transaction.atomic
def delivery_reprocess(*, delivery: Delivery, actor) -> Delivery:
    """A person puts a failed delivery back to pending (its ledger stays; a
    lost answer is still reconciled before any resend)."""
    membership = Membership.objects.filter(user=actor, practice=delivery.practice, is_active=True).first()
    if membership is None or membership.role != Membership.Role.PRACTICE_ADMIN:
        raise NotPermitted("Only a practice admin can reprocess a delivery.")
    # A person changed something: a fresh retry budget, and the patient is checked again.
    changed = Delivery.objects.filter(pk=delivery.pk, state=S.FAILED).update(
        state=S.PENDING,
        attempts=0,
        next_attempt_at=None,
        first_attempt_at=None,
        patient_checked_at=None,
        updated_at=timezone.now(),
    )
    if not changed:
        raise DeliveryRefused("Only a failed delivery can be reprocessed.")
    alerts_resolve_for_delivery(delivery=delivery, actor=actor)
    delivery.refresh_from_db()
    audit_record(
        practice=delivery.practice,
        actor=actor_person(actor),
        action="delivery.reprocess",
        obj=delivery,
        note=delivery.note,
        client=delivery.note.client,
        before={"state": S.FAILED},
        after={"state": S.PENDING},
    )
    transaction.on_commit(lambda: _enqueue(delivery.pk))
    return delivery


def delivery_sweep(*, now: datetime | None = None) -> int:
    """Re-enqueue what a lost broker message or a dead worker left behind.
    A row stuck in "sending" may have reached the EHR: it becomes unknown and
    is reconciled before any resend. Duplicate nudges are harmless: only one
    claim succeeds."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.PSYFI_DELIVERY_SWEEP_SECONDS)
    stale = now - timedelta(seconds=settings.PSYFI_DELIVERY_STALE_SECONDS)
    stuck = list(Delivery.objects.filter(state=S.SENDING, updated_at__lt=stale).values_list("pk", flat=True))
    for pk in stuck:
        Delivery.objects.filter(pk=pk, state=S.SENDING, updated_at__lt=stale).update(
            state=S.UNKNOWN,
            needs_reconcile=True,
            next_attempt_at=None,
            updated_at=now,
            last_error="The worker stopped mid-send; reconciling before any resend.",
        )
        # Its ledger row says a request may have reached the EHR; nobody will complete it now.
        DeliveryAttempt.objects.filter(delivery_id=pk, outcome=DeliveryAttempt.Outcome.SENDING).update(
            outcome=DeliveryAttempt.Outcome.UNKNOWN,
            finished_at=now,
            detail="The worker stopped before the EHR's answer was recorded.",
        )
    due = Delivery.objects.filter(
        Q(state=S.PENDING, updated_at__lt=now - grace)
        | Q(state__in=[S.RETRYING, S.UNKNOWN], next_attempt_at__lt=now - grace)
        | Q(state__in=[S.RETRYING, S.UNKNOWN], next_attempt_at__isnull=True)
    ).values_list("pk", flat=True)
    ids = list(due)
    for pk in ids:
        _enqueue(pk)
    # Notes filed by hand are never re-enqueued; one waiting too long raises its alert.
    from integrations.manual_filing import manual_filing_alert_overdue

    manual_filing_alert_overdue(now=now)
    # Backstop for a release nudge that never ran (a worker killed between
    # commit and on_commit): amendments whose earlier version is delivered.
    return len(ids) + len(delivery_release_waiting(now=now))
