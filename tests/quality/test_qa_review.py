"""QA review with the error taxonomy: the reviewer sees the AI draft, the
signed note and the diff, records scores and typed errors with severity; a
critical error alerts the practice admin, and the clinician sees the result
on their note."""

import pytest

from audit.models import AuditEvent
from integrations.models import Alert
from notes.errors import IllegalTransition, NotPermitted
from notes.models import Note
from quality.models import QAError, QAReview
from quality.services import ErrorIn, qa_review_submit

from .helpers import policy_set, signed_note

EDIT = "Continue weekly sessions; add a sleep diary."


@pytest.fixture
def sampled(world):
    policy_set(world.practice, sample_rate_percent=100)
    return signed_note(world, edit=EDIT)


def _form(**overrides) -> dict:
    data = {
        "accuracy": "4",
        "completeness": "3",
        "ehr_placement_correct": "yes",
        "comment": "Plan is thin.",
        "errors-TOTAL_FORMS": "3",
        "errors-INITIAL_FORMS": "0",
        "errors-MIN_NUM_FORMS": "0",
        "errors-MAX_NUM_FORMS": "20",
        "errors-0-kind": "omission",
        "errors-0-severity": "minor",
        "errors-0-comment": "Homework not recorded.",
    }
    data.update(overrides)
    return data


def test_the_review_page_shows_the_ai_draft_the_signed_note_and_the_diff(world, sampled, login_as):
    page = login_as(world.qa).get(f"/quality/notes/{sampled.pk}/review/").content.decode()
    assert "Continue weekly sessions; track activities daily." in page  # the AI draft
    assert EDIT in page  # the signed note
    assert "<ins>" in page and "add a sleep diary" in page.split("<ins>", 1)[1]
    assert "<del>" in page and "track activities daily" in page.split("<del>", 1)[1]


def test_a_review_is_recorded_with_its_errors_audited_and_leaves_the_queue(world, sampled, login_as):
    client = login_as(world.qa)
    response = client.post(f"/quality/notes/{sampled.pk}/review/", _form())
    assert response.status_code == 302
    review = QAReview.objects.get(note=sampled)
    assert (review.reviewer, review.accuracy, review.completeness, review.ehr_placement_correct) == (
        world.qa,
        4,
        3,
        True,
    )
    assert list(review.errors.values_list("kind", "severity", "comment")) == [
        ("omission", "minor", "Homework not recorded.")
    ]
    assert not review.has_critical
    assert not Alert.objects.filter(kind="qa_critical").exists()
    event = AuditEvent.objects.get(action="qa.review", note=sampled)
    assert event.actor_user == world.qa
    assert event.after["errors"] == [{"kind": "omission", "severity": "minor"}]
    queue = client.get("/quality/queue/").content.decode()
    assert f'id="qa-row-{sampled.pk}"' not in queue
    assert "No sampled notes are waiting for review." in queue


def test_a_critical_error_alerts_the_practice_admin_and_shows_on_the_clinicians_note(world, sampled, login_as):
    login_as(world.qa).post(
        f"/quality/notes/{sampled.pk}/review/",
        _form(
            **{"errors-1-kind": "wrong_client", "errors-1-severity": "critical", "errors-1-comment": "Other client."}
        ),
    )
    review = QAReview.objects.get(note=sampled)
    assert review.has_critical
    alert = Alert.objects.get(practice=world.practice, kind="qa_critical")
    assert f"note #{sampled.pk}" in alert.reason
    assert sampled.client.family_name not in alert.reason  # no PHI in the alert
    assert "critical error" in login_as(world.admin).get("/integrations/deliveries/").content.decode()
    note_page = login_as(world.clinician).get(f"/notes/{sampled.pk}/").content.decode()
    assert 'id="qa-result"' in note_page
    assert "A QA reviewer found a critical error in this note" in note_page
    assert "Wrong client or misattribution" in note_page and "Other client." in note_page


def test_the_clinician_sees_a_clean_review_on_their_note(world, sampled, login_as):
    qa_review_submit(
        note=sampled, accuracy=5, completeness=5, ehr_placement_correct=True, comment="", errors=[], actor=world.qa
    )
    page = login_as(world.clinician).get(f"/notes/{sampled.pk}/").content.decode()
    assert "No errors found." in page and "accuracy 5/5" in page


