"""Issue 14 §3: a practice admin creates, edits and searches clients; other
roles and other practices cannot; every change is an audit event."""

from datetime import date

import pytest

from audit.models import AuditEvent
from notes.models import Client
from tests.factories import client_factory

pytestmark = pytest.mark.django_db


def _form(world, **overrides):
    data = {
        "given_name": "Robin",
        "family_name": "Okafor",
        "date_of_birth": "1988-03-14",
        "ehr_patient_id": "MRN-1001",
        "clinician": world.clinician.pk,
        "synthetic": "",
    }
    data.update(overrides)
    return data


def test_an_admin_adds_a_client_and_the_event_names_them(world, login_as):
    response = login_as(world.admin).post("/practice/clients/new/", _form(world))
    client = Client.objects.get(ehr_patient_id="MRN-1001")
    assert response.status_code == 302
    assert response["Location"] == f"/practice/clients/{client.pk}/"
    assert (client.practice, client.clinician, client.date_of_birth) == (
        world.practice,
        world.clinician,
        date(1988, 3, 14),
    )
    event = AuditEvent.objects.get(action="client.create", client=client)
    assert event.actor_user == world.admin


def test_a_duplicate_ehr_patient_id_is_a_field_error_and_adds_nothing(world, login_as):
    client_factory(world.practice, world.clinician, ehr_patient_id="MRN-1001")
    response = login_as(world.admin).post("/practice/clients/new/", _form(world, family_name="Other"))
    assert response.status_code == 400
    assert "Another client of this practice has EHR patient id “MRN-1001”." in response.content.decode()
    assert not Client.objects.filter(family_name="Other").exists()


def test_a_date_of_birth_in_the_future_is_refused(world, login_as):
    response = login_as(world.admin).post("/practice/clients/new/", _form(world, date_of_birth="2999-01-01"))
    assert response.status_code == 400
    assert "The date of birth is in the future." in response.content.decode()


def test_the_primary_clinician_must_be_a_clinician_of_the_practice(world, login_as):
    response = login_as(world.admin).post("/practice/clients/new/", _form(world, clinician=world.outsider.pk))
    assert response.status_code == 400
    assert not Client.objects.filter(ehr_patient_id="MRN-1001").exists()


def test_editing_a_client_audits_each_changed_field_before_and_after(world, login_as):
    client = client_factory(
        world.practice, world.clinician, given_name="Jordan", ehr_patient_id="PAT-7", synthetic=False
    )
    data = _form(world, given_name="Jordyn", family_name=client.family_name, ehr_patient_id="PAT-7")
    data["date_of_birth"] = client.date_of_birth.isoformat()
    response = login_as(world.admin).post(f"/practice/clients/{client.pk}/edit/", data)
    assert response.status_code == 302
    client.refresh_from_db()
    assert client.given_name == "Jordyn"
    event = AuditEvent.objects.get(action="client.update", client=client)
    assert event.actor_user == world.admin
    assert event.before == {"given_name": "Jordan"}
    assert event.after == {"given_name": "Jordyn"}


def test_search_finds_by_name_and_by_ehr_patient_id(world, login_as):
    client_factory(world.practice, world.clinician, given_name="Ada", family_name="Lovelace", ehr_patient_id="A-1")
    client_factory(world.practice, world.clinician, given_name="Alan", family_name="Turing", ehr_patient_id="B-2")
    admin = login_as(world.admin)
    by_name = admin.get("/practice/clients/", {"q": "lovel ada"}).content.decode()
    assert "Lovelace, Ada" in by_name and "Turing" not in by_name
    by_id = admin.get("/practice/clients/", {"q": "B-2"}).content.decode()
    assert "Turing, Alan" in by_id and "Lovelace" not in by_id


def test_another_practices_client_is_unreachable(world, login_as):
    from tests.factories import member_factory

    theirs = client_factory(world.other_practice, world.outsider, family_name="Elsewhere")
    admin = login_as(world.admin)
    assert admin.get(f"/practice/clients/{theirs.pk}/").status_code == 404
    assert admin.get(f"/practice/clients/{theirs.pk}/edit/").status_code == 404
    assert admin.post(f"/practice/clients/{theirs.pk}/consent/revoke/").status_code == 404
    assert "No client matches “Elsewhere”." in admin.get("/practice/clients/", {"q": "Elsewhere"}).content.decode()
    # and their admin does not see ours
    their_admin = member_factory(world.other_practice, "practice_admin").user
    ours = client_factory(world.practice, world.clinician)
    assert login_as(their_admin).get(f"/practice/clients/{ours.pk}/").status_code == 404


@pytest.mark.parametrize("persona", ["clinician", "qa", "auditor"])
def test_only_practice_admins_may_use_the_pages(world, login_as, persona):
    user = getattr(world, persona)
    browser = login_as(user)
    for url in (
        "/practice/clients/",
        "/practice/clients/new/",
        "/practice/templates/",
        "/practice/vocabulary/",
        "/practice/scribes/",
        "/practice/consent-disclosure/",
        "/practice/clients/import/",
    ):
        assert browser.get(url).status_code == 403, url


def test_the_service_refuses_a_non_admin_even_without_the_view(world):
    from notes.errors import NotPermitted
    from practice_admin.services.clients import client_add

    with pytest.raises(NotPermitted):
        client_add(
            actor=world.clinician,
            clinician=world.clinician,
            given_name="A",
            family_name="B",
            date_of_birth=date(1990, 1, 1),
        )
