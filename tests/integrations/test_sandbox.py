"""The built-in sandbox EHR at /sandbox/fhir/."""

import json

import pytest
import requests

from integrations.builders.fhir import documentreference_build
from integrations.crypto import secret_decrypt
from integrations.models import Delivery, EHRConnection, SandboxFaults, SandboxResource
from integrations.services import (
    connection_create,
    connection_test,
    delivery_mapping_document,
    delivery_send,
    note_input,
)

FHIR = "application/fhir+json"


def bearer(connection: EHRConnection) -> dict:
    """The Authorization header the sandbox issued to this connection."""
    return {"Authorization": f"Bearer {secret_decrypt(connection.credentials_encrypted)['token']}"}


@pytest.fixture
def sandbox_auth(world) -> dict:
    """The world practice's sandbox connection: its Authorization header."""
    connection = connection_create(
        practice=world.practice,
        name="Sandbox",
        kind=EHRConnection.Kind.SANDBOX,
        base_url="http://127.0.0.1:8000/sandbox/fhir",
        is_sandbox=True,
    )
    return bearer(connection)


@pytest.fixture
def client(client, sandbox_auth):
    """Django's test client, speaking as the world practice's sandbox connection."""
    client.defaults.update({"HTTP_AUTHORIZATION": sandbox_auth["Authorization"]})
    return client


def post(client, resource: dict, **headers):
    return client.post(
        f"/sandbox/fhir/{resource['resourceType']}",
        json.dumps(resource),
        content_type=FHIR,
        headers=headers,
    )


@pytest.fixture
def document(world, sign_for):
    note = sign_for(world)
    delivery = Delivery.objects.get(note=note)
    from django.utils import timezone

    return documentreference_build(note_input(delivery), delivery_mapping_document(delivery), now=timezone.now())


def test_metadata_declares_conditional_create_as_configured(client, db):
    body = client.get("/sandbox/fhir/metadata").json()
    assert body["resourceType"] == "CapabilityStatement"
    doc = [r for r in body["rest"][0]["resource"] if r["type"] == "DocumentReference"][0]
    assert doc["conditionalCreate"] is True
    SandboxFaults.objects.filter(pk=1).update(conditional_create=False)
    body = client.get("/sandbox/fhir/metadata").json()
    assert [r for r in body["rest"][0]["resource"] if r["type"] == "DocumentReference"][0]["conditionalCreate"] is False


def test_it_stores_a_valid_document_once_under_conditional_create(client, document):
    ident = document["identifier"][0]
    condition = f"identifier={ident['system']}|{ident['value']}"
    first = post(client, document, **{"If-None-Exist": condition})
    assert first.status_code == 201
    second = post(client, document, **{"If-None-Exist": condition})
    assert second.status_code == 200 and second.json()["id"] == first.json()["id"]
    assert SandboxResource.objects.filter(resource_type="DocumentReference").count() == 1
    found = client.get("/sandbox/fhir/DocumentReference", {"identifier": f"{ident['system']}|{ident['value']}"})
    assert len(found.json()["entry"]) == 1


def test_it_refuses_an_invalid_resource_with_an_operation_outcome(client, document):
    document["date"] = "not a date"
    response = post(client, document)
    assert response.status_code == 422
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "date" in response.json()["issue"][0]["diagnostics"]
    assert not SandboxResource.objects.exists()


def test_it_refuses_a_bogus_status_that_the_models_let_through(client, document):
    document["status"] = "bogus"
    assert post(client, document).status_code == 422


