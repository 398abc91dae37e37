"""Where the EHR supports Provenance, a delivery is complete only when the
note and its Provenance are both stored; a refused or lost Provenance is
retried (never the note again), reconciled notes get one too, and an EHR
without Provenance support says so on the note."""

import pytest

from integrations.models import Delivery
from integrations.services import delivery_send
from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import FakeEHR, fhir_connection


@pytest.fixture
def fake_ehr():
    ehr = FakeEHR().start()
    ehr.provenance_supported = True
    ehr.retry_after = "0"
    yield ehr
    ehr.stop()


def _delivery(world, ehr: FakeEHR) -> Delivery:
    fhir_connection(world.practice, ehr.base_url)
    client = client_factory(world.practice, world.clinician)
    ehr.add_patient(client)
    note = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    return Delivery.objects.get(note=note)


def send(delivery: Delivery) -> Delivery:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def test_a_delivery_is_complete_with_the_note_and_its_provenance(world, fake_ehr):
    delivery = send(_delivery(world, fake_ehr))
    assert delivery.state == Delivery.State.DELIVERED
    assert delivery.provenance_state == Delivery.ProvenanceState.STORED
    [provenance] = fake_ehr.provenances
    assert provenance["target"] == [{"reference": f"DocumentReference/{delivery.ehr_id}"}]
    assert delivery.provenance_ehr_id == provenance["id"]


def test_a_refused_provenance_is_owed_and_sent_later_without_resending_the_note(world, fake_ehr):
    delivery = _delivery(world, fake_ehr)
    fake_ehr.provenance_rate_503 = 1.0
    send(delivery)
    assert delivery.state == Delivery.State.RETRYING
    assert delivery.provenance_state == Delivery.ProvenanceState.OWED
    assert delivery.ehr_id == fake_ehr.documents[0]["id"]  # the note is there and we know it
    assert "its Provenance is owed" in delivery.last_error
    send(delivery)  # still refused
    assert delivery.state == Delivery.State.RETRYING and fake_ehr.provenances == []

    fake_ehr.provenance_rate_503 = 0.0
    send(delivery)
    assert delivery.state == Delivery.State.DELIVERED
    assert delivery.provenance_state == Delivery.ProvenanceState.STORED
    assert len(fake_ehr.documents) == 1 and len(fake_ehr.provenances) == 1


def test_a_provenance_stored_before_a_lost_answer_is_found_not_duplicated(world, fake_ehr):
    delivery = _delivery(world, fake_ehr)
    fake_ehr.provenance_rate_503 = 1.0
    send(delivery)
    # The EHR stored the Provenance but its answer never came: it is there already.
    fake_ehr.provenances.append(
        {
            "resourceType": "Provenance",
            "id": "p-kept",
            "target": [{"reference": f"DocumentReference/{delivery.ehr_id}"}],
        }
    )
    fake_ehr.provenance_rate_503 = 0.0
    send(delivery)
    assert delivery.state == Delivery.State.DELIVERED and delivery.provenance_ehr_id == "p-kept"
    assert len(fake_ehr.provenances) == 1


def test_a_reconciled_note_gets_its_provenance_too(world, fake_ehr):
    fake_ehr.conditional_create = False
    fake_ehr.drop_first_write_per_identifier = True  # the note is stored, the answer lost
    delivery = send(_delivery(world, fake_ehr))
    assert delivery.state == Delivery.State.UNKNOWN
    send(delivery)  # reconciliation finds it
    assert delivery.state == Delivery.State.DELIVERED
    assert len(fake_ehr.documents) == 1
    assert delivery.provenance_state == Delivery.ProvenanceState.STORED
    assert fake_ehr.provenances[0]["target"][0]["reference"] == f"DocumentReference/{delivery.ehr_id}"


def test_an_ehr_without_provenance_support_is_recorded_on_the_delivery(world, fake_ehr, login_as):
    fake_ehr.provenance_supported = False
    delivery = send(_delivery(world, fake_ehr))
    assert delivery.state == Delivery.State.DELIVERED
    assert delivery.provenance_state == Delivery.ProvenanceState.UNSUPPORTED
    assert fake_ehr.provenances == []
    page = login_as(world.clinician).get(f"/notes/{delivery.note_id}/").content.decode()
    assert "Provenance: not supported by this EHR" in page