def test_a_note_is_reviewed_once(world, sampled):
    qa_review_submit(
        note=sampled, accuracy=5, completeness=5, ehr_placement_correct=True, comment="", errors=[], actor=world.qa
    )
    with pytest.raises(IllegalTransition, match="already been reviewed"):
        qa_review_submit(
            note=sampled, accuracy=1, completeness=1, ehr_placement_correct=False, comment="", errors=[], actor=world.qa
        )
    assert QAReview.objects.get(note=sampled).accuracy == 5


def test_an_error_with_a_type_but_no_severity_is_refused_and_nothing_is_written(world, sampled, login_as):
    response = login_as(world.qa).post(f"/quality/notes/{sampled.pk}/review/", _form(**{"errors-0-severity": ""}))
    assert response.status_code == 400
    assert "Give both a type and a severity, or neither." in response.content.decode()
    assert not QAReview.objects.exists() and not QAError.objects.exists()


def test_an_unknown_error_type_is_refused_by_the_service(world, sampled):
    with pytest.raises(Exception, match="choose a type"):
        qa_review_submit(
            note=sampled,
            accuracy=3,
            completeness=3,
            ehr_placement_correct=True,
            comment="",
            errors=[ErrorIn(kind="typo", severity="minor")],
            actor=world.qa,
        )
    assert not QAReview.objects.exists()


def test_only_a_qa_reviewer_of_the_practice_reviews_a_sampled_note(world, sampled, login_as):
    assert login_as(world.clinician).get(f"/quality/notes/{sampled.pk}/review/").status_code == 403
    assert login_as(world.admin).get(f"/quality/notes/{sampled.pk}/review/").status_code == 403
    with pytest.raises(NotPermitted):
        qa_review_submit(
            note=sampled,
            accuracy=5,
            completeness=5,
            ehr_placement_correct=True,
            comment="",
            errors=[],
            actor=world.admin,
        )


def test_a_note_not_sampled_has_no_review_page(world, login_as):
    policy_set(world.practice, sample_rate_percent=0)
    note = signed_note(world)
    assert login_as(world.qa).get(f"/quality/notes/{note.pk}/review/").status_code == 404
    with pytest.raises(IllegalTransition, match="not sampled"):
        qa_review_submit(
            note=note, accuracy=5, completeness=5, ehr_placement_correct=True, comment="", errors=[], actor=world.qa
        )


def test_a_qa_reviewer_of_another_practice_gets_a_404(world, sampled, login_as):
    from notes.models import Membership
    from tests.factories import member_factory

    stranger = member_factory(world.other_practice, Membership.Role.QA_REVIEWER).user
    assert login_as(stranger).get(f"/quality/notes/{sampled.pk}/review/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_critical_error_emails_the_clinician_a_link_and_no_phi(world, sampled, mailoutbox):
    world.clinician.email = "clinician@example.org"
    world.clinician.save(update_fields=["email"])
    qa_review_submit(
        note=sampled,
        actor=world.qa,
        accuracy=2,
        completeness=3,
        ehr_placement_correct=True,
        comment="",
        errors=[ErrorIn(kind="hallucination", severity="critical", comment="Invented a medication.")],
    )
    to_clinician = [m for m in mailoutbox if m.to == ["clinician@example.org"]]
    assert len(to_clinician) == 1
    body = to_clinician[0].subject + to_clinician[0].body
    assert f"/notes/{sampled.pk}/" in body
    assert sampled.client.family_name not in body and "medication" not in body


def test_the_queue_holds_only_notes_a_reviewer_can_open(world, login_as):
    # A sampled note returned to its clinician for edits (a supervisor's
    # return) leaves the queue until it is signed again.
    policy_set(world.practice, sample_rate_percent=100)
    note = signed_note(world)
    qa = login_as(world.qa)
    page = qa.get("/quality/queue/").content.decode()
    assert f"/quality/notes/{note.pk}/review/" in page
    Note.objects.filter(pk=note.pk).update(state=Note.State.IN_REVIEW, signed_at=None, signed_by=None, content_hash="")
    page = qa.get("/quality/queue/").content.decode()
    assert f"/quality/notes/{note.pk}/review/" not in page
