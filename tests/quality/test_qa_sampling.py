"""QA sampling at signing: deterministic from the note id and the practice
seed, always for high-risk notes, amendments and a clinician's first N
notes, per-cohort rates, recorded as an audit event, and a queue for QA."""

from datetime import timedelta

from django.utils import timezone

from audit.models import AuditEvent
from notes import services
from quality.models import Cohort, CohortMember, QADraw
from quality.sampling import draw_uniform
from tests.factories import note_resolve_all_flags

from .helpers import policy_set, signed_note


def test_the_draw_is_the_same_for_the_same_note_and_seed_and_differs_with_the_seed():
    assert draw_uniform(seed="a" * 32, note_id=42) == draw_uniform(seed="a" * 32, note_id=42)
    assert draw_uniform(seed="a" * 32, note_id=42) != draw_uniform(seed="b" * 32, note_id=42)
    assert 0 <= draw_uniform(seed="a" * 32, note_id=42) < 1


def test_the_draw_is_uniform_enough_that_a_quarter_of_notes_fall_under_25_percent():
    share = sum(draw_uniform(seed="pilot", note_id=i) < 0.25 for i in range(20_000)) / 20_000
    assert 0.24 < share < 0.26


def test_a_new_practice_samples_a_quarter_of_notes_by_default(world):
    from quality.services import sampling_policy_for

    policy = sampling_policy_for(practice=world.practice)
    assert policy.sample_rate_percent == 25
    assert len(policy.seed) == 32


def test_signing_records_the_draw_and_an_audit_event_that_reproduce_the_decision(world):
    policy = policy_set(world.practice, sample_rate_percent=50)
    note = signed_note(world)
    draw = QADraw.objects.get(note=note)
    assert draw.draw == draw_uniform(seed=policy.seed, note_id=note.pk)
    assert draw.sampled == (draw.draw < 0.5)
    assert draw.rate_percent == 50
    event = AuditEvent.objects.get(action="qa.draw", note=note)
    assert event.after == {"sampled": draw.sampled, "reason": draw.reason}
    assert event.detail["draw"] == draw.draw
    assert event.detail["rate_percent"] == "50.00"
    assert event.actor_label == "QA sampling"


def test_at_a_zero_rate_an_ordinary_note_is_not_sampled_and_at_100_it_is(world):
    policy_set(world.practice, sample_rate_percent=0)
    assert QADraw.objects.get(note=signed_note(world)).sampled is False
    policy_set(world.practice, sample_rate_percent=100)
    draw = QADraw.objects.get(note=signed_note(world))
    assert (draw.sampled, draw.reason) == (True, "random")


def test_a_high_risk_note_is_always_sampled(world):
    policy_set(world.practice, sample_rate_percent=0)
    note = signed_note(world, high_risk=True)
    assert note.high_risk
    draw = QADraw.objects.get(note=note)
    assert (draw.sampled, draw.reason) == (True, "high_risk")


def test_an_amendment_is_always_sampled(world):
    policy_set(world.practice, sample_rate_percent=0)
    note = signed_note(world)
    amendment = services.note_amend(note=note, reason="Wrong date of next session", actor=world.clinician)
    services.note_edit_section(
        note=amendment, section_key="plan", text="Next session on Friday.", actor=world.clinician
    )
    note_resolve_all_flags(amendment, world.clinician)
    services.note_sign(note=amendment, actor=world.clinician, step_up_at=timezone.now() - timedelta(seconds=1))
    draw = QADraw.objects.get(note=amendment)
    assert (draw.sampled, draw.reason) == (True, "amendment")


def test_a_clinicians_first_n_signed_notes_are_always_sampled(world):
    policy_set(world.practice, sample_rate_percent=0, first_notes_always=2)
    first, second, third = (signed_note(world) for _ in range(3))
    assert [QADraw.objects.get(note=n).reason for n in (first, second, third)] == ["first_notes", "first_notes", ""]
    # Counted per clinician: the colleague's first note is sampled too.
    assert QADraw.objects.get(note=signed_note(world, clinician=world.colleague)).reason == "first_notes"


