"""Who may see what (issue 3, point 6). Another practice's object is a 404,
through the HTML pages and the API alike."""

import pytest

from audit.services import actor_system, audit_record
from tests.factories import client_factory, note_factory, note_sign_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def notes(world):
    mine = note_factory(practice=world.practice, clinician=world.clinician)
    colleagues = note_factory(practice=world.practice, clinician=world.colleague)
    signed = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    foreign = note_factory(practice=world.other_practice, clinician=world.outsider)
    return {"mine": mine, "colleagues": colleagues, "signed": signed, "foreign": foreign}


def test_a_clinician_sees_their_own_notes_only(world, notes, login_as):
    browser = login_as(world.clinician)
    assert browser.get(f"/notes/{notes['mine'].pk}/").status_code == 200
    assert browser.get(f"/notes/{notes['colleagues'].pk}/").status_code == 404
    queue = browser.get("/queue/").content.decode()
    assert notes["mine"].client.full_name in queue
    assert notes["colleagues"].client.full_name not in queue


def test_a_clinician_cannot_reach_another_practices_note_or_client_by_id(world, notes, login_as):
    browser = login_as(world.clinician)
    foreign = notes["foreign"]
    assert browser.get(f"/notes/{foreign.pk}/").status_code == 404
    assert browser.get(f"/clients/{foreign.client.pk}/").status_code == 404
    assert browser.get(f"/api/v1/notes/{foreign.pk}").status_code == 404
    assert browser.get(f"/api/v1/clients/{foreign.client.pk}").status_code == 404
    listed = {n["id"] for n in browser.get("/api/v1/notes").json()}
    assert foreign.pk not in listed and notes["mine"].pk in listed


def test_a_clinician_cannot_record_consent_for_another_practices_client(world, notes, login_as):
    browser = login_as(world.clinician)
    foreign_client = client_factory(world.other_practice, world.outsider, consent=False)
    response = browser.post(
        f"/clients/{foreign_client.pk}/consent/", {"consented_on": "2026-01-01", "disclosure_version": "x"}
    )
    assert response.status_code == 404
    assert not foreign_client.consents.exists()


def test_a_practice_admin_manages_clients_but_reads_no_notes_and_cannot_sign(world, notes, login_as):
    browser = login_as(world.admin)
    assert browser.get(f"/clients/{notes['mine'].client.pk}/").status_code == 200
    assert browser.get(f"/notes/{notes['mine'].pk}/").status_code == 403
    assert browser.get(f"/api/v1/notes/{notes['signed'].pk}").status_code == 404
    assert browser.get("/api/v1/notes").json() == []
    client = client_factory(world.practice, world.clinician, consent=False)
    assert (
        browser.post(
            f"/clients/{client.pk}/consent/", {"consented_on": "2026-02-01", "disclosure_version": "2026-01"}
        ).status_code
        == 302
    )
    assert client.consents.get().recorded_by == world.admin


def test_a_qa_reviewer_reads_signed_notes_of_the_practice_only(world, notes, login_as):
    browser = login_as(world.qa)
    assert browser.get(f"/notes/{notes['signed'].pk}/").status_code == 200
    assert browser.get(f"/notes/{notes['mine'].pk}/").status_code == 404  # not signed yet
    assert browser.get(f"/notes/{notes['foreign'].pk}/").status_code == 404
    assert {n["id"] for n in browser.get("/api/v1/notes").json()} == {notes["signed"].pk}
    assert browser.get("/queue/").status_code == 403


def test_an_auditor_reads_the_audit_log_of_their_practice_only(world, notes, login_as):
    audit_record(
        practice=world.other_practice,
        actor=actor_system("test"),
        action="foreign.marker",
        object_type="x",
        object_id="1",
    )
    audit_record(
        practice=world.practice, actor=actor_system("test"), action="home.marker", object_type="x", object_id="1"
    )
    browser = login_as(world.auditor)
    page = browser.get("/audit/").content.decode()
    assert "home.marker" in page and "foreign.marker" not in page
    assert browser.get(f"/notes/{notes['signed'].pk}/").status_code == 403
    assert browser.get(f"/api/v1/notes/{notes['signed'].pk}").status_code == 404


def test_the_audit_log_is_closed_to_clinicians(world, login_as):
    assert login_as(world.clinician).get("/audit/").status_code == 403


def test_pages_and_api_need_both_factors(world, notes):
    from django.test import Client

    anonymous = Client()
    assert anonymous.get(f"/notes/{notes['mine'].pk}/").status_code == 302
    assert anonymous.get("/api/v1/notes").status_code == 403
    # Password alone (no OTP) gives a session that is not verified: still refused.
    half = Client()
    half.force_login(world.clinician)
    assert half.get(f"/notes/{notes['mine'].pk}/").status_code == 302
    assert half.get("/api/v1/notes").status_code == 403


def test_viewing_a_note_is_logged_as_phi_access(world, notes, login_as):
    from audit.models import AuditEvent

    login_as(world.clinician).get(f"/notes/{notes['mine'].pk}/")
    event = AuditEvent.objects.get(action="phi.view", note=notes["mine"])
    assert event.actor_user == world.clinician and event.client == notes["mine"].client
