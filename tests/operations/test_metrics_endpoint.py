"""/metrics: Prometheus text from prometheus-client with queue depth,
deliveries by state, the oldest outstanding delivery's age and open alerts;
closed unless METRICS_BEARER_TOKEN is set, and then only for that token."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from integrations.models import Alert, Delivery
from psyfi_review.celery import app as celery_app
from tests.factories import note_factory, note_sign_now

TOKEN = "scrape-token-0123456789abcdef"


def scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_HOST="prometheus.internal")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    values = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_are_off_without_a_configured_token(client):
    with override_settings(METRICS_BEARER_TOKEN=""):
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


@override_settings(METRICS_BEARER_TOKEN=TOKEN)
def test_metrics_refuse_a_scrape_without_the_token(client):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert b"psyfi_" not in wrong.content


@pytest.mark.django_db
@override_settings(METRICS_BEARER_TOKEN=TOKEN)
def test_metrics_count_deliveries_alerts_and_broker_messages(client, world):
    queue = celery_app.conf.task_default_queue
    before = scrape(client)[("psyfi_broker_queue_depth", (("queue", queue),))]

    notes = [note_factory(practice=world.practice, clinician=world.clinician) for _ in range(3)]
    signed = [note_sign_now(note, world.clinician) for note in notes]
    deliveries = Delivery.objects.filter(note__in=signed).order_by("pk")
    assert deliveries.count() == 3
    first, second, third = deliveries
    Delivery.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=2))
    Delivery.objects.filter(pk=second.pk).update(state=Delivery.State.RETRYING)
    Delivery.objects.filter(pk=third.pk).update(state=Delivery.State.FAILED)
    Alert.objects.create(practice=world.practice, kind=Alert.Kind.DEAD_LETTER, delivery=third, reason="refused")
    Alert.objects.create(
        practice=world.practice, kind=Alert.Kind.LONG_RETRY, delivery=second, reason="slow", resolved_at=timezone.now()
    )
    # A task message nobody consumes yet (no worker in this test).
    celery_app.send_task("psyfi_review.ping")

    values = scrape(client)
    assert values[("psyfi_deliveries", (("state", "pending"),))] == 1
    assert values[("psyfi_deliveries", (("state", "retrying"),))] == 1
    assert values[("psyfi_deliveries", (("state", "failed"),))] == 1
    assert values[("psyfi_deliveries", (("state", "delivered"),))] == 0
    assert values[("psyfi_delivery_oldest_outstanding_age_seconds", ())] >= 2 * 3600
    assert values[("psyfi_alerts_open", (("kind", "dead_letter"),))] == 1
    assert values[("psyfi_alerts_open", (("kind", "long_retry"),))] == 0
    assert values[("psyfi_broker_queue_depth", (("queue", queue),))] == before + 1
    assert values[("psyfi_broker_up", ())] == 1


@pytest.mark.django_db
@override_settings(METRICS_BEARER_TOKEN=TOKEN)
def test_metrics_carry_no_practice_client_or_note(client, world):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    for private in (world.practice.name, world.practice.slug, note.client.family_name, note.client.given_name):
        assert private not in text
