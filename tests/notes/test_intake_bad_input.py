"""Bad input gets a clear 4xx with field errors and stores nothing."""

import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditEvent
from notes.models import Draft, Note
from tests.factories import client_factory, world_factory
from tests.notes.intake_support import scribe_for


@pytest.fixture
def scribe(db):
    return scribe_for(world_factory())


def _session(**kw):
    return {"start": "2026-11-24T15:00:00-05:00", "duration_minutes": 50, "type": "individual", **kw}


def _refused(scribe, response, status, field):
    assert response.status_code == status, response.content[:500]
    body = response.json()
    assert body["detail"]
    assert field in body["errors"], body
    assert not Draft.objects.exists() and not Note.objects.exists()
    assert not AuditEvent.objects.filter(action="note.draft").exists()
    return body


@pytest.mark.parametrize(
    "raw",
    ['{"client": ', "not json", "[1, 2", '{"a": NaN}', "\xff\xfe"],
)
def test_malformed_json_is_a_400_on_the_body(scribe, raw):
    _refused(scribe, scribe.post(raw, raw=True), 400, "body")


@pytest.mark.parametrize("depth", [40, 5000, 100_000])
def test_deeply_nested_json_is_refused(scribe, depth):
    raw = "[" * depth + "]" * depth
    _refused(scribe, scribe.post(raw, raw=True), 400, "body")
    body = scribe.payload()
    nested = '"x"'
    for _ in range(min(depth, 200)):
        nested = '{"a": ' + nested + "}"
    _refused(scribe, scribe.post(json.dumps(body)[:-1] + ', "vendor_tree": ' + nested + "}", raw=True), 400, "body")


@pytest.mark.parametrize("body", [[], ["a"], "text", 7, None])
def test_a_body_that_is_not_an_object_is_refused(scribe, body):
    _refused(scribe, scribe.post(body), 400, "body")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"client_reported_symptoms": 7}, "client_reported_symptoms"),
        ({"clinician_observations": ["a"]}, "clinician_observations"),
        ({"diagnosis_codes": "F33.1"}, "diagnosis_codes"),
        ({"diagnosis_codes": [33.1]}, "diagnosis_codes.0"),
        ({"interventions": [{"term": "CBT"}]}, "interventions.0"),
        ({"risk_assessment": "low"}, "risk_assessment"),
        ({"risk_assessment": {"level": "catastrophic"}}, "risk_assessment.level"),
        ({"risk_assessment": {"text": "no level"}}, "risk_assessment.level"),
        ({"model": {"version": "1"}}, "model.name"),
        ({"model": "gpt"}, "model"),
        ({"client": "PAT1"}, "client"),
        ({"client": {"id": "12"}}, "client.id"),
        ({"client": {"id": 1, "ehr_patient_id": "PAT1"}}, "client"),
        ({"client": {}}, "client"),
        ({"clinician": {"id": True}}, "clinician.id"),
        ({"session": _session(duration_minutes="50")}, "session.duration_minutes"),
        ({"session": _session(duration_minutes=50.5)}, "session.duration_minutes"),
        ({"session": _session(duration_minutes=0)}, "session.duration_minutes"),
        ({"session": _session(duration_minutes=601)}, "session.duration_minutes"),
        ({"session": _session(type="retreat")}, "session.type"),
        ({"session": _session(start=1732460400)}, "session.start"),
        ({"schema_version": 2}, "schema_version"),
        ({"draft_id": "has space"}, "draft_id"),
        ({"template": 5}, "template"),
    ],
)
def test_wrong_types_and_values_are_field_errors(scribe, overrides, field):
    _refused(scribe, scribe.post(scribe.payload(**overrides)), 400, field)


@pytest.mark.parametrize("missing", ["clinician", "session", "model", "client"])
def test_required_envelope_fields_are_field_errors(scribe, missing):
    body = scribe.payload()
    del body[missing]
    _refused(scribe, scribe.post(body), 400, missing)


