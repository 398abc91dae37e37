"""Invariant 5 over HL7 v2: before an MDM is sent, the EHR's IHE PDQ supplier
is asked (QBP^Q22) who has the client's EHR id, and its PID must carry that
id and the client's date of birth. Real MLLP receivers on loopback."""

from datetime import date

import pytest

from integrations.errors import ConnectionInvalid
from integrations.models import Alert, Delivery, EHRConnection
from integrations.services import connection_create, delivery_send
from integrations.transports.base import Outcome
from integrations.transports.mllp import pdq_answer_check
from tests.integrations.support import MLLPReceiver, free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    r = MLLPReceiver("AA").start()
    yield r
    r.stop()


def hl7_connection(world, base_url: str, **kwargs) -> EHRConnection:
    return connection_create(
        practice=world.practice,
        name="HL7 interface",
        kind=EHRConnection.Kind.HL7,
        base_url=base_url,
        is_sandbox=True,
        **kwargs,
    )


def send(note) -> Delivery:
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def test_a_matching_patient_gets_the_mdm(world, sign_for, receiver):
    hl7_connection(world, receiver.url)
    note = sign_for(world)
    receiver.add_patient(note.client)
    delivery = send(note)
    assert delivery.state == Delivery.State.DELIVERED
    assert len(receiver.queries) == 1 and len(receiver.received) == 1
    assert "QBP^Q22^QBP_Q21" in receiver.queries[0]
    assert f"@PID.3.1^{note.client.ehr_patient_id}" in receiver.queries[0]
    assert "MDM^T02^MDM_T02" in receiver.received[0]


def test_another_date_of_birth_fails_with_a_patient_mismatch_alert_and_writes_nothing(world, sign_for, receiver):
    hl7_connection(world, receiver.url)
    note = sign_for(world, date_of_birth=date(1990, 4, 12))
    receiver.add_patient(note.client, birth_date="1991-04-12")
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert "Date of birth at the EHR (1991-04-12) differs" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.PATIENT_MISMATCH
    assert receiver.queries and receiver.received == []


def test_an_id_the_ehr_does_not_know_fails_and_writes_nothing(world, sign_for, receiver):
    hl7_connection(world, receiver.url)
    note = sign_for(world)
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert f"no patient with id {note.client.ehr_patient_id}" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.PATIENT_MISMATCH
    assert receiver.received == []


def test_a_receiver_without_pdq_fails_with_a_configuration_alert_and_writes_nothing(world, sign_for, receiver):
    receiver.query_code = "AR"
    hl7_connection(world, receiver.url)
    note = sign_for(world)
    receiver.add_patient(note.client)
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert "refused the patient query (AR)" in delivery.last_error
    assert "not supported" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.CONFIGURATION
    assert receiver.received == []


def test_the_patient_query_address_is_used_when_set(world, sign_for, receiver):
    supplier = MLLPReceiver("AA").start()
    try:
        hl7_connection(world, receiver.url, patient_query_url=supplier.url)
        note = sign_for(world)
        supplier.add_patient(note.client)  # the MDM receiver does not know the patient
        delivery = send(note)
        assert delivery.state == Delivery.State.DELIVERED
        assert len(supplier.queries) == 1 and supplier.received == []
        assert receiver.queries == [] and len(receiver.received) == 1
    finally:
        supplier.stop()


def test_an_unreachable_patient_query_address_is_retried_and_writes_nothing(world, sign_for, receiver):
    hl7_connection(world, receiver.url, patient_query_url=f"mllp://127.0.0.1:{free_port()}")
    note = sign_for(world)
    receiver.add_patient(note.client)
    delivery = send(note)
    assert delivery.state == Delivery.State.RETRYING
    assert "unreachable" in delivery.last_error
    assert receiver.received == []


def test_a_plain_mllp_patient_query_address_off_loopback_is_refused(world):
    with pytest.raises(ConnectionInvalid, match="Plain mllp") as exc:
        hl7_connection(world, "mllp://127.0.0.1:2575", patient_query_url="mllp://pdq.example.org:3600")
    assert exc.value.field == "patient_query_url"
    assert not EHRConnection.objects.filter(practice=world.practice).exists()
    connection = hl7_connection(world, "mllp://127.0.0.1:2575", patient_query_url="mllps://pdq.example.org:3600")
    assert connection.patient_query_url == "mllps://pdq.example.org:3600"


def test_a_patient_query_address_on_a_fhir_connection_is_refused(world):
    with pytest.raises(ConnectionInvalid, match="Only HL7"):
        connection_create(
            practice=world.practice,
            name="FHIR",
            kind=EHRConnection.Kind.FHIR,
            base_url="https://ehr.example.org/fhir",
            is_sandbox=True,
            patient_query_url="mllps://pdq.example.org:3600",
        )


