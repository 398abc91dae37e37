"""Practice admins' pages (delivery dashboard, EHR connections, field
mappings) and the public JWKS."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from integrations import manual_filing, selectors, services
from integrations.auth import jwks_document
from integrations.errors import MappingInvalid
from integrations.forms import ConnectionForm, DeliveryFilterForm, MappingImportForm
from integrations.mapping import mapping_diff as mapping_diff_text
from notes.errors import DomainError
from notes.roles import Role, membership_of
from notes.views import member_required


@member_required(Role.PRACTICE_ADMIN)
def delivery_dashboard(request: HttpRequest) -> HttpResponse:
    context = selectors.delivery_dashboard_for_user(user=request.user)
    context["awaiting_filing"] = manual_filing.awaiting_filing_rows(practice=context["practice"])
    # One row per delivery, filtered (issue 13, point 7); bad filters are a message.
    form = DeliveryFilterForm(request.GET or None, practice=context["practice"])
    if form.is_bound and not form.is_valid():
        context.update(filter_form=form, delivery_rows=None)
        return render(request, "integrations/dashboard.html", context, status=400)
    page = selectors.delivery_rows_for_admin(
        user=request.user, now=timezone.now(), **(form.filters() if form.is_bound else {})
    )
    context.update(filter_form=form, delivery_rows=page["rows"], next_before=page["next_before"])
    return render(request, "integrations/dashboard.html", context)


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def delivery_reprocess(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = selectors.delivery_get_for_user(user=request.user, delivery_id=delivery_id)
    try:
        services.delivery_reprocess(delivery=delivery, actor=request.user)
        messages.success(request, f"Delivery of note for {delivery.note.client} queued again.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("integrations:dashboard")


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """Our public keys for SMART Backend Services. Unauthenticated by design;
    short cache so a rotation is picked up soon."""
    response = JsonResponse(jwks_document())
    response["Cache-Control"] = "public, max-age=300"
    return response


# ---------------------------------------------------------------- connections and mappings (practice admins)


@member_required(Role.PRACTICE_ADMIN)
def connection_list(request: HttpRequest) -> HttpResponse:
    form = ConnectionForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.connection_create(
                    practice=membership_of(request.user).practice,
                    name=data["name"],
                    kind=data["kind"],
                    base_url=data["base_url"],
                    patient_query_url=data["patient_query_url"],
                    hl7_patient_check=data["hl7_patient_check"],
                    hl7_assigning_authority=data["hl7_assigning_authority"].strip(),
                    is_sandbox=data["is_sandbox"],
                    auth_kind=data["auth_kind"],
                    client_id=data["client_id"],
                    token_url=data["token_url"],
                    username=data["username"],
                    secrets=form.secrets(),
                    actor=request.user,
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                messages.success(request, "Connection saved and made active. Test it before the first delivery.")
                return redirect("integrations:connections")
    connections = selectors.connection_list_for_user(user=request.user)
    return render(
        request,
        "integrations/connections.html",
        {"connections": connections, "form": form},
        status=400 if form.errors else 200,
    )


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def connection_test(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(user=request.user, connection_id=connection_id)
    try:
        summary = services.connection_test(connection=connection, actor=request.user)
    except DomainError as exc:
        summary = {"error": exc.message}
    if "error" in summary:
        messages.error(request, summary["error"])
    else:
        messages.success(
            request,
            "The server answered. Conditional create: {}; Provenance: {}.".format(
                "yes" if summary.get("conditional_create") else "no", "yes" if summary.get("provenance") else "no"
            ),
        )
    return redirect("integrations:connections")


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def connection_revoke(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(user=request.user, connection_id=connection_id)
    services.connection_revoke(connection=connection, actor=request.user)
    messages.success(request, f"{connection.name} is disabled; deliveries wait until a connection is active.")
    return redirect("integrations:connections")


@member_required(Role.PRACTICE_ADMIN)
def mapping_list(request: HttpRequest) -> HttpResponse:
    templates = selectors.template_list_with_mappings_for_user(user=request.user)
    return render(request, "integrations/mappings.html", {"templates": templates})


@member_required(Role.PRACTICE_ADMIN)
def mapping_export(request: HttpRequest, mapping_id: int) -> HttpResponse:
    mapping = selectors.mapping_get_for_user(user=request.user, mapping_id=mapping_id)
    response = JsonResponse(services.mapping_export(mapping), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="mapping-{mapping.template.key}-v{mapping.version}.json"'
    return response


@member_required(Role.PRACTICE_ADMIN)
def mapping_import(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.template_get_for_admin(user=request.user, template_id=template_id)
    form = MappingImportForm(request.POST or None)
    errors: dict = {}
    if request.method == "POST" and form.is_valid():
        try:
            mapping = services.mapping_import(template=template, data=form.cleaned_data["document"], actor=request.user)
        except MappingInvalid as exc:
            form.add_error(None, exc.message)
            errors = exc.errors
        else:
            messages.success(request, f"Mapping v{mapping.version} for {template.name} saved and active.")
            return redirect("integrations:mappings")
    return render(
        request,
        "integrations/mapping_import.html",
        {"template": template, "form": form, "errors": errors},
        status=400 if form.errors else 200,
    )


@member_required(Role.PRACTICE_ADMIN)
def mapping_diff(request: HttpRequest, mapping_id: int, other_id: int) -> HttpResponse:
    old = selectors.mapping_get_for_user(user=request.user, mapping_id=mapping_id)
    new = selectors.mapping_get_for_user(user=request.user, mapping_id=other_id)
    diff = mapping_diff_text(old.document, new.document, old_label=f"v{old.version}", new_label=f"v{new.version}")
    return render(request, "integrations/mapping_diff.html", {"old": old, "new": new, "diff": diff})
