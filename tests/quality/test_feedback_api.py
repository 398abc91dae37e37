"""GET /api/v1/feedback (issue 15, point 7): a scribe key reads only its own
source's feedback, paginated, with the draft id and the named fields only."""

import pytest
from django.test import Client as HttpClient

from notes.api_keys import ai_source_key_create
from notes.feedback_services import draft_feedback_record
from notes.models import AISource
from tests.factories import ai_source_factory, client_factory, note_factory

pytestmark = pytest.mark.django_db
URL = "/api/v1/feedback"
FIELDS = {"id", "draft_id", "scribe_draft_id", "rating", "reasons", "comment", "created_at", "updated_at"}


def get(key: str, **params):
    return HttpClient().get(URL, params, HTTP_AUTHORIZATION=f"Bearer {key}")


def source_with_key(practice) -> tuple[AISource, str]:
    source = ai_source_factory(practice)
    _, key = ai_source_key_create(ai_source=source)
    return source, key


def rated(world, source, rating=4, **kwargs):
    client = client_factory(world.practice, world.clinician, given_name="Jordan", family_name="Rivera")
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client, ai_source=source)
    return draft_feedback_record(note=note, rating=rating, reasons=["omission"], comment="Fine", actor=world.clinician)


def test_a_scribe_key_reads_only_its_own_sources_feedback(world):
    ours, our_key = source_with_key(world.practice)
    theirs, their_key = source_with_key(world.practice)  # another scribe of the same practice
    mine = rated(world, ours)
    other = rated(world, theirs, rating=1)
    body = get(our_key).json()
    assert [item["id"] for item in body["results"]] == [mine.pk]
    assert [item["id"] for item in get(their_key).json()["results"]] == [other.pk]
    outsider_source, outsider_key = source_with_key(world.other_practice)
    assert get(outsider_key).json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_each_item_holds_the_draft_id_and_the_named_fields_only(world):
    source, key = source_with_key(world.practice)
    feedback = rated(world, source)
    [item] = get(key).json()["results"]
    assert set(item) == FIELDS
    assert item["draft_id"] == feedback.draft_id and item["rating"] == 4 and item["reasons"] == ["omission"]
    text = str(item)
    assert "Rivera" not in text and "Jordan" not in text and "PAT" not in text


def test_feedback_comes_in_pages_oldest_first(world):
    source, key = source_with_key(world.practice)
    made = [rated(world, source, rating=1 + i % 5) for i in range(5)]
    first = get(key, page_size=2).json()
    assert first["count"] == 5 and [i["id"] for i in first["results"]] == [made[0].pk, made[1].pk]
    assert first["next"] and "page=2" in first["next"]
    last = get(key, page_size=2, page=3).json()
    assert [i["id"] for i in last["results"]] == [made[4].pk] and last["next"] is None
    bad_size = get(key, page_size="ten")
    assert bad_size.status_code == 400 and "page_size" in bad_size.json()["errors"]
    missing = get(key, page=9)
    assert missing.status_code == 404 and "detail" in missing.json()


def test_updated_since_filters_and_a_bad_value_is_a_field_error(world):
    source, key = source_with_key(world.practice)
    feedback = rated(world, source)
    assert get(key, updated_since=feedback.updated_at.isoformat()).json()["count"] == 1
    later = feedback.updated_at.replace(year=feedback.updated_at.year + 1).isoformat()
    assert get(key, updated_since=later).json()["count"] == 0
    for value in ("yesterday", "2024-02-30T00:00:00Z", "2024-01-01T10:00:00"):
        bad = get(key, updated_since=value)
        assert bad.status_code == 400 and "updated_since" in bad.json()["errors"], value


def test_without_a_key_or_with_a_persons_session_it_is_refused(world, login_as):
    assert HttpClient().get(URL).status_code == 401
    assert login_as(world.clinician).get(URL).status_code in (401, 403)


def test_the_operation_is_in_the_openapi_schema():
    schema = HttpClient().get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/feedback"]["get"]
    assert operation["security"] == [{"aiSourceKey": []}]
    names = {p["name"] for p in operation["parameters"]}
    assert {"page", "page_size", "updated_since"} <= names
    item = schema["components"]["schemas"]["Feedback"]["properties"]
    assert set(item) == FIELDS
