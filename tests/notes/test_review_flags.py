import pytest

from audit.models import AuditEvent
from notes.models import Flag
from tests.factories import ai_output, note_factory

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


def _note(world, **overrides):
    return note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(**overrides))


def test_placing_unplaced_content_edits_the_chosen_section_and_resolves_the_flag(world, login_as):
    note = _note(world, mood_rating="4 of 10, better than last week")
    flag = note.flags.get(kind=Flag.Kind.UNPLACED_CONTENT)
    response = login_as(world.clinician).post(
        f"/notes/{note.pk}/flags/{flag.pk}/place/", {"section": "subjective"}, **JSON
    )
    assert response.status_code == 200, response.content
    section = note.sections.get(key="subjective")
    assert section.text.endswith("mood_rating: 4 of 10, better than last week")
    flag.refresh_from_db()
    assert flag.resolved_by == world.clinician and "Subjective" in flag.resolution
    edit = AuditEvent.objects.get(note=note, action="note.edit")
    assert "mood_rating" not in edit.before["text"] and "mood_rating" in edit.after["text"]


def test_placing_into_a_code_section_is_refused_and_changes_nothing(world, login_as):
    note = _note(world, mood_rating=4)
    flag = note.flags.get(kind=Flag.Kind.UNPLACED_CONTENT)
    before = note.sections.get(key="diagnoses").text
    response = login_as(world.clinician).post(
        f"/notes/{note.pk}/flags/{flag.pk}/place/", {"section": "diagnoses"}, **JSON
    )
    assert response.status_code == 400
    assert "section" in response.json()["errors"]
    flag.refresh_from_db()
    assert flag.is_open and note.sections.get(key="diagnoses").text == before


def test_a_place_form_post_with_an_unknown_section_re_renders_the_page_with_a_400(world, login_as):
    note = _note(world, mood_rating=4)
    flag = note.flags.get(kind=Flag.Kind.UNPLACED_CONTENT)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/flags/{flag.pk}/place/", {"section": "nope"})
    assert response.status_code == 400
    assert "Choose a section of this note." in response.content.decode()


def test_fixing_an_invalid_code_puts_a_billable_code_in_the_diagnoses_and_resolves_the_flag(world, login_as):
    note = _note(world, diagnosis_codes=["F33.1", "F99.99"])
    flag = note.flags.get(kind=Flag.Kind.INVALID_CODE)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/flags/{flag.pk}/fix-code/", {"code": "f41.1"})
    assert response.status_code == 302
    section = note.sections.get(key="diagnoses")
    assert section.codes == ["F33.1", "F41.1"]
    assert "F41.1 Generalized anxiety disorder" in section.text
    flag.refresh_from_db()
    assert not flag.is_open and "F99.99" in flag.resolution
    assert AuditEvent.objects.get(note=note, action="note.edit").after["codes"] == ["F33.1", "F41.1"]


@pytest.mark.parametrize("code", ["F33", "ZZZ.9", ""])
def test_a_non_billable_or_unknown_code_is_refused_and_the_flag_stays_open(world, login_as, code):
    note = _note(world, diagnosis_codes=["F99.99"])
    flag = note.flags.get(kind=Flag.Kind.INVALID_CODE)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/flags/{flag.pk}/fix-code/", {"code": code}, **JSON)
    assert response.status_code == 400
    assert "code" in response.json()["errors"]
    flag.refresh_from_db()
    assert flag.is_open and note.sections.get(key="diagnoses").codes == []


def test_a_risk_item_is_acknowledged_not_dismissed(world, login_as):
    note = _note(world, risk_assessment={"level": "high", "text": "Passive SI, no plan."})
    flag = note.flags.filter(kind=Flag.Kind.RISK).first()
    web = login_as(world.clinician)
    response = web.post(f"/notes/{note.pk}/flags/{flag.pk}/dismiss/", {"reason": "meh"}, **JSON)
    assert response.status_code == 400
    flag.refresh_from_db()
    assert flag.is_open
    response = web.post(f"/notes/{note.pk}/flags/{flag.pk}/acknowledge/", {"comment": "Safety plan updated."}, **JSON)
    assert response.status_code == 200
    flag.refresh_from_db()
    assert flag.resolution == "Risk reviewed and acknowledged. Safety plan updated."


def test_acknowledging_a_flag_that_is_not_a_risk_item_is_refused(world, login_as):
    note = _note(world, mood_rating=4)
    flag = note.flags.get(kind=Flag.Kind.UNPLACED_CONTENT)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/flags/{flag.pk}/acknowledge/", {}, **JSON)
    assert response.status_code == 400
    flag.refresh_from_db()
    assert flag.is_open


def test_dismissing_needs_a_reason(world, login_as):
    note = _note(world, interventions=["Reiki"])
    flag = note.flags.get(kind=Flag.Kind.UNKNOWN_INTERVENTION)
    web = login_as(world.clinician)
    assert web.post(f"/notes/{note.pk}/flags/{flag.pk}/dismiss/", {"reason": "  "}, **JSON).status_code == 400
    response = web.post(f"/notes/{note.pk}/flags/{flag.pk}/dismiss/", {"reason": "Not delivered in session"}, **JSON)
    assert response.status_code == 200
    flag.refresh_from_db()
    assert flag.resolution == "Dismissed: Not delivered in session"


def test_a_flag_of_another_note_is_not_found(world, login_as):
    note = _note(world, mood_rating=4)
    other = _note(world, mood_rating=5)
    flag = other.flags.get(kind=Flag.Kind.UNPLACED_CONTENT)
    response = login_as(world.clinician).post(
        f"/notes/{note.pk}/flags/{flag.pk}/place/", {"section": "subjective"}, **JSON
    )
    assert response.status_code == 404


def test_icd10_search_finds_billable_codes_by_words_and_by_code(world, login_as):
    web = login_as(world.clinician)
    by_words = web.get("/icd10/search/?q=generalized anxiety").json()["results"]
    assert {"code": "F41.1", "description": "Generalized anxiety disorder"} in by_words
    by_code = web.get("/icd10/search/?q=F33.").json()["results"]
    assert by_code and all(r["code"].startswith("F33.") for r in by_code)
    assert "F33" not in [r["code"] for r in by_code]  # a category is not billable
    assert web.get("/icd10/search/?q=F").json()["results"] == []
