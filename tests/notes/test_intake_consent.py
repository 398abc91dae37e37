"""A draft for a client without active consent is stored but blocked, cannot
be signed, and the API answer says so."""

import pytest
from django.utils import timezone

from notes import services
from notes.errors import SignBlocked
from notes.models import Draft, Note
from tests.factories import client_factory, note_resolve_all_flags, world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def test_a_client_without_consent_gets_a_stored_but_blocked_draft(scribe):
    w = scribe.world
    client = client_factory(w.practice, w.clinician, consent=False)
    response = scribe.post(scribe.payload(client={"id": client.pk}))
    assert response.status_code == 201
    data = response.json()
    assert data["blocked"] is True and data["state"] == "blocked"
    assert data["blocked_reason"] == "The client has no active consent to AI-assisted documentation."
    assert Draft.objects.filter(pk=data["id"]).exists()
    note = Note.objects.get(pk=data["note_id"])
    services.note_open(note=note, actor=w.clinician)
    note_resolve_all_flags(note, w.clinician)
    with pytest.raises(SignBlocked):
        services.note_sign(note=note, actor=w.clinician, step_up_at=timezone.now())


def test_a_revoked_consent_blocks_new_drafts(scribe):
    services.consent_revoke(client=scribe.client, actor=scribe.world.clinician)
    data = scribe.post(scribe.payload()).json()
    assert data["blocked"] is True


def test_a_client_with_consent_is_not_blocked(scribe):
    data = scribe.post(scribe.payload()).json()
    assert data["blocked"] is False and data["blocked_reason"] == ""
