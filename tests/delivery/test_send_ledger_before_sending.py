"""Invariant: every request that may have reached the EHR has a ledger row.
The attempt is committed as `sending` before the bytes leave and completed
with the answer."""

import threading

import pytest
from django.db import connection

from integrations.models import Delivery, DeliveryAttempt
from integrations.services import delivery_send, delivery_sweep
from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import FakeEHR, fhir_connection, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _signed(world, ehr: FakeEHR, count: int) -> list[Delivery]:
    notes = []
    for _ in range(count):
        client = client_factory(world.practice, world.clinician)
        ehr.add_patient(client)
        note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
        notes.append(note_sign_now(note, world.clinician))
    return list(Delivery.objects.filter(note__in=notes).order_by("pk"))


def _send_then_close(delivery_id: int) -> None:
    """delivery_send on a thread of its own, as a worker thread runs it; its
    database connection is closed when it is done, or it would stay open
    until garbage collection and the test database could not be dropped."""
    try:
        delivery_send(delivery_id=delivery_id)
    finally:
        connection.close()


def test_the_attempt_is_on_record_while_the_ehr_is_still_answering(world):
    ehr = FakeEHR().start()
    try:
        fhir_connection(world.practice, ehr.base_url)
        [delivery] = _signed(world, ehr, 1)
        ehr.post_delay = 2.0  # the EHR has the note and takes its time to answer
        worker = threading.Thread(target=_send_then_close, args=(delivery.pk,))
        worker.start()
        assert wait_until(lambda: ehr.posts == 1, timeout=20, interval=0.02)
        # Read from this thread's own connection: the row was committed before the POST.
        [row] = DeliveryAttempt.objects.filter(delivery=delivery).values("outcome", "finished_at")
        assert row == {"outcome": DeliveryAttempt.Outcome.SENDING, "finished_at": None}
        worker.join(30)
        [attempt] = DeliveryAttempt.objects.filter(delivery=delivery)
        assert attempt.outcome == DeliveryAttempt.Outcome.SENT and attempt.finished_at is not None
        assert attempt.ehr_id == ehr.documents[0]["id"]
    finally:
        ehr.stop()


def test_the_sweeper_marks_an_unanswered_attempt_unknown(world, settings):
    settings.PSYFI_DELIVERY_STALE_SECONDS = 0
    ehr = FakeEHR().start()
    try:
        fhir_connection(world.practice, ehr.base_url)
        [delivery] = _signed(world, ehr, 1)
        # What a worker killed mid-send leaves: the row claimed, its attempt `sending`.
        Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.SENDING, attempts=1)
        DeliveryAttempt.objects.create(
            delivery=delivery, number=1, started_at=delivery.created_at, outcome=DeliveryAttempt.Outcome.SENDING
        )
        delivery_sweep()
        [attempt] = DeliveryAttempt.objects.filter(delivery=delivery)
        assert attempt.outcome == DeliveryAttempt.Outcome.UNKNOWN and attempt.finished_at is not None
        delivery.refresh_from_db()
        assert delivery.state == Delivery.State.UNKNOWN and delivery.needs_reconcile
    finally:
        ehr.stop()


@pytest.mark.worker
def test_a_worker_killed_after_the_ehr_committed_leaves_a_ledger_row_for_every_post(world, worker_factory, settings):
    settings.PSYFI_DELIVERY_STALE_SECONDS = 3
    ehr = FakeEHR(conditional_create=False).start()
    try:
        ehr.post_delay = 0.6  # commits, then answers late: the kill lands in between
        fhir_connection(world.practice, ehr.base_url)
        deliveries = _signed(world, ehr, 20)
        worker = worker_factory()
        assert wait_until(lambda: ehr.posts >= 6, timeout=120)
        worker.kill()
        # Every document the EHR stored has a ledger row of its delivery's attempts.
        by_identifier = {d.idempotency_key: d for d in deliveries}
        for document in list(ehr.documents):
            value = document["identifier"][0]["value"]
            delivery = by_identifier[value]
            assert DeliveryAttempt.objects.filter(delivery=delivery).exists(), value
        ehr.post_delay = 0.0
        worker_factory()
        delivered = lambda: Delivery.objects.filter(state=Delivery.State.DELIVERED).count() == 20  # noqa: E731
        assert wait_until(delivered, timeout=180, on_tick=delivery_sweep)
        # One copy each, and at least as many ledger rows as POSTs per delivery.
        assert set(ehr.copies().values()) == {1} and len(ehr.documents) == 20
        assert DeliveryAttempt.objects.filter(outcome=DeliveryAttempt.Outcome.SENDING).count() == 0
        assert DeliveryAttempt.objects.count() >= ehr.posts
    finally:
        ehr.stop()
