"""The delivery status the note pages poll (static/js/ehr_status.js).

PHI-free by construction: state, times and the EHR id only, never the EHR's
error text (integrations.delivery_status.delivery_status_public). Scoped
through the note selectors: a note outside the user's scope is a 404."""

from django import forms
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from integrations.delivery_status import delivery_status_public
from integrations.selectors import delivery_status_for_user
from notes.roles import Role
from notes.views import member_required

# One request for every status on a page (the signed list shows up to 200).
MAX_NOTES_PER_REQUEST = 200


class StatusQueryForm(forms.Form):
    notes = forms.CharField(max_length=MAX_NOTES_PER_REQUEST * 12)

    def clean_notes(self) -> list[int]:
        parts = [p for p in self.cleaned_data["notes"].split(",") if p]
        if not parts or not all(p.isdigit() and len(p) <= 10 for p in parts):
            raise forms.ValidationError("A comma-separated list of note ids.")
        if len(parts) > MAX_NOTES_PER_REQUEST:
            raise forms.ValidationError(f"At most {MAX_NOTES_PER_REQUEST} notes per request.")
        return [int(p) for p in parts]


@require_GET
@member_required(Role.CLINICIAN, Role.QA_REVIEWER)
def note_ehr_status(request: HttpRequest) -> JsonResponse:
    form = StatusQueryForm(request.GET)
    if not form.is_valid():
        errors = {field: [str(e) for e in errs] for field, errs in form.errors.items()}
        return JsonResponse({"detail": "Invalid query.", "errors": errors}, status=400)
    statuses = delivery_status_for_user(user=request.user, note_ids=form.cleaned_data["notes"], now=timezone.now())
    response = JsonResponse({"notes": {str(pk): delivery_status_public(view) for pk, view in statuses.items()}})
    response["Cache-Control"] = "no-store"
    return response
