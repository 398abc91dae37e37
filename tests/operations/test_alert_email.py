"""Alerts reach the practice admins by email (Django's email backend): the
locmem outbox in tests, and a real SMTP server on loopback. The email says
the kind, the count and links to the app; nothing from the reason (which
may name a client)."""

from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from django.core import mail
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from integrations.models import Alert, AlertNotification
from integrations.services import alert_raise, alert_rules_save
from integrations.services.alert_notify import alert_notification_send, alert_notifications_sweep
from tests.factories import world_factory
from tests.integrations.support import free_port, wait_until

REASON = "Patient mismatch for Jane Q. Client (DOB 1980-02-03) at the EHR"


@pytest.fixture
def admin_email(world):
    world.admin.email = "office@riverbend.example"
    world.admin.save(update_fields=["email"])
    return world.admin.email


def _email_row(alert: Alert) -> AlertNotification:
    return AlertNotification.objects.get(alert=alert, channel=AlertNotification.Channel.EMAIL)


@override_settings(PSYFI_PUBLIC_URL="https://psyfi.riverbend.example")
def test_an_alert_is_emailed_to_practice_admins_without_phi(world, admin_email):
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.PATIENT_MISMATCH, reason=REASON)
    result = alert_notification_send(notification_id=_email_row(alert).pk)
    assert result.state == AlertNotification.State.SENT
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [admin_email]
    assert "Patient mismatch" in message.subject
    assert f"https://psyfi.riverbend.example/integrations/alerts/#alert-{alert.pk}" in message.body
    for text in ("Jane", "Client", "1980", REASON):
        assert text not in message.subject + message.body


def test_an_email_is_sent_once_even_when_the_task_runs_twice(world, admin_email):
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.DEAD_LETTER, reason="x")
    row = _email_row(alert)
    alert_notification_send(notification_id=row.pk)
    again = alert_notification_send(notification_id=row.pk)
    assert again.state == AlertNotification.State.SENT
    assert len(mail.outbox) == 1


def test_email_can_be_turned_off_for_the_practice(world, admin_email):
    alert_rules_save(practice=world.practice, actor=world.admin, email_enabled=False)
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.DEAD_LETTER, reason="x")
    assert not AlertNotification.objects.filter(alert=alert).exists()


def test_no_admin_address_fails_the_row_with_a_reason(world):
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.DEAD_LETTER, reason="x")
    assert alert_notification_send(notification_id=_email_row(alert).pk).state == AlertNotification.State.FAILED
    assert "email address" in _email_row(alert).last_error


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def _smtp(port: int):
    return override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
        EMAIL_HOST_USER="",
        EMAIL_HOST_PASSWORD="",
        EMAIL_TIMEOUT=5,
    )


def test_an_alert_reaches_a_real_smtp_server(world, admin_email, smtp_server):
    inbox, port = smtp_server
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.SCHEMA_DRIFT, reason="DocumentReference.date")
    with _smtp(port):
        assert alert_notification_send(notification_id=_email_row(alert).pk).state == AlertNotification.State.SENT
    assert len(inbox.messages) == 1
    _, recipients, content = inbox.messages[0]
    assert recipients == [admin_email]
    assert "EHR schema changed" in content
    assert "/integrations/alerts/" in content


def test_a_mail_server_that_is_down_is_retried_later(world, admin_email, smtp_server):
    inbox, port = smtp_server
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.DEAD_LETTER, reason="x")
    row = _email_row(alert)
    with _smtp(free_port()):  # nothing listens there
        result = alert_notification_send(notification_id=row.pk)
    assert result.state == AlertNotification.State.RETRYING and result.reschedule_in > 0
    row.refresh_from_db()
    assert row.next_attempt_at and "Mail server" in row.last_error
    with _smtp(port):
        later = alert_notification_send(notification_id=row.pk, now=timezone.now() + timedelta(hours=2))
    assert later.state == AlertNotification.State.SENT
    assert len(inbox.messages) == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_a_new_alert_to_the_smtp_server_after_commit(smtp_server, worker_factory):
    """End to end: raised in a transaction, enqueued on commit, sent by a
    Celery worker process through Django's SMTP backend."""
    inbox, port = smtp_server
    world = world_factory()
    world.admin.email = "office@riverbend.example"
    world.admin.save(update_fields=["email"])
    worker_factory(EMAIL_URL=f"smtp://127.0.0.1:{port}")
    with transaction.atomic():
        alert = alert_raise(practice=world.practice, kind=Alert.Kind.DEAD_LETTER, reason=REASON)
    sent = lambda: _email_row(alert).state == AlertNotification.State.SENT  # noqa: E731
    assert wait_until(sent, timeout=120, on_tick=alert_notifications_sweep)
    assert len(inbox.messages) == 1
    assert "Delivery failed" in inbox.messages[0][2] and "Jane" not in inbox.messages[0][2]
