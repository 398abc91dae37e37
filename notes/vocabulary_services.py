"""A practice admin's decisions on intervention terms that clinicians kept as
written (notes.review_services.flag_keep_intervention_as_written). Accepting
adds the term to the practice's vocabulary, so later drafts code it; neither
decision touches notes already written. Each decision is audited in its own
transaction."""

from django.db import transaction
from django.utils import timezone

from audit.services import actor_person, audit_record
from notes import services
from notes.errors import DomainError, NotPermitted
from notes.models import InterventionProposal, InterventionTerm
from notes.roles import Role, membership_of


def _decidable(*, proposal: InterventionProposal, actor) -> InterventionProposal:
    membership = membership_of(actor)
    if membership is None or membership.role != Role.PRACTICE_ADMIN or membership.practice_id != proposal.practice_id:
        raise NotPermitted("Only a practice admin of this practice decides on vocabulary proposals.")
    proposal = InterventionProposal.objects.select_for_update().get(pk=proposal.pk)
    if proposal.state != InterventionProposal.State.PROPOSED:
        raise DomainError(f"This proposal was already {proposal.get_state_display().lower()}.", field="proposal")
    return proposal


def _decide(proposal: InterventionProposal, state: str, actor) -> InterventionProposal:
    proposal.state = state
    proposal.decided_by = actor
    proposal.decided_at = timezone.now()
    proposal.save(update_fields=["state", "decided_by", "decided_at"])
    return proposal


@transaction.atomic
def intervention_proposal_accept(*, proposal: InterventionProposal, actor) -> InterventionProposal:
    """Add the proposed term to the practice's vocabulary. A term the
    vocabulary already resolves (added meanwhile, or a synonym) adds nothing
    twice; an inactive term of that name is made active again. Raises
    NotPermitted for anyone but the practice's admin, DomainError if decided."""
    proposal = _decidable(proposal=proposal, actor=actor)
    existing = services.practice_vocabulary(practice_id=proposal.practice_id).resolve(proposal.term)
    if existing is None:
        term = InterventionTerm.objects.filter(practice_id=proposal.practice_id, term__iexact=proposal.term).first()
        if term is None:
            term = InterventionTerm(practice_id=proposal.practice_id, term=proposal.term)
            term.full_clean()
            term.save()
        else:
            term.is_active = True
            term.save(update_fields=["is_active"])
        existing = term.term
        audit_record(
            practice=proposal.practice,
            actor=actor_person(actor),
            action="vocabulary.term_add",
            obj=term,
            after={"term": term.term, "from_proposal": proposal.pk},
        )
    _decide(proposal, InterventionProposal.State.ACCEPTED, actor)
    audit_record(
        practice=proposal.practice,
        actor=actor_person(actor),
        action="vocabulary.proposal_accept",
        obj=proposal,
        after={"term": proposal.term, "vocabulary_term": existing},
    )
    return proposal


@transaction.atomic
def intervention_proposal_decline(*, proposal: InterventionProposal, actor) -> InterventionProposal:
    """Leave the vocabulary as it is. Raises as intervention_proposal_accept."""
    proposal = _decidable(proposal=proposal, actor=actor)
    _decide(proposal, InterventionProposal.State.DECLINED, actor)
    audit_record(
        practice=proposal.practice,
        actor=actor_person(actor),
        action="vocabulary.proposal_decline",
        obj=proposal,
        after={"term": proposal.term},
    )
    return proposal
