"""Issue 13, point 7: every note's EHR status is visible.

The clinician sees on the note and review pages, the QA reviewer on the
signed list, and an amendment's row in the queue shows where its earlier
version stands; the pages poll a small PHI-free JSON endpoint; the admin
dashboard has one row per delivery with filters, the EHR id and a link to the
EHR resource where the connection has one. The EHR is a loopback FakeEHR.
"""

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from integrations import selectors as integration_selectors
from integrations.delivery_status import delivery_ehr_url, delivery_status_view
from integrations.models import Delivery, EHRConnection, FieldMapping
from integrations.services import delivery_send
from notes import services as note_services
from notes.models import Membership, Note
from tests.factories import member_factory
from tests.integrations.conftest import fake_ehr, sign_for  # noqa: F401  (fixtures)
from tests.integrations.support import fhir_connection

NEW_YORK = ZoneInfo("America/New_York")
NOON_UTC = datetime(2026, 1, 15, 19, 2, tzinfo=UTC)  # 14:02 in New York (EST)


def _delivery(**fields) -> Delivery:
    """An unsaved row: the status function is pure and reads only fields."""
    fields.setdefault("created_at", NOON_UTC - timedelta(minutes=30))
    fields.setdefault("updated_at", NOON_UTC)
    return Delivery(**fields)


def _connection(kind: str, base_url: str = "https://ehr.example.test/fhir") -> EHRConnection:
    return EHRConnection(kind=kind, base_url=base_url, name="EHR")


# ---------------------------------------------------------------- the pure status function


def test_a_delivered_note_reads_delivered_with_the_practice_time_and_zone_and_the_ehr_id():
    delivery = _delivery(
        state="delivered", delivered_at=NOON_UTC, ehr_id="doc-42", connection=_connection(EHRConnection.Kind.FHIR)
    )
    view = delivery_status_view(delivery, tz=NEW_YORK, now=NOON_UTC + timedelta(hours=1))
    assert view["label"] == "Delivered to EHR 14:02 EST, id doc-42"
    assert view["tone"] == "ok" and view["final"] is True
    assert view["ehr_id"] == "doc-42"
    assert view["ehr_url"] == "https://ehr.example.test/fhir/DocumentReference/doc-42"


def test_an_earlier_day_names_the_date_as_well():
    delivery = _delivery(state="delivered", delivered_at=NOON_UTC, ehr_id="x")
    view = delivery_status_view(delivery, tz=NEW_YORK, now=NOON_UTC + timedelta(days=3))
    assert view["label"] == "Delivered to EHR 15 Jan 14:02 EST, id x"


def test_a_retrying_delivery_says_since_when_it_has_been_waiting_for_the_ehr():
    delivery = _delivery(
        state="retrying",
        attempts=3,
        next_attempt_at=NOON_UTC + timedelta(minutes=5),
        last_error="HTTP 503: busy",
    )
    delivery.first_attempt_at = NOON_UTC  # what the selector annotates from the ledger
    view = delivery_status_view(delivery, tz=NEW_YORK, now=NOON_UTC)
    assert view["label"] == "Waiting for EHR: retrying since 14:02 EST"
    assert view["detail"] == "Next try 14:07 EST. Last answer: HTTP 503: busy"
    assert view["tone"] == "warn" and view["final"] is False


def test_a_failed_delivery_says_what_the_ehr_said_in_the_detail_not_the_label():
    delivery = _delivery(state="failed", last_error="HTTP 422: Note type not allowed here")
    view = delivery_status_view(delivery, tz=NEW_YORK, now=NOON_UTC)
    assert view["label"] == "Failed: not in the EHR"
    assert view["detail"].startswith("The EHR said: HTTP 422: Note type not allowed here")
    assert view["tone"] == "error" and view["final"] is True


