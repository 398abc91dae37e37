"""Reads, always scoped to the person asking. An object outside what the user
may see is "not found" (404), never "forbidden": we do not confirm that
another practice's note exists.

Access rules (issue 3): a clinician sees their own clients' notes; a QA
reviewer reads the practice's signed notes; a practice admin manages the
practice (clients, consent, members, templates) but reads no note content;
an auditor reads the practice's audit log. Nobody crosses practices.
"""

from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, When
from django.db.models.functions import Coalesce
from django.http import Http404

from audit.models import AuditEvent
from notes.models import Client, DisclosureText, Flag, InterventionProposal, InterventionTerm, Note
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


def _queue_rows(*, user, today=None, client_id: int | None = None, flags: str = "", include_pk: int | None = None):
    """The queue's notes narrowed by the filters, annotated with open_flags.
    include_pk keeps one note in whatever the filters say (even signed): "sign
    and next" finds its place among the others."""
    open_flags = (
        Flag.objects.filter(note=OuterRef("pk"), resolved_at__isnull=True)
        .order_by()
        .values("note")
        .annotate(n=Count("pk"))
        .values("n")
    )
    notes = note_list_for_user(user=user).annotate(
        open_flags=Coalesce(Subquery(open_flags, output_field=IntegerField()), 0)
    )
    wanted = Q(state__in=[Note.State.DRAFT, Note.State.IN_REVIEW])
    if today is not None:
        wanted &= Q(draft__session_start__gte=today[0], draft__session_start__lt=today[1])
    if client_id is not None:
        wanted &= Q(client_id=client_id)
    if flags == "open":
        wanted &= Q(open_flags__gt=0)
    elif flags == "none":
        wanted &= Q(open_flags=0)
    elif flags == "risk":
        wanted &= Q(high_risk=True)
    elif flags == "blocked":
        wanted &= ~Q(blocked_reason="")
    if include_pk is not None:
        wanted |= Q(pk=include_pk)
    return notes.filter(wanted)


def review_queue_filtered(
    *, user, today=None, client_id: int | None = None, flags: str = "", sort: str = "session"
) -> QuerySet:
    """The review queue narrowed and sorted for the queue page, as plain rows
    (values()): with 500 drafts, building five model instances per row cost
    more than the query. The open-flag count is a correlated subquery so it
    filters and sorts without a GROUP BY over every column."""
    notes = _queue_rows(user=user, today=today, client_id=client_id, flags=flags)
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


def review_queue_neighbours(
    *, user, note: Note, today=None, client_id: int | None = None, flags: str = "", sort: str = "session"
) -> tuple[int | None, int | None]:
    """The notes before and after this one in the queue as the clinician
    filtered and sorted it, for j/k and "sign and next". Wraps around, so a
    batch is cleared without going back to the list; None when nothing else
    waits. The note itself keeps its place even when it no longer matches
    (just signed, its flags just resolved). One query of ids: a queue is at
    most a few hundred notes."""
    ids = list(
        _queue_rows(user=user, today=today, client_id=client_id, flags=flags, include_pk=note.pk)
        .order_by(*QUEUE_SORTS.get(sort, QUEUE_SORTS["session"]))
        .values_list("pk", flat=True)
    )
    if note.pk not in ids:  # another user's note: nothing to walk
        return None, None
    at = ids.index(note.pk)
    others = ids[at + 1 :] + ids[:at]
    if not others:
        return None, None
    return others[-1], others[0]


def intervention_terms_search(*, user, query: str, limit: int = 20) -> list[str]:
    """The practice's active intervention terms whose name or a synonym holds
    the query (case and spacing ignored), for the review page's term search.
    A vocabulary is tens of terms, so it is read whole and matched here."""
    membership = membership_of(user)
    words = query.casefold().split()
    if membership is None or not words:
        return []
    hits = []
    for term, synonyms in InterventionTerm.objects.filter(
        practice_id=membership.practice_id, is_active=True
    ).values_list("term", "synonyms"):
        names = " | ".join([term, *(synonyms or [])]).casefold()
        if all(w in names for w in words):
            hits.append(term)
    return sorted(hits, key=str.casefold)[:limit]


def intervention_proposals_for_user(*, user) -> QuerySet[InterventionProposal]:
    """A practice admin's vocabulary proposals, open ones first; nobody else's."""
    membership = membership_of(user)
    if membership is None or membership.role != Role.PRACTICE_ADMIN:
        return InterventionProposal.objects.none()
    return (
        InterventionProposal.objects.filter(practice_id=membership.practice_id)
        .select_related("proposed_by", "decided_by")
        .order_by(Case(When(state=InterventionProposal.State.PROPOSED, then=0), default=1), "-created_at", "-pk")
    )


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


def cosign_queue_for_user(*, user) -> QuerySet[Note]:
    """Notes waiting for this supervisor's co-signature: those of the
    clinicians whose membership names them supervisor (read now, so a newly
    named supervisor sees what already waits), oldest signature first."""
    membership = membership_of(user)
    if membership is None or membership.role != Role.CLINICIAN or membership.pre_licensed:
        return Note.objects.none()
    return (
        Note.objects.filter(
            practice_id=membership.practice_id,
            state=Note.State.AWAITING_COSIGN,
            clinician__membership__supervisor=user,
        )
        .select_related("client", "clinician", "signed_by", "draft__ai_source", "template_version__template")
        .order_by("signed_at", "pk")
    )


def cosign_note_get_for_user(*, user, note_id: int) -> Note:
    note = cosign_queue_for_user(user=user).filter(pk=note_id).first()
    if note is None:
        raise Http404("No such note awaiting your co-signature.")
    return note


def disclosure_version_current(*, practice_id: int) -> str:
    """The practice's newest consent disclosure text version, as consents
    name it ("v2"); "v1", the plain default, if none was added."""
    newest = DisclosureText.objects.filter(practice_id=practice_id).order_by("-version").first()
    return f"v{newest.version if newest else 1}"
