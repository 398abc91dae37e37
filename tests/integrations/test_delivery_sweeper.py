"""The beat sweeper: a lost broker message or a dead worker never strands a
note (invariant 3)."""

import base64
import json
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from integrations.models import Delivery, DeliveryAttempt
from integrations.services import delivery_send, delivery_sweep
from tests.integrations.support import FakeEHR, fhir_connection


def test_the_sweeper_is_in_the_beat_schedule():
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "integrations.delivery_sweep"]
    assert len(entries) == 1


def test_a_pending_delivery_whose_message_was_lost_is_sent_again(world, sign_for):
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    delivery = Delivery.objects.get(note=sign_for(world))  # its on_commit nudge never ran: "lost"
    broker.delete("celery")
    assert delivery_sweep(now=timezone.now()) == 0  # a fresh row is left to its own message
    later = timezone.now() + timedelta(seconds=settings.PSYFI_DELIVERY_SWEEP_SECONDS + 1)
    assert delivery_sweep(now=later) == 1
    messages = broker.lrange("celery", 0, -1)
    assert len(messages) == 1
    envelope = json.loads(messages[0])
    assert envelope["headers"]["task"] == "integrations.delivery_send"
    assert json.loads(base64.b64decode(envelope["body"]))[0] == [delivery.pk]
    broker.delete("celery")


def test_a_delivery_stuck_in_sending_is_reconciled_before_any_resend(world, sign_for, settings):
    ehr = FakeEHR(conditional_create=False).start()
    try:
        fhir_connection(world.practice, ehr.base_url)
        note = sign_for(world)
        ehr.add_patient(note.client)
        delivery = Delivery.objects.get(note=note)
        delivery_send(delivery_id=delivery.pk)  # delivered, but we pretend the worker died before recording
        Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.SENDING, ehr_id="")
        later = timezone.now() + timedelta(seconds=settings.PSYFI_DELIVERY_STALE_SECONDS + 1)
        delivery_sweep(now=later)
        delivery.refresh_from_db()
        assert delivery.state == Delivery.State.UNKNOWN and delivery.needs_reconcile
        delivery_send(delivery_id=delivery.pk, now=later)
        delivery.refresh_from_db()
        assert delivery.state == Delivery.State.DELIVERED
        assert len(ehr.documents) == 1 and delivery.ehr_id == ehr.documents[0]["id"]
        assert DeliveryAttempt.objects.filter(delivery=delivery, outcome="reconciled").count() == 1
    finally:
        ehr.stop()


def test_an_unknown_outcome_on_a_server_without_search_goes_to_a_person(world, sign_for):
    ehr = FakeEHR(conditional_create=False).start()
    try:
        ehr.search_supported = False
        fhir_connection(world.practice, ehr.base_url)
        note = sign_for(world)
        ehr.add_patient(note.client)
        delivery = Delivery.objects.get(note=note)
        Delivery.objects.filter(pk=delivery.pk).update(state=Delivery.State.UNKNOWN, needs_reconcile=True)
        delivery_send(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.state == Delivery.State.FAILED
        assert "cannot be searched" in delivery.last_error
        assert ehr.posts == 0
    finally:
        ehr.stop()
