"""Reads for the delivery dashboard, always scoped to the user's practice."""

from django.db.models import Count, Min
from django.shortcuts import get_object_or_404

from integrations.models import Alert, Delivery
from notes.errors import NotPermitted
from notes.roles import Role, membership_of


def _practice_for_admin(user):
    membership = membership_of(user)
    if membership is None or membership.role != Role.PRACTICE_ADMIN:
        raise NotPermitted("Only a practice admin sees deliveries.")
    return membership.practice


def delivery_dashboard_for_user(*, user) -> dict:
    practice = _practice_for_admin(user)
    deliveries = Delivery.objects.filter(practice=practice)
    counts = {state: 0 for state in Delivery.State.values}
    for row in deliveries.values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    oldest = deliveries.filter(
        state__in=[
            Delivery.State.PENDING,
            Delivery.State.WAITING,
            Delivery.State.RETRYING,
            Delivery.State.UNKNOWN,
            Delivery.State.SENDING,
        ]
    ).aggregate(m=Min("created_at"))["m"]
    failures = (
        deliveries.filter(state=Delivery.State.FAILED)
        .select_related("note__client", "connection")
        .order_by("-updated_at")[:100]
    )
    # Amendments held back until the version they replace is at the EHR;
    # last_error says which version they wait for.
    waiting = (
        deliveries.filter(state=Delivery.State.WAITING)
        .select_related("note__client", "replaces")
        .order_by("created_at")[:100]
    )
    alerts = Alert.objects.filter(practice=practice, resolved_at__isnull=True).order_by("-created_at")[:50]
    return {
        "practice": practice,
        "counts": [(Delivery.State(state).label, state, n) for state, n in counts.items()],
        "oldest_pending_since": oldest,
        "failures": list(failures),
        "waiting": list(waiting),
        "alerts": list(alerts),
    }


def delivery_get_for_user(*, user, delivery_id: int) -> Delivery:
    """404 outside the admin's practice."""
    practice = _practice_for_admin(user)
    return get_object_or_404(Delivery.objects.select_related("note__client"), pk=delivery_id, practice=practice)


def connection_list_for_user(*, user):
    from integrations.models import EHRConnection

    practice = _practice_for_admin(user)
    return EHRConnection.objects.filter(practice=practice).order_by("-is_active", "-created_at")


def connection_get_for_user(*, user, connection_id: int):
    from integrations.models import EHRConnection

    practice = _practice_for_admin(user)
    return get_object_or_404(EHRConnection, pk=connection_id, practice=practice)


def template_list_with_mappings_for_user(*, user):
    from django.db.models import Prefetch

    from integrations.models import FieldMapping
    from notes.models import NoteTemplate

    practice = _practice_for_admin(user)
    return (
        NoteTemplate.objects.filter(practice=practice)
        .prefetch_related(Prefetch("field_mappings", queryset=FieldMapping.objects.order_by("-version")))
        .order_by("name")
    )


def template_get_for_admin(*, user, template_id: int):
    from notes.models import NoteTemplate

    practice = _practice_for_admin(user)
    return get_object_or_404(NoteTemplate, pk=template_id, practice=practice)


def mapping_get_for_user(*, user, mapping_id: int):
    from integrations.models import FieldMapping

    practice = _practice_for_admin(user)
    return get_object_or_404(FieldMapping.objects.select_related("template"), pk=mapping_id, practice=practice)
