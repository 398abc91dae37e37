"""Reliability with a real Celery worker process on real Redis and
PostgreSQL, against a real HTTP EHR on loopback (issue 7, point 7)."""

import time

import pytest

from integrations.models import Alert, Delivery, DeliveryAttempt
from integrations.services import delivery_sweep
from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import FakeEHR, fhir_connection, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def sign_notes(world, ehr: FakeEHR, count: int) -> list[Delivery]:
    notes = []
    for _ in range(count):
        client = client_factory(world.practice, world.clinician)
        ehr.add_patient(client)  # the EHR knows the patient before anything is sent
        note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
        notes.append(note_sign_now(note, world.clinician))
    return list(Delivery.objects.filter(note__in=notes))


def states() -> dict[str, int]:
    result: dict[str, int] = {}
    for state in Delivery.objects.values_list("state", flat=True):
        result[state] = result.get(state, 0) + 1
    return result


def all_delivered(count: int):
    return lambda: Delivery.objects.filter(state=Delivery.State.DELIVERED).count() == count


def assert_exactly_one_copy_each(ehr: FakeEHR, deliveries: list[Delivery]) -> None:
    copies = ehr.copies()
    for delivery in deliveries:
        key = ("urn:psyfi-review:demo:note-id", delivery.idempotency_key)
        assert copies.get(key) == 1, (key, copies.get(key))
    assert len(ehr.documents) == len(deliveries)
    for delivery in Delivery.objects.filter(pk__in=[d.pk for d in deliveries]):
        assert delivery.ehr_id in {d["id"] for d in ehr.documents}


def test_a_200_notes_with_30_percent_503_are_all_delivered_once(world, worker_factory):
    ehr = FakeEHR(conditional_create=True).start()
    try:
        ehr.rate_503 = 0.3
        fhir_connection(world.practice, ehr.base_url)
        worker_factory()
        started = time.monotonic()
        deliveries = sign_notes(world, ehr, 200)
        print(f"signed 200 in {time.monotonic() - started:.1f}s")
        assert wait_until(all_delivered(200), timeout=180), states()
        print(f"delivered 200 in {time.monotonic() - started:.1f}s")
        assert_exactly_one_copy_each(ehr, deliveries)
        # The 503s really happened and were retried.
        assert DeliveryAttempt.objects.filter(outcome="retry").exists()
    finally:
        ehr.stop()


def test_b_a_worker_killed_mid_delivery_loses_and_doubles_nothing(world, worker_factory, settings):
    settings.PSYFI_DELIVERY_STALE_SECONDS = 4
    settings.PSYFI_DELIVERY_SWEEP_SECONDS = 1
    # No conditional create: only our ledger and reconciliation prevent doubles.
    ehr = FakeEHR(conditional_create=False).start()
    try:
        ehr.post_delay = 0.8  # the EHR commits, then takes its time to answer
        fhir_connection(world.practice, ehr.base_url)
        worker = worker_factory()
        deliveries = sign_notes(world, ehr, 30)
        assert wait_until(lambda: ehr.posts >= 5, timeout=60)
        worker.kill()
        killed_mid_send = Delivery.objects.filter(state=Delivery.State.SENDING).count()
        assert killed_mid_send >= 1, states()
        ehr.post_delay = 0.0
        worker_factory()
        # The beat sweeper's job, run here on a short period.
        assert wait_until(all_delivered(30), timeout=120, interval=1.0, on_tick=delivery_sweep), states()
        assert_exactly_one_copy_each(ehr, deliveries)
    finally:
        ehr.stop()


@pytest.mark.parametrize("conditional_create", [True, False], ids=["conditional-create", "reconciliation"])
def test_c_a_lost_acknowledgement_after_the_ehr_committed_makes_no_duplicate(world, worker_factory, conditional_create):
    ehr = FakeEHR(conditional_create=conditional_create).start()
    try:
        ehr.drop_first_write_per_identifier = True
        fhir_connection(world.practice, ehr.base_url)
        worker_factory()
        deliveries = sign_notes(world, ehr, 10)
        assert wait_until(all_delivered(10), timeout=90), states()
        assert_exactly_one_copy_each(ehr, deliveries)
        assert len(ehr._dropped) == 10  # every first answer was really lost
        if conditional_create:
            assert DeliveryAttempt.objects.filter(outcome="retry").count() >= 10
        else:
            assert DeliveryAttempt.objects.filter(outcome="unknown").count() >= 10
            assert DeliveryAttempt.objects.filter(outcome="reconciled").count() == 10
    finally:
        ehr.stop()


def test_d_an_ehr_refusing_connections_delays_alerts_and_then_drains(world, worker_factory):
    ehr = FakeEHR(conditional_create=True)  # not listening yet: connections are refused
    try:
        fhir_connection(world.practice, ehr.base_url)
        worker_factory()
        deliveries = sign_notes(world, ehr, 8)
        assert wait_until(lambda: Alert.objects.filter(kind=Alert.Kind.UNREACHABLE).exists(), timeout=60), states()
        assert wait_until(lambda: all(d.attempts >= 2 for d in Delivery.objects.all()), timeout=60), list(
            Delivery.objects.values_list("attempts", "state")
        )
        assert not Delivery.objects.exclude(state__in=[Delivery.State.RETRYING, Delivery.State.SENDING]).exists()
        ehr.start()
        assert wait_until(all_delivered(8), timeout=90), states()
        assert_exactly_one_copy_each(ehr, deliveries)
    finally:
        ehr.stop()


def test_e_an_ehr_4xx_with_an_operation_outcome_fails_at_once_with_its_message(world, worker_factory, login_as):
    ehr = FakeEHR().start()
    try:
        ehr.reject_with = (422, "Epic 59012: an encounter is required")
        fhir_connection(world.practice, ehr.base_url)
        worker_factory()
        sign_notes(world, ehr, 3)
        assert wait_until(lambda: Delivery.objects.filter(state=Delivery.State.FAILED).count() == 3, timeout=60), (
            states()
        )
        time.sleep(2)  # nothing more is sent
        assert ehr.posts == 3
        for delivery in Delivery.objects.all():
            assert delivery.attempts == 1
            assert "Epic 59012: an encounter is required" in delivery.last_error
        page = login_as(world.admin).get("/integrations/deliveries/")
        assert "Epic 59012: an encounter is required" in page.content.decode()
    finally:
        ehr.stop()
