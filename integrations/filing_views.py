"""The "file in EHR" page of a manual connection's delivery: the note in the
template's section order with a copy button per section, a PDF, and the
"filed in EHR" confirmation. Thin: reads and writes go through
integrations.manual_filing."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from audit.services import audit_phi_access
from integrations import manual_filing
from integrations.errors import DeliveryRefused
from integrations.forms import FilingConfirmForm
from notes.errors import DomainError
from notes.roles import Role
from notes.views import member_required


@require_http_methods(["GET", "POST"])
@member_required(Role.CLINICIAN, Role.PRACTICE_ADMIN)
def filing_page(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = manual_filing.filing_delivery_get_for_user(user=request.user, delivery_id=delivery_id)
    shows_content = manual_filing.filing_shows_content(user=request.user, delivery=delivery)
    form = FilingConfirmForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                manual_filing.manual_filing_confirm(
                    delivery=delivery, actor=request.user, ehr_reference=form.cleaned_data["ehr_reference"]
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
                status = exc.status_code
            else:
                messages.success(request, "Recorded as filed in the EHR.")
                return redirect("integrations:filing", delivery_id=delivery.pk)
        else:
            status = 400
        delivery.refresh_from_db()
    document = refused = None
    try:
        document = manual_filing.filing_document(delivery) if shows_content else None
    except DeliveryRefused as exc:
        # Invariants 1 and 10: nothing unsigned, no psychotherapy notes.
        refused, status = exc.message, exc.status_code
    audit_phi_access(user=request.user, note=delivery.note)
    return render(
        request,
        "integrations/filing.html",
        {
            "delivery": delivery,
            "note": delivery.note,
            "document": document,
            "shows_content": shows_content,
            "refused": refused,
            "form": form,
        },
        status=status,
    )


@require_GET
@member_required(Role.CLINICIAN, Role.PRACTICE_ADMIN)
def filing_pdf(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = manual_filing.filing_delivery_get_for_user(user=request.user, delivery_id=delivery_id)
    if not manual_filing.filing_shows_content(user=request.user, delivery=delivery):
        raise Http404("No such document.")
    try:
        body = manual_filing.filing_pdf(delivery, now=timezone.now())
    except DeliveryRefused as exc:
        return HttpResponse(exc.message, status=exc.status_code, content_type="text/plain; charset=utf-8")
    audit_phi_access(user=request.user, note=delivery.note)
    response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="note-{delivery.note_id}-v{delivery.note.version}.pdf"'
    response["Cache-Control"] = "no-store"
    return response
