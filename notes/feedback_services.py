"""Clinician feedback on AI drafts (issue 15, point 7): a rating, reasons and
a comment per draft, which the scribe vendor reads for its own AI source
(notes/feedback_api.py). Feedback is about the AI, not the client: it never
changes the note, and the vendor sees only the draft id and these fields."""

from django.db import IntegrityError, transaction

from audit.services import actor_person, audit_record
from notes.errors import DomainError, NotPermitted
from notes.models import DraftFeedback, Note
from notes.roles import Role, membership_of

MAX_COMMENT = 2000
REASONS = tuple(DraftFeedback.Reason.values)


def _clean(*, rating, reasons: list[str], comment: str) -> tuple[int | None, list[str], str]:
    if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5):
        raise DomainError("Rate the draft from 1 to 5, or leave the rating out.", field="rating")
    unknown = [r for r in reasons if r not in REASONS]
    if unknown:
        raise DomainError(f"Unknown reason “{unknown[0]}”; choose from {', '.join(REASONS)}.", field="reasons")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise DomainError(f"Keep the comment under {MAX_COMMENT} characters.", field="comment")
    if rating is None and not reasons and not comment:
        raise DomainError("Give a rating, a reason or a comment.", field="rating")
    # In the order of the choices, once each: the vendor counts them.
    return rating, [r for r in REASONS if r in reasons], comment


@transaction.atomic
def draft_feedback_record(*, note: Note, rating: int | None, reasons: list[str], comment: str, actor) -> DraftFeedback:
    """Record (or replace) the clinician's feedback on the note's AI draft.
    Only the note's clinician gives it, in any state of the note. Raises
    NotPermitted or DomainError (with the field)."""
    membership = membership_of(actor)
    if membership is None or membership.practice_id != note.practice_id or membership.role != Role.CLINICIAN:
        raise NotPermitted("Only the clinician who reviews this note can give feedback on its draft.")
    if note.clinician_id != actor.pk:
        raise NotPermitted("Only the clinician who held the session can give feedback on its draft.")
    rating, reasons, comment = _clean(rating=rating, reasons=reasons, comment=comment)
    feedback = (
        DraftFeedback.objects.select_for_update(no_key=True).filter(draft_id=note.draft_id, clinician=actor).first()
    )
    before = None
    if feedback is None:
        feedback = DraftFeedback(draft_id=note.draft_id, ai_source_id=note.draft.ai_source_id, clinician=actor)
    else:
        before = {"rating": feedback.rating, "reasons": feedback.reasons, "comment": feedback.comment}
    feedback.rating, feedback.reasons, feedback.comment = rating, reasons, comment
    try:
        with transaction.atomic():
            feedback.save()
    except IntegrityError:  # a second tab saved first (feedback_one_per_draft_and_clinician)
        raise DomainError("Feedback was saved meanwhile in another tab; reload and save again.") from None
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="feedback.record",
        obj=feedback,
        note=note,
        before=before,
        after={"rating": rating, "reasons": reasons, "comment": comment},
    )
    return feedback
