"""Issue 13, point 5: the HL7 patient check per connection. `pdq` asks the
EHR's IHE PDQ supplier first (optionally in one assigning authority of a
multi-domain EHR); `receiver` suits an interface-engine channel that takes
only MDM: the note carries PID-3 with the assigning authority, PID-5 and
PID-7, and the receiver refuses an unknown patient. Real MLLP receivers on
loopback (tests.integrations.support.MLLPReceiver)."""

from datetime import date

import hl7
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.builders.hl7 import pdq_query_build
from integrations.errors import ConnectionInvalid
from integrations.models import Alert, Delivery, DeliveryAttempt, EHRConnection
from integrations.sandbox.mllp import SandboxMLLP, SandboxPatient, sandbox_mllp_answer, sandbox_patients
from integrations.services import connection_create, delivery_send
from integrations.transports.mllp import ack_names_patient, pdq_answer_check
from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import MLLPReceiver
from tests.integrations.test_fhir_builder import SIGNED

pytestmark = pytest.mark.django_db


@pytest.fixture
def mdm_only():
    """An interface-engine channel: MDM only (AR to QBP^Q22), set to refuse
    unknown patients, its patient ids in the CLINIC_A domain."""
    r = MLLPReceiver("AA", mdm_only=True, authority="CLINIC_A").start()
    yield r
    r.stop()


@pytest.fixture
def pdq_receiver():
    r = MLLPReceiver("AA").start()
    yield r
    r.stop()


def hl7_connection(world, url: str, **kwargs) -> EHRConnection:
    return connection_create(
        practice=world.practice,
        name="HL7 interface",
        kind=EHRConnection.Kind.HL7,
        base_url=url,
        is_sandbox=True,
        **kwargs,
    )


def signed_note(world, **client_kwargs):
    client = client_factory(world.practice, world.clinician, **client_kwargs)
    return note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )


def send(note) -> Delivery:
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def pid(message: str):
    return hl7.parse(message).segment("PID")


# ---------------------------------------------------------------- receiver


def test_an_mdm_only_receiver_gets_every_note_with_the_receiver_check(world, mdm_only):
    hl7_connection(world, mdm_only.url, hl7_patient_check="receiver", hl7_assigning_authority="CLINIC_A")
    notes = [signed_note(world, family_name=f"Okafor{i}", date_of_birth=date(1980 + i, 2, 3)) for i in range(3)]
    for note in notes:
        mdm_only.add_patient(note.client)
    deliveries = [send(note) for note in notes]
    assert [d.state for d in deliveries] == [Delivery.State.DELIVERED] * 3
    assert mdm_only.queries == []  # no PDQ query was asked
    assert len(mdm_only.filed) == 3
    first = pid(mdm_only.filed[0])
    assert str(first[3]) == f"{notes[0].client.ehr_patient_id}^^^CLINIC_A^MR"
    assert str(first[5]) == "Okafor0^Jordan"
    assert str(first[7]) == "19800203"
    assert not Alert.objects.filter(practice=world.practice).exists()


def test_the_same_receiver_with_the_pdq_check_delivers_nothing(world, mdm_only):
    # Why the receiver check exists: this channel answers AR to the query.
    hl7_connection(world, mdm_only.url)
    note = signed_note(world)
    mdm_only.add_patient(note.client)
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert "refused the patient query (AR)" in delivery.last_error
    assert mdm_only.received == []


def test_an_unknown_patient_fails_with_the_receivers_text_and_is_not_retried(world, mdm_only):
    hl7_connection(world, mdm_only.url, hl7_patient_check="receiver", hl7_assigning_authority="CLINIC_A")
    note = signed_note(world)
    delivery = send(note)
    patient_id = note.client.ehr_patient_id
    assert delivery.state == Delivery.State.FAILED
    assert delivery.next_attempt_at is None and delivery.attempts == 1
    assert f"answered AE about the patient: Unknown patient {patient_id}" in delivery.last_error
    alert = Alert.objects.get(delivery=delivery)
    assert alert.kind == Alert.Kind.PATIENT_MISMATCH and f"Unknown patient {patient_id}" in alert.reason
    assert list(delivery.attempt_log.values_list("outcome", flat=True)) == [DeliveryAttempt.Outcome.FAILED]
    # Nothing is resent: a nudge finds a failed delivery and leaves it alone.
    assert delivery_send(delivery_id=delivery.pk).state == Delivery.State.FAILED
    assert len(mdm_only.received) == 1 and mdm_only.filed == []


