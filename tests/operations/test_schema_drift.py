"""EHR schema drift: what the EHR declares (CapabilityStatement, the
DocumentReference profile it names; for REST the mapping's JSON Schema) is
checked against what the active mapping needs. The sandbox's "renamed
field" switch mimics an EHR update: the drift alert names the field while no
delivery has failed."""

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings

from audit.models import AuditEvent
from integrations.mapping import mapping_default_document
from integrations.models import Alert, Delivery, DeliveryAttempt, EHRConnection, SandboxFaults
from integrations.services import alert_resolve, connection_create, connection_test, delivery_send, mapping_save
from integrations.services.schema_drift import (
    capability_problems,
    rest_schema_problems,
    schema_drift_check,
    schema_drift_connections,
)
from notes.models import NoteTemplate
from tests.factories import client_factory, note_factory, note_sign_now, world_factory
from tests.integrations.support import FakeEHR, fhir_connection, free_port


def _sandbox(practice, live_server) -> EHRConnection:
    return connection_create(
        practice=practice,
        name="Sandbox EHR",
        kind=EHRConnection.Kind.SANDBOX,
        base_url=f"{live_server.url}/sandbox/fhir",
        is_sandbox=True,
    )


@pytest.mark.django_db(transaction=True)
def test_a_renamed_field_in_the_sandbox_raises_a_drift_alert_before_any_delivery_fails(live_server):
    world = world_factory()
    connection = _sandbox(world.practice, live_server)
    assert schema_drift_check(connection=connection).problems == []
    assert not Alert.objects.filter(kind=Alert.Kind.SCHEMA_DRIFT).exists()
    client = client_factory(world.practice, world.clinician)
    draft = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    note = note_sign_now(draft, world.clinician)
    delivery = Delivery.objects.get(note=note)

    SandboxFaults.objects.update_or_create(pk=1, defaults={"renamed_field": True})  # the EHR's update
    report = schema_drift_check(connection=connection)

    fields = {p["field"] for p in report.problems}
    assert {"DocumentReference.date", "DocumentReference.indexed"} <= fields
    alert = Alert.objects.get(kind=Alert.Kind.SCHEMA_DRIFT, resolved_at__isnull=True)
    assert alert.connection == connection and "DocumentReference.date" in alert.reason
    # Raised while no delivery has failed (none has even been tried).
    assert not Delivery.objects.filter(state=Delivery.State.FAILED).exists()
    assert not DeliveryAttempt.objects.exists()
    connection.refresh_from_db()
    assert connection.schema_problems == report.problems
    # ... and the update would have failed it.
    assert delivery_send(delivery_id=delivery.pk).state == Delivery.State.FAILED
    assert "indexed" in Delivery.objects.get(pk=delivery.pk).last_error
    # The daily check repeats while it is open: counted, not a second alert.
    schema_drift_check(connection=connection)
    assert Alert.objects.filter(kind=Alert.Kind.SCHEMA_DRIFT).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_check_schema_button_runs_the_check_as_the_admin(live_server, login_as):
    world = world_factory()
    connection = _sandbox(world.practice, live_server)
    SandboxFaults.objects.update_or_create(pk=1, defaults={"renamed_field": True})
    browser = login_as(world.admin)
    response = browser.post(f"/integrations/connections/{connection.pk}/schema-check/", follow=True)
    assert response.status_code == 200
    assert b"Schema drift: DocumentReference.date" in response.content
    event = AuditEvent.objects.get(action="connection.schema_check", object_id=str(connection.pk))
    assert event.actor_user == world.admin
    assert Alert.objects.filter(kind=Alert.Kind.SCHEMA_DRIFT, connection=connection).exists()
    # Another practice's connection is not found.
    assert login_as(world.outsider).post(f"/integrations/connections/{connection.pk}/schema-check/").status_code in (
        403,
        404,
    )


def test_the_daily_check_covers_each_active_fhir_and_rest_connection(world):
    schedule = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "integrations.schema_drift_check_all" in schedule
    connection = connection_create(
        practice=world.practice, name="E", kind=EHRConnection.Kind.FHIR, base_url="http://127.0.0.1:9/", is_sandbox=True
    )
    assert schema_drift_connections() == [connection.pk]
    # Not reachable: reported as an error, not as drift.
    report = schema_drift_check(connection=connection)
    assert report.error and report.problems == []
    assert not Alert.objects.filter(kind=Alert.Kind.SCHEMA_DRIFT).exists()


@pytest.fixture
def fake_ehr():
    ehr = FakeEHR(conditional_create=True).start()
    yield ehr
    ehr.stop()


def _drift_fields(connection) -> list[str]:
    return [p["field"] for p in schema_drift_check(connection=connection).problems]


