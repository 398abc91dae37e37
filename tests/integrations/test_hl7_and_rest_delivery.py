"""HL7 v2 over MLLP against a receiver on loopback, and REST JSON against a
loopback API."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integrations.models import Alert, Delivery, EHRConnection
from integrations.services import connection_create, delivery_send
from tests.integrations.support import MLLPReceiver, free_port


def hl7_connection(world, port: int) -> EHRConnection:
    return connection_create(
        practice=world.practice,
        name="HL7 interface",
        kind=EHRConnection.Kind.HL7,
        base_url=f"mllp://127.0.0.1:{port}",
        is_sandbox=True,
    )


def send(delivery: Delivery) -> Delivery:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def test_an_aa_acknowledgement_completes_the_delivery(world, sign_for):
    receiver = MLLPReceiver("AA").start()
    try:
        hl7_connection(world, receiver.port)
        note = sign_for(world)
        receiver.add_patient(note.client)
        delivery = send(Delivery.objects.get(note=note))
        assert delivery.state == Delivery.State.DELIVERED
        assert delivery.ehr_id == delivery.hl7_control_id
        message = receiver.received[0]
        assert f"|{delivery.hl7_control_id}|" in message
        assert "MDM^T02^MDM_T02" in message
        assert "|LA|" in message
    finally:
        receiver.stop()


@pytest.mark.parametrize("code", ["AE", "AR"])
def test_an_ae_or_ar_fails_the_delivery_with_the_reason(world, sign_for, code):
    receiver = MLLPReceiver(code, text="Unknown patient").start()
    try:
        hl7_connection(world, receiver.port)
        note = sign_for(world)
        receiver.add_patient(note.client)
        delivery = send(Delivery.objects.get(note=note))
        assert delivery.state == Delivery.State.FAILED
        assert f"answered {code}" in delivery.last_error and "Unknown patient" in delivery.last_error
        assert Alert.objects.filter(delivery=delivery).exists()
    finally:
        receiver.stop()


def test_a_resend_after_no_answer_uses_the_same_ids(world, sign_for):
    port = free_port()
    hl7_connection(world, port)
    note = sign_for(world)
    delivery = send(Delivery.objects.get(note=note))
    assert delivery.state == Delivery.State.RETRYING  # nobody listening yet
    receiver = MLLPReceiver("AA")
    receiver.port = port
    receiver.add_patient(note.client)
    receiver.start()
    try:
        send(delivery)
        send_again = receiver.received[0]
        assert delivery.state == Delivery.State.DELIVERED
        assert f"|{delivery.hl7_control_id}|" in send_again
    finally:
        receiver.stop()


class _RestAPI:
    """POST /notes takes documents; GET /patients/<id> answers the patient
    check (invariant 5) from `patients`."""

    def __init__(self, status: int = 201):
        self.status = status
        self.received: list[tuple[dict, dict]] = []
        self.patients: dict[str, dict] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                patient = api.patients.get(self.path.removeprefix("/patients/"))
                data = json.dumps(patient or {"error": "not found"}).encode()
                self.send_response(200 if patient else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.received.append((dict(self.headers), body))
                data = json.dumps({"id": "note-77"} if api.status < 300 else {"error": "bad"}).encode()
                self.send_response(api.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notes"


def test_rest_json_follows_the_mapping_paths(world, sign_for):
    api = _RestAPI()
    try:
        connection_create(
            practice=world.practice,
            name="REST",
            kind=EHRConnection.Kind.REST,
            base_url=api.url,
            is_sandbox=True,
            auth_kind=EHRConnection.Auth.BEARER,
            secrets={"token": "static-1"},
        )
        note = sign_for(world)
        client = note.client
        api.patients[client.ehr_patient_id] = {
            "id": client.ehr_patient_id,
            "birthDate": client.date_of_birth.isoformat(),
        }
        delivery = send(Delivery.objects.get(note=note))
        assert delivery.state == Delivery.State.DELIVERED and delivery.ehr_id == "note-77"
        headers, body = api.received[0]
        assert headers["Idempotency-Key"] == delivery.idempotency_key
        assert headers["Authorization"] == "Bearer static-1"
        assert body["id"] == delivery.idempotency_key
        assert body["patient"]["id"] == note.client.ehr_patient_id
        assert body["sections"]["subjective"].startswith("Client reports")
        assert body["attestation"].startswith("Drafted with AI assistance")
    finally:
        api.server.shutdown()