def test_a_cohorts_rate_replaces_the_practice_rate_for_its_clinicians(world):
    policy_set(world.practice, sample_rate_percent=0)
    wave = Cohort.objects.create(practice=world.practice, name="Wave 1", sample_rate_percent=100)
    CohortMember.objects.create(cohort=wave, clinician=world.clinician)
    in_cohort = QADraw.objects.get(note=signed_note(world))
    outside = QADraw.objects.get(note=signed_note(world, clinician=world.colleague))
    assert (in_cohort.sampled, in_cohort.cohort, in_cohort.rate_percent) == (True, wave, 100)
    assert (outside.sampled, outside.cohort, outside.rate_percent) == (False, None, 0)


def test_a_rubber_stamped_note_is_drawn_at_the_higher_rate(world):
    policy_set(
        world.practice, sample_rate_percent=0, rubber_stamp_rate_percent=100, rubber_stamp_seconds_per_100_words=30
    )
    stamped = QADraw.objects.get(note=signed_note(world, review_seconds=3))
    edited = QADraw.objects.get(note=signed_note(world, review_seconds=3, edit="Weekly sessions; sleep diary."))
    assert (stamped.rubber_stamp, stamped.sampled, stamped.reason) == (True, True, "rubber_stamp")
    assert (edited.rubber_stamp, edited.sampled) == (False, False)


def test_the_qa_queue_lists_sampled_unreviewed_notes_of_the_practice_only(world, login_as):
    policy_set(world.practice, sample_rate_percent=0)
    sampled = signed_note(world, high_risk=True)
    not_sampled = signed_note(world)
    page = login_as(world.qa).get("/quality/queue/")
    assert page.status_code == 200
    assert f'id="qa-row-{sampled.pk}"' in page.content.decode()
    assert f'id="qa-row-{not_sampled.pk}"' not in page.content.decode()
    assert login_as(world.clinician).get("/quality/queue/").status_code == 403


def test_a_practice_admin_creates_a_cohort_with_its_rate_and_puts_a_clinician_in_it(world, login_as):
    policy_set(world.practice, sample_rate_percent=25)
    client = login_as(world.admin)
    response = client.post("/quality/settings/", {"action": "cohort", "name": "Wave 2", "sample_rate_percent": "10"})
    assert response.status_code == 302
    wave = Cohort.objects.get(practice=world.practice, name="Wave 2")
    assert wave.sample_rate_percent == 10
    response = client.post(
        "/quality/settings/", {"action": "assign", "clinician": world.clinician.pk, "cohort": wave.pk}
    )
    assert response.status_code == 302
    assert CohortMember.objects.get(clinician=world.clinician).cohort == wave
    assert AuditEvent.objects.get(action="qa.cohort_save").actor_user == world.admin
    assert AuditEvent.objects.get(action="qa.cohort_assign").after == {"cohort": "Wave 2"}
    assert QADraw.objects.get(note=signed_note(world)).rate_percent == 10
    # Out of the cohort again: back to the practice's rate.
    client.post("/quality/settings/", {"action": "assign", "clinician": world.clinician.pk, "cohort": ""})
    assert not CohortMember.objects.filter(clinician=world.clinician).exists()
    assert QADraw.objects.get(note=signed_note(world)).rate_percent == 25


def test_a_duplicate_cohort_name_is_refused_with_a_message(world, login_as):
    Cohort.objects.create(practice=world.practice, name="Wave 1")
    response = login_as(world.admin).post("/quality/settings/", {"action": "cohort", "name": "Wave 1"})
    assert response.status_code == 400
    assert "There is already a cohort named “Wave 1”." in response.content.decode()
    assert Cohort.objects.filter(practice=world.practice).count() == 1


def test_only_a_clinician_of_the_practice_joins_a_cohort(world, login_as):
    wave = Cohort.objects.create(practice=world.practice, name="Wave 1")
    client = login_as(world.admin)
    for person in (world.qa, world.outsider):
        response = client.post("/quality/settings/", {"action": "assign", "clinician": person.pk, "cohort": wave.pk})
        assert response.status_code == 400
        assert "Only a clinician of this practice can join a cohort." in response.content.decode()
    assert not CohortMember.objects.exists()