def test_a_dropped_conditional_create_stays_reported_until_a_person_resolves_the_alert(world, fake_ehr):
    connection = fhir_connection(world.practice, fake_ehr.base_url)
    assert "error" not in connection_test(connection=connection, actor=world.admin)
    fake_ehr.conditional_create = False  # the EHR's update
    assert _drift_fields(connection) == ["DocumentReference.conditionalCreate"]
    # The first check recorded what the EHR now declares; the second still reports the drop.
    connection.refresh_from_db()
    assert connection.supports_conditional_create is False
    assert _drift_fields(connection) == ["DocumentReference.conditionalCreate"]
    alert = Alert.objects.get(kind=Alert.Kind.SCHEMA_DRIFT, connection=connection, resolved_at__isnull=True)
    assert alert.count == 2
    alert_resolve(alert=alert, actor=world.admin)  # accepted
    assert _drift_fields(connection) == []
    assert not Alert.objects.filter(kind=Alert.Kind.SCHEMA_DRIFT, resolved_at__isnull=True).exists()


def test_a_dropped_conditional_create_stays_reported_until_the_connection_is_tested_again(world, fake_ehr):
    connection = fhir_connection(world.practice, fake_ehr.base_url)
    connection_test(connection=connection, actor=world.admin)
    fake_ehr.conditional_create = False
    # A delivery's own /metadata read recorded the change before any check ran.
    EHRConnection.objects.filter(pk=connection.pk).update(supports_conditional_create=False)
    connection.refresh_from_db()
    assert _drift_fields(connection) == ["DocumentReference.conditionalCreate"]
    assert _drift_fields(connection) == ["DocumentReference.conditionalCreate"]
    connection_test(connection=connection, actor=world.admin)  # a person re-tests: the new baseline
    connection.refresh_from_db()
    assert _drift_fields(connection) == []


def test_capability_changes_are_drift():
    capability = {
        "resourceType": "CapabilityStatement",
        "rest": [
            {
                "resource": [
                    {"type": "DocumentReference", "interaction": [{"code": "read"}], "conditionalCreate": False},
                    {"type": "Patient", "interaction": [{"code": "read"}]},
                ]
            }
        ],
    }
    fields = [f for f, _ in capability_problems(capability, had_conditional_create=True)]
    assert fields == ["DocumentReference.create", "DocumentReference.conditionalCreate"]


class SchemaServer:
    """A REST EHR's JSON Schema of a note body, on loopback."""

    def __init__(self, schema: dict):
        self.schema = schema
        self.port = free_port()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = json.dumps(server.schema).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/schema+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _schema_for(document: dict) -> dict:
    """A JSON Schema with every path the REST mapping writes."""
    schema: dict = {"type": "object", "properties": {}, "required": ["id"]}
    rest = document["rest"]
    for path in [*rest["fields"].values(), *rest["sections"].values(), rest["unmapped"]]:
        node = schema
        for part in path.split("."):
            node = node.setdefault("properties", {}).setdefault(part, {"type": "object"})
    return schema


def test_a_renamed_field_in_a_rest_ehrs_schema_is_drift(world):
    template = NoteTemplate.objects.get(practice=world.practice, key="soap")
    sections = template.versions.get(is_active=True).sections.values("key", "label", "loinc_code")
    document = mapping_default_document(list(sections))
    schema = _schema_for(document)
    server = SchemaServer(schema)
    try:
        document["rest"]["schema_url"] = f"http://127.0.0.1:{server.port}/schemas/note.json"
        mapping_save(template=template, document=document, actor=world.admin)
        connection = connection_create(
            practice=world.practice,
            name="REST",
            kind=EHRConnection.Kind.REST,
            base_url=f"http://127.0.0.1:{server.port}/api/notes",
            is_sandbox=True,
        )
        assert schema_drift_check(connection=connection).problems == []
        renamed = copy.deepcopy(schema)
        renamed["properties"]["signed_at"] = renamed["properties"].pop("signedAt")
        server.schema = renamed
        report = schema_drift_check(connection=connection)
    finally:
        server.stop()
    assert [p["field"] for p in report.problems] == ["signedAt"]
    assert "signedAt" in Alert.objects.get(kind=Alert.Kind.SCHEMA_DRIFT).reason


def test_a_newly_required_property_is_drift():
    schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {}}, "required": ["a", "b"]}
    rest = {"fields": {"id": "a"}, "sections": {}, "unmapped": "a"}
    assert [f for f, _ in rest_schema_problems(schema, rest)] == ["b"]


def test_a_schema_url_in_a_mapping_must_be_an_absolute_url(world):
    from integrations.errors import MappingInvalid

    template = NoteTemplate.objects.get(practice=world.practice, key="soap")
    sections = template.versions.get(is_active=True).sections.values("key", "label", "loinc_code")
    document = mapping_default_document(list(sections))
    document["rest"]["schema_url"] = "schemas/note.json"
    with pytest.raises(MappingInvalid) as refused:
        mapping_save(template=template, document=document, actor=world.admin)
    assert "rest.schema_url" in refused.value.errors