@pytest.mark.parametrize(
    ("start", "why"),
    [
        ("2026-11-24T15:00:00", "naive"),
        ("1999-12-31T23:00:00Z", "before 2000"),
        ("2026-02-30T10:00:00Z", "no such day"),
        ("yesterday", "not a date"),
        ((timezone.now() + timedelta(days=3)).isoformat(), "future"),
    ],
)
def test_impossible_or_ambiguous_session_dates_are_refused(scribe, start, why):
    body = _refused(scribe, scribe.post(scribe.payload(session=_session(start=start))), 400, "session.start")
    assert body["errors"]["session.start"], why


def test_a_session_starting_a_few_hours_ahead_is_accepted(scribe):
    start = (timezone.now() + timedelta(hours=3)).isoformat()
    assert scribe.post(scribe.payload(session=_session(start=start))).status_code == 201


def test_an_unknown_client_is_a_field_error(scribe):
    body = _refused(scribe, scribe.post(scribe.payload(client={"ehr_patient_id": "NOPE"})), 400, "client")
    assert body["errors"]["client"] == ["Unknown client: no such client in this practice."]


def test_another_practices_client_is_unknown_too(scribe):
    w = scribe.world
    theirs = client_factory(w.other_practice, w.outsider)
    for ref in ({"id": theirs.pk}, {"ehr_patient_id": theirs.ehr_patient_id}):
        body = _refused(scribe, scribe.post(scribe.payload(client=ref)), 400, "client")
        assert body["errors"]["client"] == ["Unknown client: no such client in this practice."]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"client_reported_symptoms": "fine\x00"}, "client_reported_symptoms"),
        ({"next_steps": "bell\x07"}, "next_steps"),
        ({"risk_assessment": {"level": "low", "text": "esc\x1b[31m"}}, "risk_assessment.text"),
        ({"interventions": ["CBT\x0c"]}, "interventions.0"),
        ({"vendor_extra": {"deep": ["ok", "bad\x01"]}}, "vendor_extra.deep.1"),
        ({"c1_control": "next\x85line"}, "c1_control"),
    ],
)
def test_control_characters_are_refused_with_a_field_error(scribe, overrides, field):
    _refused(scribe, scribe.post(scribe.payload(**overrides)), 400, field)


def test_tab_newline_and_carriage_return_are_fine(scribe):
    response = scribe.post(scribe.payload(client_reported_symptoms="Line one\r\n\tLine two\nLine three"))
    assert response.status_code == 201


def test_a_100_kb_note_passes(scribe):
    long_text = ("Client describes the week in detail. " * 3000)[:100_000]
    response = scribe.post(scribe.payload(client_reported_symptoms=long_text))
    assert response.status_code == 201, response.content[:300]
    note = Note.objects.get(pk=response.json()["note_id"])
    assert note.sections.get(key="subjective").text == long_text.strip()


def test_an_oversized_body_is_a_413(scribe):
    body = scribe.payload(vendor_blob="x" * (1024 * 1024))
    _refused(scribe, scribe.post(body), 413, "body")


@override_settings(INTAKE_MAX_BODY_BYTES=2000)
def test_the_body_limit_is_a_setting(scribe):
    _refused(scribe, scribe.post(scribe.payload(vendor_blob="y" * 5000)), 413, "body")


def test_a_non_json_content_type_is_refused(scribe):
    response = scribe.post("client=1", raw=True, content_type="application/x-www-form-urlencoded")
    _refused(scribe, response, 415, "content_type")


def test_html_is_stored_as_text_and_escaped_on_the_note_page(scribe, login_as):
    script = '<script>alert("x")</script><b>bold</b>'
    response = scribe.post(scribe.payload(client_reported_symptoms=script))
    assert response.status_code == 201
    note = Note.objects.get(pk=response.json()["note_id"])
    assert note.sections.get(key="subjective").text == script
    page = login_as(scribe.world.clinician).get(f"/notes/{note.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    assert '<script>alert("x")' not in html
