"""AI scribe sources and their API keys, for practice admins. A new key is
shown once, in the answer to the POST that made it, never stored or shown
again (and the answer is not cached)."""

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notes.errors import DomainError
from practice_admin import selectors
from practice_admin.access import admin_required
from practice_admin.forms import AISourceForm
from practice_admin.services import scribes as scribe_services

INTAKE_GUIDE = Path(settings.BASE_DIR) / "docs" / "intake.md"


@admin_required
@require_http_methods(["GET", "POST"])
def scribe_list(request: HttpRequest) -> HttpResponse:
    form = AISourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            source = scribe_services.ai_source_register(actor=request.user, **form.cleaned_data)
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"“{source.name}” registered; create a key for it.")
            return redirect("practice_admin:scribes")
    return render(
        request,
        "practice_admin/scribe_list.html",
        {"sources": selectors.ai_sources_for_admin(user=request.user), "form": form, "now": timezone.now()},
        status=400 if form.errors else 200,
    )


def _key_shown(request, key, plain: str, *, rotated_from=None) -> HttpResponse:
    return render(
        request,
        "practice_admin/scribe_key_created.html",
        {"key": key, "plain": plain, "rotated_from": rotated_from},
    )


@require_POST
@never_cache
@admin_required
def key_create(request: HttpRequest, source_id: int) -> HttpResponse:
    source = selectors.ai_source_for_admin(user=request.user, source_id=source_id)
    try:
        key, plain = scribe_services.admin_key_create(actor=request.user, ai_source=source)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("practice_admin:scribes")
    return _key_shown(request, key, plain)


@require_POST
@never_cache
@admin_required
def key_rotate(request: HttpRequest, key_id: int) -> HttpResponse:
    old = selectors.ai_source_key_for_admin(user=request.user, key_id=key_id)
    try:
        key, plain = scribe_services.admin_key_rotate(actor=request.user, key=old)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("practice_admin:scribes")
    old.refresh_from_db()
    return _key_shown(request, key, plain, rotated_from=old)


@require_POST
@admin_required
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = selectors.ai_source_key_for_admin(user=request.user, key_id=key_id)
    scribe_services.admin_key_revoke(actor=request.user, key=key)
    messages.success(request, f"Key {key.prefix} revoked: the scribe's requests with it are refused from now on.")
    return redirect("practice_admin:scribes")


@admin_required
@require_GET
def intake_guide(request: HttpRequest) -> HttpResponse:
    """docs/intake.md, the guide for scribe vendors, as plain text: the admin
    passes it on with the key."""
    return render(request, "practice_admin/intake_guide.html", {"guide": INTAKE_GUIDE.read_text(encoding="utf-8")})