def test_injected_503_carries_retry_after_and_429_too(client, document):
    SandboxFaults.objects.update_or_create(pk=1, defaults={"rate_503": 1.0, "retry_after_seconds": 7})
    response = post(client, document)
    assert response.status_code == 503 and response["Retry-After"] == "7"
    SandboxFaults.objects.filter(pk=1).update(rate_503=0, rate_429=1.0)
    assert post(client, document).status_code == 429
    assert not SandboxResource.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_delivery_to_the_sandbox_over_http_with_schema_drift_and_dropped_answers(world, sign_for, live_server):
    connection = connection_create(
        practice=world.practice,
        name="Sandbox",
        kind=EHRConnection.Kind.SANDBOX,
        base_url=f"{live_server.url}/sandbox/fhir",
        is_sandbox=True,
    )
    summary = connection_test(connection=connection)
    assert summary["conditional_create"] is True
    connection.refresh_from_db()
    assert connection.supports_conditional_create is True and connection.metadata_checked_at

    # Schema change: Patient.birthDate renamed -> fail, never write.
    SandboxFaults.objects.update_or_create(pk=1, defaults={"rename_birth_date": True})
    drifted = Delivery.objects.get(note=sign_for(world))
    delivery_send(delivery_id=drifted.pk)
    drifted.refresh_from_db()
    assert drifted.state == Delivery.State.FAILED and "schema" in drifted.last_error
    assert not SandboxResource.objects.filter(resource_type="DocumentReference").exists()

    # The answer is lost after the write committed: retried under
    # conditional create, and still one copy.
    SandboxFaults.objects.filter(pk=1).update(rename_birth_date=False, drop_after_commit_rate=1.0)
    delivery = Delivery.objects.get(note=sign_for(world))
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.RETRYING
    assert SandboxResource.objects.filter(resource_type="DocumentReference").count() == 1
    SandboxFaults.objects.filter(pk=1).update(drop_after_commit_rate=0.0)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.DELIVERED
    stored = SandboxResource.objects.get(resource_type="DocumentReference")
    assert delivery.ehr_id == stored.logical_id
    assert stored.body["meta"]["security"][1]["code"] == "HTEST"
    # The sandbox declares Provenance create, so the AI Provenance went too.
    provenance = SandboxResource.objects.get(resource_type="Provenance")
    assert provenance.body["target"] == [{"reference": f"DocumentReference/{stored.logical_id}"}]
    # A synthetic patient the sandbox mirrors can be read over HTTP too.
    patient = requests.get(
        f"{live_server.url}/sandbox/fhir/Patient/{delivery.note.client.ehr_patient_id}",
        headers=bearer(connection),
        timeout=5,
    )
    assert patient.json()["birthDate"] == delivery.note.client.date_of_birth.isoformat()


@pytest.mark.django_db(transaction=True)
def test_a_slow_sandbox_answer_times_out_and_is_retried_without_writing(world, sign_for, live_server, settings):
    settings.PSYFI_DELIVERY_TIMEOUT = 0.5
    connection_create(
        practice=world.practice,
        name="Sandbox",
        kind=EHRConnection.Kind.SANDBOX,
        base_url=f"{live_server.url}/sandbox/fhir",
        is_sandbox=True,
    )
    SandboxFaults.objects.update_or_create(pk=1, defaults={"delay_ms": 1500})
    delivery = Delivery.objects.get(note=sign_for(world))
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.RETRYING
    assert "Timeout" in delivery.last_error
    assert not SandboxResource.objects.filter(resource_type="DocumentReference").exists()


def test_bad_input_gets_a_clear_4xx_and_stores_nothing(client, db):
    response = client.post("/sandbox/fhir/DocumentReference", "{not json", content_type=FHIR)
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"
    response = client.post("/sandbox/fhir/Patient", json.dumps({"resourceType": "Observation"}), content_type=FHIR)
    assert response.status_code == 400
    assert client.get("/sandbox/fhir/Observation").status_code == 404
    response = client.put(
        "/sandbox/fhir/Patient/p1", json.dumps({"resourceType": "Patient", "birthDate": "x"}), content_type=FHIR
    )
    assert response.status_code == 422
    assert client.delete("/sandbox/fhir/DocumentReference").status_code == 405
    assert not SandboxResource.objects.exists()
