"""Practice admins' alert pages: the list (acknowledge, resolve) and the
alert settings; the schema-drift check button of the connections page."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from integrations import selectors, services
from integrations.forms import AlertRulesForm
from integrations.services.alerts import alert_rules_for
from integrations.services.schema_drift import schema_drift_check
from notes.errors import DomainError
from notes.roles import Role, membership_of
from notes.views import member_required


@member_required(Role.PRACTICE_ADMIN)
def alert_list(request: HttpRequest) -> HttpResponse:
    context = selectors.alert_list_for_user(user=request.user)
    return render(request, "integrations/alerts.html", context)


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = selectors.alert_get_for_user(user=request.user, alert_id=alert_id)
    try:
        services.alert_acknowledge(alert=alert, actor=request.user)
        messages.success(request, f"Acknowledged: {alert.get_kind_display()}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("integrations:alerts")


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def alert_resolve(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = selectors.alert_get_for_user(user=request.user, alert_id=alert_id)
    try:
        services.alert_resolve(alert=alert, actor=request.user)
        messages.success(request, f"Resolved: {alert.get_kind_display()}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("integrations:alerts")


@member_required(Role.PRACTICE_ADMIN)
def alert_settings(request: HttpRequest) -> HttpResponse:
    practice = membership_of(request.user).practice
    rules = alert_rules_for(practice)
    form = AlertRulesForm(request.POST or None, instance=rules)
    issued = ""
    if request.method == "POST" and form.is_valid():
        values = {name: form.cleaned_data[name] for name in form.Meta.fields}
        try:
            _, issued = services.alert_rules_save(
                practice=practice, actor=request.user, new_secret=form.cleaned_data["new_secret"], **values
            )
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            if not issued:
                messages.success(request, "Alert settings saved.")
                return redirect("integrations:alert_settings")
            messages.success(request, "Alert settings saved. Copy the webhook secret now: it is shown only once.")
    return render(
        request,
        "integrations/alert_settings.html",
        {"form": form, "issued_secret": issued, "has_secret": bool(rules.webhook_secret_encrypted)},
        status=400 if form.errors else 200,
    )


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def connection_schema_check(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = selectors.connection_get_for_user(user=request.user, connection_id=connection_id)
    report = schema_drift_check(connection=connection, actor=request.user)
    if report.error:
        messages.error(request, report.error)
    elif report.problems:
        fields = ", ".join(dict.fromkeys(p["field"] for p in report.problems))
        messages.error(request, f"Schema drift: {fields}. An alert was raised; see Alerts.")
    else:
        messages.success(request, "What the EHR declares still fits the field mapping.")
    return redirect("integrations:connections")