def test_another_date_of_birth_is_refused_by_the_receiver(world, mdm_only):
    hl7_connection(world, mdm_only.url, hl7_patient_check="receiver", hl7_assigning_authority="CLINIC_A")
    note = signed_note(world, date_of_birth=date(1990, 4, 12))
    mdm_only.add_patient(note.client, birth_date="1991-04-12")
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.PATIENT_MISMATCH
    assert mdm_only.filed == []


def test_the_id_in_another_domain_is_refused_by_the_receiver(world, mdm_only):
    # The receiver's ids live in CLINIC_A; the connection says LAB_B.
    hl7_connection(world, mdm_only.url, hl7_patient_check="receiver", hl7_assigning_authority="LAB_B")
    note = signed_note(world)
    mdm_only.add_patient(note.client)
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert "^^^LAB_B^MR" in str(pid(mdm_only.received[0])[3])
    assert mdm_only.filed == []


def test_a_refusal_that_does_not_name_the_patient_is_a_dead_letter_not_a_mismatch(world):
    receiver = MLLPReceiver("AR", text="Document type not allowed on this channel").start()
    try:
        hl7_connection(world, receiver.url, hl7_patient_check="receiver", hl7_assigning_authority="CLINIC_A")
        delivery = send(signed_note(world))
        assert delivery.state == Delivery.State.FAILED
        assert "answered AR: Document type not allowed" in delivery.last_error
        assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.DEAD_LETTER
    finally:
        receiver.stop()


ACK = "MSH|^~\\&|EHR||PSYFI||20260101000000||ACK^T02^ACK|A1|P|2.5.1\rMSA|AE|PSYFI1"


@pytest.mark.parametrize(
    ("segments", "text", "names"),
    [
        ("\rERR||PID^1^3|204^Unknown key identifier^HL70357|E", "", True),
        ("\rERR|PID^1^3", "", True),  # HL7 v2.3 puts the location in ERR-1
        ("", "No such patient", True),
        ("", "Record PAT1 not on file", True),
        ("\rERR||TXA^1^2|103^Table value not found^HL70357|E", "Bad document type", False),
    ],
)
def test_a_refusal_names_the_patient_by_err_location_or_text(segments, text, names):
    ack = hl7.parse(ACK + segments)
    assert ack_names_patient(ack, text=text, patient_id="PAT1") is names


# ---------------------------------------------------------------- pdq with an assigning authority


def test_the_pdq_query_names_the_assigning_authority_and_picks_that_domains_patient(world, pdq_receiver):
    hl7_connection(world, pdq_receiver.url, hl7_assigning_authority="CLINIC_A")
    note = signed_note(world, date_of_birth=date(1990, 4, 12))
    # A multi-domain EHR: the same id is another person in the lab's domain.
    pdq_receiver.add_patient(note.client, authority="LAB_B", birth_date="1955-01-01")
    pdq_receiver.add_patient(note.client, authority="CLINIC_A")
    delivery = send(note)
    assert delivery.state == Delivery.State.DELIVERED
    qpd = hl7.parse(pdq_receiver.queries[0]).segment("QPD")
    assert str(qpd[3]) == f"@PID.3.1^{note.client.ehr_patient_id}~@PID.3.4.1^CLINIC_A"
    assert str(pid(pdq_receiver.received[0])[3]) == f"{note.client.ehr_patient_id}^^^CLINIC_A^MR"


def test_without_an_assigning_authority_two_domains_are_an_ambiguous_patient(world, pdq_receiver):
    hl7_connection(world, pdq_receiver.url)
    note = signed_note(world)
    pdq_receiver.add_patient(note.client, authority="LAB_B", birth_date="1955-01-01")
    pdq_receiver.add_patient(note.client, authority="CLINIC_A")
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED and "2 patients" in delivery.last_error
    assert pdq_receiver.received == []


def test_an_id_only_in_another_domain_is_a_patient_mismatch(world, pdq_receiver):
    hl7_connection(world, pdq_receiver.url, hl7_assigning_authority="CLINIC_A")
    note = signed_note(world)
    pdq_receiver.add_patient(note.client, authority="LAB_B")
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert "in assigning authority CLINIC_A" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.PATIENT_MISMATCH
    assert pdq_receiver.received == []