def test_waiting_states_each_say_what_they_wait_for():
    lost = _delivery(state="unknown")
    assert delivery_status_view(lost, tz=NEW_YORK)["label"].startswith("Waiting for EHR: answer lost")
    no_connection = _delivery(state="pending", connection=None)
    assert delivery_status_view(no_connection, tz=NEW_YORK)["label"] == "Waiting for an EHR connection"
    queued = _delivery(state="pending", connection=_connection(EHRConnection.Kind.FHIR))
    assert delivery_status_view(queued, tz=NEW_YORK, now=NOON_UTC)["label"] == "Queued for the EHR since 13:32 EST"
    assert delivery_status_view(None, tz=NEW_YORK, psychotherapy=True)["detail"] == (
        "Psychotherapy (process) notes stay here."
    )


def test_a_note_awaiting_filing_by_hand_says_so_and_stops_the_polling():
    status = delivery_status_view(_delivery(state="awaiting_filing"), tz=NEW_YORK, now=NOON_UTC)
    assert status["label"] == "Awaiting filing in the EHR by a person, since 13:32 EST"
    assert status["final"] is True  # nothing changes until a person confirms: no page keeps asking


def test_a_delivered_note_says_whether_the_ehr_holds_its_provenance():
    stored = _delivery(state="delivered", delivered_at=NOON_UTC, ehr_id="d1", provenance_state="stored")
    assert "Provenance (AI scribe and signer) stored at the EHR." in delivery_status_view(stored, tz=NEW_YORK)["detail"]
    unsupported = _delivery(state="delivered", delivered_at=NOON_UTC, ehr_id="d1", provenance_state="unsupported")
    assert delivery_status_view(unsupported, tz=NEW_YORK)["detail"].startswith("Provenance: not supported by this EHR")


def test_a_zone_without_an_abbreviation_is_named_by_its_key():
    delivery = _delivery(state="delivered", delivered_at=NOON_UTC, ehr_id="x")
    view = delivery_status_view(delivery, tz=ZoneInfo("Asia/Dubai"), now=NOON_UTC)
    assert view["label"] == "Delivered to EHR 23:02 Asia/Dubai, id x"


def test_the_ehr_link_exists_for_fhir_for_rest_only_with_a_record_url_and_never_for_hl7():
    fhir = delivery_ehr_url(kind="fhir", base_url="https://e.test/fhir/", ehr_id="a/b", mapping_document=None)
    assert fhir == "https://e.test/fhir/DocumentReference/a%2Fb"
    rest = {"rest": {"record_url": "notes/{ehr_id}/view"}}
    assert (
        delivery_ehr_url(kind="rest", base_url="https://e.test/api", ehr_id="n1", mapping_document=rest)
        == "https://e.test/api/notes/n1/view"
    )
    assert delivery_ehr_url(kind="rest", base_url="https://e.test/api", ehr_id="n1", mapping_document={}) == ""
    elsewhere = {"rest": {"record_url": "https://other.test/{ehr_id}"}}
    assert delivery_ehr_url(kind="rest", base_url="https://e.test/api", ehr_id="n1", mapping_document=elsewhere) == ""
    assert delivery_ehr_url(kind="hl7", base_url="mllp://127.0.0.1:2575", ehr_id="n1", mapping_document=None) == ""


# ---------------------------------------------------------------- the pages


@pytest.fixture
def delivered(world, sign_for, fake_ehr):  # noqa: F811
    fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    delivery_send(delivery_id=Delivery.objects.get(note=note).pk)
    delivery = Delivery.objects.get(note=note)
    assert delivery.state == Delivery.State.DELIVERED
    return delivery


def test_the_note_page_says_queued_before_and_delivered_with_the_ehr_id_after(world, sign_for, fake_ehr, login_as):  # noqa: F811
    fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    web = login_as(world.clinician)
    html = web.get(f"/notes/{note.pk}/").content.decode()
    assert "Queued for the EHR since" in html and 'data-final="0"' in html
    assert "js/ehr_status.js" in html

    fake_ehr.add_patient(note.client)
    delivery_send(delivery_id=Delivery.objects.get(note=note).pk)
    delivery = Delivery.objects.get(note=note)
    html = web.get(f"/notes/{note.pk}/").content.decode()
    assert re.search(rf"Delivered to EHR \d\d:\d\d E[SD]T, id {delivery.ehr_id}", html)
    assert f'href="{fake_ehr.base_url}/DocumentReference/{delivery.ehr_id}"' in html
    assert 'data-final="1"' in html


