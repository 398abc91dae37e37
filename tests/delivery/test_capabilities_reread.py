"""What a FHIR server declares is read again: daily, and after an answer that
suggests a change. A server that turned conditional create off gets its lost
answers reconciled, not resent: no duplicate copies."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from integrations.models import Delivery, EHRConnection
from integrations.services import delivery_send
from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import FakeEHR, fhir_connection


@pytest.fixture
def fake_ehr():
    ehr = FakeEHR(conditional_create=True).start()
    ehr.retry_after = "0"
    yield ehr
    ehr.stop()


def _sign(world, ehr: FakeEHR) -> Delivery:
    client = client_factory(world.practice, world.clinician)
    ehr.add_patient(client)
    note = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    return Delivery.objects.get(note=note)


def _deliver(delivery: Delivery, tries: int = 6) -> Delivery:
    for _ in range(tries):
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
        delivery_send(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        if delivery.state == Delivery.State.DELIVERED:
            break
    return delivery


def _metadata_reads(ehr: FakeEHR) -> int:
    return sum(1 for method, path, _ in ehr.requests if method == "GET" and path == "/fhir/metadata")


def test_a_server_that_turned_conditional_create_off_gets_no_duplicates(world, fake_ehr):
    connection = fhir_connection(world.practice, fake_ehr.base_url)
    _deliver(_sign(world, fake_ehr))
    connection.refresh_from_db()
    assert connection.supports_conditional_create is True

    # An EHR update: conditional create off, and answers lost after the commit.
    fake_ehr.conditional_create = False
    fake_ehr.drop_first_write_per_identifier = True
    EHRConnection.objects.filter(pk=connection.pk).update(metadata_checked_at=timezone.now() - timedelta(hours=25))
    deliveries = [_sign(world, fake_ehr) for _ in range(5)]
    with override_settings(PSYFI_CAPABILITIES_MAX_AGE_HOURS=24):
        for delivery in deliveries:
            assert _deliver(delivery).state == Delivery.State.DELIVERED
    connection.refresh_from_db()
    assert connection.supports_conditional_create is False
    assert set(fake_ehr.copies().values()) == {1} and len(fake_ehr.documents) == 6


def test_capabilities_are_not_read_again_within_the_period(world, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url)
    with override_settings(PSYFI_CAPABILITIES_MAX_AGE_HOURS=24):
        for _ in range(3):
            _deliver(_sign(world, fake_ehr))
    assert _metadata_reads(fake_ehr) == 1


def test_a_412_to_a_conditional_create_makes_the_next_delivery_read_them_again(world, fake_ehr):
    connection = fhir_connection(world.practice, fake_ehr.base_url)
    _deliver(_sign(world, fake_ehr))
    fake_ehr.reject_with = (412, "If-None-Exist is not supported any more")
    delivery = _sign(world, fake_ehr)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    delivery_send(delivery_id=delivery.pk)
    connection.refresh_from_db()
    assert connection.metadata_checked_at is None  # stale: read before the next write
    fake_ehr.reject_with = None
    before = _metadata_reads(fake_ehr)
    _deliver(delivery)
    assert _metadata_reads(fake_ehr) == before + 1


def test_unconfirmed_support_turns_a_lost_answer_into_a_reconciliation(world, fake_ehr):
    # /metadata cannot be read now: what was declared a day ago is not trusted
    # to make a resend safe, so a lost answer is searched for first.
    connection = fhir_connection(world.practice, fake_ehr.base_url)
    _deliver(_sign(world, fake_ehr))
    EHRConnection.objects.filter(pk=connection.pk).update(metadata_checked_at=timezone.now() - timedelta(hours=25))
    fake_ehr.conditional_create = False  # it silently stopped deduplicating
    fake_ehr.drop_first_write_per_identifier = True
    delivery = _sign(world, fake_ehr)
    fake_ehr.metadata_broken = True
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.UNKNOWN and delivery.needs_reconcile
    fake_ehr.metadata_broken = False
    assert _deliver(delivery).state == Delivery.State.DELIVERED
    assert set(fake_ehr.copies().values()) == {1}
