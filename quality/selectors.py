"""Reads of the quality loop, scoped to the person asking (a note of
another practice, or one not sampled, is a 404)."""

from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404

from audit.attribution import section_text
from notes.models import Note
from notes.review_diff import text_diff
from notes.roles import Role, membership_of
from notes.selectors import note_get_for_user
from quality.models import Cohort, QADraw, QAReview, SamplingPolicy


def qa_queue_for_user(*, user) -> QuerySet[QADraw]:
    """Sampled notes of the reviewer's practice awaiting QA review, oldest
    first. Only notes a reviewer can open (signed or amended): one awaiting
    its co-signature joins the queue when co-signed, one returned to the
    clinician when signed again (its draw stands)."""
    membership = membership_of(user)
    if membership is None or membership.role != Role.QA_REVIEWER:
        return QADraw.objects.none()
    return (
        QADraw.objects.filter(
            practice_id=membership.practice_id,
            sampled=True,
            note__state__in=[Note.State.SIGNED, Note.State.AMENDED],
        )
        .filter(~Exists(QAReview.objects.filter(note_id=OuterRef("note_id"))))
        .select_related("note__client", "note__template_version__template", "clinician", "cohort")
        .order_by("drawn_at", "pk")
    )


def qa_reviewed_for_user(*, user, limit: int = 50) -> QuerySet[QAReview]:
    membership = membership_of(user)
    if membership is None or membership.role != Role.QA_REVIEWER:
        return QAReview.objects.none()
    return (
        QAReview.objects.filter(practice_id=membership.practice_id)
        .select_related("note__client", "note__clinician", "reviewer")
        .prefetch_related("errors")
        .order_by("-created_at")[:limit]
    )


def qa_note_get_for_user(*, user, note_id: int) -> tuple[Note, QADraw]:
    """A sampled signed note a QA reviewer of its practice may review."""
    if not membership_of(user) or membership_of(user).role != Role.QA_REVIEWER:
        raise Http404("No such note.")
    note = note_get_for_user(user=user, note_id=note_id)
    draw = QADraw.objects.filter(note=note, sampled=True).first()
    if draw is None:
        raise Http404("This note was not sampled for QA review.")
    return note, draw


def qa_note_sections(note: Note) -> list[dict]:
    """Each section's AI draft, signed text and the diff between them (the
    review page's diff engine, so QA sees what the clinician saw)."""
    rows = []
    for section in note.sections.all():
        ai = section_text(section.ai_text, section.ai_codes)
        signed = section_text(section.text, section.codes)
        rows.append(
            {"key": section.key, "label": section.label, "ai": ai, "signed": signed, "diff": text_diff(ai, signed)}
        )
    return rows


def qa_review_for_note(*, note: Note) -> QAReview | None:
    """The QA verdict on a note the caller already fetched through a scoped selector."""
    return QAReview.objects.filter(note=note).select_related("reviewer").prefetch_related("errors").first()


def sampling_settings_for_user(*, user) -> tuple[SamplingPolicy, QuerySet[Cohort]]:
    from quality.services import sampling_policy_for

    membership = membership_of(user)
    if membership is None or membership.role != Role.PRACTICE_ADMIN:
        raise Http404("No such page.")
    policy = sampling_policy_for(practice=membership.practice)
    return policy, Cohort.objects.filter(practice_id=membership.practice_id).prefetch_related("members__clinician")