def test_the_review_page_of_a_signed_note_shows_its_delivery(world, delivered, login_as):
    html = login_as(world.clinician).get(f"/notes/{delivered.note_id}/review/").content.decode()
    assert 'id="ehr-status"' in html
    assert "Delivered to EHR" in html and f"id {delivered.ehr_id}" in html


def test_the_signed_list_shows_each_notes_ehr_status(world, sign_for, fake_ehr, login_as):  # noqa: F811
    fhir_connection(world.practice, fake_ehr.base_url)
    ok, refused = sign_for(world), sign_for(world)
    fake_ehr.add_patient(ok.client)
    delivery_send(delivery_id=Delivery.objects.get(note=ok).pk)
    fake_ehr.add_patient(refused.client)
    fake_ehr.reject_with = (422, "Note type not allowed here")
    delivery_send(delivery_id=Delivery.objects.get(note=refused).pk)

    html = login_as(world.qa).get("/signed/").content.decode()
    rows = {m.group(1): m.group(2) for m in re.finditer(r'data-note-id="(\d+)"(.*?)</span>\s*</td>', html, re.S)}
    assert "Delivered to EHR" in rows[str(ok.pk)]
    assert "Failed: not in the EHR" in rows[str(refused.pk)]


def test_a_failed_note_page_says_what_the_ehr_said(world, sign_for, fake_ehr, login_as):  # noqa: F811
    fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    fake_ehr.reject_with = (422, "Note type not allowed here")
    delivery_send(delivery_id=Delivery.objects.get(note=note).pk)
    html = login_as(world.clinician).get(f"/notes/{note.pk}/").content.decode()
    assert "Failed: not in the EHR" in html
    assert "The EHR said:" in html and "Note type not allowed here" in html


def test_a_note_the_ehr_keeps_refusing_for_now_reads_retrying_since(world, sign_for, fake_ehr, login_as):  # noqa: F811
    fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    fake_ehr.rate_503 = 1.0
    delivery_send(delivery_id=Delivery.objects.get(note=note).pk)
    assert Delivery.objects.get(note=note).state == Delivery.State.RETRYING
    html = login_as(world.clinician).get(f"/notes/{note.pk}/").content.decode()
    assert re.search(r"Waiting for EHR: retrying since \d\d:\d\d E[SD]T", html)


def test_an_amendment_in_the_queue_shows_where_its_earlier_version_stands(world, delivered, login_as):
    earlier = Note.objects.get(pk=delivered.note_id)
    amendment = note_services.note_amend(note=earlier, reason="Wrong homework", actor=world.clinician)
    web = login_as(world.clinician)
    queue = web.get("/queue/").content.decode()
    row = queue.split(f'data-href="/notes/{amendment.pk}/review/"')[1].split("</tr>")[0]
    assert "Earlier version at the EHR" in row and f"id {delivered.ehr_id}" in row
    review = web.get(f"/notes/{amendment.pk}/review/").content.decode()
    assert 'id="earlier-ehr-status"' in review and "Delivered to EHR" in review


# ---------------------------------------------------------------- the polled JSON


def test_the_status_json_gives_state_times_and_ehr_id(world, delivered, login_as):
    response = login_as(world.clinician).get(f"/integrations/ehr-status/?notes={delivered.note_id}")
    assert response.status_code == 200
    status = response.json()["notes"][str(delivered.note_id)]
    assert status["state"] == "delivered" and status["final"] is True
    assert status["ehr_id"] == delivered.ehr_id
    assert status["label"].startswith("Delivered to EHR")
    assert set(status) == {"state", "label", "tone", "ehr_id", "ehr_url", "at", "final"}


