"""Issue 6 §7 (CSV and JSON): auditors export events by practice, date
range, note or user, streamed; the export carries the chain hashes."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.exports import EXPORT_COLUMNS
from audit.models import AuditEvent
from audit.services import audit_digest
from notes import services
from tests.factories import note_factory, note_sign_now, practice_today

pytestmark = pytest.mark.django_db

CSV_URL = reverse("audit_export_csv")
JSON_URL = reverse("audit_export_json")


@pytest.fixture
def activity(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_edit_section(
        note=note, section_key="plan", text='=HYPERLINK("http://x") and "quotes", commas', actor=world.clinician
    )
    other = note_factory(practice=world.practice, clinician=world.colleague)
    note_factory(practice=world.other_practice, clinician=world.outsider)
    return note_sign_now(note, world.clinician), other


def _body(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_the_json_export_is_the_practices_events_in_chain_order(world, login_as, activity):
    expected = list(AuditEvent.objects.filter(practice=world.practice).order_by("seq").values_list("seq", flat=True))
    response = login_as(world.auditor).get(JSON_URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment;" in response["Content-Disposition"]
    rows = json.loads(_body(response))
    assert [r["seq"] for r in rows[:-1]] == expected
    assert rows[-1]["action"] == "audit.export"  # the export is on the record, in the export too
    assert {frozenset(r) for r in rows} == {frozenset(EXPORT_COLUMNS)}
    other_practice_ids = set(AuditEvent.objects.filter(practice=world.other_practice).values_list("hash", flat=True))
    assert not {r["hash"] for r in rows} & other_practice_ids


def test_the_json_export_can_be_checked_against_the_chain_on_its_own(world, login_as, activity):
    rows = json.loads(_body(login_as(world.auditor).get(JSON_URL)))
    prev = "0" * 64
    for r in rows:
        assert r["prev_hash"] == prev
        values = (
            r["action"],
            r["actor_ai_source_id"],
            r["actor_label"],
            r["actor_type"],
            r["actor_user_id"],
            r["after"],
            r["before"],
            r["client_id"],
            timezone.datetime.fromisoformat(r["created_at"]),
            r["detail"],
            r["ip_address"],
            r["note_id"],
            r["object_id"],
            r["object_type"],
            world.practice.pk,
            r["request_id"],
            r["seq"],
            r["user_agent"],
        )
        assert audit_digest(prev, values) == r["hash"]
        prev = r["hash"]


def test_the_csv_export_filters_by_note_and_keeps_formulas_inert(world, login_as, activity):
    signed, other = activity
    login_as(world.clinician).get(reverse("note_detail", args=[signed.pk]), HTTP_USER_AGENT="=cmd|' /C calc'!A0")
    response = login_as(world.auditor).get(CSV_URL, {"note": signed.pk})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(_body(response))))
    assert rows and all(r["note_id"] == str(signed.pk) for r in rows)
    assert {"note.draft", "note.edit", "note.sign", "delivery.create"} <= {r["action"] for r in rows}
    edit = next(r for r in rows if r["action"] == "note.edit")
    assert json.loads(edit["after"])["text"].startswith("=HYPERLINK")  # JSON cells start with “{”
    view = next(r for r in rows if r["action"] == "phi.view")
    assert view["user_agent"] == "'=cmd|' /C calc'!A0"  # a spreadsheet shows it, does not run it


def test_the_export_filters_by_user_and_dates(world, login_as, activity):
    auditor = login_as(world.auditor)
    rows = json.loads(_body(auditor.get(JSON_URL, {"user": world.colleague.pk})))
    assert {r["action"] for r in rows} == {"client.create", "consent.record"}  # the colleague's own client
    assert {r["actor_user_id"] for r in rows} == {world.colleague.pk}
    rows = json.loads(_body(auditor.get(JSON_URL, {"user": world.clinician.pk})))
    assert rows and {r["actor_user_id"] for r in rows} == {world.clinician.pk}
    today = practice_today(world.practice)
    tomorrow = today + timedelta(days=1)
    assert json.loads(_body(auditor.get(JSON_URL, {"date_from": tomorrow}))) == []
    assert json.loads(_body(auditor.get(JSON_URL, {"date_from": today, "date_to": today})))


def test_exports_are_themselves_audited(world, login_as, activity):
    signed, _ = activity
    _body(login_as(world.auditor).get(CSV_URL, {"note": signed.pk}))
    event = AuditEvent.objects.get(action="audit.export")
    assert event.actor_user == world.auditor
    assert event.detail["format"] == "csv" and event.detail["note"] == signed.pk


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_from": "2026-03-01", "date_to": "2026-02-01"}, "date_to"),
        ({"note": "abc"}, "note"),
        ({"note": "FOREIGN"}, "note"),
        ({"user": "OUTSIDER"}, "user"),
        ({"user": "-3"}, "user"),
    ],
)
def test_bad_filters_get_a_400_with_field_errors(world, login_as, params, field):
    foreign = note_factory(practice=world.other_practice, clinician=world.outsider)
    params = {k: {"FOREIGN": foreign.pk, "OUTSIDER": world.outsider.pk}.get(v, v) for k, v in params.items()}
    before = AuditEvent.objects.count()
    response = login_as(world.auditor).get(CSV_URL, params)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("persona", ["clinician", "qa", "admin"])
def test_only_auditors_may_export(world, login_as, persona):
    browser = login_as(getattr(world, persona))
    assert browser.get(CSV_URL).status_code == 403
    assert browser.get(JSON_URL).status_code == 403
