"""GET /api/v1/drafts/{id}: the draft's state as its scribe may know it."""

import pytest

from integrations.models import Delivery
from notes import services
from notes.api_keys import ai_source_key_create
from notes.models import Note
from tests.factories import ai_source_factory, client_factory, note_sign_now, world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def _posted(scribe, **overrides):
    data = scribe.post(scribe.payload(**overrides)).json()
    return data["id"], Note.objects.get(pk=data["note_id"])


def _state(scribe, draft_id):
    response = scribe.get(draft_id)
    assert response.status_code == 200, response.content
    return response.json()["state"]


def test_the_state_follows_the_note_from_draft_to_delivered(scribe):
    draft_id, note = _posted(scribe, draft_id="scribe-1")
    body = scribe.get(draft_id).json()
    assert body["state"] == "draft" and body["note_id"] == note.pk and body["external_id"] == "scribe-1"
    services.note_open(note=note, actor=scribe.world.clinician)
    assert _state(scribe, draft_id) == "in_review"
    note_sign_now(note, scribe.world.clinician)
    assert _state(scribe, draft_id) == "signed"
    Delivery.objects.filter(note=note).update(state=Delivery.State.DELIVERED, ehr_id="DocumentReference/1")
    assert _state(scribe, draft_id) == "delivered"


def test_a_discarded_note_reads_discarded(scribe):
    draft_id, note = _posted(scribe)
    services.note_discard(note=note, reason="Wrong client", actor=scribe.world.clinician)
    assert _state(scribe, draft_id) == "discarded"


def test_a_draft_for_a_client_without_consent_reads_blocked(scribe):
    client = client_factory(scribe.world.practice, scribe.world.clinician, consent=False)
    draft_id, _ = _posted(scribe, client={"id": client.pk})
    assert _state(scribe, draft_id) == "blocked"


def test_an_open_amendment_keeps_the_signed_state(scribe):
    draft_id, note = _posted(scribe)
    note_sign_now(note, scribe.world.clinician)
    services.note_amend(note=note, reason="Typo", actor=scribe.world.clinician)
    assert _state(scribe, draft_id) == "signed"


def test_another_sources_draft_is_not_found(scribe):
    draft_id, _ = _posted(scribe)
    other = ai_source_factory(scribe.world.other_practice)
    _, other_key = ai_source_key_create(ai_source=other)
    assert scribe.get(draft_id, key=other_key).status_code == 404
    assert scribe.get(draft_id + 1000).status_code == 404


def test_reading_a_state_needs_a_key(scribe):
    from django.test import Client

    draft_id, _ = _posted(scribe)
    assert Client().get(f"/api/v1/drafts/{draft_id}").status_code == 401


@pytest.mark.parametrize("raw_id", ["-1", "abc", "99999999999999999999999", "0"])
def test_a_malformed_draft_id_is_a_json_404(scribe, raw_id):
    response = scribe.get(raw_id)
    assert response.status_code == 404
    assert response.json()["errors"] == {"id": ["No such draft."]}
