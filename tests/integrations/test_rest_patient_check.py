"""Invariant 5 over REST JSON: before POSTing a note the transport reads the
patient at the mapping's `rest.patient.url` and compares identifier and date
of birth; on a mismatch it fails, raises an alert and writes nothing. The EHR
is a real HTTP server on loopback."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest
from django.utils import timezone

from integrations.errors import MappingInvalid
from integrations.mapping import mapping_default_document
from integrations.models import Alert, Delivery, EHRConnection, FieldMapping
from integrations.services import connection_create, delivery_reprocess, delivery_send, mapping_save
from notes.models import NoteTemplate
from tests.integrations.support import free_port


class RestEHR:
    """POST /api/notes stores a document; GET of any other path answers from
    `patients` (keyed by the unquoted path), or with `patient_status`."""

    def __init__(self):
        self.patients: dict[str, dict] = {}
        self.patient_status: tuple[int, dict] | None = None  # (status, headers) for every patient read
        self.reads: list[tuple[str, dict]] = []
        self.posts: list[dict] = []
        ehr = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                ehr.reads.append((self.path, dict(self.headers)))
                if ehr.patient_status:
                    status, headers = ehr.patient_status
                    return self.answer(status, {"error": "unavailable"}, headers)
                patient = ehr.patients.get(unquote(self.path))
                return self.answer(200, patient) if patient else self.answer(404, {"error": "no such patient"})

            def do_POST(self):
                ehr.posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                return self.answer(201, {"id": f"note-{len(ehr.posts)}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/notes"


@pytest.fixture
def ehr(world):
    server = RestEHR()
    rest_connection(world, server.url)
    yield server
    server.server.shutdown()


def rest_connection(world, url: str) -> EHRConnection:
    return connection_create(
        practice=world.practice,
        name="REST",
        kind=EHRConnection.Kind.REST,
        base_url=url,
        is_sandbox=True,
        auth_kind=EHRConnection.Auth.BEARER,
        secrets={"token": "static-1"},
    )


def send(note) -> Delivery:
    delivery = Delivery.objects.get(note=note)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def patient_of(note, **overrides) -> dict:
    client = note.client
    return {"id": client.ehr_patient_id, "birthDate": client.date_of_birth.isoformat(), **overrides}


def soap_mapping(world) -> dict:
    template = NoteTemplate.objects.get(practice=world.practice, key="soap")
    sections = template.versions.get(is_active=True).sections.values("key", "label", "loinc_code")
    return mapping_default_document(list(sections))


def test_a_matching_patient_gets_the_note_written(world, sign_for, ehr):
    note = sign_for(world)
    ehr.patients[f"/api/patients/{note.client.ehr_patient_id}"] = patient_of(note)
    delivery = send(note)
    assert delivery.state == Delivery.State.DELIVERED and delivery.ehr_id == "note-1"
    assert len(ehr.posts) == 1 and ehr.posts[0]["patient"]["id"] == note.client.ehr_patient_id
    path, headers = ehr.reads[0]
    assert path == f"/api/patients/{note.client.ehr_patient_id}"
    assert headers["Authorization"] == "Bearer static-1"


def test_a_different_date_of_birth_fails_alerts_and_writes_nothing(world, sign_for, ehr):
    note = sign_for(world)
    ehr.patients[f"/api/patients/{note.client.ehr_patient_id}"] = patient_of(note, birthDate="1971-01-01")
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert "Date of birth at the EHR (1971-01-01)" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.PATIENT_MISMATCH
    assert ehr.posts == []


def test_an_unknown_patient_fails_alerts_and_writes_nothing(world, sign_for, ehr):
    note = sign_for(world)
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert f"no patient {note.client.ehr_patient_id}" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.PATIENT_MISMATCH
    assert ehr.posts == []


def test_another_record_at_the_patient_url_fails_and_writes_nothing(world, sign_for, ehr):
    note = sign_for(world)
    ehr.patients[f"/api/patients/{note.client.ehr_patient_id}"] = patient_of(note, id="SOMEONE-ELSE")
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED and "another record" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.PATIENT_MISMATCH
    assert ehr.posts == []


def test_a_patient_answer_without_the_birth_date_field_fails_and_writes_nothing(world, sign_for, ehr):
    note = sign_for(world)
    answer = patient_of(note)
    answer["dob"] = answer.pop("birthDate")  # the EHR renamed the field
    ehr.patients[f"/api/patients/{note.client.ehr_patient_id}"] = answer
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED and "no date of birth at birthDate" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.PATIENT_MISMATCH
    assert ehr.posts == []


def test_a_503_on_the_patient_read_retries_after_retry_after_and_writes_nothing(world, sign_for, ehr):
    note = sign_for(world)
    ehr.patient_status = (503, {"Retry-After": "120"})
    before = timezone.now()
    delivery = send(note)
    assert delivery.state == Delivery.State.RETRYING
    assert delivery.next_attempt_at >= before + timedelta(seconds=120)
    assert ehr.posts == []
    ehr.patient_status = None
    ehr.patients[f"/api/patients/{note.client.ehr_patient_id}"] = patient_of(note)
    assert send(note).state == Delivery.State.DELIVERED and len(ehr.posts) == 1


def test_a_401_on_the_patient_read_fails_with_a_configuration_alert(world, sign_for, ehr):
    note = sign_for(world)
    ehr.patient_status = (401, {})
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED and "credentials" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.CONFIGURATION
    assert ehr.posts == []


def test_an_unreachable_ehr_retries(world, sign_for):
    rest_connection(world, f"http://127.0.0.1:{free_port()}/api/notes")
    delivery = send(sign_for(world))
    assert delivery.state == Delivery.State.RETRYING
    assert "EHR unreachable (the patient read)" in delivery.last_error


def test_a_stored_mapping_without_a_patient_block_fails_and_writes_nothing(world, sign_for, ehr):
    # A version saved before the check existed (mapping_save now refuses it).
    document = soap_mapping(world)
    del document["rest"]["patient"]
    FieldMapping.objects.create(
        practice=world.practice,
        template=NoteTemplate.objects.get(practice=world.practice, key="soap"),
        version=1,
        document=document,
        is_active=True,
    )
    note = sign_for(world)
    ehr.patients[f"/api/patients/{note.client.ehr_patient_id}"] = patient_of(note)
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert "no valid patient check (rest.patient)" in delivery.last_error
    # A mapping problem (issue 16): a person fixes the mapping, not the connection.
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.MAPPING_ERROR
    assert ehr.reads == [] and ehr.posts == []

    # What the message says to do: save a version with a patient block, reprocess.
    template = NoteTemplate.objects.get(practice=world.practice, key="soap")
    mapping_save(template=template, document=soap_mapping(world), actor=world.admin)
    delivery_reprocess(delivery=delivery, actor=world.admin)
    delivery = send(note)
    assert delivery.state == Delivery.State.DELIVERED
    assert len(ehr.reads) == 1 and len(ehr.posts) == 1
    assert delivery.mapping.version == 1  # the note's content still follows the version it was signed under


def test_the_mapping_paths_pick_the_patient_url_identifier_list_and_birth_date(world, sign_for, ehr):
    document = soap_mapping(world)
    document["rest"]["patient"] = {
        "url": "/ehr/v2/people/{patient_id}",
        "identifier": "ids",
        "birth_date": "person.dob",
    }
    mapping_save(template=NoteTemplate.objects.get(practice=world.practice, key="soap"), document=document)
    note = sign_for(world, ehr_patient_id="MRN/0042 A")
    ehr.patients["/ehr/v2/people/MRN/0042 A"] = {
        "ids": [{"system": "ssn", "value": "000-00-0000"}, {"system": "mrn", "value": "MRN/0042 A"}],
        "person": {"dob": note.client.date_of_birth.isoformat()},
    }
    delivery = send(note)
    assert delivery.state == Delivery.State.DELIVERED and len(ehr.posts) == 1
    assert ehr.reads[0][0] == "/ehr/v2/people/MRN%2F0042%20A"  # the id is quoted: one path segment


@pytest.mark.parametrize(
    ("patient", "error_key"),
    [
        (None, "rest.patient"),
        ({"url": "patients/42", "identifier": "id", "birth_date": "birthDate"}, "rest.patient.url"),
        (
            {"url": "https://elsewhere.example/p/{patient_id}", "identifier": "id", "birth_date": "b"},
            "rest.patient.url",
        ),
        ({"url": "//elsewhere.example/p/{patient_id}", "identifier": "id", "birth_date": "b"}, "rest.patient.url"),
        ({"url": "p/{patient_id}#x", "identifier": "id", "birth_date": "b"}, "rest.patient.url"),
        ({"url": "p/{patient_id}", "identifier": "not a path!", "birth_date": "b"}, "rest.patient.identifier"),
        ({"url": "p/{patient_id}", "identifier": "id"}, "rest.patient.birth_date"),
    ],
)
def test_a_bad_patient_block_is_refused_with_field_errors(world, patient, error_key):
    document = soap_mapping(world)
    if patient is None:
        del document["rest"]["patient"]
    else:
        document["rest"]["patient"] = patient
    with pytest.raises(MappingInvalid) as exc:
        mapping_save(template=NoteTemplate.objects.get(practice=world.practice, key="soap"), document=document)
    assert error_key in exc.value.errors
    assert not FieldMapping.objects.exists()
