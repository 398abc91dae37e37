"""Issue #13, point 10: one meaning for an EHR's answer whatever the protocol.
Transports return facts (a Reply); one status-to-outcome function and one
patient-match function serve FHIR, REST and HL7; a reconciled send is
recorded from a typed field of the outcome, not from its words."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integrations.builders.rest import PatientRead
from integrations.models import Delivery, DeliveryAttempt, EHRConnection
from integrations.outcomes import (
    Outcome,
    Reply,
    fhir_patient_check,
    pdq_answer_check,
    rest_patient_check,
    sent,
    status_outcome,
)
from integrations.services import PERFORMERS, delivery_send
from integrations.services.delivery import _record
from integrations.transports import fhir as fhir_transport
from integrations.transports import mllp as mllp_transport
from integrations.transports import rest as rest_transport
from notes.models import Note
from tests.integrations.support import FakeEHR, fhir_connection, free_port

HL7_MESSAGE = "MSH|^~\\&|PSYFI|PRACTICE|EHR|EHR|20260101120000||MDM^T02^MDM_T02|CTRL1|P|2.5\r"


class StatusServer:
    """An EHR on loopback that answers every request with one status, an
    OperationOutcome and the given headers."""

    def __init__(self, status: int, headers: dict | None = None):
        answer = (status, headers or {})

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                code, extra = answer
                body = json.dumps(
                    {"resourceType": "OperationOutcome", "issue": [{"code": "processing", "diagnostics": f"s{code}"}]}
                ).encode()
                self.send_response(code)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts a connection, reads the request and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def stop(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


def fhir_post(port: int, timeout: float = 5) -> Reply:
    target = fhir_transport.FhirTarget(
        base_url=f"http://127.0.0.1:{port}/fhir", timeout=timeout, auth_headers=lambda force=False: {}
    )
    return fhir_transport.resource_create(target, {"resourceType": "DocumentReference"}, if_none_exist=None)


def rest_post(port: int, timeout: float = 5) -> Reply:
    return rest_transport.document_post(
        url=f"http://127.0.0.1:{port}/api/notes", document={}, idempotency_key="k", headers={}, timeout=timeout
    )


def hl7_send(port: int, timeout: float = 5) -> Reply:
    return mllp_transport.exchange(f"mllp://127.0.0.1:{port}", HL7_MESSAGE, timeout)


def essence(outcome: Outcome) -> tuple:
    return (outcome.kind, outcome.alert, outcome.retry_after, outcome.http_status)


# status -> (kind, alert) when the EHR deduplicates a resend.
STATUS_TABLE = [
    (200, Outcome.SENT, ""),
    (201, Outcome.SENT, ""),
    (400, Outcome.FAILED, ""),
    (401, Outcome.FAILED, "configuration"),
    (403, Outcome.FAILED, "configuration"),
    (404, Outcome.FAILED, "configuration"),
    (409, Outcome.UNKNOWN, ""),
    (412, Outcome.UNKNOWN, ""),
    (422, Outcome.FAILED, ""),
    (429, Outcome.RETRY, ""),
    (500, Outcome.RETRY, "unreachable"),
    (502, Outcome.RETRY, "unreachable"),
    (503, Outcome.RETRY, "unreachable"),
    (504, Outcome.RETRY, "unreachable"),
]


@pytest.mark.parametrize(("status", "kind", "alert"), STATUS_TABLE, ids=[str(row[0]) for row in STATUS_TABLE])
def test_one_status_gives_one_outcome_over_fhir_and_rest(status, kind, alert):
    headers = {"Retry-After": "7"} if status == 429 else {}
    server = StatusServer(status, headers)
    try:
        replies = [fhir_post(server.port), rest_post(server.port)]
    finally:
        server.stop()
    assert [reply.status for reply in replies] == [status, status]
    outcomes = [status_outcome(reply, write=True, resend_safe=True) for reply in replies]
    assert essence(outcomes[0]) == essence(outcomes[1])
    assert (outcomes[0].kind, outcomes[0].alert) == (kind, alert)
    assert outcomes[0].retry_after == (7.0 if status == 429 else None)
    assert all(outcome.bytes_sent for outcome in outcomes)


def test_a_server_error_after_sending_is_reconciled_unless_a_resend_is_safe():
    reply = Reply(status=503)
    assert status_outcome(reply, write=True, resend_safe=False).kind == Outcome.UNKNOWN
    assert status_outcome(reply, write=True, resend_safe=True).kind == Outcome.RETRY
    assert status_outcome(reply, write=False, resend_safe=False).kind == Outcome.RETRY  # a read wrote nothing


def test_a_refused_connection_is_a_retry_before_sending_over_every_protocol():
    port = free_port()  # nobody listens
    replies = [fhir_post(port), rest_post(port), hl7_send(port)]
    assert [(reply.status, reply.bytes_sent) for reply in replies] == [(None, False)] * 3
    for resend_safe in (True, False):
        outcomes = [status_outcome(reply, write=True, resend_safe=resend_safe) for reply in replies]
        assert {(o.kind, o.alert, o.bytes_sent) for o in outcomes} == {(Outcome.RETRY, "unreachable", False)}


def test_a_timeout_after_sending_resends_only_when_the_ehr_deduplicates_over_every_protocol():
    server = SilentServer()
    try:
        replies = [fhir_post(server.port, 0.5), rest_post(server.port, 0.5), hl7_send(server.port, 0.5)]
    finally:
        server.stop()
    assert [(reply.status, reply.bytes_sent) for reply in replies] == [(None, True)] * 3
    safe = {status_outcome(r, write=True, resend_safe=True).kind for r in replies}
    unsafe = {status_outcome(r, write=True, resend_safe=False).kind for r in replies}
    assert (safe, unsafe) == ({Outcome.RETRY}, {Outcome.UNKNOWN})


# ---------------------------------------------------------------- one patient match

READ = PatientRead(url="http://127.0.0.1/api/patients/P1", identifier_path="mrn", birth_date_path="dob")


def fhir_answer(patient_id: str | None, birth_date: str) -> Reply:
    if patient_id is None:
        return Reply(status=404)
    body = {"resourceType": "Patient", "id": patient_id, "birthDate": birth_date}
    return Reply(status=200, body=json.dumps(body).encode())


def rest_answer(patient_id: str | None, birth_date: str) -> Reply:
    if patient_id is None:
        return Reply(status=404)
    return Reply(status=200, body=json.dumps({"mrn": patient_id, "dob": birth_date}).encode())


def hl7_answer(patient_id: str | None, birth_date: str) -> str:
    head = "MSH|^~\\&|EHR|EHR|PSYFI|PRACTICE|20260101||RSP^K22|R1|P|2.5\rMSA|AA|Q1\r"
    if patient_id is None:
        return head + "QAK|Q1|NF\r"
    return head + f"QAK|Q1|OK\rPID|1||{patient_id}^^^EHR||Doe^Jane||{birth_date.replace('-', '')}\r"


def matches(patient_id, birth_date) -> list[Outcome | None]:
    check = {"patient_id": "P1", "birth_date": "1990-04-12"}
    return [
        fhir_patient_check(fhir_answer(patient_id, birth_date), **check),
        rest_patient_check(rest_answer(patient_id, birth_date), READ, **check),
        pdq_answer_check(hl7_answer(patient_id, birth_date), query_id="Q1", **check),
    ]


def test_the_client_matches_over_every_protocol():
    assert matches("P1", "1990-04-12") == [None, None, None]


def test_another_date_of_birth_is_one_mismatch_in_the_same_words_over_every_protocol():
    outcomes = matches("P1", "1971-01-01")
    assert {(o.kind, o.alert) for o in outcomes} == {(Outcome.FAILED, "patient_mismatch")}
    assert {o.reason for o in outcomes} == {
        "Date of birth at the EHR (1971-01-01) differs from the client's; nothing was written."
    }


def test_another_record_and_no_record_are_mismatches_over_every_protocol():
    for outcomes in (matches("P2", "1990-04-12"), matches(None, "")):
        assert {(o.kind, o.alert) for o in outcomes} == {(Outcome.FAILED, "patient_mismatch")}


# ---------------------------------------------------------------- shape of the services


def test_every_connection_kind_has_its_perform_function():
    assert set(PERFORMERS) == set(EHRConnection.Kind.values)


pytestmark_db = pytest.mark.django_db(transaction=True)


def _claimed(world, ehr: FakeEHR, sign_for) -> tuple[Delivery, DeliveryAttempt]:
    """A delivery as delivery_send holds it mid-attempt: claimed, its ledger row `sending`."""
    fhir_connection(world.practice, ehr.base_url)
    note = sign_for(world)
    ehr.add_patient(note.client)
    delivery = Delivery.objects.get(note=note)
    Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.SENDING, attempts=1)
    delivery = Delivery.objects.select_related("connection", "practice").get(pk=delivery.pk)
    delivery.note = Note.objects.select_related("client").get(pk=note.pk)
    attempt = DeliveryAttempt.objects.create(
        delivery=delivery, number=1, started_at=delivery.created_at, outcome=DeliveryAttempt.Outcome.SENDING
    )
    return delivery, attempt


@pytestmark_db
def test_a_reconciled_send_is_recorded_from_its_typed_field_not_its_words(world, fake_ehr, sign_for):
    delivery, attempt = _claimed(world, fake_ehr, sign_for)
    _record(delivery=delivery, attempt=attempt, outcome=sent("DR1", reason="Found at the EHR", reconciled=True))
    attempt.refresh_from_db()
    assert attempt.outcome == DeliveryAttempt.Outcome.RECONCILED


@pytestmark_db
def test_a_send_whose_reason_mentions_reconciling_is_still_a_send(world, fake_ehr, sign_for):
    delivery, attempt = _claimed(world, fake_ehr, sign_for)
    _record(delivery=delivery, attempt=attempt, outcome=sent("DR1", reason="The EHR reconciled its index"))
    attempt.refresh_from_db()
    assert attempt.outcome == DeliveryAttempt.Outcome.SENT


@pytestmark_db
def test_a_copy_found_after_a_lost_answer_is_on_the_ledger_as_reconciled(world, sign_for):
    ehr = FakeEHR(conditional_create=False).start()
    try:
        ehr.drop_first_write_per_identifier = True  # the EHR stores the note and the answer is lost
        fhir_connection(world.practice, ehr.base_url)
        note = sign_for(world)
        ehr.add_patient(note.client)
        delivery = Delivery.objects.get(note=note)
        assert delivery_send(delivery_id=delivery.pk).state == Delivery.State.UNKNOWN
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
        assert delivery_send(delivery_id=delivery.pk).state == Delivery.State.DELIVERED
        outcomes = list(delivery.attempt_log.order_by("number").values_list("outcome", flat=True))
        assert outcomes == [DeliveryAttempt.Outcome.UNKNOWN, DeliveryAttempt.Outcome.RECONCILED]
        assert len(ehr.documents) == 1
    finally:
        ehr.stop()
