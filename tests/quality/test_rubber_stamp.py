"""Rubber-stamp signal: a note signed with no edit in less than the
practice's seconds per 100 words is marked at signing, counted per clinician
on the metrics page, raises the note's QA sampling rate, and never blocks
signing."""

from datetime import UTC, datetime

from audit.models import AuditEvent
from notes.models import Note
from quality.models import QADraw, SamplingPolicy
from quality.sampling import is_rubber_stamp, word_count

from .helpers import policy_set, signed_note


def test_the_threshold_is_seconds_per_100_words_and_strict():
    # 200 words at 30 s per 100 words: under 60 s is a rubber stamp, 60 s is not.
    assert is_rubber_stamp(edited=False, words=200, review_seconds=59, seconds_per_100_words=30)
    assert not is_rubber_stamp(edited=False, words=200, review_seconds=60, seconds_per_100_words=30)


def test_an_edited_or_empty_note_is_never_a_rubber_stamp():
    assert not is_rubber_stamp(edited=True, words=200, review_seconds=0, seconds_per_100_words=30)
    assert not is_rubber_stamp(edited=False, words=0, review_seconds=0, seconds_per_100_words=30)


def test_a_quick_unedited_signature_is_marked_and_still_signed(world):
    policy_set(world.practice, rubber_stamp_seconds_per_100_words=30)
    note = signed_note(world, review_seconds=2)
    assert note.state == Note.State.SIGNED  # never blocks signing
    draw = QADraw.objects.get(note=note)
    words = sum(word_count(s.text) + len(s.codes) for s in note.sections.all())
    assert (draw.edited, draw.review_seconds, draw.rubber_stamp) == (False, 2, True)
    assert draw.words >= words > 10
    assert AuditEvent.objects.get(action="qa.draw", note=note).detail["rubber_stamp"] is True


def test_a_slow_enough_or_edited_signature_is_not_marked(world):
    policy_set(world.practice, rubber_stamp_seconds_per_100_words=30)
    slow = QADraw.objects.get(note=signed_note(world, review_seconds=600))
    edited = QADraw.objects.get(note=signed_note(world, review_seconds=2, edit="Weekly; sleep diary."))
    assert (slow.rubber_stamp, edited.rubber_stamp, edited.edited) == (False, False, True)


def test_a_practice_admin_sets_the_threshold_on_the_sampling_page_and_it_applies_to_later_signatures(world, login_as):
    client = login_as(world.admin)
    assert client.get("/quality/settings/").status_code == 200
    response = client.post(
        "/quality/settings/",
        {
            "action": "policy",
            "sample_rate_percent": "10",
            "first_notes_always": "0",
            "rubber_stamp_seconds_per_100_words": "2000",
            "rubber_stamp_rate_percent": "100",
        },
    )
    assert response.status_code == 302
    policy = SamplingPolicy.objects.get(practice=world.practice)
    assert (policy.sample_rate_percent, policy.rubber_stamp_seconds_per_100_words) == (10, 2000)
    event = AuditEvent.objects.get(action="qa.policy_update")
    assert event.actor_user == world.admin and event.after["rubber_stamp_seconds_per_100_words"] == "2000"
    # 600 s for the ~60 words of the draft is now under 2000 s per 100 words.
    draw = QADraw.objects.get(note=signed_note(world, review_seconds=600))
    assert (draw.rubber_stamp, draw.sampled, draw.reason) == (True, True, "rubber_stamp")


def test_a_bad_threshold_is_refused_with_a_message_and_nothing_changes(world, login_as):
    policy_set(world.practice, rubber_stamp_seconds_per_100_words=30)
    response = login_as(world.admin).post(
        "/quality/settings/",
        {
            "action": "policy",
            "sample_rate_percent": "120",
            "first_notes_always": "0",
            "rubber_stamp_seconds_per_100_words": "0",
            "rubber_stamp_rate_percent": "50",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Ensure this value is less than or equal to 100." in page
    assert "Ensure this value is greater than or equal to 1." in page
    assert SamplingPolicy.objects.get(practice=world.practice).rubber_stamp_seconds_per_100_words == 30


def test_only_a_practice_admin_opens_the_sampling_page(world, login_as):
    assert login_as(world.clinician).get("/quality/settings/").status_code == 403
    assert login_as(world.qa).get("/quality/settings/").status_code == 403


def test_rubber_stamps_are_counted_per_clinician_on_the_metrics_page(world, login_as):
    policy_set(world.practice, rubber_stamp_seconds_per_100_words=30)
    day = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    signed_note(world, review_seconds=1, signed_at=day)
    signed_note(world, review_seconds=2, signed_at=day)
    signed_note(world, review_seconds=900, signed_at=day)
    signed_note(world, clinician=world.colleague, review_seconds=900, signed_at=day)
    client = login_as(world.qa)
    response = client.get("/pilot/metrics/rubber-stamp.csv", {"start": "2026-11-01", "end": "2026-11-30"})
    name, colleague = world.clinician.get_full_name(), world.colleague.get_full_name()
    rows = response.content.decode().splitlines()
    assert rows[0] == "clinician,signed_notes,rubber_stamp_notes,share_percent"
    assert sorted(rows[1:]) == sorted([f"{name},3,2,66.7", f"{colleague},1,0,0.0"])
    page = client.get("/pilot/metrics/", {"start": "2026-11-01", "end": "2026-11-30"}).content.decode()
    section = page.split('id="chart-rubber-stamp"', 1)[1].split("</section>", 1)[0]
    assert 'data-summary="Rubber-stamp notes">2<' in section
    assert f"{name}, Rubber-stamp notes: 2" in section  # the bar's own label