def test_an_oid_authority_is_sent_and_matched_as_a_universal_id(world, pdq_receiver):
    oid = "2.16.840.1.113883.3.72.5.9.1"
    hl7_connection(world, pdq_receiver.url, hl7_assigning_authority=oid)
    note = signed_note(world)
    pdq_receiver.add_patient(note.client, authority=oid)
    delivery = send(note)
    assert delivery.state == Delivery.State.DELIVERED
    assert str(hl7.parse(pdq_receiver.queries[0]).segment("QPD")[3]).endswith(f"~@PID.3.4.2^{oid}~@PID.3.4.3^ISO")
    assert str(pid(pdq_receiver.received[0])[3]) == f"{note.client.ehr_patient_id}^^^&{oid}&ISO^MR"


# ---------------------------------------------------------------- the connection


def test_a_connection_keeps_the_pdq_check_unless_told_otherwise(world):
    connection = hl7_connection(world, "mllp://127.0.0.1:2575")
    assert connection.hl7_patient_check == EHRConnection.HL7PatientCheck.PDQ
    assert connection.hl7_assigning_authority == ""


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"hl7_patient_check": "receiver"}, "hl7_assigning_authority", "needs the assigning authority"),
        (
            {
                "hl7_patient_check": "receiver",
                "hl7_assigning_authority": "A",
                "patient_query_url": "mllp://127.0.0.1:9",
            },
            "patient_query_url",
            "sends no patient query",
        ),
        ({"hl7_patient_check": "ask-nobody"}, "hl7_patient_check", "Unknown patient check"),
        ({"hl7_assigning_authority": "CLINIC|A"}, "hl7_assigning_authority", "namespace id"),
        ({"hl7_assigning_authority": "X" * 21}, "hl7_assigning_authority", "at most 20"),
    ],
)
def test_a_bad_patient_check_setting_is_refused_and_nothing_is_written(world, kwargs, field, message):
    with pytest.raises(ConnectionInvalid, match=message) as exc:
        hl7_connection(world, "mllp://127.0.0.1:2575", **kwargs)
    assert exc.value.field == field
    assert not EHRConnection.objects.filter(practice=world.practice).exists()


def test_a_fhir_connection_takes_no_hl7_patient_check(world):
    for kwargs in ({"hl7_patient_check": "receiver"}, {"hl7_assigning_authority": "CLINIC_A"}):
        with pytest.raises(ConnectionInvalid, match="Only HL7"):
            connection_create(
                practice=world.practice,
                name="FHIR",
                kind=EHRConnection.Kind.FHIR,
                base_url="https://ehr.example.org/fhir",
                is_sandbox=True,
                **kwargs,
            )


def test_the_connection_page_explains_both_checks_and_saves_the_receiver_check(world, login_as):
    browser = login_as(world.admin)
    page = browser.get("/integrations/connections/").content.decode()
    assert "IHE PDQ query (QBP^Q22)" in page and "accept only MDM messages" in page
    assert "refuse a patient it does not know" in page
    form = {
        "name": "Interface engine",
        "kind": "hl7",
        "base_url": "mllp://127.0.0.1:2575",
        "hl7_patient_check": "receiver",
        "hl7_assigning_authority": "CLINIC_A",
        "is_sandbox": "on",
        "auth_kind": "none",
    }
    refused = browser.post("/integrations/connections/", {**form, "hl7_assigning_authority": ""})
    assert refused.status_code == 400 and "needs the assigning authority" in refused.content.decode()
    assert not EHRConnection.objects.filter(practice=world.practice).exists()
    assert browser.post("/integrations/connections/", form).status_code == 302
    connection = EHRConnection.objects.get(practice=world.practice, is_active=True)
    assert (connection.hl7_patient_check, connection.hl7_assigning_authority) == ("receiver", "CLINIC_A")
    listing = browser.get("/integrations/connections/").content.decode()
    assert "patient check: The receiver checks" in listing and "assigning authority CLINIC_A" in listing


# ---------------------------------------------------------------- the HL7 sandbox (manage.py integrations_mllp_sandbox)


def sandbox_for(world, check: str, authority: str = "") -> SandboxMLLP:
    # Clients are read here (the test's transaction), not in the server's thread.
    patients = sandbox_patients(world.practice.pk)
    return SandboxMLLP(check=check, authority=authority, port=0, patients=lambda: patients).start()


