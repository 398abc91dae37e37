"""Reads, always scoped to the person asking. An object outside what the user
may see is "not found" (404), never "forbidden": we do not confirm that
another practice's note exists.

Access rules (issue 3): a clinician sees their own clients' notes; a QA
reviewer reads the practice's signed notes; a practice admin manages the
practice (clients, consent, members, templates) but reads no note content;
an auditor reads the practice's audit log. Nobody crosses practices.
"""

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from audit.models import AuditEvent
from notes.models import Client, Note
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
