"""HTML views: thin. Each fetches through a selector (scoped to the user, so
another practice's object is a 404), calls a service, and renders."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from audit.services import audit_phi_access
from integrations.manual_filing import filing_delivery_for_note
from integrations.selectors import delivery_status_for_notes
from notes import selectors, services
from notes.errors import DomainError
from notes.forms import ConsentForm, PasswordAndCodeForm
from notes.models import Draft, Note
from notes.roles import Role, membership_of


def member_required(*roles: str):
    """Logged in with both factors, an active member, and (if given) one of roles."""

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated or not request.user.is_verified():
                return redirect(f"{reverse('login')}?next={request.path}")
            membership = membership_of(request.user)
            if membership is None or (roles and membership.role not in roles):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = PasswordAndCodeForm(request, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.get_user()
        auth_login(request, user)
        if form.needs_enrollment:
            # Password only, no second factor yet (reset by an admin): this
            # session is not verified and reaches nothing but enrollment.
            return redirect("accounts:enroll")
        otp_login(request, form.otp_device)
        next_url = request.POST.get("next") or request.GET.get("next") or ""
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            next_url = reverse("home")
        return redirect(next_url)
    return render(request, "registration/login.html", {"form": form, "next": request.GET.get("next", "")})


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    return redirect("login")


@member_required()
def home(request: HttpRequest) -> HttpResponse:
    role = membership_of(request.user).role
    return redirect(
        {
            Role.CLINICIAN: "queue",
            Role.QA_REVIEWER: "signed_notes",
            Role.PRACTICE_ADMIN: "client_list",
            Role.AUDITOR: "audit_log",
        }[role]
    )


@member_required(Role.CLINICIAN)
def queue(request: HttpRequest) -> HttpResponse:
    """The batch queue, filtered by day, client and flags. A constant number
    of queries however long the queue (tests/notes/test_review_queue.py)."""
    from django.utils import timezone

    from notes.review_views import queue_filters, queue_query, step_up_valid_until

    membership = membership_of(request.user)
    practice = membership.practice
    today = selectors.practice_day_range(practice=practice, now=timezone.now())
    filters = queue_filters(request.GET)
    when, flags, sort, client_id = filters["when"], filters["flags"], filters["sort"], filters["client"]
    rows = selectors.review_queue_filtered(
        user=request.user, today=today if when == "today" else None, client_id=client_id, flags=flags, sort=sort
    )
    # One reverse() for the whole list: per row it was a measurable share of
    # the page with 500 drafts (bench/review.py).
    # The filter and sort ride along, so "sign and next" walks this list (issue 17, point 6).
    href = reverse("review", args=[0]).replace("/0/", "/{}/") + queue_query(filters)
    states, session_types = dict(Note.State.choices), dict(Draft.SessionType.choices)
    notes = [
        {
            **row,
            "href": href.format(row["pk"]),
            "client_name": f"{row['client__given_name']} {row['client__family_name']}",
            "state_label": "Blocked" if row["blocked_reason"] else states[row["state"]],
            # strftime, not the template's date filter: a third of the page's
            # time with 500 rows went to dateformat. localtime() is in the
            # practice's zone (PracticeTimezoneMiddleware), named by %Z.
            "session_label": timezone.localtime(row["draft__session_start"]).strftime("%a %-d %b, %H:%M %Z")
            + f" · {row['draft__session_duration_minutes']} min · {session_types.get(row['draft__session_type'], '')}",
        }
        for row in rows
    ]
    # An amendment in review shows where its earlier version stands at the EHR.
    earlier = _ehr_statuses(practice=practice, note_ids=[n["amends_id"] for n in notes if n.get("amends_id")])
    for note in notes:
        note["earlier_status"] = earlier.get(note.get("amends_id"))
    return render(
        request,
        "notes/queue.html",
        {
            "notes": notes,
            "counts": selectors.review_queue_counts(user=request.user, today=today),
            "clients": selectors.review_queue_clients(user=request.user),
            "filters": filters,
            "queue_qs": queue_query(filters),
            "single_keys": membership.single_key_shortcuts,
            "step_up_until": step_up_valid_until(request, timezone.now()),
        },
    )


@member_required(Role.QA_REVIEWER)
def signed_notes(request: HttpRequest) -> HttpResponse:
    notes = (
        selectors.note_list_for_user(user=request.user)
        .select_related("client", "clinician", "draft")
        .order_by("-signed_at")[:200]
    )
    statuses = _ehr_statuses(practice=membership_of(request.user).practice, note_ids=[n.pk for n in notes])
    for note in notes:
        note.ehr_status = statuses.get(note.pk)
    return render(request, "notes/signed_notes.html", {"notes": notes})


def _ehr_statuses(*, practice, note_ids: list[int]) -> dict:
    """Where each signed note stands at the EHR (issue 13, point 7), by note id."""
    from django.utils import timezone

    return delivery_status_for_notes(notes=note_ids, practice=practice, now=timezone.now())


@member_required(Role.CLINICIAN, Role.QA_REVIEWER)
def note_detail(request: HttpRequest, note_id: int) -> HttpResponse:
    note = selectors.note_get_for_user(user=request.user, note_id=note_id)
    audit_phi_access(user=request.user, note=note)
    return render(
        request,
        "notes/note_detail.html",
        {
            "note": note,
            "sections": note.sections.all(),
            "flags": note.flags.all(),
            "can_edit": note.clinician_id == request.user.pk and not note.is_signed,
            # A manual connection's note waiting to be filed by hand: its filing page.
            "filing_delivery": filing_delivery_for_note(note=note, user=request.user) if note.is_signed else None,
            "ehr_status": _ehr_statuses(practice=note.practice, note_ids=[note.pk]).get(note.pk)
            if note.is_signed
            else None,
        },
    )


@member_required(Role.CLINICIAN, Role.PRACTICE_ADMIN, Role.QA_REVIEWER)
def client_list(request: HttpRequest) -> HttpResponse:
    clients = selectors.client_list_for_user(user=request.user).prefetch_related("consents").order_by("family_name")
    return render(request, "notes/client_list.html", {"clients": clients})


@member_required(Role.CLINICIAN, Role.PRACTICE_ADMIN, Role.QA_REVIEWER)
def client_detail(request: HttpRequest, client_id: int) -> HttpResponse:
    client = selectors.client_get_for_user(user=request.user, client_id=client_id)
    audit_phi_access(user=request.user, client=client)
    can_manage_consent = membership_of(request.user).role in (Role.PRACTICE_ADMIN, Role.CLINICIAN)
    return render(
        request,
        "notes/client_detail.html",
        {
            "client": client,
            "consent_form": ConsentForm(
                initial={"disclosure_version": selectors.disclosure_version_current(practice_id=client.practice_id)}
            ),
            "can_manage_consent": can_manage_consent,
        },
    )


@require_POST
@member_required(Role.CLINICIAN, Role.PRACTICE_ADMIN)
def client_consent(request: HttpRequest, client_id: int) -> HttpResponse:
    client = selectors.client_get_for_user(user=request.user, client_id=client_id)
    try:
        if request.POST.get("action") == "revoke":
            consent = services.consent_revoke(client=client, actor=request.user)
            blocked = len(consent.blocked_notes)
            messages.success(
                request,
                f"Consent revoked. {blocked} open AI draft{'' if blocked == 1 else 's'} of this client "
                f"{'is' if blocked == 1 else 'are'} now blocked, and new ones will be blocked too. "
                "Signed notes stay signed.",
            )
        else:
            form = ConsentForm(request.POST)
            if not form.is_valid():
                messages.error(request, "Enter the consent date and the disclosure version.")
            else:
                services.consent_record(client=client, actor=request.user, **form.cleaned_data)
                messages.success(request, "Consent recorded.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("client_detail", client_id=client.pk)


@member_required(Role.AUDITOR)
def audit_log(request: HttpRequest) -> HttpResponse:
    """The practice's events, newest first, a page at a time (keyset on seq),
    filtered by who, action, client, note and dates; the export buttons take
    the same filters. Bad filters are a 400 with the form's messages."""
    from urllib.parse import urlencode

    from audit import selectors as audit_selectors
    from audit.forms import AuditLogForm

    practice_id = membership_of(request.user).practice_id
    form = AuditLogForm(request.GET, practice_id=practice_id)
    events, older, status = [], None, 200
    if form.is_valid():
        events, older = audit_selectors.audit_log_page(
            user=request.user, before=form.cleaned_data["before"], **form.filters()
        )
    else:
        status = 400
    query = {k: v for k, v in form.query().items() if k != "before"}
    return render(
        request,
        "audit/audit_log.html",
        {
            "form": form,
            "events": events,
            "older_query": urlencode({**query, "before": older}) if older else "",
            "paged": bool(request.GET.get("before")),
            "filter_query": urlencode(query),
            "filtered": bool(query),
            "members": audit_selectors.practice_members_for_auditor(user=request.user),
            "clients": audit_selectors.clients_for_auditor(user=request.user),
            "actions": audit_selectors.audit_recent_actions(user=request.user),
        },
        status=status,
    )
