"""Diagnosis codes and interventions are checked; anything invalid is flagged
with the offending value; high risk or crisis language marks the note."""

import pytest

from notes.models import InterventionTerm, Note
from tests.factories import world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def _note(scribe, **overrides) -> Note:
    response = scribe.post(scribe.payload(**overrides))
    assert response.status_code == 201, response.content[:300]
    return Note.objects.get(pk=response.json()["note_id"])


def test_valid_billable_codes_are_accepted_with_their_description(scribe):
    note = _note(scribe, diagnosis_codes=["F33.1", "f411"])
    section = note.sections.get(key="diagnoses")
    assert section.codes == ["F33.1", "F41.1"]
    assert "Major depressive disorder, recurrent, moderate" in section.text
    assert not note.flags.filter(kind="invalid_code").exists()


def test_an_unknown_code_is_flagged_with_the_offending_value(scribe):
    note = _note(scribe, diagnosis_codes=["F33.1", "XYZ.9"])
    flag = note.flags.get(kind="invalid_code")
    assert flag.value == "XYZ.9"
    assert note.sections.get(key="diagnoses").codes == ["F33.1"]  # never passed through as free text
    assert "XYZ" not in note.sections.get(key="diagnoses").text


def test_a_category_code_is_flagged_with_its_billable_children(scribe):
    response = scribe.post(scribe.payload(diagnosis_codes=["F41"]))
    assert response.json()["flags"]["by_kind"] == {"invalid_code": 1}
    flag = Note.objects.get(pk=response.json()["note_id"]).flags.get(kind="invalid_code")
    assert flag.value == "F41"
    assert "F41.1" in [s["code"] for s in flag.suggestions]


def test_interventions_resolve_through_synonyms(scribe):
    note = _note(scribe, interventions=["motivational interviewing", "Cognitive Behavioral Therapy"])
    assert note.sections.get(key="interventions").codes == ["MI", "CBT"]


def test_an_intervention_outside_the_vocabulary_is_flagged(scribe):
    note = _note(scribe, interventions=["CBT", "crystal healing"])
    flag = note.flags.get(kind="unknown_intervention")
    assert flag.value == "crystal healing"
    assert note.sections.get(key="interventions").codes == ["CBT"]


def test_the_vocabulary_is_the_practices_own(scribe):
    InterventionTerm.objects.create(practice=scribe.world.practice, term="Sandtray", synonyms=["sand tray therapy"])
    note = _note(scribe, interventions=["sand tray therapy"])
    assert note.sections.get(key="interventions").codes == ["Sandtray"]


@pytest.mark.parametrize(
    ("level", "high"), [("none", False), ("low", False), ("moderate", False), ("high", True), ("imminent", True)]
)
def test_a_risk_level_of_high_or_above_marks_the_note_high_risk(scribe, level, high):
    response = scribe.post(scribe.payload(risk_assessment={"level": level, "text": "Assessed."}))
    assert response.json()["high_risk"] is high
    assert Note.objects.get(pk=response.json()["note_id"]).high_risk is high


def test_crisis_language_marks_the_note_high_risk_even_at_low_level(scribe):
    response = scribe.post(
        scribe.payload(client_reported_symptoms="Said she sometimes feels she would be better off dead.")
    )
    data = response.json()
    assert data["high_risk"] is True
    assert data["flags"]["by_kind"].get("risk") == 1
