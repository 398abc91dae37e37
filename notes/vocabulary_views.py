"""The practice admin's list of intervention terms clinicians kept as written,
with accept (adds the term to the vocabulary) and decline. Thin: fetch through
the selector (another practice's proposal is a 404), call the service."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from notes import selectors, vocabulary_services
from notes.errors import DomainError
from notes.roles import Role
from notes.views import member_required

DECISIONS = {
    "accept": vocabulary_services.intervention_proposal_accept,
    "decline": vocabulary_services.intervention_proposal_decline,
}


@require_GET
@member_required(Role.PRACTICE_ADMIN)
def proposals(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "notes/vocabulary_proposals.html",
        {"proposals": list(selectors.intervention_proposals_for_user(user=request.user)[:200])},
    )


@require_POST
@member_required(Role.PRACTICE_ADMIN)
def proposal_decide(request: HttpRequest, proposal_id: int, decision: str) -> HttpResponse:
    decide = DECISIONS.get(decision)
    proposal = selectors.intervention_proposals_for_user(user=request.user).filter(pk=proposal_id).first()
    if decide is None or proposal is None:
        raise Http404("No such proposal.")
    try:
        proposal = decide(proposal=proposal, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("vocabulary_proposals")
    if decision == "accept":
        messages.success(request, f"“{proposal.term}” is now in the practice's intervention vocabulary.")
    else:
        messages.success(request, f"Declined “{proposal.term}”; the vocabulary is unchanged.")
    return redirect("vocabulary_proposals")
