"""Reads of the audit log, scoped to the person asking. Outside what they may
see is "not found" (404), as in notes.selectors.

- A note's timeline: the note's clinician, the practice's QA reviewers (for
  signed notes) and its auditors.
- PHI access log, exports, FHIR AuditEvents: the practice's auditors only.
"""

from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from audit.models import AuditEvent
from notes.models import Client, Note
from notes.roles import Role, membership_of


def _auditor_practice_id(user) -> int:
    membership = membership_of(user)
    if membership is None or membership.role != Role.AUDITOR:
        raise Http404("Not found.")
    return membership.practice_id


def note_get_for_timeline(*, user, note_id: int) -> Note:
    membership = membership_of(user)
    note = (
        Note.objects.select_related("client", "clinician", "signed_by", "draft__ai_source")
        .filter(pk=note_id, practice_id=getattr(membership, "practice_id", None))
        .first()
    )
    if note is None or membership is None:
        raise Http404("No such note.")
    allowed = (
        membership.role == Role.AUDITOR
        or (membership.role == Role.CLINICIAN and note.clinician_id == user.pk)
        or (membership.role == Role.QA_REVIEWER and note.is_signed)
    )
    if not allowed:
        raise Http404("No such note.")
    return note


def note_lineage(note: Note) -> QuerySet[Note]:
    """Every version of the note (the original and its amendments)."""
    return Note.objects.filter(practice_id=note.practice_id, lineage=note.lineage).order_by("version")


# Client events that bear on every note of the client: a note signed before a
# revocation stays signed, and its timeline shows when consent changed.
CLIENT_EVENTS_ON_NOTE_TIMELINES = ("consent.record", "consent.revoke")


def note_timeline(*, note: Note) -> QuerySet[AuditEvent]:
    """Everything that happened to any version of the note, in chain order,
    and the client's consent changes since the note was drafted."""
    lineage = note_lineage(note)
    drafted_at = lineage.order_by("created_at").values_list("created_at", flat=True).first()
    client_events = Q(client_id=note.client_id, action__in=CLIENT_EVENTS_ON_NOTE_TIMELINES, created_at__gte=drafted_at)
    return (
        AuditEvent.objects.filter(practice_id=note.practice_id)
        .filter(Q(note__in=lineage.values("pk")) | client_events)
        .select_related("note")
        .order_by("seq")
    )


def note_timeline_for_user(*, user, note_id: int) -> tuple[Note, list[AuditEvent]]:
    note = note_get_for_timeline(user=user, note_id=note_id)
    return note, list(note_timeline(note=note))


def clients_for_auditor(*, user) -> QuerySet[Client]:
    return Client.objects.filter(practice_id=_auditor_practice_id(user)).order_by("family_name", "given_name", "pk")


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def phi_access_for_auditor(*, user, client: Client, date_from: date, date_to: date) -> QuerySet[AuditEvent]:
    """Who viewed client X (the client's record or any of their notes)
    between two dates, both included, newest first."""
    practice_id = _auditor_practice_id(user)
    if client.practice_id != practice_id:
        raise Http404("No such client.")
    return (
        AuditEvent.objects.filter(
            practice_id=practice_id,
            client=client,
            action="phi.view",
            created_at__gte=_day_start(date_from),
            created_at__lt=_day_start(date_to + timedelta(days=1)),
        )
        .select_related("actor_user", "note")
        .order_by("-created_at", "-seq")
    )


def audit_events_filtered(
    *,
    user,
    date_from: date | None = None,
    date_to: date | None = None,
    note: Note | None = None,
    actor_user=None,
    action: str = "",
    client: Client | None = None,
) -> QuerySet[AuditEvent]:
    """The auditor's practice's events, filtered, unordered. A note filter
    takes in the whole lineage of the note; a client filter the client's own
    events and those of the client's notes; an action ending in a dot is a
    family ("note.")."""
    practice_id = _auditor_practice_id(user)
    events = AuditEvent.objects.filter(practice_id=practice_id)
    if date_from is not None:
        events = events.filter(created_at__gte=_day_start(date_from))
    if date_to is not None:
        events = events.filter(created_at__lt=_day_start(date_to + timedelta(days=1)))
    if note is not None:
        events = events.filter(note__in=note_lineage(note).values("pk"))
    if actor_user is not None:
        events = events.filter(actor_user=actor_user)
    if action:
        events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
    if client is not None:
        notes = Note.objects.filter(practice_id=practice_id, client=client).values("pk")
        events = events.filter(Q(client=client) | Q(note__in=notes))
    return events


def audit_events_for_export(**filters) -> QuerySet[AuditEvent]:
    """The filtered events in chain order (the order an export is checked in)."""
    return audit_events_filtered(**filters).order_by("seq")


AUDIT_LOG_PAGE_SIZE = 50


def audit_log_page(
    *, before: int | None = None, limit: int = AUDIT_LOG_PAGE_SIZE, **filters
) -> tuple[list, int | None]:
    """One page of the filtered events, newest first, and the cursor of the
    next (older) page or None. Keyset on seq (the practice's unique (practice,
    seq) index), so page 1,000 costs what page 1 does."""
    events = audit_events_filtered(**filters).select_related("actor_user")
    if before is not None:
        events = events.filter(seq__lt=before)
    rows = list(events.order_by("-seq")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].seq if more else None)


def audit_sessions_for_events(events) -> dict:
    """key -> AuditSession for the sessions these events name (the user agent
    stored once per session, audit.services._audit_session)."""
    from audit.models import AuditSession
    from audit.services import AUDIT_SESSION_DETAIL

    keys = {e.detail.get(AUDIT_SESSION_DETAIL) for e in events if isinstance(e.detail, dict)} - {None}
    return {s.key: s for s in AuditSession.objects.filter(key__in=keys)} if keys else {}


def practice_members_for_auditor(*, user) -> list[tuple[int, str]]:
    """(user id, name) of the auditor's practice's members, for the audit log's "who" filter."""
    from notes.models import Membership

    rows = Membership.objects.filter(practice_id=_auditor_practice_id(user)).select_related("user")
    return sorted(
        ((m.user_id, m.user.get_full_name() or m.user.username) for m in rows), key=lambda row: row[1].lower()
    )


def audit_recent_actions(*, user, window: int = 2000) -> list[str]:
    """The action names among the practice's latest events, offered as
    suggestions in the audit log's filter (a bounded read, not a scan)."""
    recent = (
        AuditEvent.objects.filter(practice_id=_auditor_practice_id(user))
        .order_by("-seq")
        .values_list("action", flat=True)[:window]
    )
    return sorted(set(recent))


def note_get_for_auditor(*, user, note_id: int) -> Note:
    note = Note.objects.filter(pk=note_id, practice_id=_auditor_practice_id(user)).first()
    if note is None:
        raise Http404("No such note.")
    return note


def delivery_get_for_auditor(*, user, delivery_id: int):
    from integrations.models import Delivery

    delivery = (
        Delivery.objects.select_related("note__client", "note__signed_by", "practice")
        .filter(pk=delivery_id, practice_id=_auditor_practice_id(user))
        .first()
    )
    if delivery is None:
        raise Http404("No such delivery.")
    return delivery


def delivery_events(*, delivery) -> QuerySet[AuditEvent]:
    """The delivery's events (create, attempts, answers), in chain order.
    Found through the note (one delivery per note version), which is indexed."""
    return AuditEvent.objects.filter(
        practice_id=delivery.practice_id, note_id=delivery.note_id, action__startswith="delivery."
    ).order_by("seq")