def test_the_status_json_never_carries_the_ehrs_words(world, sign_for, fake_ehr, login_as):  # noqa: F811
    fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    fake_ehr.reject_with = (422, f"Patient {note.client.full_name} is not on this EHR")
    delivery_send(delivery_id=Delivery.objects.get(note=note).pk)
    body = login_as(world.clinician).get(f"/integrations/ehr-status/?notes={note.pk}").content.decode()
    assert '"state": "failed"' in body
    assert note.client.full_name not in body and note.client.family_name not in body


def test_the_status_json_is_a_404_outside_the_users_scope(world, delivered, sign_for, login_as):  # noqa: F811
    url = f"/integrations/ehr-status/?notes={delivered.note_id}"
    assert login_as(world.outsider).get(url).status_code == 404
    assert login_as(world.colleague).get(url).status_code == 404
    # One note in scope does not open another beside it.
    other = member_factory(world.other_practice).user
    assert login_as(world.clinician).get(f"{url},{delivered.note_id + 1000}").status_code == 404
    assert login_as(other).get(url).status_code == 404
    assert login_as(world.qa).get(url).status_code == 200
    assert login_as(world.admin).get(url).status_code == 403


def test_bad_status_queries_are_a_400_not_a_500(world, login_as):
    web = login_as(world.clinician)
    for query in ("", "?notes=", "?notes=abc", "?notes=1;drop", "?notes=" + ",".join(["1"] * 201)):
        response = web.get(f"/integrations/ehr-status/{query}")
        assert response.status_code == 400, query
        assert "notes" in response.json()["errors"]


# ---------------------------------------------------------------- the dashboard


def _rows(html: str) -> list[str]:
    body = html.split('id="delivery-rows"')[1].split("</table>")[0]
    return re.findall(r'<tr data-delivery="(\d+)" data-state="(\w+)">', body)


def test_the_dashboard_has_one_row_per_delivery_with_the_ehr_id_and_link(world, sign_for, fake_ehr, login_as):  # noqa: F811
    fhir_connection(world.practice, fake_ehr.base_url)
    delivered_note, waiting_note = sign_for(world), sign_for(world)
    fake_ehr.add_patient(delivered_note.client)
    delivery_send(delivery_id=Delivery.objects.get(note=delivered_note).pk)
    done = Delivery.objects.get(note=delivered_note)
    waiting = Delivery.objects.get(note=waiting_note)

    html = login_as(world.admin).get("/integrations/deliveries/").content.decode()
    assert sorted(_rows(html)) == sorted([(str(done.pk), "delivered"), (str(waiting.pk), "pending")])
    assert f'href="{fake_ehr.base_url}/DocumentReference/{done.ehr_id}"' in html
    assert f">{done.ehr_id}</a>" in html
    assert str(waiting_note.client) in html  # every row, not only the failures


def test_dashboard_filters_by_state_clinician_connection_and_age(world, sign_for, fake_ehr, login_as):  # noqa: F811
    connection = fhir_connection(world.practice, fake_ehr.base_url)
    mine = sign_for(world)
    fake_ehr.add_patient(mine.client)
    delivery_send(delivery_id=Delivery.objects.get(note=mine).pk)
    colleague_world = type(world)(**{**world.__dict__, "clinician": world.colleague})
    theirs = sign_for(colleague_world)
    old = sign_for(world)
    Delivery.objects.filter(note=old).update(created_at=timezone.now() - timedelta(days=2))
    web = login_as(world.admin)
    d = {n.pk: Delivery.objects.get(note=n).pk for n in (mine, theirs, old)}

    def ids(query: str) -> set[int]:
        response = web.get(f"/integrations/deliveries/?{query}")
        assert response.status_code == 200, response.content[:300]
        return {int(pk) for pk, _ in _rows(response.content.decode())}

    assert ids("state=delivered") == {d[mine.pk]}
    assert ids("state=pending") == {d[theirs.pk], d[old.pk]}
    assert ids(f"clinician={world.colleague.pk}") == {d[theirs.pk]}
    assert ids("age=1d") == {d[old.pk]}
    assert ids(f"connection={connection.pk}&state=") == set(d.values())
    other = fhir_connection(world.practice, fake_ehr.base_url)  # now the active one; no delivery uses it
    assert "No delivery matches" in web.get(f"/integrations/deliveries/?connection={other.pk}").content.decode()


