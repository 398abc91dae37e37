"""Payer checks (issue 15, point 6): a posted CPT code is checked against the
session's duration and type, the note against the medical-necessity
elements; each finding is an open flag, resolved with a reason before signing."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notes import services
from notes.errors import SignBlocked
from notes.models import Draft, Flag, Note
from notes.payer_checks import cpt_findings, crisis_add_on_units
from tests.factories import ai_output, client_factory
from tests.notes.intake_support import scribe_for

pytestmark = pytest.mark.django_db


def findings(code, minutes, *, add_ons=(), session_type="individual") -> list[str]:
    return [
        f.message
        for f in cpt_findings(cpt_code=code, add_on_codes=list(add_ons), minutes=minutes, session_type=session_type)
    ]


@pytest.mark.parametrize(
    "code, minutes",
    [("90832", 16), ("90832", 37), ("90834", 38), ("90834", 52), ("90837", 53), ("90837", 90)],
)
def test_a_psychotherapy_code_inside_its_time_range_raises_nothing(code, minutes):
    assert findings(code, minutes) == []


@pytest.mark.parametrize(
    "code, minutes, fitting",
    [
        ("90832", 38, "90834"),
        ("90834", 37, "90832"),
        ("90834", 53, "90837"),
        ("90837", 52, "90834"),
        ("90837", 20, "90832"),
    ],
)
def test_a_psychotherapy_code_outside_its_range_is_flagged_with_the_fitting_code(code, minutes, fitting):
    [message] = findings(code, minutes)
    assert f"this session lasted {minutes}" in message and f"the code is {fitting}" in message


def test_under_16_minutes_no_psychotherapy_code_applies():
    [message] = findings("90832", 15)
    assert "Under 16 minutes no psychotherapy code applies" in message


def test_family_psychotherapy_needs_26_minutes():
    assert findings("90847", 26, session_type="family") == []
    [message] = findings("90846", 25, session_type="family")
    assert "needs 26 minutes or more" in message


def test_group_codes_go_with_group_sessions_and_individual_codes_do_not():
    assert findings("90853", 60, session_type="group") == []
    assert "is group psychotherapy" in findings("90853", 60, session_type="individual")[0]
    assert "this was a group session" in findings("90834", 45, session_type="group")[0]


@pytest.mark.parametrize("minutes, units", [(30, 0), (74, 0), (75, 1), (104, 1), (105, 2), (135, 3)])
def test_crisis_add_on_units_per_30_minutes_beyond_the_first_74(minutes, units):
    assert crisis_add_on_units(minutes) == units
    assert findings("90839", minutes, add_ons=["90840"] * units) == []
    assert "unit" in findings("90839", minutes, add_ons=["90840"] * (units + 1))[0]


def test_crisis_under_30_minutes_is_flagged_and_90840_alone_is_flagged():
    assert "needs 30 minutes or more" in findings("90839", 25)[0]
    assert "goes only with crisis psychotherapy" in findings("90834", 45, add_ons=["90840"])[0]


def test_interactive_complexity_goes_with_psychotherapy_not_with_crisis_or_family():
    assert findings("90834", 45, add_ons=["90785"]) == []
    assert findings("90853", 60, add_ons=["90785"], session_type="group") == []
    assert "does not go with CPT 90839" in findings("90839", 45, add_ons=["90785"])[0]
    assert "does not go with CPT 90847" in findings("90847", 45, add_ons=["90785"], session_type="family")[0]
    assert "billed once per session" in findings("90834", 45, add_ons=["90785", "90785"])[0]


def test_an_add_on_posted_as_the_primary_code_is_flagged():
    assert "is an add-on code" in findings("90785", 45)[0]


def test_a_posted_code_that_fits_leaves_no_payer_flag_and_is_stored(world):
    scribe = scribe_for(world)
    response = scribe.post(scribe.payload(cpt_code="90834", cpt_add_on_codes=["90785"]))
    assert response.status_code == 201, response.content
    body = response.json()
    assert "cpt_code" not in body["flags"]["by_kind"] and "medical_necessity" not in body["flags"]["by_kind"]
    draft = Draft.objects.get(pk=body["id"])
    assert (draft.cpt_code, draft.cpt_add_on_codes) == ("90834", ["90785"])
    # The billing fields are envelope, not note content: no unplaced-content flag for them.
    assert not Flag.objects.filter(note_id=body["note_id"], kind=Flag.Kind.UNPLACED_CONTENT).exists()


def test_a_code_that_does_not_match_the_duration_is_an_open_flag_at_intake(world):
    scribe = scribe_for(world)
    response = scribe.post(scribe.payload(cpt_code="90837"))  # a 50-minute session
    assert response.status_code == 201
    assert response.json()["flags"]["by_kind"]["cpt_code"] == 1
    flag = Flag.objects.get(note_id=response.json()["note_id"], kind=Flag.Kind.CPT_CODE)
    assert "90837 is for 53 or more minutes" in flag.message and flag.suggestions == ["90834"]


def test_missing_medical_necessity_elements_are_flagged_one_by_one(world):
    scribe = scribe_for(world)
    body = scribe.payload(cpt_code="90834")
    for field in ("interventions", "next_steps", "clinical_impressions"):
        body.pop(field)
    response = scribe.post(body)
    assert response.status_code == 201
    flags = Flag.objects.filter(note_id=response.json()["note_id"], kind=Flag.Kind.MEDICAL_NECESSITY)
    assert sorted(flags.values_list("value", flat=True)) == ["intervention", "plan", "response"]


def test_a_draft_without_a_cpt_code_gets_no_payer_flags(world):
    scribe = scribe_for(world)
    body = scribe.payload()
    body.pop("interventions")
    response = scribe.post(body)
    kinds = response.json()["flags"]["by_kind"]
    assert "medical_necessity" not in kinds and "cpt_code" not in kinds


@pytest.mark.parametrize(
    "value, message",
    [
        (90834, "Not a valid string"),
        ("9083", "five characters"),
        ("90834 ", "five characters"),
        ("90834\n", "five characters"),
        ("", "may not be blank"),
    ],
)
def test_a_malformed_cpt_code_is_refused_with_a_field_error_and_nothing_stored(world, value, message):
    scribe = scribe_for(world)
    response = scribe.post(scribe.payload(cpt_code=value))
    assert response.status_code == 400
    assert message in " ".join(response.json()["errors"]["cpt_code"])
    assert not Draft.objects.exists()


def test_add_on_codes_without_a_primary_code_are_refused(world):
    scribe = scribe_for(world)
    response = scribe.post(scribe.payload(cpt_add_on_codes=["90785"]))
    assert response.status_code == 400
    assert "need a primary" in response.json()["errors"]["cpt_add_on_codes"][0]


def test_payer_flags_block_signing_until_resolved_with_a_reason(world, login_as):
    scribe = scribe_for(world)
    response = scribe.post(scribe.payload(cpt_code="90832"))
    note = Note.objects.get(pk=response.json()["note_id"])
    services.note_open(note=note, actor=world.clinician)
    for flag in note.flags.exclude(kind=Flag.Kind.CPT_CODE):
        services.flag_resolve(flag=flag, resolution="ok", actor=world.clinician)
    step_up = timezone.now() - timedelta(seconds=1)
    with pytest.raises(SignBlocked, match="1 open flag"):
        services.note_sign(note=note, actor=world.clinician, step_up_at=step_up)

    # Shown on the review page before signing, with the reason form open.
    client = login_as(world.clinician)
    page = client.get(f"/notes/{note.pk}/review/").content.decode()
    assert "CPT code does not fit the session" in page and "Resolve with a reason" in page
    flag = note.flags.get(kind=Flag.Kind.CPT_CODE)
    assert client.post(f"/notes/{note.pk}/flags/{flag.pk}/dismiss/", {"reason": ""}).status_code == 400
    client.post(f"/notes/{note.pk}/flags/{flag.pk}/dismiss/", {"reason": "Billing will use 90834."})
    flag.refresh_from_db()
    assert flag.resolution == "Dismissed: Billing will use 90834." and flag.resolved_by == world.clinician
    assert services.note_sign(note=note, actor=world.clinician, step_up_at=step_up).state == Note.State.SIGNED


def test_a_group_intake_adds_no_query_per_member_for_payer_checks(world):
    """The checks are pure: a group of 6 takes as many queries with a CPT code as without."""
    scribe = scribe_for(world)
    clients = [client_factory(world.practice, world.clinician) for _ in range(6)]

    def group(**extra):
        return {
            "clinician": {"id": world.clinician.pk},
            "session": {
                "start": "2026-11-24T18:00:00-05:00",
                "duration_minutes": 90,
                "type": "group",
                "participants": [{"client": {"id": c.pk}} for c in clients],
            },
            "model": {"name": "scribe-llm", "version": "2.3"},
            **ai_output(),
            **extra,
        }

    assert scribe.post(group(draft_id="g0")).status_code == 201  # warm: key use, caches
    with CaptureQueriesContext(connection) as without:
        assert scribe.post(group(draft_id="g1")).status_code == 201
    with CaptureQueriesContext(connection) as with_code:
        response = scribe.post(group(draft_id="g2", cpt_code="90853"))
    assert response.status_code == 201
    assert len(with_code.captured_queries) == len(without.captured_queries)
    assert all("cpt_code" not in d["flags"]["by_kind"] for d in response.json()["drafts"])
