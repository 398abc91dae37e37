"""Reads, always scoped to the person asking. An object outside what the user
may see is "not found" (404), never "forbidden": we do not confirm that
another practice's note exists.

Access rules (issue 3): a clinician sees their own clients' notes; a QA
reviewer reads the practice's signed notes; a practice admin manages the
practice (clients, consent, members, templates) but reads no note content;
an auditor reads the practice's audit log. Nobody crosses practices.
"""

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from audit.models import AuditEvent
from notes.models import Client, Flag, Note
from notes.roles import Role, membership_of


def note_list_for_user(*, user) -> QuerySet[Note]:
    membership = membership_of(user)
    if membership is None:
        return Note.objects.none()
    notes = Note.objects.filter(practice_id=membership.practice_id)
    if membership.role == Role.CLINICIAN:
        return notes.filter(clinician=user)
    if membership.role == Role.QA_REVIEWER:
        return notes.filter(state__in=[Note.State.SIGNED, Note.State.AMENDED])
    return Note.objects.none()


def note_get_for_user(*, user, note_id: int) -> Note:
    note = (
        note_list_for_user(user=user)
        .select_related("client", "clinician", "draft__ai_source", "template_version__template", "signed_by")
        .filter(pk=note_id)
        .first()
    )
    if note is None:
        raise Http404("No such note.")
    return note


def review_queue_for_user(*, user) -> QuerySet[Note]:
    """The clinician's notes awaiting review, with their open-flag counts."""
    return (
        note_list_for_user(user=user)
        .filter(state__in=[Note.State.DRAFT, Note.State.IN_REVIEW])
        .select_related("client", "draft", "template_version__template")
        .annotate(open_flags=Count("flags", filter=Q(flags__resolved_at__isnull=True)))
        .order_by("draft__session_start", "pk")
    )


def client_list_for_user(*, user) -> QuerySet[Client]:
    membership = membership_of(user)
    if membership is None:
        return Client.objects.none()
    clients = Client.objects.filter(practice_id=membership.practice_id)
    if membership.role == Role.CLINICIAN:
        return clients.filter(Q(clinician=user) | Q(notes__clinician=user)).distinct()
    if membership.role == Role.PRACTICE_ADMIN:
        return clients
    if membership.role == Role.QA_REVIEWER:
        return clients.filter(notes__state__in=[Note.State.SIGNED, Note.State.AMENDED]).distinct()
    return Client.objects.none()


def client_get_for_user(*, user, client_id: int) -> Client:
    client = client_list_for_user(user=user).filter(pk=client_id).prefetch_related("consents").first()
    if client is None:
        raise Http404("No such client.")
    return client


def audit_events_for_user(*, user) -> QuerySet[AuditEvent]:
    membership = membership_of(user)
    if membership is None or membership.role != Role.AUDITOR:
        return AuditEvent.objects.none()
    return AuditEvent.objects.filter(practice_id=membership.practice_id).select_related("actor_user")


# --- review queue (issue 5) ------------------------------------------------------------------------

QUEUE_SORTS = {
    "session": ("draft__session_start", "pk"),
    "-session": ("-draft__session_start", "-pk"),
    "client": ("client__family_name", "client__given_name", "draft__session_start", "pk"),
    "flags": ("-open_flags", "draft__session_start", "pk"),
}
QUEUE_FLAG_FILTERS = ("open", "none", "risk", "blocked")


