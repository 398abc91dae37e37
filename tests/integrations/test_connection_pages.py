"""The practice admin's EHR connection and field-mapping pages."""

import json

import pytest

from audit.models import AuditEvent
from integrations.mapping import mapping_default_document
from integrations.models import EHRConnection, FieldMapping
from integrations.services import mapping_save
from notes.models import NoteTemplate
from tests.integrations.support import fhir_connection

pytestmark = pytest.mark.django_db


def _connection_form(**overrides):
    data = {
        "name": "Clinic EHR",
        "kind": "fhir",
        "base_url": "https://ehr.example.org/fhir",
        "is_sandbox": "on",
        "auth_kind": "bearer",
        "client_id": "",
        "token_url": "",
        "username": "",
        "secret": "s3cret-token",
    }
    data.update(overrides)
    return data


def test_an_admin_adds_a_connection_with_its_secret_stored_encrypted(world, login_as):
    browser = login_as(world.admin)
    response = browser.post("/integrations/connections/", _connection_form())
    assert response.status_code == 302
    connection = EHRConnection.objects.get(practice=world.practice, is_active=True)
    assert connection.base_url == "https://ehr.example.org/fhir"
    assert connection.credentials_encrypted and "s3cret-token" not in connection.credentials_encrypted
    assert "s3cret-token" not in browser.get("/integrations/connections/").content.decode()


def test_plain_http_off_loopback_is_refused_with_a_message_and_nothing_saved(world, login_as):
    response = login_as(world.admin).post(
        "/integrations/connections/", _connection_form(base_url="http://ehr.example.org/fhir")
    )
    assert response.status_code == 400
    assert "TLS" in response.content.decode() or "https" in response.content.decode()
    assert not EHRConnection.objects.filter(practice=world.practice).exists()


def test_test_connection_records_what_the_server_declares(world, login_as, fake_ehr):
    connection = fhir_connection(world.practice, fake_ehr.base_url)
    fake_ehr.conditional_create = False
    browser = login_as(world.admin)
    response = browser.post(f"/integrations/connections/{connection.pk}/test/", follow=True)
    assert "Conditional create: no" in response.content.decode()
    connection.refresh_from_db()
    assert connection.supports_conditional_create is False and connection.metadata_checked_at is not None
    event = AuditEvent.objects.filter(action="connection.test", object_id=str(connection.pk)).get()
    assert event.actor_user == world.admin and event.after["conditional_create"] is False


def test_a_failed_test_connection_is_shown_and_audited_too(world, login_as, fake_ehr):
    connection = fhir_connection(world.practice, fake_ehr.base_url)
    fake_ehr.stop()
    browser = login_as(world.admin)
    response = browser.post(f"/integrations/connections/{connection.pk}/test/", follow=True)
    assert "Could not read /metadata" in response.content.decode()
    event = AuditEvent.objects.filter(action="connection.test", object_id=str(connection.pk)).get()
    assert event.actor_user == world.admin and "Could not read /metadata" in event.after["error"]
    connection.refresh_from_db()
    assert connection.metadata_checked_at is None


def test_disabling_a_connection_stops_it_being_used(world, login_as, fake_ehr):
    connection = fhir_connection(world.practice, fake_ehr.base_url)
    login_as(world.admin).post(f"/integrations/connections/{connection.pk}/revoke/")
    connection.refresh_from_db()
    assert not connection.usable and connection.revoked_at is not None


def test_connections_are_for_the_practice_admin_of_that_practice_only(world, login_as, fake_ehr):
    connection = fhir_connection(world.other_practice, fake_ehr.base_url)
    admin = login_as(world.admin)
    assert admin.post(f"/integrations/connections/{connection.pk}/revoke/").status_code == 404
    connection.refresh_from_db()
    assert connection.usable
    assert login_as(world.clinician).get("/integrations/connections/").status_code == 403


def _document(template):
    sections = template.versions.get(is_active=True).sections.values("key", "label", "loinc_code")
    return mapping_default_document(list(sections))


def test_a_mapping_is_imported_as_a_new_version_exported_and_diffed(world, login_as):
    template = NoteTemplate.objects.get(practice=world.practice, key="soap")
    v1 = mapping_save(template=template, document=_document(template))
    browser = login_as(world.admin)
    exported = browser.get(f"/integrations/mappings/{v1.pk}/export/").json()
    exported["document"]["fhir"]["type"] = exported["document"]["fhir"]["type"][:1]
    response = browser.post(
        f"/integrations/templates/{template.pk}/mapping/import/", {"document": json.dumps(exported)}
    )
    assert response.status_code == 302
    v2 = FieldMapping.objects.get(template=template, is_active=True)
    assert v2.version == 2
    diff = browser.get(f"/integrations/mappings/{v1.pk}/diff/{v2.pk}/").content.decode()
    assert "11506-3" in diff and "-" in diff


def test_a_bad_mapping_import_shows_field_errors_and_saves_nothing(world, login_as):
    template = NoteTemplate.objects.get(practice=world.practice, key="soap")
    document = _document(template)
    document["fhir"]["sections"]["homework"] = {"title": "Homework", "loinc": ""}
    browser = login_as(world.admin)
    response = browser.post(
        f"/integrations/templates/{template.pk}/mapping/import/", {"document": json.dumps(document)}
    )
    assert response.status_code == 400 and "fhir.sections.homework" in response.content.decode()
    response = browser.post(f"/integrations/templates/{template.pk}/mapping/import/", {"document": "{not json"})
    assert response.status_code == 400 and "Not valid JSON" in response.content.decode()
    assert not FieldMapping.objects.filter(template=template).exists()
