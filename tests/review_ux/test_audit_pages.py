"""Issue #17, point 7: audit pages that scale. The audit log is paged by
seq (keyset), filtered by who, action, client and dates, bad filters are a
400 with a message, the exports take the same filters, and a session's user
agent is stored once, not on every event, with the chain still verifying."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from audit.context import RequestContext, current_request
from audit.models import AuditEvent, AuditSession
from audit.services import AUDIT_SESSION_DETAIL, actor_person, actor_system, audit_record
from audit.verify import audit_chain_verify
from tests.factories import client_factory, note_factory, practice_today

pytestmark = pytest.mark.django_db

LOG = reverse("audit_log")


def _markers(world, n: int) -> list[AuditEvent]:
    return [
        audit_record(
            practice=world.practice, actor=actor_system("test"), action="test.marker", object_type="x", object_id=str(i)
        )
        for i in range(n)
    ]


def _seqs(page: str, events) -> list[int]:
    return [e.seq for e in events if f"<tr><td>{e.seq}</td>" in page]


def test_the_audit_log_shows_a_page_of_the_newest_events_and_links_to_older_ones(world, login_as):
    markers = _markers(world, 120)
    browser = login_as(world.auditor)
    response = browser.get(LOG)
    first = response.context["events"]
    assert response.status_code == 200 and len(first) == 50
    assert [e.seq for e in first] == sorted((e.seq for e in first), reverse=True)
    assert first[0].seq == AuditEvent.objects.filter(practice=world.practice).order_by("-seq").first().seq
    older = response.context["older_query"]
    assert older == f"before={first[-1].seq}" and f'href="{LOG}?{older}"' in response.content.decode()

    second = browser.get(f"{LOG}?{older}").context["events"]
    assert len(second) == 50 and second[0].seq == first[-1].seq - 1
    assert not {e.seq for e in first} & {e.seq for e in second}
    # Walking to the end reaches the oldest event and offers no further page.
    seen, query = [e.seq for e in first + second], f"?{browser.get(f'{LOG}?{older}').context['older_query']}"
    while query:
        response = browser.get(LOG + query)
        seen += [e.seq for e in response.context["events"]]
        query = f"?{response.context['older_query']}" if response.context["older_query"] else ""
    all_seqs = set(
        AuditEvent.objects.filter(practice=world.practice, seq__lte=first[0].seq).values_list("seq", flat=True)
    )
    assert sorted(seen, reverse=True) == seen and set(seen) == all_seqs
    assert markers[0].seq in seen


def test_the_audit_log_filters_by_who_action_client_and_date(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    other = client_factory(world.practice, world.colleague, family_name="Elsewhere")
    _markers(world, 3)
    browser = login_as(world.auditor)

    events = browser.get(LOG, {"user": world.colleague.pk}).context["events"]
    assert events and {e.actor_user_id for e in events} == {world.colleague.pk}

    events = browser.get(LOG, {"action": "test.marker"}).context["events"]
    assert len(events) == 3 and {e.action for e in events} == {"test.marker"}
    events = browser.get(LOG, {"action": "consent."}).context["events"]
    assert events and {e.action for e in events} == {"consent.record"}

    events = browser.get(LOG, {"client": note.client_id}).context["events"]
    assert events and all(e.client_id == note.client_id or e.note_id == note.pk for e in events)
    assert any(e.action == "note.draft" for e in events)  # a note's event counts for its client
    assert not any(e.client_id == other.pk for e in events)

    today = practice_today(world.practice)
    tomorrow = today + timedelta(days=1)
    assert browser.get(LOG, {"date_from": tomorrow}).context["events"] == []
    assert browser.get(LOG, {"date_from": today, "date_to": today}).context["events"]
    # The filters ride along on the next page and on the export links.
    page = browser.get(LOG, {"action": "test.marker", "user": ""}).content.decode()
    assert f'href="{reverse("audit_export_csv")}?action=test.marker"' in page


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"date_from": "yesterday"}, "From"),
        ({"date_from": "2026-03-01", "date_to": "2026-02-01"}, "To (included)"),
        ({"user": "abc"}, "Who"),
        ({"user": "OUTSIDER"}, "Who"),
        ({"client": "FOREIGN"}, "Client"),
        ({"action": "DROP TABLE audit"}, "Action"),
        ({"before": "-5"}, "Before"),
        ({"note": "1e9999"}, "Note"),
    ],
)
def test_bad_filters_are_a_400_with_a_message_not_a_500(world, login_as, params, field):
    foreign = client_factory(world.other_practice, world.outsider)
    params = {k: {"FOREIGN": foreign.pk, "OUTSIDER": world.outsider.pk}.get(v, v) for k, v in params.items()}
    response = login_as(world.auditor).get(LOG, params)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'role="alert"' in page and f"<li>{field}:" in page
    assert "No events shown until the filters are fixed." in page


def test_the_exports_take_the_same_filters_as_the_page(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    client_factory(world.practice, world.colleague, family_name="Elsewhere")
    _markers(world, 2)
    auditor = login_as(world.auditor)
    body = b"".join(auditor.get(reverse("audit_export_json"), {"action": "test.marker"}).streaming_content)
    assert [r["action"] for r in json.loads(body)] == ["test.marker", "test.marker"]
    body = b"".join(auditor.get(reverse("audit_export_json"), {"client": note.client_id}).streaming_content)
    rows = json.loads(body)
    assert rows and all(r["client_id"] == note.client_id or r["note_id"] == note.pk for r in rows)
    export = AuditEvent.objects.filter(action="audit.export").order_by("-seq").first()
    assert export.detail["client"] == note.client_id
    response = auditor.get(reverse("audit_export_csv"), {"client": "nope"})
    assert response.status_code == 400 and "client" in response.json()["errors"]


def test_a_sessions_user_agent_is_stored_once_and_the_chain_still_verifies(world, login_as):
    first, second = (note_factory(practice=world.practice, clinician=world.clinician) for _ in range(2))
    browser = login_as(world.clinician)
    agent = "Mozilla/5.0 (X11; Linux x86_64) Chromium/142 a long user agent string " + "x" * 200
    browser.get(reverse("audit_note_timeline", args=[first.pk]), HTTP_USER_AGENT=agent)
    browser.get(reverse("audit_note_timeline", args=[second.pk]), HTTP_USER_AGENT=agent)
    browser.get(reverse("audit_note_timeline", args=[first.pk]), HTTP_USER_AGENT=agent)

    views = list(AuditEvent.objects.filter(action="phi.view", actor_user=world.clinician).order_by("seq"))
    assert len(views) == 3  # every opening of a timeline is still a PHI view
    assert [e.user_agent for e in views] == [agent, "", ""]
    keys = {e.detail[AUDIT_SESSION_DETAIL] for e in views}
    assert len(keys) == 1
    assert AuditSession.objects.get(key=keys.pop()).user_agent == agent
    assert audit_chain_verify(practice_id=world.practice.pk).ok


def test_a_new_user_agent_in_the_same_session_is_stored_again(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    browser = login_as(world.clinician)
    url = reverse("audit_note_timeline", args=[note.pk])
    browser.get(url, HTTP_USER_AGENT="Firefox/150")
    browser.get(url, HTTP_USER_AGENT="curl/8.0")
    views = AuditEvent.objects.filter(action="phi.view", note=note).order_by("seq")
    assert [e.user_agent for e in views] == ["Firefox/150", "curl/8.0"]
    assert len({e.detail[AUDIT_SESSION_DETAIL] for e in views}) == 2


def test_the_auditor_sees_and_exports_the_sessions_user_agent_for_every_event(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    browser = login_as(world.clinician)
    url = reverse("audit_note_timeline", args=[note.pk])
    browser.get(url, HTTP_USER_AGENT="Safari/26 (session)")
    browser.get(url, HTTP_USER_AGENT="Safari/26 (session)")
    later = AuditEvent.objects.filter(action="phi.view", note=note).order_by("seq").last()
    assert later.user_agent == ""

    auditor = login_as(world.auditor)
    page = auditor.get(url).content.decode()
    assert page.count("Safari/26 (session)") >= 2
    rows = json.loads(b"".join(auditor.get(reverse("audit_export_json"), {"note": note.pk}).streaming_content))
    row = next(r for r in rows if r["seq"] == later.seq)
    assert row["user_agent"] == "" and row["session_user_agent"] == "Safari/26 (session)"


def test_events_outside_a_login_session_still_carry_the_user_agent_in_the_same_canonical_form(world):
    token = current_request.set(RequestContext(request_id="r1", ip_address="192.0.2.1", user_agent="Worker/1"))
    try:
        event = audit_record(
            practice=world.practice,
            actor=actor_person(world.clinician),
            action="test.x",
            object_type="x",
            object_id="1",
        )
    finally:
        current_request.reset(token)
    event.refresh_from_db()
    assert event.user_agent == "Worker/1" and AUDIT_SESSION_DETAIL not in event.detail
    assert audit_chain_verify(practice_id=world.practice.pk).ok
