"""Manual filing: the delivery channel for EHRs with no write API
(SimplePractice, TherapyNotes and many small-practice EHRs).

A `manual` connection sends nothing. delivery_send runs the same invariant
checks as for any connection (signed, not psychotherapy notes, sandbox vs
production), then manual_filing_open moves the row to `awaiting_filing`
instead of doing I/O. A person copies the note into the EHR from the filing
page (sections in the template's order, a copy button each, a PDF) and
confirms it: manual_filing_confirm moves the row once to `delivered`,
recording who, when and the EHR's reference, with a ledger row and an audit
event like any delivery attempt. A row in `awaiting_filing` is neither
claimed by the worker nor swept as stale; past MANUAL_FILING_ALERT_HOURS it
raises one `unfiled` alert (manual_filing_alert_overdue, run by the sweeper).

Who: the note's clinician files and confirms; a practice admin may confirm
too (the office often files), but sees no note content there, as everywhere
(notes.selectors: a practice admin reads no note content).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.http import Http404
from django.utils import timezone

from audit.services import actor_person, actor_system, audit_record
from integrations import services
from integrations.builders import NoteInput
from integrations.builders.pdf import FilingSection, filing_header, filing_pdf_build, filing_sections
from integrations.errors import ConnectionInvalid, DeliveryRefused
from integrations.models import Alert, Delivery, DeliveryAttempt, EHRConnection
from integrations.transports.base import Outcome
from notes.errors import NotPermitted
from notes.models import Note
from notes.roles import Role, membership_of
from psyfi_review.db_retry import retry_on_conflict

S = Delivery.State
TO_FILE = DeliveryAttempt.Outcome.TO_FILE
EHR_REFERENCE_MAX = 200


def filing_outcome(connection: EHRConnection) -> Outcome:
    """What delivery_send's attempt comes to over a manual connection:
    nothing is sent, a person files the note."""
    return Outcome(TO_FILE, reason=f"Nothing sent: {connection.name} is filed by hand; waiting for a person.")


@retry_on_conflict
@transaction.atomic
def manual_filing_open(*, delivery: Delivery, attempt: DeliveryAttempt, outcome: Outcome):
    """sending -> awaiting_filing for the claimant only (the row moves once),
    with its ledger row and audit event. Returns services.SendResult, without
    a reschedule: the worker never retries this row."""
    now = timezone.now()
    n = delivery.attempts
    changed = Delivery.objects.filter(pk=delivery.pk, state=S.SENDING, attempts=n).update(
        state=S.AWAITING_FILING, next_attempt_at=None, last_error="", updated_at=now
    )
    attempt.finished_at = now
    attempt.outcome = TO_FILE
    attempt.detail = outcome.reason + ("" if changed else " (row was taken over by the sweeper)")
    attempt.save()
    if not changed:
        return services.SendResult(Delivery.objects.filter(pk=delivery.pk).values_list("state", flat=True).first())
    delivery.state = S.AWAITING_FILING
    audit_record(
        practice=delivery.practice,
        actor=actor_system("delivery worker"),
        action="delivery.attempt",
        obj=delivery,
        note=delivery.note,
        client=delivery.note.client,
        after={"state": S.AWAITING_FILING, "attempt": n, "outcome": TO_FILE, "ehr_id": ""},
        detail={"reason": outcome.reason},
    )
    return services.SendResult(S.AWAITING_FILING, outcome=outcome)


def manual_connection_check(
    *, base_url: str, patient_query_url: str, auth_kind: str, client_id: str, token_url: str, username: str, secrets
) -> None:
    """A manual connection sends nothing, so it has no address and holds no
    credentials. Raises ConnectionInvalid naming the field given anyway."""
    given = {
        "base_url": base_url,
        "patient_query_url": patient_query_url,
        "client_id": client_id,
        "token_url": token_url,
        "username": username,
        "secret": secrets,
    }
    for field, value in given.items():
        if value:
            raise ConnectionInvalid(
                "A manual connection sends nothing: leave the address and credentials empty.", field=field
            )
    if auth_kind != EHRConnection.Auth.NONE:
        raise ConnectionInvalid("A manual connection sends nothing, so it uses no authentication.", field="auth_kind")


# ---------------------------------------------------------------- reads


def filing_delivery_get_for_user(*, user, delivery_id: int) -> Delivery:
    """A delivery that is or was filed by hand, scoped to who may file it:
    the note's clinician, or a practice admin of its practice. Anything else
    (another practice, a colleague's note, a delivery sent over an API) is a
    404: we do not confirm that it exists."""
    membership = membership_of(user)
    if membership is None or membership.role not in (Role.CLINICIAN, Role.PRACTICE_ADMIN):
        raise Http404("No such delivery.")
    deliveries = Delivery.objects.filter(practice_id=membership.practice_id).select_related(
        "note__client", "note__clinician", "note__template_version__template", "connection", "filed_by", "practice"
    )
    if membership.role == Role.CLINICIAN:
        deliveries = deliveries.filter(note__clinician=user)
    delivery = deliveries.filter(pk=delivery_id).first()
    if delivery is None or not (delivery.state == S.AWAITING_FILING or delivery.filed_by_id):
        raise Http404("No such delivery.")
    return delivery


def filing_shows_content(*, user, delivery: Delivery) -> bool:
    """Only the note's clinician reads the note here; a practice admin
    confirms without seeing it."""
    return delivery.note.clinician_id == user.pk


def filing_delivery_for_note(*, note: Note, user) -> Delivery | None:
    """The note page's "File in EHR" link: the note's own delivery while it
    waits for a person, shown to the note's clinician."""
    if note.clinician_id != user.pk:
        return None
    return Delivery.objects.filter(note=note, state=S.AWAITING_FILING).first()


@dataclass(frozen=True)
class FilingDocument:
    header: tuple[tuple[str, str], ...]
    sections: tuple[FilingSection, ...]
    data: NoteInput
    mapping: dict


def filing_document(delivery: Delivery) -> FilingDocument:
    """The note as it is filed. Raises DeliveryRefused for anything that may
    not leave (invariants 1 and 10): an unsigned note or psychotherapy notes
    are never shown for filing, whatever put a row here."""
    services.delivery_check_deliverable(delivery.note)
    delivery.note = (
        Note.objects.select_related("client", "draft__ai_source", "signed_by__membership", "template_version__template")
        .defer("draft__payload")
        .get(pk=delivery.note_id)
    )
    data = services.note_input(delivery)
    mapping = services.delivery_mapping_document(delivery)
    return FilingDocument(
        header=filing_header(data), sections=filing_sections(data, mapping), data=data, mapping=mapping
    )


def filing_pdf(delivery: Delivery, *, now: datetime | None = None) -> bytes:
    document = filing_document(delivery)
    return filing_pdf_build(document.data, document.mapping, now=now or timezone.now())


def awaiting_filing_rows(*, practice, now: datetime | None = None) -> list[dict]:
    """The dashboard's unfiled notes, oldest first, with their age (no note
    content: the dashboard is a practice admin's)."""
    now = now or timezone.now()
    limit = timedelta(hours=settings.MANUAL_FILING_ALERT_HOURS)
    rows = (
        Delivery.objects.filter(practice=practice, state=S.AWAITING_FILING)
        .select_related("note__client", "note__clinician", "connection")
        .order_by("created_at", "pk")[:200]
    )
    return [
        {
            "delivery": delivery,
            "age": now - delivery.created_at,
            "age_hours": int((now - delivery.created_at).total_seconds() // 3600),
            "overdue": now - delivery.created_at > limit,
        }
        for delivery in rows
    ]


# ---------------------------------------------------------------- writes


@transaction.atomic
def manual_filing_confirm(
    *, delivery: Delivery, actor, ehr_reference: str = "", now: datetime | None = None
) -> Delivery:
    """A person says the note is filed in the EHR: awaiting_filing ->
    delivered, once (a conditional update; a second confirmation is refused
    and changes nothing). Records who and when, the EHR's reference if given
    (as the delivery's ehr_id), a ledger row and an audit event, and resolves
    the unfiled alert. Raises NotPermitted (not the note's clinician nor a
    practice admin of its practice), DeliveryRefused (already confirmed, not
    awaiting filing, or a note that may not leave)."""
    now = now or timezone.now()
    ehr_reference = (ehr_reference or "").strip()
    if len(ehr_reference) > EHR_REFERENCE_MAX:
        raise DeliveryRefused(f"The EHR reference is at most {EHR_REFERENCE_MAX} characters.", field="ehr_reference")
    membership = membership_of(actor)
    if membership is None or membership.practice_id != delivery.practice_id:
        raise NotPermitted("Only the note's clinician or a practice admin can confirm filing.")
    if membership.role != Role.PRACTICE_ADMIN and delivery.note.clinician_id != actor.pk:
        raise NotPermitted("Only the note's clinician or a practice admin can confirm filing.")
    services.delivery_check_deliverable(delivery.note)
    changed = Delivery.objects.filter(pk=delivery.pk, state=S.AWAITING_FILING).update(
        state=S.DELIVERED,
        delivered_at=now,
        filed_by=actor,
        ehr_id=ehr_reference,
        attempts=F("attempts") + 1,
        last_error="",
        updated_at=now,
    )
    if not changed:
        current = Delivery.objects.select_related("filed_by").get(pk=delivery.pk)
        if current.filed_by_id:
            who = current.filed_by.get_full_name() or current.filed_by.get_username()
            raise DeliveryRefused(
                f"Already confirmed as filed in the EHR by {who} at {current.delivered_at:%Y-%m-%d %H:%M}."
            )
        raise DeliveryRefused(f"This delivery is {current.get_state_display().lower()}, not awaiting filing.")
    delivery.refresh_from_db()
    who = actor.get_full_name() or actor.get_username()
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempts,
        started_at=now,
        finished_at=now,
        outcome=DeliveryAttempt.Outcome.FILED,
        ehr_id=ehr_reference,
        detail=f"Filed in the EHR by {who}" + (f" (EHR reference {ehr_reference})" if ehr_reference else ""),
    )
    Alert.objects.filter(delivery=delivery, kind=Alert.Kind.UNFILED, resolved_at__isnull=True).update(
        resolved_at=now, resolved_by=actor
    )
    audit_record(
        practice=delivery.practice,
        actor=actor_person(actor),
        action="delivery.filed",
        obj=delivery,
        note=delivery.note,
        client=delivery.note.client,
        before={"state": S.AWAITING_FILING},
        after={"state": S.DELIVERED, "ehr_id": ehr_reference, "filed_by": actor.pk, "attempt": delivery.attempts},
    )
    # An amendment waiting for this version goes next (after commit, so it
    # reads this row as delivered); the sweeper is the backstop.
    transaction.on_commit(lambda: services.delivery_release_waiting(replaces_id=delivery.pk))
    return delivery


def manual_filing_alert_overdue(*, now: datetime | None = None) -> int:
    """Raise one `unfiled` alert per note still awaiting filing
    MANUAL_FILING_ALERT_HOURS after signing. Once per delivery: a partial
    unique constraint keeps two sweepers from raising it twice, and a
    resolved one is not raised again. Returns how many were raised."""
    now = now or timezone.now()
    hours = settings.MANUAL_FILING_ALERT_HOURS
    overdue = (
        Delivery.objects.filter(state=S.AWAITING_FILING, created_at__lt=now - timedelta(hours=hours))
        .exclude(alerts__kind=Alert.Kind.UNFILED)
        .select_related("connection", "note__clinician", "practice")
    )
    raised = 0
    for delivery in overdue:
        clinician = delivery.note.clinician
        waited = int((now - delivery.created_at).total_seconds() // 3600)
        alert = services.alert_raise(
            practice=delivery.practice,
            kind=Alert.Kind.UNFILED,
            delivery=delivery,
            connection=delivery.connection,
            reason=(
                f"A note signed by {clinician.get_full_name() or clinician.get_username()} "
                f"{delivery.created_at:%Y-%m-%d %H:%M} has waited {waited} hours to be filed in the EHR "
                f"(more than {hours:g}); file it and confirm on its filing page."
            ),
        )
        if not alert.is_new:
            continue  # another sweeper raised it meanwhile
        raised += 1
    return raised