@pytest.mark.parametrize("check", ["pdq", "receiver"])
def test_the_hl7_sandbox_takes_a_note_under_either_check(world, check):
    note = signed_note(world)
    sandbox = sandbox_for(world, check, authority="PSYFI_SANDBOX")
    try:
        hl7_connection(world, sandbox.url, hl7_patient_check=check, hl7_assigning_authority="PSYFI_SANDBOX")
        delivery = send(note)
        assert delivery.state == Delivery.State.DELIVERED, delivery.last_error
        assert sandbox.answered == (2 if check == "pdq" else 1)  # the query, then the MDM; or the MDM alone
    finally:
        sandbox.stop()


def test_the_hl7_sandbox_knows_synthetic_clients_only(world):
    synthetic = client_factory(world.practice, world.clinician, synthetic=True)
    real = client_factory(world.practice, world.clinician, synthetic=False)
    ids = {p.ehr_id for p in sandbox_patients(world.practice.pk)}
    assert synthetic.ehr_patient_id in ids and real.ehr_patient_id not in ids


SANDBOX_PATIENT = SandboxPatient("PAT1", "Doe", "Jane", "19900412")
SANDBOX_MDM = (
    "MSH|^~\\&|PSYFI||EHR||20261124160200||MDM^T02^MDM_T02|PSYFI000000000007|P|2.5.1\rPID|||{pid3}||{pid5}||{pid7}"
)


@pytest.mark.parametrize(
    ("pid3", "pid5", "pid7", "code"),
    [
        ("PAT1^^^PSYFI_SANDBOX^MR", "Doe^Jane", "19900412", "AA"),
        ("PAT2^^^PSYFI_SANDBOX^MR", "Doe^Jane", "19900412", "AE"),
        ("PAT1^^^OTHER^MR", "Doe^Jane", "19900412", "AE"),
        ("PAT1^^^PSYFI_SANDBOX^MR", "Roe^Jane", "19900412", "AE"),
        ("PAT1^^^PSYFI_SANDBOX^MR", "Doe^Jane", "19910412", "AE"),
    ],
)
def test_the_receiver_sandbox_refuses_a_patient_it_does_not_know(pid3, pid5, pid7, code):
    message = hl7.parse(SANDBOX_MDM.format(pid3=pid3, pid5=pid5, pid7=pid7))
    answer = hl7.parse(
        sandbox_mllp_answer(message, check="receiver", authority="PSYFI_SANDBOX", patients=[SANDBOX_PATIENT])
    )
    assert str(answer.segment("MSA")[1]) == code
    if code == "AE":
        assert "Unknown patient" in str(answer.segment("MSA")[3])
        assert ack_names_patient(answer, text=str(answer.segment("MSA")[3]), patient_id="PAT1")


def test_the_receiver_sandbox_refuses_a_pdq_query_and_the_pdq_sandbox_answers_it():
    query = hl7.parse(pdq_query_build(patient_id="PAT1", query_id="PDQ1", now=SIGNED, assigning_authority="A1"))
    refused = hl7.parse(sandbox_mllp_answer(query, check="receiver", authority="A1", patients=[SANDBOX_PATIENT]))
    assert str(refused.segment("MSA")[1]) == "AR"
    answer = sandbox_mllp_answer(query, check="pdq", authority="A1", patients=[SANDBOX_PATIENT])
    assert (
        pdq_answer_check(answer, query_id="PDQ1", patient_id="PAT1", birth_date="1990-04-12", assigning_authority="A1")
        is None
    )


def test_the_sandbox_command_refuses_the_receiver_check_without_an_authority(world, settings):
    with pytest.raises(CommandError, match="needs --authority"):
        call_command("integrations_mllp_sandbox", practice=world.practice.slug, check="receiver")
    settings.SANDBOX_EHR_ENABLED = False
    with pytest.raises(CommandError, match="SANDBOX_EHR_ENABLED"):
        call_command("integrations_mllp_sandbox", practice=world.practice.slug)


def test_a_receiver_check_without_an_authority_set_outside_the_form_sends_nothing(world, mdm_only):
    connection = hl7_connection(world, mdm_only.url)
    EHRConnection.objects.filter(pk=connection.pk).update(hl7_patient_check="receiver")  # as the Django admin could
    note = signed_note(world)
    mdm_only.add_patient(note.client)
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED and "needs the assigning authority" in delivery.last_error
    assert Alert.objects.get(delivery=delivery).kind == Alert.Kind.CONFIGURATION
    assert mdm_only.received == [] and mdm_only.queries == []
