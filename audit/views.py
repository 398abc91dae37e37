"""The audit pages: a note's timeline, the PHI access log query, exports
(CSV, JSON, FHIR Provenance, FHIR AuditEvent). Thin: each fetches through an
audit selector (scoped to the user; outside it is a 404) and renders."""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from audit import selectors
from audit.diffs import event_diff_html
from audit.exports import events_csv, events_json
from audit.fhir import auditevent_for_delivery_event, provenance_for_note
from audit.forms import ExportForm, PhiAccessForm
from audit.models import AuditEvent, NoteAttribution
from audit.services import AUDIT_SESSION_DETAIL, actor_person, audit_phi_access, audit_record
from notes.roles import Role, membership_of
from notes.views import member_required

_STATE_KEYS = (
    "state",
    "version",
    "reason",
    "superseded_by",
    "content_hash",
    "resolution",
    "kind",
    "blocked_cause",
    "revoked_at",
    "consented_on",
)


def _summary(event: AuditEvent) -> str:
    """A one-line account of an event's before/after that is not a text diff."""
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    parts = []
    for key in _STATE_KEYS:
        if key in before and key in after and before[key] != after[key]:
            parts.append(f"{key}: {before[key]} → {after[key]}")
        elif key in after and key not in before:
            parts.append(f"{key}: {after[key]}")
    if isinstance(event.detail, dict) and event.detail.get("section"):
        parts.insert(0, f"section {event.detail['section']}")
    return " · ".join(str(p) for p in parts)


def _session_user_agent(event: AuditEvent, sessions: dict) -> str:
    key = event.detail.get(AUDIT_SESSION_DETAIL) if isinstance(event.detail, dict) else None
    session = sessions.get(key)
    return session.user_agent if session is not None else ""


@require_GET
@member_required(Role.CLINICIAN, Role.QA_REVIEWER, Role.AUDITOR)
def note_timeline(request: HttpRequest, note_id: int) -> HttpResponse:
    note, events = selectors.note_timeline_for_user(user=request.user, note_id=note_id)
    audit_phi_access(user=request.user, note=note)  # the timeline shows the note's text
    is_auditor = membership_of(request.user).role == Role.AUDITOR
    versions = list(selectors.note_lineage(note).select_related("signed_by"))
    attributions = {a.note_id: a for a in NoteAttribution.objects.filter(note__in=[v.pk for v in versions])}
    # Diffs of signed versions were stored at signing; only the others are computed here.
    stored = {seq: runs for a in attributions.values() for seq, runs in a.event_diffs.items()}
    # The user agent is stored once per session; an event names its session.
    sessions = selectors.audit_sessions_for_events(events) if is_auditor else {}
    entries = [
        {
            "event": e,
            "version": e.note.version if e.note_id else None,
            "diff": event_diff_html(e, stored),  # any event with text or codes before and after
            "summary": _summary(e),
            "user_agent": e.user_agent or _session_user_agent(e, sessions),
        }
        for e in events
    ]
    return render(
        request,
        "audit/note_timeline.html",
        {
            "note": note,
            "entries": entries,
            "versions": [(v, attributions.get(v.pk)) for v in versions],
            "show_request": is_auditor,
        },
    )


@require_GET
@member_required(Role.AUDITOR)
def phi_access(request: HttpRequest) -> HttpResponse:
    """ "Who viewed client X between these dates"."""
    clients = selectors.clients_for_auditor(user=request.user)
    form = PhiAccessForm(request.GET or None, clients=clients)
    events = None
    status = 200
    if request.GET:
        if form.is_valid():
            client = form.cleaned_data["client"]
            events = list(
                selectors.phi_access_for_auditor(
                    user=request.user,
                    client=client,
                    date_from=form.cleaned_data["date_from"],
                    date_to=form.cleaned_data["date_to"],
                )[:1000]
            )
            audit_record(
                practice=client.practice,
                actor=actor_person(request.user),
                action="audit.phi_access_query",
                obj=client,
                client=client,
                detail={
                    "from": form.cleaned_data["date_from"],
                    "to": form.cleaned_data["date_to"],
                    "results": len(events),
                },
            )
        else:
            status = 400
    return render(request, "audit/phi_access.html", {"form": form, "events": events}, status=status)


def _export(request: HttpRequest, kind: str) -> HttpResponse:
    membership = membership_of(request.user)
    form = ExportForm(request.GET, practice_id=membership.practice_id)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    filters = form.cleaned_data
    events = selectors.audit_events_for_export(user=request.user, **form.filters())
    audit_record(
        practice=membership.practice,
        actor=actor_person(request.user),
        action="audit.export",
        object_type="audit.auditevent",
        note=filters["note"],
        detail={
            "format": kind,
            "from": filters["date_from"],
            "to": filters["date_to"],
            "note": filters["note"].pk if filters["note"] else None,
            "user": filters["user"].pk if filters["user"] else None,
            "action": filters["action"] or None,
            "client": filters["client"].pk if filters["client"] else None,
        },
    )
    stamp = timezone.localdate().isoformat()
    if kind == "csv":
        response = StreamingHttpResponse(events_csv(events), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(events_json(events), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="audit-{membership.practice.slug}-{stamp}.{kind}"'
    return response


@require_GET
@member_required(Role.AUDITOR)
def export_csv(request: HttpRequest) -> HttpResponse:
    return _export(request, "csv")


@require_GET
@member_required(Role.AUDITOR)
def export_json(request: HttpRequest) -> HttpResponse:
    return _export(request, "json")


def _fhir(resource: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(json.dumps(resource, indent=2), content_type="application/fhir+json", status=status)


@require_GET
@member_required(Role.CLINICIAN, Role.QA_REVIEWER, Role.AUDITOR)
def note_provenance(request: HttpRequest, note_id: int) -> HttpResponse:
    note = selectors.note_get_for_timeline(user=request.user, note_id=note_id)
    if not note.is_signed:
        return _fhir(
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "business-rule", "diagnostics": "The note is not signed."}],
            },
            status=409,
        )
    attribution = NoteAttribution.objects.filter(note=note).first()
    return _fhir(provenance_for_note(note=note, attribution=attribution, previous=note.amends))


@require_GET
@member_required(Role.AUDITOR)
def delivery_auditevents(request: HttpRequest, delivery_id: int) -> HttpResponse:
    """A collection Bundle: one BALP-like AuditEvent per event of the delivery."""
    delivery = selectors.delivery_get_for_auditor(user=request.user, delivery_id=delivery_id)
    connection = getattr(delivery, "connection", None)
    destination = getattr(connection, "base_url", "") if connection is not None else ""
    note = delivery.note
    entries = [
        {"resource": auditevent_for_delivery_event(event=e, delivery=delivery, note=note, destination=destination)}
        for e in selectors.delivery_events(delivery=delivery)
    ]
    return _fhir({"resourceType": "Bundle", "type": "collection", "entry": entries})
