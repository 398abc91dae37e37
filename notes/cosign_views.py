"""The supervisor's co-signature pages: the queue of supervisees' notes
waiting, one note with its AI draft, signed text and diff, and the two
actions (co-sign with the OTP step-up; return with a comment).

Thin like notes/review_views.py: a selector scopes the note to the
supervisor (anything else is a 404), a service acts, domain errors become a
4xx with the page and its message.
"""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from audit.services import audit_phi_access
from notes import cosign_services, selectors
from notes.errors import DomainError
from notes.forms import StepUpForm
from notes.models import Note
from notes.review_views import _section_diffs, _step_up, step_up_at, step_up_valid_until
from notes.roles import Role
from notes.views import member_required


class ReturnForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


@require_GET
@member_required(Role.CLINICIAN)
def cosign_queue(request: HttpRequest) -> HttpResponse:
    notes = list(selectors.cosign_queue_for_user(user=request.user))
    return render(request, "notes/cosign_queue.html", {"notes": notes})


def _render(request: HttpRequest, note: Note, *, status: int = 200, errors: dict | None = None) -> HttpResponse:
    return render(
        request,
        "notes/cosign_review.html",
        {
            "note": note,
            "sections": _section_diffs(note),
            "flags": list(note.flags.order_by("pk").select_related("resolved_by")),
            "step_up_until": step_up_valid_until(request, timezone.now()),
            "errors": errors or {},
        },
        status=status,
    )


@require_GET
@member_required(Role.CLINICIAN)
def cosign_review(request: HttpRequest, note_id: int) -> HttpResponse:
    note = selectors.cosign_note_get_for_user(user=request.user, note_id=note_id)
    audit_phi_access(user=request.user, note=note)
    return _render(request, note)


@require_POST
@member_required(Role.CLINICIAN)
def cosign_sign(request: HttpRequest, note_id: int) -> HttpResponse:
    """Co-sign with the session's step-up, or a code entered on the form (the
    same step-up as signing: one code covers both for the window)."""
    note = selectors.cosign_note_get_for_user(user=request.user, note_id=note_id)
    if request.POST.get("otp_token", "").strip():
        form: StepUpForm = _step_up(request)
        if not form.is_valid():
            message = " ".join(form.errors.get("otp_token", [])) or "That code is not valid."
            return _render(request, note, status=400, errors={"cosign": message})
    try:
        cosign_services.note_cosign(note=note, actor=request.user, step_up_at=step_up_at(request))
    except DomainError as exc:
        return _render(request, note, status=exc.status_code, errors={"cosign": exc.message})
    messages.success(request, f"Co-signed the note for {note.client.full_name}; it is on its way to the EHR.")
    return redirect(reverse("cosign_queue"))


@require_POST
@member_required(Role.CLINICIAN)
def cosign_return(request: HttpRequest, note_id: int) -> HttpResponse:
    note = selectors.cosign_note_get_for_user(user=request.user, note_id=note_id)
    form = ReturnForm(request.POST)
    if not form.is_valid():
        return _render(request, note, status=400, errors={"return": "Say what the clinician should change."})
    try:
        cosign_services.note_cosign_return(note=note, comment=form.cleaned_data["comment"], actor=request.user)
    except DomainError as exc:
        return _render(request, note, status=exc.status_code, errors={"return": exc.message})
    messages.success(request, f"Returned the note for {note.client.full_name} to {note.clinician.get_full_name()}.")
    return redirect(reverse("cosign_queue"))