def test_an_admin_sets_the_patient_query_address_on_the_connection_page(world, login_as):
    browser = login_as(world.admin)
    form = {
        "name": "HL7 interface",
        "kind": "hl7",
        "base_url": "mllp://127.0.0.1:2575",
        "patient_query_url": "mllp://127.0.0.1:3600",
        "is_sandbox": "on",
        "auth_kind": "none",
    }
    assert browser.post("/integrations/connections/", form).status_code == 302
    connection = EHRConnection.objects.get(practice=world.practice, is_active=True)
    assert connection.patient_query_url == "mllp://127.0.0.1:3600"
    assert "patient query: mllp://127.0.0.1:3600" in browser.get("/integrations/connections/").content.decode()
    refused = browser.post("/integrations/connections/", {**form, "patient_query_url": "mllp://pdq.example.org:3600"})
    assert refused.status_code == 400 and "Plain mllp" in refused.content.decode()


# ---------------------------------------------------------------- reading the RSP^K22 alone

MSH = "MSH|^~\\&|EHR||PSYFI||20260101000000||RSP^K22^RSP_K21|R1|P|2.5.1"


def check(*segments: str, patient_id: str = "PAT1", birth_date: str = "1990-04-12") -> Outcome | None:
    return pdq_answer_check("\r".join(segments), query_id="PDQ1", patient_id=patient_id, birth_date=birth_date)


def test_an_id_in_a_later_pid_3_repetition_matches():
    pid = "PID|1||X9^^^LAB~PAT1^^^EHR^MR||Doe^Jane||199004121030"
    assert check(MSH, "MSA|AA|PDQ1", "QAK|PDQ1|OK", pid) is None


def test_an_escaped_id_is_compared_unescaped():
    pid = "PID|1||A\\S\\1^^^EHR||Doe^Jane||19900412"
    assert check(MSH, "MSA|AA|PDQ1", "QAK|PDQ1|OK", pid, patient_id="A^1") is None


def test_more_than_one_patient_for_the_id_is_a_mismatch():
    pid = "PID|{}||PAT1||Doe^Jane||19900412"
    outcome = check(MSH, "MSA|AA|PDQ1", "QAK|PDQ1|OK", pid.format(1), pid.format(2))
    assert outcome.kind == Outcome.FAILED and outcome.alert == "patient_mismatch"
    assert "2 patients" in outcome.reason


def test_a_pid_without_the_id_is_a_mismatch():
    outcome = check(MSH, "MSA|AA|PDQ1", "QAK|PDQ1|OK", "PID|1||PAT2^^^EHR||Doe^Jane||19900412")
    assert outcome.kind == Outcome.FAILED and outcome.alert == "patient_mismatch"


def test_a_pid_without_a_date_of_birth_is_a_mismatch():
    outcome = check(MSH, "MSA|AA|PDQ1", "QAK|PDQ1|OK", "PID|1||PAT1||Doe^Jane")
    assert outcome.kind == Outcome.FAILED and outcome.alert == "patient_mismatch"
    assert "(none)" in outcome.reason


def test_ok_without_a_pid_is_an_unknown_patient():
    outcome = check(MSH, "MSA|AA|PDQ1", "QAK|PDQ1|OK|IHE PDQ Query|0|0|0")
    assert outcome.kind == Outcome.FAILED and outcome.alert == "patient_mismatch"


def test_a_query_error_in_qak_is_a_configuration_problem_with_the_receivers_reason():
    outcome = check(MSH, "MSA|AE|PDQ1", "QAK|PDQ1|AE", "ERR||QPD^1^3|204^Unknown key identifier^HL7357|E||||bad key")
    assert outcome.kind == Outcome.FAILED and outcome.alert == "configuration"
    assert "bad key" in outcome.reason


def test_a_bare_aa_acknowledgement_is_a_receiver_without_pdq():
    outcome = check("MSH|^~\\&|EHR||PSYFI||20260101000000||ACK^Q22^ACK|R1|P|2.5.1", "MSA|AA|PDQ1")
    assert outcome.kind == Outcome.FAILED and outcome.alert == "configuration"
    assert "does not support IHE PDQ" in outcome.reason


def test_an_answer_to_another_query_is_asked_again():
    outcome = check(MSH, "MSA|AA|PDQ9", "QAK|PDQ9|OK", "PID|1||PAT1||Doe^Jane||19900412")
    assert outcome.kind == Outcome.RETRY


def test_an_unreadable_answer_is_asked_again():
    assert check("garbage").kind == Outcome.RETRY
