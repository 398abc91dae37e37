"""The payload of MAPPING.md §1: every part reaches the draft or the note."""

import pytest

from notes.models import Draft, Note
from tests.factories import world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def test_every_part_of_the_payload_is_kept(scribe):
    body = scribe.payload(
        schema_version=1,
        draft_id="scribe-42",
        transcript_ref="s3://transcripts/42",
        session={"start": "2026-11-24T15:00:00-05:00", "duration_minutes": 75, "type": "couple"},
        model={"name": "scribe-llm", "version": "3.0-beta"},
        vendor_confidence={"subjective": 0.93},
    )
    data = scribe.post(body).json()
    draft = Draft.objects.get(pk=data["id"])
    assert draft.payload == body
    assert draft.session_type == "couple" and draft.session_duration_minutes == 75
    assert draft.session_start.isoformat() == "2026-11-24T20:00:00+00:00"
    assert (draft.model_name, draft.model_version, draft.external_id) == ("scribe-llm", "3.0-beta", "scribe-42")
    note = Note.objects.get(pk=data["note_id"])
    sections = {s.key: s for s in note.sections.all()}
    assert sections["diagnoses"].codes == ["F33.1"]
    assert sections["interventions"].codes == ["CBT", "Behavioral activation"]
    assert sections["risk"].codes == ["low"]
    # The extra field is flagged with its value, never dropped.
    assert note.flags.get(kind="unplaced_content").value == {"subjective": 0.93}
    # Envelope fields are not note content.
    assert not note.flags.filter(field__in=["transcript_ref", "draft_id", "schema_version", "model"]).exists()


@pytest.mark.parametrize("session_type", ["individual", "couple", "family"])
def test_each_non_group_session_type_makes_one_note(scribe, session_type):
    body = scribe.payload(session={"start": "2026-11-24T15:00:00Z", "duration_minutes": 50, "type": session_type})
    response = scribe.post(body)
    assert response.status_code == 201
    assert Draft.objects.get().session_type == session_type


def test_the_session_type_defaults_to_individual(scribe):
    body = scribe.payload(session={"start": "2026-11-24T15:00:00Z", "duration_minutes": 50})
    assert scribe.post(body).status_code == 201
    assert Draft.objects.get().session_type == "individual"


def test_content_fields_are_optional_and_missing_ones_flagged(scribe):
    body = {k: v for k, v in scribe.payload().items() if k in ("client", "clinician", "session", "model")}
    response = scribe.post(body)
    assert response.status_code == 201
    assert response.json()["flags"]["by_kind"]["missing_required"] == 5
