"""The feedback form on the review page (notes/feedback_services.py)."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from notes import selectors
from notes.errors import DomainError
from notes.feedback_services import MAX_COMMENT, draft_feedback_record
from notes.models import DraftFeedback
from notes.roles import Role
from notes.views import member_required


class FeedbackForm(forms.Form):
    rating = forms.TypedChoiceField(
        choices=[("", "No rating")] + [(str(i), str(i)) for i in range(1, 6)],
        coerce=int,
        empty_value=None,
        required=False,
    )
    reasons = forms.MultipleChoiceField(choices=DraftFeedback.Reason.choices, required=False)
    comment = forms.CharField(required=False, max_length=MAX_COMMENT)


@require_POST
@member_required(Role.CLINICIAN)
def feedback_save(request: HttpRequest, note_id: int) -> HttpResponse:
    note = selectors.note_get_for_user(user=request.user, note_id=note_id)
    form = FeedbackForm(request.POST)
    url = reverse("review", args=[note.pk]) + "#feedback"
    if not form.is_valid():
        message = " ".join(m for msgs in form.errors.values() for m in msgs)
        messages.error(request, f"Feedback not saved: {message}")
        return redirect(url)
    try:
        draft_feedback_record(
            note=note,
            rating=form.cleaned_data["rating"],
            reasons=form.cleaned_data["reasons"],
            comment=form.cleaned_data["comment"],
            actor=request.user,
        )
    except DomainError as exc:
        messages.error(request, f"Feedback not saved: {exc.message}")
        return redirect(url)
    messages.success(request, "Thanks: your feedback goes to the scribe vendor (no client details).")
    return redirect(url)
