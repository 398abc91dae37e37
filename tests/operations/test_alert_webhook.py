"""Alerts go to the practice's optional webhook: an HMAC-SHA256 signed JSON
body (kind, count, link; no PHI), through the AlertNotification outbox with
retries; the URL passes the egress policy at save and at connect. The
receiver is a real HTTP server on loopback that checks the signature."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings
from django.utils import timezone

from audit.models import AuditEvent
from integrations.errors import ConnectionInvalid
from integrations.models import Alert, AlertNotification, AlertRules
from integrations.services import alert_raise, alert_rules_save
from integrations.services.alert_notify import alert_notification_send
from tests.integrations.support import free_port

REASON = "Patient mismatch for Jane Q. Client (DOB 1980-02-03)"


class Receiver:
    """Checks X-Psyfi-Signature with the secret it is given; answers
    `statuses` in turn (then 200)."""

    def __init__(self):
        self.secret = ""
        self.statuses: list[int] = []
        self.received: list[dict] = []
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers["X-Psyfi-Timestamp"]
                expected = hmac.new(receiver.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
                valid = hmac.compare_digest(self.headers["X-Psyfi-Signature"], "sha256=" + expected.hexdigest())
                status = receiver.statuses.pop(0) if receiver.statuses else (200 if valid else 401)
                notification = self.headers["X-Psyfi-Notification"]
                receiver.received.append(
                    {"valid": valid, "body": body, "json": json.loads(body), "status": status, "id": notification}
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/psyfi"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def hooked(world, receiver):
    _, secret = alert_rules_save(practice=world.practice, actor=world.admin, webhook_url=receiver.url)
    receiver.secret = secret
    return receiver


def _webhook_row(alert: Alert) -> AlertNotification:
    return AlertNotification.objects.get(alert=alert, channel=AlertNotification.Channel.WEBHOOK)


def test_a_signed_alert_reaches_the_webhook_without_phi(world, hooked):
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.PATIENT_MISMATCH, reason=REASON)
    assert alert_notification_send(notification_id=_webhook_row(alert).pk).state == AlertNotification.State.SENT
    [got] = hooked.received
    assert got["valid"]
    assert got["json"]["kind"] == "patient_mismatch" and got["json"]["count"] == 1
    assert got["json"]["url"].endswith(f"/integrations/alerts/#alert-{alert.pk}")
    for text in (b"Jane", b"Client", b"1980"):
        assert text not in got["body"]


def test_a_wrong_secret_fails_the_receivers_check(world, hooked):
    hooked.secret = "not-the-secret"
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.DEAD_LETTER, reason="x")
    result = alert_notification_send(notification_id=_webhook_row(alert).pk)
    assert not hooked.received[0]["valid"]
    assert result.state == AlertNotification.State.FAILED  # a 401 is not retried


def test_a_failing_webhook_is_retried_with_backoff_until_it_answers(world, hooked):
    hooked.statuses = [503, 502]
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.DEAD_LETTER, reason="x")
    row = _webhook_row(alert)
    first = alert_notification_send(notification_id=row.pk)
    assert first.state == AlertNotification.State.RETRYING and first.reschedule_in > 0
    # Not due yet: the nudge does nothing.
    assert alert_notification_send(notification_id=row.pk).state == AlertNotification.State.RETRYING
    assert len(hooked.received) == 1
    later = timezone.now() + timedelta(hours=3)
    assert alert_notification_send(notification_id=row.pk, now=later).state == AlertNotification.State.RETRYING
    assert alert_notification_send(notification_id=row.pk, now=later + timedelta(hours=3)).state == "sent"
    assert [r["status"] for r in hooked.received] == [503, 502, 200]
    # The same notification id each time, so the receiver can drop repeats.
    assert {r["id"] for r in hooked.received} == {str(row.pk)}
    assert all(r["valid"] for r in hooked.received)


def test_the_webhook_url_must_pass_the_egress_policy_at_save(world):
    with pytest.raises(ConnectionInvalid) as refused:
        alert_rules_save(practice=world.practice, actor=world.admin, webhook_url="https://10.1.2.3/hook")
    assert refused.value.field == "webhook_url" and "egress policy" in refused.value.message
    with pytest.raises(ConnectionInvalid) as plain:
        alert_rules_save(practice=world.practice, actor=world.admin, webhook_url="http://hooks.example.com/x")
    assert plain.value.field == "webhook_url"
    assert not AlertRules.objects.filter(practice=world.practice).exists()


def test_the_webhook_url_is_checked_again_at_connect(world, hooked):
    alert = alert_raise(practice=world.practice, kind=Alert.Kind.DEAD_LETTER, reason="x")
    with override_settings(EHR_EGRESS_ALLOW=[]):
        result = alert_notification_send(notification_id=_webhook_row(alert).pk)
    assert result.state == AlertNotification.State.FAILED
    assert "egress policy" in _webhook_row(alert).last_error
    assert hooked.received == []


def test_the_settings_page_saves_the_webhook_and_shows_the_secret_once(world, login_as, receiver):
    browser = login_as(world.admin)
    form = {
        "email_enabled": "on",
        "webhook_url": receiver.url,
        "phi_access_clients": "10",
        "phi_access_window_minutes": "30",
        "working_day_start": "08:00",
        "working_day_end": "18:00",
        "after_hours_margin_minutes": "120",
        "after_hours_signs": "1",
        "api_key_refusals": "20",
        "api_key_refusals_window_minutes": "10",
    }
    page = browser.post("/integrations/alerts/settings/", form)
    assert page.status_code == 200 and b'id="webhook-secret"' in page.content
    rules = AlertRules.objects.get(practice=world.practice)
    assert rules.webhook_url == receiver.url and rules.phi_access_clients == 10
    event = AuditEvent.objects.get(action="alert_rules.update")
    assert event.actor_user == world.admin and event.after["secret_issued"] is True
    # Saved again: the secret stays and is not shown.
    again = browser.post("/integrations/alerts/settings/", form)
    assert again.status_code == 302
    bad = browser.post("/integrations/alerts/settings/", {**form, "webhook_url": "https://10.1.2.3/hook"})
    assert bad.status_code == 400 and b"egress policy" in bad.content
