"""Invariants 1, 10 and 11 at the delivery layer itself."""

import pytest

from integrations.errors import DeliveryRefused
from integrations.models import Alert, Delivery, DeliveryAttempt
from integrations.services import delivery_check_deliverable, delivery_create_for_note, delivery_send
from notes.models import Note
from tests.factories import client_factory, note_factory
from tests.integrations.support import fhir_connection


def test_an_unsigned_note_cannot_get_a_delivery(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with pytest.raises(DeliveryRefused, match="Only a signed note"):
        delivery_create_for_note(note=note)
    assert not Delivery.objects.filter(note=note).exists()


def test_a_delivery_whose_note_is_no_longer_signed_is_refused_at_send_time(world, sign_for, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    # Whatever the admin or a bug does to the note, the transport refuses.
    Note.objects.filter(pk=note.pk).update(state=Note.State.IN_REVIEW)
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED
    assert "Only a signed note" in delivery.last_error
    assert fake_ehr.posts == 0


def test_a_psychotherapy_note_is_signed_but_never_delivered(world, sign_for):
    from notes.models import NoteTemplate

    NoteTemplate.objects.filter(practice=world.practice, key="soap").update(is_psychotherapy_notes=True)
    note = sign_for(world)
    assert note.state == Note.State.SIGNED
    assert not Delivery.objects.filter(note=note).exists()
    with pytest.raises(DeliveryRefused, match="Psychotherapy"):
        delivery_check_deliverable(note)


def test_a_sandbox_connection_refuses_a_real_client(world, sign_for, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url, sandbox=True)
    client = client_factory(world.practice, world.clinician, synthetic=False)
    fake_ehr.add_patient(client)
    delivery = Delivery.objects.get(note=sign_for(world, client=client))
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED
    assert "synthetic clients only" in delivery.last_error
    assert fake_ehr.posts == 0 and fake_ehr.requests == []
    assert Alert.objects.filter(delivery=delivery).exists()


def test_a_production_connection_never_receives_a_synthetic_client(world, sign_for, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url, sandbox=False)
    client = client_factory(world.practice, world.clinician, synthetic=True)
    fake_ehr.add_patient(client)
    delivery = Delivery.objects.get(note=sign_for(world, client=client))
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED
    assert "never receives a synthetic client" in delivery.last_error
    assert fake_ehr.requests == []


def test_a_matching_client_and_connection_deliver(world, sign_for, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url, sandbox=False)
    client = client_factory(world.practice, world.clinician, synthetic=False)
    fake_ehr.add_patient(client)
    delivery = Delivery.objects.get(note=sign_for(world, client=client))
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.DELIVERED
    assert delivery.ehr_id == fake_ehr.documents[0]["id"]
    assert DeliveryAttempt.objects.get(delivery=delivery).outcome == "sent"


def test_the_delivery_row_is_written_with_the_signature_and_pins_connection_and_mapping(world, sign_for, fake_ehr):
    from integrations.mapping import mapping_default_document
    from integrations.services import mapping_save
    from notes.models import NoteTemplate

    connection = fhir_connection(world.practice, fake_ehr.base_url)
    template = NoteTemplate.objects.get(practice=world.practice, key="soap")
    sections = list(template.versions.get(is_active=True).sections.values("key", "label", "loinc_code"))
    v1 = mapping_save(template=template, document=mapping_default_document(sections))
    note = sign_for(world)
    delivery = Delivery.objects.get(note=note)
    assert (delivery.connection, delivery.mapping, delivery.state) == (connection, v1, Delivery.State.PENDING)
    assert delivery.idempotency_key == f"{note.lineage}:{note.version}"
    # A later mapping version does not change what this note was signed under.
    mapping_save(template=template, document=mapping_default_document(sections))
    delivery.refresh_from_db()
    assert delivery.mapping == v1