def practice_day_range(*, practice, now):
    """Start and end of "today" in the practice's timezone, as aware datetimes."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(practice.timezone))
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def review_queue_filtered(
    *, user, today=None, client_id: int | None = None, flags: str = "", sort: str = "session"
) -> QuerySet:
    """The review queue narrowed and sorted for the queue page, as plain rows
    (values()): with 500 drafts, building five model instances per row cost
    more than the query. The open-flag count is a correlated subquery so it
    filters and sorts without a GROUP BY over every column."""
    open_flags = (
        Flag.objects.filter(note=OuterRef("pk"), resolved_at__isnull=True)
        .order_by()
        .values("note")
        .annotate(n=Count("pk"))
        .values("n")
    )
    notes = (
        note_list_for_user(user=user)
        .filter(state__in=[Note.State.DRAFT, Note.State.IN_REVIEW])
        .annotate(open_flags=Coalesce(Subquery(open_flags, output_field=IntegerField()), 0))
    )
    if today is not None:
        notes = notes.filter(draft__session_start__gte=today[0], draft__session_start__lt=today[1])
    if client_id is not None:
        notes = notes.filter(client_id=client_id)
    if flags == "open":
        notes = notes.filter(open_flags__gt=0)
    elif flags == "none":
        notes = notes.filter(open_flags=0)
    elif flags == "risk":
        notes = notes.filter(high_risk=True)
    elif flags == "blocked":
        notes = notes.exclude(blocked_reason="")
    return notes.order_by(*QUEUE_SORTS.get(sort, QUEUE_SORTS["session"])).values(
        "pk",
        "state",
        "high_risk",
        "blocked_reason",
        "blocked_cause",
        "open_flags",
        "client_id",
        "client__given_name",
        "client__family_name",
        "client__synthetic",
        "draft__session_start",
        "draft__session_duration_minutes",
        "draft__session_type",
        "template_version__template__name",
        "amends_id",  # an amendment's row shows its earlier version's EHR status
    )


def review_queue_counts(*, user, today) -> dict:
    """All the queue's counts in one query."""
    has_open = Exists(Flag.objects.filter(note=OuterRef("pk"), resolved_at__isnull=True))
    base = note_list_for_user(user=user).filter(state__in=[Note.State.DRAFT, Note.State.IN_REVIEW])
    return base.annotate(has_open=has_open).aggregate(
        all=Count("pk"),
        today=Count("pk", filter=Q(draft__session_start__gte=today[0], draft__session_start__lt=today[1])),
        with_flags=Count("pk", filter=Q(has_open=True)),
        high_risk=Count("pk", filter=Q(high_risk=True)),
        blocked=Count("pk", filter=~Q(blocked_reason="")),
    )


def review_queue_clients(*, user) -> QuerySet[Client]:
    """Clients with notes waiting, for the queue's client filter."""
    waiting = review_queue_for_user(user=user).values("client_id")
    return Client.objects.filter(pk__in=waiting).order_by("family_name", "given_name")


def review_queue_neighbours(*, user, note: Note) -> tuple[int | None, int | None]:
    """The notes before and after this one in the queue's default order, for
    j/k and "sign and next". Wraps around, so a batch is cleared without
    going back to the list; None when nothing else waits."""
    queue = note_list_for_user(user=user).filter(state__in=[Note.State.DRAFT, Note.State.IN_REVIEW]).exclude(pk=note.pk)
    start = note.draft.session_start
    after = Q(draft__session_start__gt=start) | Q(draft__session_start=start, pk__gt=note.pk)
    ids = queue.values_list("pk", flat=True)
    nxt = ids.filter(after).order_by("draft__session_start", "pk").first()
    nxt = nxt or ids.order_by("draft__session_start", "pk").first()
    prev = ids.exclude(after).order_by("-draft__session_start", "-pk").first()
    prev = prev or ids.order_by("-draft__session_start", "-pk").first()
    return prev, nxt


def note_versions_for_user(*, user, note: Note) -> QuerySet[Note]:
    """Every version of the note's lineage the user may see, oldest first."""
    return (
        note_list_for_user(user=user)
        .filter(lineage=note.lineage)
        .select_related("signed_by", "amends")
        .order_by("version")
    )


def note_edit_events_for_user(*, user, note: Note) -> QuerySet[AuditEvent]:
    """The audit trail of a note's lineage (edits with before/after, flags,
    signatures), for the version history page."""
    versions = note_versions_for_user(user=user, note=note).values("pk")
    return AuditEvent.objects.filter(note_id__in=versions).exclude(action="phi.view").order_by("seq")
