"""Clinician feedback on each AI draft (issue 15, point 7): an optional
rating and reasons with a comment, given by the note's clinician, audited."""

import pytest

from audit.models import AuditEvent
from notes.errors import DomainError, NotPermitted
from notes.feedback_services import draft_feedback_record
from notes.models import DraftFeedback
from tests.factories import note_factory, note_sign_now

pytestmark = pytest.mark.django_db


def test_the_clinician_rates_a_draft_with_reasons_and_a_comment(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    feedback = draft_feedback_record(
        note=note, rating=2, reasons=["tone", "omission"], comment="Missed the homework review.", actor=world.clinician
    )
    assert (feedback.rating, feedback.reasons, feedback.comment) == (
        2,
        ["omission", "tone"],
        "Missed the homework review.",
    )
    assert feedback.ai_source_id == note.draft.ai_source_id
    event = AuditEvent.objects.get(action="feedback.record")
    assert event.actor_user == world.clinician and event.after["rating"] == 2


def test_giving_feedback_again_replaces_it_and_keeps_one_row(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    draft_feedback_record(note=note, rating=2, reasons=[], comment="", actor=world.clinician)
    draft_feedback_record(note=note, rating=4, reasons=["other"], comment="Better on a reread", actor=world.clinician)
    assert DraftFeedback.objects.count() == 1
    assert DraftFeedback.objects.get().rating == 4
    event = AuditEvent.objects.filter(action="feedback.record").order_by("-seq").first()
    assert event.before["rating"] == 2 and event.after["rating"] == 4


def test_feedback_can_be_given_after_signing_and_does_not_touch_the_note(world):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    content_hash = note.content_hash
    draft_feedback_record(note=note, rating=5, reasons=[], comment="", actor=world.clinician)
    note.refresh_from_db()
    assert note.content_hash == content_hash and note.state == "signed"


@pytest.mark.parametrize(
    "rating, reasons, comment, field",
    [
        (0, [], "", "rating"),
        (6, [], "", "rating"),
        (None, ["boring"], "", "reasons"),
        (None, [], "x" * 2001, "comment"),
        (None, [], "   ", "rating"),
    ],
)
def test_bad_feedback_is_refused_with_the_field_and_nothing_stored(world, rating, reasons, comment, field):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with pytest.raises(DomainError) as exc:
        draft_feedback_record(note=note, rating=rating, reasons=reasons, comment=comment, actor=world.clinician)
    assert exc.value.field == field
    assert not DraftFeedback.objects.exists()


def test_only_the_notes_clinician_gives_feedback(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    for actor in (world.colleague, world.admin, world.qa, world.outsider):
        with pytest.raises(NotPermitted):
            draft_feedback_record(note=note, rating=3, reasons=[], comment="", actor=actor)
    assert not DraftFeedback.objects.exists()


def test_the_review_page_form_saves_feedback_and_shows_it_again(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    client = login_as(world.clinician)
    page = client.get(f"/notes/{note.pk}/review/").content.decode()
    assert 'id="feedback-form"' in page and "Hallucination or unsupported statement" in page
    response = client.post(
        f"/notes/{note.pk}/feedback/", {"rating": "3", "reasons": ["wrong_section"], "comment": "Plan in Objective"}
    )
    assert response.status_code == 302
    feedback = DraftFeedback.objects.get()
    assert (feedback.rating, feedback.reasons) == (3, ["wrong_section"])
    page = client.get(f"/notes/{note.pk}/review/").content.decode()
    assert 'value="3" checked' in page and 'value="wrong_section" checked' in page and "Plan in Objective" in page


def test_a_colleague_posting_feedback_on_someone_elses_note_gets_a_404(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    response = login_as(world.colleague).post(f"/notes/{note.pk}/feedback/", {"rating": "1"})
    assert response.status_code == 404
    assert not DraftFeedback.objects.exists()
