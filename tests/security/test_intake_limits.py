"""Issue #11, point 5: the intake bounds the work one request may ask for.

Too many extra fields, an over-long field name and invalid Unicode are a 400
naming the limit, not thousands of flag rows or a 500; every oversize body,
with or without a Content-Length, is the documented JSON 413. Nothing is
stored for a refused request.
"""

import io
import json

import pytest
from django.test import override_settings

from audit.models import AuditEvent
from notes.intake_limits import MAX_KEY_LENGTH
from notes.models import Draft, Flag, Note
from tests.factories import client_factory, world_factory
from tests.notes.intake_support import URL, scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def _refused(response, status, field):
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["detail"]
    assert field in body["errors"], body
    assert not Draft.objects.exists() and not Note.objects.exists() and not Flag.objects.exists()
    assert not AuditEvent.objects.filter(action="note.draft").exists()
    return body


def _with_raw_field(scribe, raw_member: str) -> str:
    """The scribe's payload as JSON text with one more member written by hand
    (json.dumps would never write a lone surrogate escape for us)."""
    return json.dumps(scribe.payload())[:-1] + ", " + raw_member + "}"


# --- extra fields ---------------------------------------------------------------------------------


@override_settings(INTAKE_MAX_EXTRA_FIELDS=50)
def test_fifty_extra_fields_are_accepted_and_each_is_flagged(scribe):
    response = scribe.post(scribe.payload(**{f"vendor_{i}": f"value {i}" for i in range(50)}))
    assert response.status_code == 201, response.content[:500]
    assert Flag.objects.filter(kind="unplaced_content").count() == 50


@override_settings(INTAKE_MAX_EXTRA_FIELDS=50)
def test_fifty_thousand_extra_fields_are_a_400_naming_the_limit(scribe):
    body = _refused(scribe.post(scribe.payload(**{f"x{i}": "v" for i in range(50_000)})), 400, "body")
    [message] = body["errors"]["body"]
    assert "At most 50 extra fields" in message and "INTAKE_MAX_EXTRA_FIELDS" in message and "50000" in message


@override_settings(INTAKE_MAX_EXTRA_FIELDS=50)
def test_one_extra_field_over_the_limit_is_refused(scribe):
    _refused(scribe.post(scribe.payload(**{f"vendor_{i}": "v" for i in range(51)})), 400, "body")


@override_settings(INTAKE_MAX_EXTRA_FIELDS=4)
def test_group_participants_extra_fields_count_with_the_top_level_ones(scribe):
    other = client_factory(scribe.world.practice, scribe.world.clinician)
    participants = [
        {"client": {"id": scribe.client.pk}, "name": "Jordan", "mood_score": 5, "sleep_hours": 6},
        {"client": {"id": other.pk}, "name": "Sam", "mood_score": 4},
    ]
    session = {"start": "2026-11-24T18:00:00-05:00", "duration_minutes": 90, "type": "group"}
    payload = scribe.payload(session={**session, "participants": participants}, vendor_a=1, vendor_b=2)
    del payload["client"]
    body = _refused(scribe.post(payload), 400, "body")
    assert "this one has 5" in body["errors"]["body"][0]


def test_the_extra_field_limit_is_a_setting_read_per_request(scribe):
    with override_settings(INTAKE_MAX_EXTRA_FIELDS=2):
        _refused(scribe.post(scribe.payload(a=1, b=2, c=3)), 400, "body")
    with override_settings(INTAKE_MAX_EXTRA_FIELDS=3):
        assert scribe.post(scribe.payload(a=1, b=2, c=3)).status_code == 201


def test_a_field_name_over_the_key_length_is_a_400_not_a_500(scribe):
    name = "k" * (MAX_KEY_LENGTH + 1)
    body = _refused(scribe.post(scribe.payload(**{name: "v"})), 400, "k" * 40 + "…")
    assert body["errors"]["k" * 40 + "…"] == [
        f"Field names are limited to {MAX_KEY_LENGTH} characters; this one has 101."
    ]


def test_a_field_name_of_the_key_length_is_accepted(scribe):
    response = scribe.post(scribe.payload(**{"k" * MAX_KEY_LENGTH: "v"}))
    assert response.status_code == 201, response.content[:500]
    assert Flag.objects.get(kind="unplaced_content").field == "k" * MAX_KEY_LENGTH


def test_long_field_names_nested_in_an_extra_field_are_refused_too(scribe):
    _refused(scribe.post(scribe.payload(vendor={"deep": [{"n" * 500: 1}]})), 400, "vendor.deep.0." + "n" * 40 + "…")


