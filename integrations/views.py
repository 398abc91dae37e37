"""Delivery dashboard for practice admins, and the public JWKS."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from integrations import selectors, services
from integrations.auth import jwks_document
from notes.errors import DomainError
from notes.roles import Role
from notes.views import member_required


@member_required(Role.PRACTICE_ADMIN)
def delivery_dashboard(request: HttpRequest) -> HttpResponse:
    context = selectors.delivery_dashboard_for_user(user=request.user)
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
