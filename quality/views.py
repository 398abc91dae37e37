"""HTML views of the quality loop: thin, like notes/views.py. Each fetches
through a selector scoped to the user, calls a service, and renders."""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from audit.services import audit_phi_access
from notes.errors import DomainError
from notes.models import Membership
from notes.roles import Role, membership_of
from notes.views import member_required
from quality import selectors, services
from quality.forms import CohortAssignForm, CohortForm, PulseForm, QAErrorFormSet, QAReviewForm, SamplingPolicyForm
from quality.models import Cohort, CohortMember, SatisfactionPulse


@member_required(Role.QA_REVIEWER)
def qa_queue(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "quality/queue.html",
        {
            "draws": selectors.qa_queue_for_user(user=request.user),
            "reviewed": selectors.qa_reviewed_for_user(user=request.user),
        },
    )


@require_http_methods(["GET", "POST"])
@member_required(Role.QA_REVIEWER)
def qa_review(request: HttpRequest, note_id: int) -> HttpResponse:
    note, draw = selectors.qa_note_get_for_user(user=request.user, note_id=note_id)
    existing = selectors.qa_review_for_note(note=note)
    form = QAReviewForm(request.POST or None)
    errors = QAErrorFormSet(request.POST or None, prefix="errors")
    if request.method == "POST" and form.is_valid() and errors.is_valid():
        try:
            services.qa_review_submit(
                note=note,
                accuracy=form.cleaned_data["accuracy"],
                completeness=form.cleaned_data["completeness"],
                ehr_placement_correct=form.cleaned_data["ehr_placement_correct"],
                comment=form.cleaned_data["comment"],
                errors=[
                    services.ErrorIn(kind=e["kind"], severity=e["severity"], comment=e.get("comment", ""))
                    for e in errors.cleaned_data
                    if e.get("kind")
                ],
                actor=request.user,
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "QA review recorded.")
            return redirect("quality:queue")
    elif request.method == "GET":
        audit_phi_access(user=request.user, note=note)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "quality/review.html",
        {
            "note": note,
            "draw": draw,
            "sections": selectors.qa_note_sections(note),
            "review": existing,
            "form": form,
            "errors_formset": errors,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@member_required(Role.PRACTICE_ADMIN)
def sampling_settings(request: HttpRequest) -> HttpResponse:
    policy, cohorts = selectors.sampling_settings_for_user(user=request.user)
    practice = membership_of(request.user).practice
    action = request.POST.get("action", "")
    initial = {
        f: getattr(policy, f)
        for f in (
            "sample_rate_percent",
            "first_notes_always",
            "rubber_stamp_seconds_per_100_words",
            "rubber_stamp_rate_percent",
        )
    }
    policy_form = SamplingPolicyForm(request.POST if action == "policy" else None, initial=initial)
    cohort_form = CohortForm(request.POST if action == "cohort" else None)
    status = 200
    if request.method == "POST":
        try:
            if action == "policy" and policy_form.is_valid():
                services.sampling_policy_update(practice=practice, actor=request.user, **policy_form.cleaned_data)
                messages.success(request, "Sampling policy saved.")
                return redirect("quality:settings")
            if action == "cohort" and cohort_form.is_valid():
                services.cohort_save(practice=practice, actor=request.user, **cohort_form.cleaned_data)
                messages.success(request, "Cohort saved.")
                return redirect("quality:settings")
            if action == "assign":
                assign = CohortAssignForm(request.POST)
                if assign.is_valid():
                    clinician = get_user_model().objects.filter(pk=assign.cleaned_data["clinician"]).first()
                    cohort_id = assign.cleaned_data["cohort"]
                    cohort = Cohort.objects.filter(practice=practice, pk=cohort_id).first() if cohort_id else None
                    if clinician is None or (cohort_id and cohort is None):
                        raise DomainError("No such clinician or cohort.")
                    services.cohort_assign(practice=practice, clinician=clinician, cohort=cohort, actor=request.user)
                    messages.success(request, "Cohort membership saved.")
                    return redirect("quality:settings")
        except DomainError as exc:
            messages.error(request, exc.message)
        status = 400
    clinicians = (
        Membership.objects.filter(practice=practice, role=Role.CLINICIAN, is_active=True)
        .select_related("user")
        .order_by("user__last_name", "user__first_name")
    )
    cohort_of = dict(CohortMember.objects.filter(cohort__practice=practice).values_list("clinician_id", "cohort_id"))
    return render(
        request,
        "quality/settings.html",
        {
            "policy": policy,
            "policy_form": policy_form,
            "cohort_form": cohort_form,
            "cohorts": cohorts,
            "clinicians": [(m.user, cohort_of.get(m.user_id)) for m in clinicians],
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@member_required(Role.CLINICIAN)
def pulse(request: HttpRequest) -> HttpResponse:
    form = PulseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.pulse_record(
                score=form.cleaned_data["score"], comment=form.cleaned_data["comment"], actor=request.user
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Thank you: your answer for this month is recorded.")
            return redirect("quality:pulse")
    answers = SatisfactionPulse.objects.filter(clinician=request.user).order_by("-month")[:12]
    return render(
        request,
        "quality/pulse.html",
        {"form": form, "answers": answers},
        status=400 if request.method == "POST" else 200,
    )
