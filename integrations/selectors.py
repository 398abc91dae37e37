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


# ---------------------------------------------------------------- delivery status on every page (issue 13, point 7)

# The admin dashboard's page of delivery rows (keyset on the primary key).
DELIVERY_ROWS_PAGE = 50


def practice_zone(practice):
    """The practice's timezone; UTC if the stored name is unknown here, so a
    status is still shown (with UTC named) rather than a 500."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(practice.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _deliveries_with_status_fields():
    """What delivery_status_view reads, in the same query: the connection and
    the pinned mapping (a REST record URL); "retrying since" is the row's own
    first_attempt_at."""
    return Delivery.objects.select_related("connection", "mapping")


def delivery_status_for_notes(*, notes, practice, now) -> dict:
    """{note id: status view} for notes the caller already fetched through a
    scoped selector. Two queries at most, however many notes."""
    from integrations.delivery_status import delivery_status_view
    from notes.models import Note

    ids = [n.pk if hasattr(n, "pk") else n for n in notes]
    if not ids:
        return {}
    tz = practice_zone(practice)
    by_note = {d.note_id: d for d in _deliveries_with_status_fields().filter(note_id__in=ids)}
    missing = [pk for pk in ids if pk not in by_note]
    kept_here = set(
        Note.objects.filter(pk__in=missing, template_version__template__is_psychotherapy_notes=True).values_list(
            "pk", flat=True
        )
        if missing
        else ()
    )
    return {pk: delivery_status_view(by_note.get(pk), tz=tz, now=now, psychotherapy=pk in kept_here) for pk in ids}


def delivery_status_for_user(*, user, note_ids: list[int], now) -> dict:
    """The polled status of signed notes the user may read. Http404 when any
    id is outside the user's scope (or not signed): we do not confirm that
    another practice's note exists."""
    from django.http import Http404

    from notes.models import Note
    from notes.roles import membership_of
    from notes.selectors import note_list_for_user

    wanted = set(note_ids)
    found = set(
        note_list_for_user(user=user)
        .filter(pk__in=wanted, state__in=[Note.State.SIGNED, Note.State.AMENDED])
        .values_list("pk", flat=True)
    )
    if found != wanted:
        raise Http404("No such note.")
    return delivery_status_for_notes(notes=sorted(found), practice=membership_of(user).practice, now=now)


def delivery_rows_for_admin(
    *, user, state: str = "", older_than=None, clinician=None, connection=None, before: int | None = None, now
) -> dict:
    """One row per delivery of the admin's practice, newest first, narrowed
    by the dashboard's filters; `before` is the keyset cursor (a delivery
    id). Returns {"rows": [(delivery, status view)], "next_before": id|None}."""
    from integrations.delivery_status import delivery_status_view

    practice = _practice_for_admin(user)
    tz = practice_zone(practice)
    deliveries = (
        _deliveries_with_status_fields()
        .filter(practice=practice)
        .select_related("note__client", "note__clinician")
        .order_by("-pk")
    )
    if state:
        deliveries = deliveries.filter(state=state)
    if older_than is not None:
        deliveries = deliveries.filter(created_at__lt=now - older_than)
    if clinician is not None:
        deliveries = deliveries.filter(note__clinician=clinician)
    if connection is not None:
        deliveries = deliveries.filter(connection=connection)
    if before is not None:
        deliveries = deliveries.filter(pk__lt=before)
    page = list(deliveries[: DELIVERY_ROWS_PAGE + 1])
    more = len(page) > DELIVERY_ROWS_PAGE
    page = page[:DELIVERY_ROWS_PAGE]
    return {
        "rows": [(d, delivery_status_view(d, tz=tz, now=now)) for d in page],
        "next_before": page[-1].pk if more else None,
    }


def alert_list_for_user(*, user) -> dict:
    """Open alerts (newest first) and the 50 last resolved, of the admin's practice."""
    practice = _practice_for_admin(user)
    alerts = Alert.objects.filter(practice=practice).select_related("acknowledged_by", "resolved_by")
    return {
        "practice": practice,
        "open_alerts": list(alerts.filter(resolved_at__isnull=True).order_by("-last_raised_at", "-pk")[:200]),
        "resolved_alerts": list(alerts.filter(resolved_at__isnull=False).order_by("-resolved_at")[:50]),
    }


def alert_get_for_user(*, user, alert_id: int) -> Alert:
    """404 outside the admin's practice."""
    practice = _practice_for_admin(user)
    return get_object_or_404(Alert, pk=alert_id, practice=practice)
