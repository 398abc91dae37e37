"""API keys of AI sources: stored hashed, shown once, scoped to one practice,
revocable, rotatable with an overlap window; every use logged."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from notes.api_keys import ai_source_key_create, ai_source_key_revoke, ai_source_key_rotate
from notes.models import AISourceKey, Draft
from tests.factories import ai_source_factory, client_factory, world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def test_only_a_hash_of_the_key_is_stored(scribe):
    key = AISourceKey.objects.get(ai_source=scribe.ai_source)
    assert scribe.key.startswith(f"psk_{key.prefix}_")
    stored = {f.attname: getattr(key, f.attname) for f in AISourceKey._meta.concrete_fields}
    assert scribe.key not in [str(v) for v in stored.values()]
    assert scribe.key.split("_", 2)[2] not in key.key_hash
    assert len(key.key_hash) == 64


def test_a_wrong_secret_with_a_real_prefix_is_refused(scribe):
    prefix = scribe.key.split("_", 2)[1]
    response = scribe.post(scribe.payload(), key=f"psk_{prefix}_not-the-secret")
    assert response.status_code == 401
    assert "authorization" in response.json()["errors"]
    assert not Draft.objects.exists()
    refused = AuditEvent.objects.get(action="api_key.refused")
    assert refused.actor_ai_source == scribe.ai_source and refused.detail["reason"] == "Invalid API key."


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Token abc", "Bearer psk_nope", "Basic dXNlcjpwYXNz", "Bearer psk_\x00\x01_x", "Bearer psk_ABC_x"],
)
def test_missing_or_malformed_credentials_are_refused(scribe, header):
    from django.test import Client

    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = Client().post("/api/v1/drafts", data=scribe.payload(), content_type="application/json", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not Draft.objects.exists()


def test_a_revoked_key_is_refused_and_stores_nothing(scribe):
    key = AISourceKey.objects.get(ai_source=scribe.ai_source)
    ai_source_key_revoke(key=key, actor=scribe.world.admin)
    response = scribe.post(scribe.payload())
    assert response.status_code == 401
    assert response.json()["detail"] == "This API key has been revoked."
    assert not Draft.objects.exists()
    refused = AuditEvent.objects.get(action="api_key.refused")
    assert refused.actor_ai_source == scribe.ai_source and refused.detail["reason"] == "This API key has been revoked."


def test_a_deactivated_ai_source_is_refused(scribe):
    scribe.ai_source.is_active = False
    scribe.ai_source.save()
    assert scribe.post(scribe.payload()).status_code == 401


def test_rotation_keeps_the_old_key_working_during_the_overlap_only(scribe):
    old = AISourceKey.objects.get(ai_source=scribe.ai_source)
    new, new_plain = ai_source_key_rotate(key=old, actor=scribe.world.admin, overlap=timedelta(hours=2))
    assert new.ai_source == scribe.ai_source and new_plain != scribe.key
    assert scribe.post(scribe.payload()).status_code == 201
    assert scribe.post(scribe.payload(), key=new_plain).status_code == 201
    AISourceKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = scribe.post(scribe.payload())
    assert response.status_code == 401 and response.json()["detail"] == "This API key has expired."
    assert scribe.post(scribe.payload(), key=new_plain).status_code == 201
    old.refresh_from_db()
    assert AuditEvent.objects.filter(action="api_key.rotate").count() == 1


def test_rotating_an_expired_or_revoked_key_is_refused(scribe):
    from notes.errors import DomainError

    key = AISourceKey.objects.get(ai_source=scribe.ai_source)
    ai_source_key_revoke(key=key)
    with pytest.raises(DomainError):
        ai_source_key_rotate(key=key)


def test_a_key_reaches_only_its_own_practice(scribe):
    """A key of another practice's scribe cannot post for this practice's client."""
    w = scribe.world
    other_source = ai_source_factory(w.other_practice)
    _, other_key = ai_source_key_create(ai_source=other_source)
    response = scribe.post(scribe.payload(clinician={"id": w.outsider.pk}), key=other_key)
    assert response.status_code == 400
    assert response.json()["errors"] == {"client": ["Unknown client: no such client in this practice."]}
    assert not Draft.objects.exists()
    # ...and it works for a client of its own practice.
    own = client_factory(w.other_practice, w.outsider)
    response = scribe.post(scribe.payload(client={"id": own.pk}, clinician={"id": w.outsider.pk}), key=other_key)
    assert response.status_code == 201
    assert Draft.objects.get().practice == w.other_practice


def test_every_use_of_a_key_is_logged_with_the_ai_source_as_actor(scribe):
    """A stored draft's use is its note.draft event (same transaction); any
    other use (a read, a repeat, a rejected payload) is an api_key.use event."""
    prefix = scribe.key.split("_", 2)[1]
    before = AuditEvent.objects.count()
    created = scribe.post(scribe.payload(draft_id="d-1")).json()
    scribe.post(scribe.payload(draft_id="d-1"))
    scribe.get(created["id"])
    scribe.post({"not": "valid"})
    events = list(AuditEvent.objects.order_by("seq")[before:])
    assert [(e.action, e.detail["method"], e.detail.get("status")) for e in events] == [
        ("note.draft", "POST", None),
        ("api_key.use", "POST", 200),
        ("api_key.use", "GET", 200),
        ("api_key.use", "POST", 400),
    ]
    assert {e.actor_type for e in events} == {"ai"}
    assert {e.actor_ai_source_id for e in events} == {scribe.ai_source.pk}
    assert {e.detail["api_key"] for e in events} == {prefix}
    assert AISourceKey.objects.get(ai_source=scribe.ai_source).last_used_at is not None


def test_a_failed_draft_still_logs_the_use(scribe):
    response = scribe.post(scribe.payload(client={"id": 10**9}))
    assert response.status_code == 400
    event = AuditEvent.objects.filter(action="api_key.use").latest("seq")
    assert event.detail["status"] == 400 and event.actor_ai_source == scribe.ai_source


def test_creating_and_revoking_keys_is_audited(scribe):
    key = AISourceKey.objects.get(ai_source=scribe.ai_source)
    ai_source_key_revoke(key=key, actor=scribe.world.admin)
    ai_source_key_revoke(key=key, actor=scribe.world.admin)
    assert AuditEvent.objects.filter(action="api_key.create").count() == 1
    assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1
