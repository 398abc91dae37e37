"""Invariant 3: a transient fault delays a note, never drops it. Retries run
for a time budget, not a count; the patient check once passed is not repeated
on every retry; a delivery retrying for over an hour raises an alert."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditEvent
from integrations.models import Alert, Delivery, DeliveryAttempt
from integrations.services import delivery_send
from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import FakeEHR, fhir_connection, wait_until


@pytest.fixture
def fake_ehr():
    ehr = FakeEHR().start()
    yield ehr
    ehr.stop()


@pytest.fixture
def delivery(world, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url)
    client = client_factory(world.practice, world.clinician)
    fake_ehr.add_patient(client)
    note = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    return Delivery.objects.get(note=note)


def send(delivery: Delivery) -> Delivery:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def _patient_reads(ehr: FakeEHR) -> int:
    return sum(1 for method, path, _ in ehr.requests if method == "GET" and path.startswith("/fhir/Patient/"))


def test_fifty_transient_failures_leave_the_delivery_retrying_not_dead(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    fake_ehr.fault_status = [503, 429]
    fake_ehr.retry_after = "0"
    for _ in range(50):
        send(delivery)
    assert delivery.state == Delivery.State.RETRYING and delivery.attempts == 50
    assert not Alert.objects.filter(delivery=delivery, kind=Alert.Kind.DEAD_LETTER).exists()
    fake_ehr.rate_503 = 0.0
    assert send(delivery).state == Delivery.State.DELIVERED
    assert len(fake_ehr.documents) == 1


def test_the_budget_counts_from_the_first_attempt(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    fake_ehr.retry_after = "0"
    send(delivery)
    first = delivery.first_attempt_at
    assert first is not None
    send(delivery)
    assert delivery.first_attempt_at == first  # later attempts do not move it
    with override_settings(PSYFI_DELIVERY_RETRY_BUDGET_HOURS=72):
        Delivery.objects.filter(pk=delivery.pk).update(first_attempt_at=timezone.now() - timedelta(hours=71))
        assert send(delivery).state == Delivery.State.RETRYING
        Delivery.objects.filter(pk=delivery.pk).update(first_attempt_at=timezone.now() - timedelta(hours=73))
        assert send(delivery).state == Delivery.State.FAILED
    assert "Gave up after 72 hours of retrying" in delivery.last_error
    assert Alert.objects.filter(delivery=delivery, kind=Alert.Kind.DEAD_LETTER).count() == 1


def test_a_permanent_failure_is_still_a_dead_letter_at_once(delivery, fake_ehr):
    fake_ehr.reject_with = (422, "Encounter is required")
    assert send(delivery).state == Delivery.State.FAILED
    assert delivery.attempts == 1


def test_the_patient_check_is_not_repeated_on_every_retry(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    fake_ehr.retry_after = "0"
    with override_settings(PSYFI_PATIENT_RECHECK_HOURS=24):
        # The first attempt's patient read must pass for a check to be on record.
        fake_ehr.rate_503 = 0.0
        fake_ehr.reject_with = (503, "busy")  # every POST a 503, reads fine
        for _ in range(5):
            send(delivery)
        assert delivery.state == Delivery.State.RETRYING
        assert _patient_reads(fake_ehr) == 1
        assert delivery.patient_checked_at is not None
        # Once the check is older than the re-check age, it is read again.
        Delivery.objects.filter(pk=delivery.pk).update(patient_checked_at=timezone.now() - timedelta(hours=25))
        send(delivery)
        assert _patient_reads(fake_ehr) == 2


def test_a_delivery_retrying_for_over_an_hour_raises_one_alert(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    fake_ehr.retry_after = "0"
    send(delivery)
    assert not Alert.objects.filter(kind=Alert.Kind.LONG_RETRY).exists()
    Delivery.objects.filter(pk=delivery.pk).update(first_attempt_at=timezone.now() - timedelta(minutes=61))
    send(delivery)
    send(delivery)
    [alert] = Alert.objects.filter(kind=Alert.Kind.LONG_RETRY, delivery=delivery)
    assert "Retrying since" in alert.reason and alert.resolved_at is None
    assert delivery.state == Delivery.State.RETRYING  # an alert, not a dead letter


def test_a_long_retry_alert_is_resolved_when_the_delivery_gets_through(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    fake_ehr.retry_after = "0"
    send(delivery)
    Delivery.objects.filter(pk=delivery.pk).update(first_attempt_at=timezone.now() - timedelta(minutes=61))
    send(delivery)
    assert Alert.objects.filter(kind=Alert.Kind.LONG_RETRY, delivery=delivery, resolved_at__isnull=True).exists()
    fake_ehr.rate_503 = 0.0
    assert send(delivery).state == Delivery.State.DELIVERED
    [alert] = Alert.objects.filter(kind=Alert.Kind.LONG_RETRY, delivery=delivery)
    assert alert.resolved_at is not None and alert.resolved_by is None  # closed by the system
    assert AuditEvent.objects.filter(action="alert.resolve", object_id=str(alert.pk)).count() == 1


def test_a_long_retry_alert_gives_way_to_the_dead_letter_alert(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    fake_ehr.retry_after = "0"
    send(delivery)
    Delivery.objects.filter(pk=delivery.pk).update(first_attempt_at=timezone.now() - timedelta(minutes=61))
    send(delivery)
    with override_settings(PSYFI_DELIVERY_RETRY_BUDGET_HOURS=1):
        assert send(delivery).state == Delivery.State.FAILED
    assert not Alert.objects.filter(kind=Alert.Kind.LONG_RETRY, delivery=delivery, resolved_at__isnull=True).exists()
    assert Alert.objects.get(kind=Alert.Kind.DEAD_LETTER, delivery=delivery).resolved_at is None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_200_notes_through_40_percent_transient_faults_are_all_delivered_once(world, worker_factory):
    ehr = FakeEHR(conditional_create=True).start()
    try:
        ehr.rate_503 = 0.4
        ehr.fault_status = [503, 503, 503, 429]
        ehr.retry_after = "0"
        fhir_connection(world.practice, ehr.base_url)
        notes = []
        for _ in range(200):
            client = client_factory(world.practice, world.clinician)
            ehr.add_patient(client)
            note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
            notes.append(note_sign_now(note, world.clinician))
        worker_factory()
        delivered = lambda: Delivery.objects.filter(state=Delivery.State.DELIVERED).count() == 200  # noqa: E731
        assert wait_until(delivered, timeout=600), dict(
            (s, Delivery.objects.filter(state=s).count()) for s in Delivery.State.values
        )
        assert not Delivery.objects.filter(state=Delivery.State.FAILED).exists()
        assert not Alert.objects.filter(kind=Alert.Kind.DEAD_LETTER).exists()
        copies = ehr.copies()
        assert len(ehr.documents) == 200 and set(copies.values()) == {1}
        # The faults really happened and were retried, some many times.
        assert DeliveryAttempt.objects.filter(outcome="retry").count() >= 100
    finally:
        ehr.stop()
