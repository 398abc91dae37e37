"""Clients, consent and the disclosure text, for practice admins. Thin:
fetch through practice_admin.selectors (another practice's client is a 404),
call a service, show its DomainError as a message or a field error."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from audit.services import audit_phi_access
from notes.errors import DomainError
from notes.services import client_is_minor
from practice_admin import selectors
from practice_admin.access import admin_required
from practice_admin.forms import ClientForm, ClientImportForm, ConsentRecordForm, DisclosureTextForm
from practice_admin.services import client_import as import_services
from practice_admin.services import clients as client_services
from practice_admin.services.disclosures import disclosure_current, disclosure_text_add


def _field_error(form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


@admin_required
def client_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    clients = selectors.clients_search(user=request.user, query=query)
    return render(request, "practice_admin/client_list.html", {"clients": clients[:500], "query": query})


@admin_required
@require_http_methods(["GET", "POST"])
def client_create(request: HttpRequest) -> HttpResponse:
    form = ClientForm(request.POST or None, clinicians=selectors.practice_clinicians(user=request.user))
    if request.method == "POST" and form.is_valid():
        try:
            client = client_services.client_add(actor=request.user, **form.cleaned_data)
        except DomainError as exc:
            _field_error(form, exc)
        else:
            messages.success(request, f"{client.full_name} added.")
            return redirect("practice_admin:client_detail", client_id=client.pk)
    return render(
        request, "practice_admin/client_form.html", {"form": form, "client": None}, status=400 if form.errors else 200
    )


@admin_required
@require_http_methods(["GET", "POST"])
def client_edit(request: HttpRequest, client_id: int) -> HttpResponse:
    client = selectors.client_for_admin(user=request.user, client_id=client_id)
    initial = {name: getattr(client, name) for name in client_services.CLIENT_FIELDS}
    form = ClientForm(
        request.POST or None, initial=initial, clinicians=selectors.practice_clinicians(user=request.user)
    )
    if request.method == "POST" and form.is_valid():
        try:
            client_services.client_update(actor=request.user, client=client, **form.cleaned_data)
        except DomainError as exc:
            _field_error(form, exc)
        else:
            messages.success(request, "Client saved.")
            return redirect("practice_admin:client_detail", client_id=client.pk)
    return render(
        request, "practice_admin/client_form.html", {"form": form, "client": client}, status=400 if form.errors else 200
    )


def _detail(request: HttpRequest, client, consent_form, status: int = 200) -> HttpResponse:
    return render(
        request,
        "practice_admin/client_detail.html",
        {
            "client": client,
            "consents": client.consents.select_related("recorded_by", "revoked_by").order_by("-recorded_at"),
            "consent_form": consent_form,
            "is_minor": client_is_minor(client=client, on=timezone.localdate()),
        },
        status=status,
    )


def _consent_form(request, data=None):
    current = disclosure_current(practice=request.user.membership.practice)
    return ConsentRecordForm(
        data,
        initial={"disclosure": current.pk},
        disclosures=selectors.disclosure_texts(user=request.user),
    )


@admin_required
def client_detail(request: HttpRequest, client_id: int) -> HttpResponse:
    client = selectors.client_for_admin(user=request.user, client_id=client_id)
    audit_phi_access(user=request.user, client=client)
    return _detail(request, client, _consent_form(request))


@require_POST
@admin_required
def consent_record(request: HttpRequest, client_id: int) -> HttpResponse:
    client = selectors.client_for_admin(user=request.user, client_id=client_id)
    form = _consent_form(request, request.POST)
    if form.is_valid():
        try:
            client_services.admin_consent_record(actor=request.user, client=client, **form.cleaned_data)
        except DomainError as exc:
            _field_error(form, exc)
        else:
            messages.success(request, "Consent recorded.")
            return redirect("practice_admin:client_detail", client_id=client.pk)
    return _detail(request, client, form, status=400)


@require_POST
@admin_required
def consent_revoke(request: HttpRequest, client_id: int) -> HttpResponse:
    client = selectors.client_for_admin(user=request.user, client_id=client_id)
    try:
        consent = client_services.admin_consent_revoke(actor=request.user, client=client)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        blocked = len(consent.blocked_notes)
        messages.success(
            request,
            f"Consent revoked. {blocked} open AI draft{'' if blocked == 1 else 's'} of this client "
            f"{'is' if blocked == 1 else 'are'} now blocked. Signed notes stay signed.",
        )
    return redirect("practice_admin:client_detail", client_id=client.pk)


@never_cache  # the preview carries the file's client list: not for any cache
@admin_required
@require_http_methods(["GET", "POST"])
def client_import(request: HttpRequest) -> HttpResponse:
    """Upload, preview (every row with its errors), then confirm. The
    confirmation imports all rows or none."""
    clinicians = selectors.practice_clinicians(user=request.user)
    form = ClientImportForm(request.POST or None, request.FILES or None, clinicians=clinicians)
    preview, status = None, 200
    if request.method == "POST" and form.is_valid():
        data, default = form.cleaned_data["data"], form.cleaned_data["default_clinician"]
        try:
            if request.POST.get("confirm"):
                created = import_services.client_import(actor=request.user, data=data, default_clinician=default)
                messages.success(request, f"Imported {len(created)} client{'' if len(created) == 1 else 's'}.")
                return redirect("practice_admin:client_list")
            preview = import_services.client_import_preview(actor=request.user, data=data, default_clinician=default)
        except import_services.ImportRejected as exc:
            preview = exc.preview
            form.add_error(None, exc.message)
        except DomainError as exc:
            form.add_error(None, exc.message)
            status = 400
        if preview is not None and not preview.ok:
            status = 400
        csv_text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data
        form = (
            ClientImportForm(
                initial={"csv_text": csv_text, "default_clinician": default},
                clinicians=clinicians,
            )
            if preview is not None and preview.ok
            else form
        )
    elif form.errors:
        status = 400
    return render(request, "practice_admin/client_import.html", {"form": form, "preview": preview}, status=status)


@admin_required
@require_http_methods(["GET", "POST"])
def disclosure(request: HttpRequest) -> HttpResponse:
    form = DisclosureTextForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = disclosure_text_add(actor=request.user, text=form.cleaned_data["text"])
        except DomainError as exc:
            _field_error(form, exc)
        else:
            messages.success(request, f"Disclosure text v{version.version} saved; new consents are offered it.")
            return redirect("practice_admin:disclosure")
    current = disclosure_current(practice=request.user.membership.practice)
    if not form.is_bound:
        form = DisclosureTextForm(initial={"text": current.text})
    return render(
        request,
        "practice_admin/disclosure.html",
        {"form": form, "current": current, "versions": selectors.disclosure_texts(user=request.user)},
        status=400 if form.errors else 200,
    )
