"""Issue #11, point 2: the built-in sandbox EHR is mounted only where meant
(SANDBOX_EHR_ENABLED: on in the demo, off in settings_production), answers
only to a sandbox connection's token, and keeps each practice's data apart."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.urls import clear_url_caches
from django.utils import timezone

from integrations.crypto import secret_decrypt
from integrations.errors import ConnectionInvalid
from integrations.models import EHRConnection, SandboxResource
from integrations.services import connection_create, connection_revoke
from tests.factories import client_factory, member_factory

ROOT = Path(__file__).resolve().parents[2]
FHIR = "application/fhir+json"
SANDBOX_URL = "http://127.0.0.1:8000/sandbox/fhir"


def sandbox_connection(practice) -> EHRConnection:
    return connection_create(
        practice=practice, name="Sandbox", kind=EHRConnection.Kind.SANDBOX, base_url=SANDBOX_URL, is_sandbox=True
    )


def bearer(connection: EHRConnection) -> str:
    return f"Bearer {secret_decrypt(connection.credentials_encrypted)['token']}"


def patient(logical_id: str, birth_date: str = "1990-04-12") -> dict:
    return {"resourceType": "Patient", "id": logical_id, "birthDate": birth_date}


def provenance(target: str) -> dict:
    return {
        "resourceType": "Provenance",
        "target": [{"reference": target}],
        "recorded": "2026-01-05T10:00:00Z",
        "agent": [{"who": {"display": "Dr. Rivera"}}],
    }


def document_reference(patient_id: str, value: str = "note-1:1") -> dict:
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "identifier": [{"system": "urn:test:note-id", "value": value}],
        "subject": {"reference": f"Patient/{patient_id}"},
        "content": [{"attachment": {"contentType": "text/plain", "data": "U3ludGhldGljIG5vdGU="}}],
    }


@pytest.fixture
def urlconf_reload():
    """Re-import the URLconf under the settings of the moment; afterwards it is
    re-imported under the test settings again, so no other test sees it."""

    def reload():
        clear_url_caches()
        importlib.reload(importlib.import_module(settings.ROOT_URLCONF))

    yield reload
    reload()


# ------------------------------------------------------------------ mounted only where meant


def test_the_sandbox_is_not_routed_when_it_is_off(client, world, urlconf_reload):
    auth = bearer(sandbox_connection(world.practice))
    assert client.get("/sandbox/fhir/metadata", HTTP_AUTHORIZATION=auth).status_code == 200
    with override_settings(SANDBOX_EHR_ENABLED=False):
        urlconf_reload()
        for method, path in (
            ("get", "/sandbox/fhir/metadata"),
            ("get", "/sandbox/fhir/DocumentReference"),
            ("post", "/sandbox/fhir/DocumentReference"),
            ("put", "/sandbox/fhir/Patient/p1"),
        ):
            response = getattr(client, method)(path, HTTP_AUTHORIZATION=auth)
            assert response.status_code == 404, (method, path)
    assert not SandboxResource.objects.exists()


def _settings_value(module: str, name: str, tmp_path, **env_extra) -> str:
    code = f"import {module} as s; print(s.{name})"
    env = {
        "PATH": os.environ["PATH"],
        "PSYFI_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/psyfi",
        "ALLOWED_HOSTS": "notes.example.org",
        "PSYFI_CREDENTIALS_KEYS": Fernet.generate_key().decode(),
        "PSYFI_IDENTIFIER_SYSTEM": "https://notes.example.org/note-id",
        **env_extra,
    }
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_sandbox_is_on_in_the_demo_and_off_in_production(tmp_path):
    assert _settings_value("psyfi_review.settings", "SANDBOX_EHR_ENABLED", tmp_path) == "True"
    assert _settings_value("psyfi_review.settings_production", "SANDBOX_EHR_ENABLED", tmp_path) == "False"
    routes = "[str(p.pattern) for p in s.urlpatterns]"
    code = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE']='psyfi_review.settings_production'; django.setup();"
        f"import psyfi_review.urls as s; print({routes})"
    )
    env = {
        "PATH": os.environ["PATH"],
        "PSYFI_VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/psyfi",
        "ALLOWED_HOSTS": "notes.example.org",
        "PSYFI_CREDENTIALS_KEYS": Fernet.generate_key().decode(),
        "PSYFI_IDENTIFIER_SYSTEM": "https://notes.example.org/note-id",
    }
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "audit/" in out.stdout and "sandbox/fhir/" not in out.stdout


def test_no_sandbox_connection_or_demo_set_up_while_the_sandbox_is_off(world, settings):
    settings.SANDBOX_EHR_ENABLED = False
    with pytest.raises(ConnectionInvalid, match="SANDBOX_EHR_ENABLED"):
        sandbox_connection(world.practice)
    with pytest.raises(CommandError, match="SANDBOX_EHR_ENABLED"):
        call_command("integrations_demo_setup", practice=world.practice.slug)
    assert not EHRConnection.objects.exists()


# ------------------------------------------------------------------ credentials on every request


def _every_kind_of_request(client, **headers):
    yield client.get("/sandbox/fhir/metadata", headers=headers)
    yield client.get("/sandbox/fhir/DocumentReference", {"identifier": "urn:test:note-id|note-1:1"}, headers=headers)
    yield client.get("/sandbox/fhir/Patient/PAT-A", headers=headers)
    yield client.post(
        "/sandbox/fhir/DocumentReference", json.dumps(document_reference("PAT-A")), content_type=FHIR, headers=headers
    )
    yield client.put("/sandbox/fhir/Patient/PAT-X", json.dumps(patient("PAT-X")), content_type=FHIR, headers=headers)


def test_anonymous_requests_get_a_401_operation_outcome_and_store_nothing(client, world):
    client_factory(world.practice, world.clinician, synthetic=True, ehr_patient_id="PAT-A")
    sandbox_connection(world.practice)
    for response in _every_kind_of_request(client):
        assert response.status_code == 401, response.request["PATH_INFO"]
        assert response["Content-Type"] == FHIR
        body = response.json()
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "login"
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert not SandboxResource.objects.exists()


def test_a_wrong_token_is_refused(client, world):
    sandbox_connection(world.practice)
    for authorization in ("Bearer not-the-token", "Bearer", "Basic dXNlcjpwYXNz", "not-a-scheme"):
        for response in _every_kind_of_request(client, Authorization=authorization):
            assert response.status_code == 401, authorization
    assert not SandboxResource.objects.exists()


def test_only_a_usable_sandbox_connections_token_opens_the_sandbox(client, world):
    # The bearer token of an ordinary FHIR connection is no sandbox credential.
    fhir = connection_create(
        practice=world.practice,
        name="EHR",
        kind=EHRConnection.Kind.FHIR,
        base_url="https://ehr.example.org/fhir",
        is_sandbox=True,
        auth_kind=EHRConnection.Auth.BEARER,
        secrets={"token": "an-ehr-token"},
    )
    assert client.get("/sandbox/fhir/metadata", HTTP_AUTHORIZATION=bearer(fhir)).status_code == 401
    sandbox = sandbox_connection(world.practice)
    assert client.get("/sandbox/fhir/metadata", HTTP_AUTHORIZATION=bearer(sandbox)).status_code == 200
    admin = member_factory(world.practice, role="practice_admin").user
    connection_revoke(connection=sandbox, actor=admin)
    assert client.get("/sandbox/fhir/metadata", HTTP_AUTHORIZATION=bearer(sandbox)).status_code == 401


def test_a_sandbox_connection_gets_a_token_of_its_own_and_takes_none_from_the_admin(world):
    first, second = sandbox_connection(world.practice), sandbox_connection(world.other_practice)
    assert first.auth == second.auth == EHRConnection.Auth.BEARER
    assert len(bearer(first)) > 40 and bearer(first) != bearer(second)
    with pytest.raises(ConnectionInvalid, match="issues its own token") as exc:
        connection_create(
            practice=world.practice,
            name="Sandbox",
            kind=EHRConnection.Kind.SANDBOX,
            base_url=SANDBOX_URL,
            is_sandbox=True,
            auth_kind=EHRConnection.Auth.BEARER,
            secrets={"token": "sandbox"},
        )
    assert exc.value.field == "secret"
    with pytest.raises(ConnectionInvalid) as exc:
        connection_create(
            practice=world.practice,
            name="Sandbox",
            kind=EHRConnection.Kind.SANDBOX,
            base_url=SANDBOX_URL,
            is_sandbox=True,
            auth_kind=EHRConnection.Auth.BASIC,
            username="u",
            secrets={"password": "p"},
        )
    assert exc.value.field == "auth_kind"
    assert EHRConnection.objects.filter(practice=world.practice).count() == 1


def test_the_demo_set_up_gives_the_practice_a_token_that_opens_its_sandbox(client, world):
    client_factory(world.practice, world.clinician, synthetic=True, ehr_patient_id="PAT-DEMO")
    # A demo database from before the sandbox required a token: replaced.
    EHRConnection.objects.create(
        practice=world.practice, name="old", kind=EHRConnection.Kind.SANDBOX, base_url=SANDBOX_URL, is_sandbox=True
    )
    call_command("integrations_demo_setup", practice=world.practice.slug, base_url=SANDBOX_URL)
    connection = EHRConnection.objects.get(practice=world.practice, is_active=True)
    assert connection.auth == EHRConnection.Auth.BEARER
    response = client.get("/sandbox/fhir/Patient/PAT-DEMO", HTTP_AUTHORIZATION=bearer(connection))
    assert response.status_code == 200 and response.json()["id"] == "PAT-DEMO"
    assert SandboxResource.objects.get(logical_id="PAT-DEMO").practice == world.practice


# ------------------------------------------------------------------ each practice's data apart


def test_each_practice_sees_only_its_own_sandbox_data(client, world):
    other_clinician = member_factory(world.other_practice).user
    client_factory(world.practice, world.clinician, synthetic=True, ehr_patient_id="PAT-A")
    client_factory(world.other_practice, other_clinician, synthetic=True, ehr_patient_id="PAT-B")
    a = {"HTTP_AUTHORIZATION": bearer(sandbox_connection(world.practice))}
    b = {"HTTP_AUTHORIZATION": bearer(sandbox_connection(world.other_practice))}

    # Patients are mirrored from the practice's own synthetic clients only.
    assert client.get("/sandbox/fhir/Patient/PAT-A", **a).status_code == 200
    assert client.get("/sandbox/fhir/Patient/PAT-A", **b).status_code == 404
    assert client.get("/sandbox/fhir/Patient/PAT-B", **a).status_code == 404

    # A's document: invisible to B by search and by id; B's conditional
    # create with the same identifier makes B's own copy, not A's.
    doc = document_reference("PAT-A")
    condition = {"HTTP_IF_NONE_EXIST": "identifier=urn:test:note-id|note-1:1"}
    created = client.post("/sandbox/fhir/DocumentReference", json.dumps(doc), content_type=FHIR, **a, **condition)
    assert created.status_code == 201
    a_id = created.json()["id"]
    search = {"identifier": "urn:test:note-id|note-1:1"}
    assert client.get("/sandbox/fhir/DocumentReference", search, **a).json()["total"] == 1
    assert client.get("/sandbox/fhir/DocumentReference", search, **b).json()["total"] == 0
    assert client.get("/sandbox/fhir/DocumentReference", {"patient": "PAT-A"}, **b).json()["total"] == 0
    assert client.get(f"/sandbox/fhir/DocumentReference/{a_id}", **b).status_code == 404
    assert client.get(f"/sandbox/fhir/DocumentReference/{a_id}", **a).status_code == 200
    again = client.post("/sandbox/fhir/DocumentReference", json.dumps(doc), content_type=FHIR, **b, **condition)
    assert again.status_code == 201 and again.json()["id"] != a_id

    # Provenance too.
    prov = client.post(
        "/sandbox/fhir/Provenance", json.dumps(provenance(f"DocumentReference/{a_id}")), content_type=FHIR, **a
    )
    assert prov.status_code == 201
    assert client.get(f"/sandbox/fhir/Provenance/{prov.json()['id']}", **b).status_code == 404

    # The same Patient id PUT by both practices: two records, neither overwritten.
    client.put("/sandbox/fhir/Patient/SHARED-1", json.dumps(patient("SHARED-1", "1980-01-01")), content_type=FHIR, **a)
    client.put("/sandbox/fhir/Patient/SHARED-1", json.dumps(patient("SHARED-1", "1999-09-09")), content_type=FHIR, **b)
    assert client.get("/sandbox/fhir/Patient/SHARED-1", **a).json()["birthDate"] == "1980-01-01"
    assert client.get("/sandbox/fhir/Patient/SHARED-1", **b).json()["birthDate"] == "1999-09-09"

    assert set(SandboxResource.objects.values_list("practice_id", "resource_type")) == {
        (world.practice.pk, "DocumentReference"),
        (world.practice.pk, "Provenance"),
        (world.practice.pk, "Patient"),
        (world.other_practice.pk, "DocumentReference"),
        (world.other_practice.pk, "Patient"),
    }


def test_a_revoked_sandbox_connection_takes_nothing_more(client, world):
    connection = sandbox_connection(world.practice)
    auth = {"HTTP_AUTHORIZATION": bearer(connection)}
    EHRConnection.objects.filter(pk=connection.pk).update(revoked_at=timezone.now(), is_active=False)
    response = client.post(
        "/sandbox/fhir/DocumentReference", json.dumps(document_reference("PAT-A")), content_type=FHIR, **auth
    )
    assert response.status_code == 401
    assert not SandboxResource.objects.exists()