def test_bad_dashboard_filters_are_a_message_not_a_500(world, sign_for, login_as):  # noqa: F811
    sign_for(world)
    web = login_as(world.admin)
    outsider_connection = EHRConnection.objects.create(
        practice=world.other_practice, name="Theirs", kind="fhir", base_url="https://x.test/fhir"
    )
    for query in (
        "state=exploded",
        "age=forever",
        "clinician=abc",
        f"clinician={world.outsider.pk}",
        f"connection={outsider_connection.pk}",
        "before=-1",
    ):
        response = web.get(f"/integrations/deliveries/?{query}")
        assert response.status_code == 400, query
        html = response.content.decode()
        assert 'id="filter-errors"' in html and "could not be used" in html
        assert 'id="delivery-rows"' not in html


def test_dashboard_pages_through_deliveries_keeping_the_filters(world, sign_for, login_as, monkeypatch):  # noqa: F811
    monkeypatch.setattr(integration_selectors, "DELIVERY_ROWS_PAGE", 2)
    notes = [sign_for(world) for _ in range(3)]
    ids = sorted((Delivery.objects.get(note=n).pk for n in notes), reverse=True)
    web = login_as(world.admin)
    first = web.get("/integrations/deliveries/?state=pending").content.decode()
    assert [int(pk) for pk, _ in _rows(first)] == ids[:2]
    next_href = re.search(r'id="deliveries-next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert "state=pending" in next_href and f"before={ids[1]}" in next_href
    second = web.get(f"/integrations/deliveries/{next_href.split('#')[0]}").content.decode()
    assert [int(pk) for pk, _ in _rows(second)] == ids[2:]
    assert 'id="deliveries-next"' not in second


def test_a_rest_delivery_links_to_the_ehr_only_with_a_record_url_in_its_mapping(world, sign_for):  # noqa: F811
    connection = EHRConnection.objects.create(
        practice=world.practice, name="REST", kind="rest", base_url="https://ehr.example.test/api/", is_active=False
    )
    note = sign_for(world)
    template = note.template_version.template
    mapping = FieldMapping.objects.create(
        practice=world.practice,
        template=template,
        version=99,
        document={"rest": {"record_url": "notes/{ehr_id}"}},
    )
    Delivery.objects.filter(note=note).update(
        state=Delivery.State.DELIVERED,
        ehr_id="n-7",
        delivered_at=timezone.now(),
        connection=connection,
        mapping=mapping,
    )
    statuses = integration_selectors.delivery_status_for_notes(notes=[note.pk], practice=world.practice, now=None)
    assert statuses[note.pk]["ehr_url"] == "https://ehr.example.test/api/notes/n-7"
    Delivery.objects.filter(note=note).update(mapping=None)
    statuses = integration_selectors.delivery_status_for_notes(notes=[note.pk], practice=world.practice, now=None)
    assert statuses[note.pk]["ehr_url"] == "" and statuses[note.pk]["ehr_id"] == "n-7"


def test_other_roles_still_cannot_open_the_dashboard(world, login_as):
    assert login_as(world.clinician).get("/integrations/deliveries/?state=failed").status_code == 403
    admin_elsewhere = member_factory(world.other_practice, Membership.Role.PRACTICE_ADMIN).user
    html = login_as(admin_elsewhere).get("/integrations/deliveries/").content.decode()
    assert "No delivery matches" in html
