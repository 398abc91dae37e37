"""POST /api/v1/drafts: a scribe's draft becomes a note awaiting its clinician."""

import pytest

from audit.models import AuditEvent
from notes.models import Draft, Note
from tests.factories import world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def test_a_draft_becomes_a_note_for_the_clinician_with_the_answer_describing_it(scribe):
    body = scribe.payload(session_summary_for_patient="Kept verbatim.")
    response = scribe.post(body)
    assert response.status_code == 201, response.json()
    data = response.json()
    draft = Draft.objects.get(pk=data["id"])
    note = Note.objects.get(pk=data["note_id"])
    assert draft.payload == body  # verbatim, extra field included
    assert draft.ai_source == scribe.ai_source and draft.client == scribe.client
    assert draft.session_duration_minutes == 50 and draft.model_name == "scribe-llm" and draft.model_version == "2.3"
    assert note.client == scribe.client and note.clinician == scribe.world.clinician
    assert note.template_version.template.key == "soap"
    assert data["state"] == "draft" and data["blocked"] is False and data["replayed"] is False
    assert data["flags"] == {"open": 1, "by_kind": {"unplaced_content": 1}}
    assert note.flags.get().field == "session_summary_for_patient"
    assert [d["id"] for d in data["drafts"]] == [draft.pk]


def test_the_client_may_be_named_by_the_practice_client_id(scribe):
    response = scribe.post(scribe.payload(client={"id": scribe.client.pk}))
    assert response.status_code == 201
    assert response.json()["client"] == scribe.client.pk


def test_the_clinician_may_be_named_by_the_ehr_practitioner_id(scribe):
    membership = scribe.world.clinician.membership
    membership.ehr_practitioner_id = "PRAC-9"
    membership.save()
    response = scribe.post(scribe.payload(clinician={"ehr_practitioner_id": "PRAC-9"}))
    assert response.status_code == 201
    assert Note.objects.get(pk=response.json()["note_id"]).clinician == scribe.world.clinician


def test_the_payload_may_choose_the_practice_dap_template(scribe):
    response = scribe.post(scribe.payload(template="dap"))
    assert response.status_code == 201, response.json()
    note = Note.objects.get(pk=response.json()["note_id"])
    assert note.template_version.template.key == "dap"
    assert "Client report:" in note.sections.get(key="data").text
    assert not note.flags.filter(kind="unplaced_content").exists()  # "template" is envelope, not content


def test_an_unknown_template_is_a_field_error(scribe):
    response = scribe.post(scribe.payload(template="birp"))
    assert response.status_code == 400
    assert "template" in response.json()["errors"]
    assert not Draft.objects.exists()


def test_the_draft_is_written_to_the_audit_log_as_the_ai_source(scribe):
    response = scribe.post(scribe.payload())
    event = AuditEvent.objects.get(action="note.draft", note_id=response.json()["note_id"])
    assert event.actor_type == "ai" and event.actor_ai_source == scribe.ai_source
    assert "scribe-llm 2.3" in event.actor_label


def test_the_clinician_must_be_an_active_clinician_of_the_practice(scribe):
    w = scribe.world
    for user in (w.admin, w.outsider):
        response = scribe.post(scribe.payload(clinician={"id": user.pk}))
        assert response.status_code == 400
        assert list(response.json()["errors"]) == ["clinician"]
    membership = w.colleague.membership
    membership.is_active = False
    membership.save()
    assert scribe.post(scribe.payload(clinician={"id": w.colleague.pk})).status_code == 400
    assert not Draft.objects.exists()