# --- invalid Unicode ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "field"),
    [
        ('"vendor_note": "she said \\ud800 nothing"', "vendor_note"),
        ('"client_reported_symptoms": "low mood \\udfff"', "client_reported_symptoms"),
        ('"model_extra": {"list": ["ok", "\\ud83d"]}', "model_extra.list.1"),
        ('"risk_assessment": {"level": "low", "text": "\\udc00"}', "risk_assessment.text"),
        ('"interventions": ["CBT", "\\ud800"]', "interventions.1"),
    ],
)
def test_a_lone_surrogate_in_a_value_is_a_400_naming_the_field(scribe, member, field):
    body = _refused(scribe.post(_with_raw_field(scribe, member), raw=True), 400, field)
    assert "Invalid Unicode" in body["errors"][field][0]


def test_a_lone_surrogate_in_a_field_name_is_a_400_with_a_printable_path(scribe):
    body = _refused(scribe.post(_with_raw_field(scribe, '"vendor\\ud800name": 1'), raw=True), 400, "vendor\\ud800name")
    assert "field name" in body["errors"]["vendor\\ud800name"][0]


def test_a_lone_surrogate_in_an_enumerated_field_is_refused_without_quoting_it(scribe):
    # session.type's "not a valid choice" would quote the value; the answer
    # could then not be encoded at all.
    raw = json.dumps(scribe.payload())[:-1] + ', "session": {"start": "2026-11-24T15:00:00-05:00", '
    raw += '"duration_minutes": 50, "type": "\\ud800"}}'
    _refused(scribe.post(raw, raw=True), 400, "session.type")


def test_a_valid_surrogate_pair_is_an_ordinary_character(scribe):
    response = scribe.post(_with_raw_field(scribe, '"vendor_note": "smiled \\ud83d\\ude00"'), raw=True)
    assert response.status_code == 201, response.content[:500]
    assert Draft.objects.get().payload["vendor_note"] == "smiled \U0001f600"


# --- oversize bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1024 * 1024 + 1, 3 * 1024 * 1024, 12 * 1024 * 1024])
def test_every_oversize_body_is_the_documented_json_413(scribe, size):
    # Above Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB) this used to be an HTML 400.
    payload = scribe.payload(vendor_blob="")
    raw = json.dumps(payload)
    raw = raw.replace('"vendor_blob": ""', '"vendor_blob": "' + "x" * (size - len(raw)) + '"')
    assert len(raw) == size
    body = _refused(scribe.post(raw, raw=True), 413, "body")
    assert body["errors"]["body"] == ["The request body is larger than 1048576 bytes (INTAKE_MAX_BODY_BYTES)."]


def _post_chunked(scribe, data: bytes):
    """A chunked upload as a WSGI server hands it over once de-chunked:
    no Content-Length, and wsgi.input_terminated (PEP 3333 extension,
    gunicorn) saying the input stream ends where the body does."""
    from django.test import Client

    return Client().post(
        URL,
        data=b"",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {scribe.key}",
        HTTP_TRANSFER_ENCODING="chunked",
        # The test client sets no content headers for an empty data argument.
        **{
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": "",
            "wsgi.input": io.BytesIO(data),
            "wsgi.input_terminated": True,
        },
    )


def test_an_oversize_chunked_body_without_content_length_is_a_json_413(scribe):
    raw = json.dumps(scribe.payload(vendor_blob="x" * (3 * 1024 * 1024))).encode()
    body = _refused(_post_chunked(scribe, raw), 413, "body")
    assert body["errors"]["body"] == ["The request body is larger than 1048576 bytes (INTAKE_MAX_BODY_BYTES)."]


def test_a_chunked_body_within_the_limit_is_read_and_stored(scribe):
    response = _post_chunked(scribe, json.dumps(scribe.payload(draft_id="chunked-1")).encode())
    assert response.status_code == 201, response.content[:500]
    assert Draft.objects.get().external_id == "chunked-1"


@override_settings(INTAKE_MAX_BODY_BYTES=4 * 1024 * 1024)
def test_a_larger_configured_limit_is_not_cut_short_by_djangos_own(scribe):
    # 3 MiB is over DATA_UPLOAD_MAX_MEMORY_SIZE but within the operator's limit.
    response = scribe.post(scribe.payload(client_reported_symptoms="", vendor_blob="y" * (3 * 1024 * 1024)))
    assert response.status_code == 201, response.content[:300]


@override_settings(INTAKE_MAX_STORED_BYTES=20_000)
def test_a_group_whose_drafts_together_exceed_the_stored_limit_is_a_413(scribe):
    # Each member's draft repeats the session-wide text: 3 x 8,000 > 20,000.
    members = [scribe.client] + [client_factory(scribe.world.practice, scribe.world.clinician) for _ in range(2)]
    session = {"start": "2026-11-24T18:00:00-05:00", "duration_minutes": 90, "type": "group"}
    payload = scribe.payload(
        session={**session, "participants": [{"client": {"id": c.pk}} for c in members]},
        clinician_observations="x" * 8_000,
    )
    del payload["client"]
    body = _refused(scribe.post(payload), 413, "body")
    assert "INTAKE_MAX_STORED_BYTES" in body["errors"]["body"][0]
    payload["clinician_observations"] = "x" * 5_000
    assert scribe.post(payload).status_code == 201
