"""A repeated POST (same Idempotency-Key, or same scribe draft_id) returns the
first result and never stores a second draft, also under concurrent duplicates."""

import threading

import pytest
from django.db import connection
from django.test import Client as HttpClient

from notes.models import Draft, Note
from tests.factories import world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def test_a_repeated_post_with_the_same_idempotency_key_returns_the_first_result(scribe):
    body = scribe.payload()
    first = scribe.post(body, idempotency_key="visit-123")
    again = scribe.post(body, idempotency_key="visit-123")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["note_id"] == first.json()["note_id"]
    assert again.json()["replayed"] is True
    assert Draft.objects.count() == 1 and Note.objects.count() == 1


def test_the_scribes_draft_id_is_the_key_when_no_header_is_sent(scribe):
    body = scribe.payload(draft_id="scribe-7f3a9c")
    first = scribe.post(body)
    again = scribe.post(body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert Draft.objects.get().external_id == "scribe-7f3a9c"


def test_without_a_key_each_post_is_a_new_draft(scribe):
    assert scribe.post(scribe.payload()).status_code == 201
    assert scribe.post(scribe.payload()).status_code == 201
    assert Draft.objects.count() == 2


def test_a_key_reused_for_a_different_payload_is_refused(scribe):
    scribe.post(scribe.payload(), idempotency_key="visit-123")
    response = scribe.post(scribe.payload(next_steps="Something else."), idempotency_key="visit-123")
    assert response.status_code == 422
    assert "idempotency_key" in response.json()["errors"]
    assert Draft.objects.count() == 1


def test_a_malformed_idempotency_key_is_a_field_error(scribe):
    response = scribe.post(scribe.payload(), idempotency_key="has spaces/and slash")
    assert response.status_code == 400
    assert "idempotency_key" in response.json()["errors"]
    assert not Draft.objects.exists()


def test_keys_are_per_ai_source(scribe):
    """Another scribe's key of the same name is another draft."""
    from notes.api_keys import ai_source_key_create
    from tests.factories import ai_source_factory

    other_source = ai_source_factory(scribe.world.practice)
    _, other_key = ai_source_key_create(ai_source=other_source)
    assert scribe.post(scribe.payload(), idempotency_key="k1").status_code == 201
    assert scribe.post(scribe.payload(), idempotency_key="k1", key=other_key).status_code == 201
    assert Draft.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_store_one_draft_and_all_get_its_result():
    scribe = scribe_for(world_factory())
    body = scribe.payload()
    n = 8
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def post(i):
        try:
            barrier.wait()
            results[i] = scribe.post(body, http=HttpClient(), idempotency_key="same-visit")
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * (n - 1) + [201], [r.content[:200] for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert Draft.objects.count() == 1 and Note.objects.count() == 1
