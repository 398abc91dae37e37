"""Mapping onto the practice's active template version: SOAP, DAP, custom
templates with an admin-editable field map; unplaced fields go to the
fallback section or are flagged, never dropped; missing content flagged."""

import pytest

from notes import services
from notes.models import Note
from tests.factories import world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def _note(scribe, **overrides) -> Note:
    response = scribe.post(scribe.payload(**overrides))
    assert response.status_code == 201, response.content[:300]
    return Note.objects.get(pk=response.json()["note_id"])


def _texts(note):
    return {s.key: s.text for s in note.sections.all()}


def test_soap_places_each_field_in_its_section(scribe):
    texts = _texts(_note(scribe))
    assert texts["subjective"].startswith("Client reports sleeping better")
    assert texts["objective"].startswith("Alert, oriented")
    assert texts["assessment"].startswith("Depressive symptoms improving")
    assert "Risk level: low." in texts["risk"]
    assert texts["plan"].startswith("Continue weekly sessions")


def test_dap_puts_report_and_observations_together_in_data(scribe):
    texts = _texts(_note(scribe, template="dap"))
    assert "Client report: Client reports sleeping" in texts["data"]
    assert "Observations: Alert, oriented" in texts["data"]


CUSTOM = {
    "key": "intake-eval",
    "name": "Intake evaluation",
    "sections": [
        {"key": "presenting", "label": "Presenting problem", "required": True},
        {"key": "mse", "label": "Mental status"},
        {"key": "other", "label": "Other"},
        {"key": "plan", "label": "Plan", "required": True},
    ],
    "field_map": {"client_reported_symptoms": "presenting", "clinician_observations": "mse", "next_steps": "plan"},
    "fallback_section_key": "other",
}


def test_a_custom_template_with_a_fallback_section_takes_what_has_no_place(scribe):
    services.template_create(practice=scribe.world.practice, spec={**CUSTOM, "unplaced_policy": "fallback"})
    note = _note(scribe, template="intake-eval", family_history="Mother: depression.")
    texts = _texts(note)
    assert texts["presenting"].startswith("Client reports sleeping")
    assert "family_history: Mother: depression." in texts["other"]
    assert "Impressions: Depressive symptoms improving" in texts["other"]
    assert not note.flags.filter(kind="unplaced_content").exists()


def test_a_custom_template_that_flags_unplaced_fields_keeps_their_values(scribe):
    services.template_create(practice=scribe.world.practice, spec={**CUSTOM, "unplaced_policy": "flag"})
    note = _note(scribe, template="intake-eval", family_history="Mother: depression.")
    flagged = {f.field: f.value for f in note.flags.filter(kind="unplaced_content")}
    assert flagged["family_history"] == "Mother: depression."
    assert flagged["clinical_impressions"].startswith("Depressive symptoms")


def test_the_active_version_of_an_edited_template_is_used(scribe):
    services.template_create(practice=scribe.world.practice, spec={**CUSTOM, "unplaced_policy": "flag"})
    edited = {**CUSTOM, "field_map": {**CUSTOM["field_map"], "family_history": "other"}, "unplaced_policy": "flag"}
    v2 = services.template_create(practice=scribe.world.practice, spec=edited)
    note = _note(scribe, template="intake-eval", family_history="Mother: depression.")
    assert note.template_version == v2
    assert _texts(note)["other"] == "Mother: depression."


def test_missing_required_content_is_flagged(scribe):
    body = scribe.payload()
    del body["clinician_observations"]
    response = scribe.post(body)
    note = Note.objects.get(pk=response.json()["note_id"])
    flag = note.flags.get(kind="missing_required")
    assert flag.section_key == "objective"
    assert response.json()["flags"]["by_kind"]["missing_required"] == 1
