"""What each EHR answer does to a delivery (ehr-standards.md §7), the patient
check (invariant 5), dead letter and reprocess."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from integrations.models import Alert, Delivery, DeliveryAttempt
from integrations.services import delivery_backoff, delivery_reprocess, delivery_send
from notes.errors import NotPermitted
from tests.integrations.support import fhir_connection


@pytest.fixture
def delivery(world, sign_for, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    return Delivery.objects.get(note=note)


def send(delivery: Delivery) -> Delivery:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def test_a_422_with_an_operation_outcome_fails_at_once_with_the_ehrs_message(delivery, fake_ehr):
    fake_ehr.reject_with = (422, "Encounter is required for this note type")
    send(delivery)
    assert delivery.state == Delivery.State.FAILED
    assert "Encounter is required for this note type" in delivery.last_error
    assert delivery.attempts == 1
    assert Alert.objects.filter(delivery=delivery, kind=Alert.Kind.DEAD_LETTER).exists()


def test_a_400_is_not_retried(delivery, fake_ehr):
    fake_ehr.reject_with = (400, "Malformed")
    assert send(delivery).state == Delivery.State.FAILED


def test_a_503_is_retried_with_the_retry_after_as_a_floor(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    fake_ehr.retry_after = "120"
    send(delivery)
    assert delivery.state == Delivery.State.RETRYING
    assert (delivery.next_attempt_at - delivery.updated_at).total_seconds() >= 119
    assert fake_ehr.documents == []


def test_a_retrying_delivery_is_not_claimed_before_it_is_due(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    send(delivery)
    fake_ehr.rate_503 = 0.0
    delivery_send(delivery_id=delivery.pk)  # a duplicate nudge, too early
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.RETRYING and delivery.attempts == 1


def test_backoff_grows_with_jitter_and_honours_retry_after():
    with override_settings(PSYFI_DELIVERY_BACKOFF_BASE=10, PSYFI_DELIVERY_BACKOFF_CAP=1000):
        first = [delivery_backoff(attempt=1, retry_after=None) for _ in range(50)]
        fourth = [delivery_backoff(attempt=4, retry_after=None) for _ in range(50)]
        assert all(5 <= d <= 10 for d in first) and len(set(first)) > 1
        assert all(40 <= d <= 80 for d in fourth)
        assert delivery_backoff(attempt=1, retry_after=300) == 300
        assert delivery_backoff(attempt=1, retry_after=99999) == 1000


def test_once_the_retry_budget_is_spent_the_delivery_is_a_dead_letter_with_an_alert(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    fake_ehr.retry_after = "0"
    with override_settings(PSYFI_DELIVERY_RETRY_BUDGET_HOURS=1):
        for _ in range(3):
            send(delivery)
        assert delivery.state == Delivery.State.RETRYING
        Delivery.objects.filter(pk=delivery.pk).update(first_attempt_at=timezone.now() - timedelta(hours=1, minutes=1))
        send(delivery)
    assert delivery.state == Delivery.State.FAILED
    assert "Gave up after 1 hours of retrying (4 attempts)" in delivery.last_error
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 4
    assert Alert.objects.filter(delivery=delivery, kind=Alert.Kind.DEAD_LETTER).exists()


def test_a_practice_admin_can_reprocess_a_failed_delivery(world, delivery, fake_ehr):
    fake_ehr.reject_with = (422, "nope")
    send(delivery)
    with pytest.raises(NotPermitted):
        delivery_reprocess(delivery=delivery, actor=world.clinician)
    delivery_reprocess(delivery=delivery, actor=world.admin)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.PENDING
    fake_ehr.reject_with = None
    assert send(delivery).state == Delivery.State.DELIVERED
    assert len(fake_ehr.documents) == 1


def test_a_wrong_date_of_birth_at_the_ehr_fails_alerts_and_never_writes(delivery, fake_ehr):
    fake_ehr.add_patient(delivery.note.client, birthDate="1971-01-01")
    send(delivery)
    assert delivery.state == Delivery.State.FAILED
    assert "Date of birth at the EHR" in delivery.last_error
    assert Alert.objects.filter(delivery=delivery, kind=Alert.Kind.PATIENT_MISMATCH).exists()
    assert fake_ehr.posts == 0


def test_another_patient_record_at_the_ehr_id_fails_and_never_writes(delivery, fake_ehr):
    pid = delivery.note.client.ehr_patient_id
    fake_ehr.patients[pid] = {"resourceType": "Patient", "id": "SOMEONE-ELSE", "birthDate": "1990-04-12"}
    send(delivery)
    assert delivery.state == Delivery.State.FAILED and "another record" in delivery.last_error
    assert fake_ehr.posts == 0


def test_an_unknown_patient_id_fails_and_never_writes(delivery, fake_ehr):
    fake_ehr.patients.clear()
    send(delivery)
    assert delivery.state == Delivery.State.FAILED and "has no Patient" in delivery.last_error
    assert fake_ehr.posts == 0


def test_conditional_create_is_used_only_where_the_server_declares_it(world, sign_for, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url)
    note = sign_for(world)
    fake_ehr.add_patient(note.client)
    send(Delivery.objects.get(note=note))
    posts = [h for method, path, h in fake_ehr.requests if method == "POST"]
    assert posts[0]["If-None-Exist"] == f"identifier=urn:psyfi-review:demo:note-id|{note.lineage}:1"


def test_no_if_none_exist_goes_to_a_server_without_conditional_create(world, sign_for):
    from tests.integrations.support import FakeEHR

    ehr = FakeEHR(conditional_create=False).start()
    try:
        fhir_connection(world.practice, ehr.base_url)
        note = sign_for(world)
        ehr.add_patient(note.client)
        send(Delivery.objects.get(note=note))
        posts = [h for method, path, h in ehr.requests if method == "POST"]
        assert "If-None-Exist" not in posts[0]
    finally:
        ehr.stop()


def test_a_429_is_retried_after_the_ehrs_retry_after(delivery, fake_ehr):
    fake_ehr.rate_503 = 1.0
    fake_ehr.fault_status = 429
    fake_ehr.retry_after = "45"
    send(delivery)
    assert delivery.state == Delivery.State.RETRYING
    assert (delivery.next_attempt_at - delivery.updated_at).total_seconds() >= 44
    assert "throttled" in delivery.last_error


def test_retry_after_is_read_as_seconds_or_an_http_date():
    from integrations.transports.base import retry_after_seconds

    assert retry_after_seconds("30") == 30
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    assert retry_after_seconds("soon") is None
