"""Sending alerts: the AlertNotification outbox, the same pattern as
deliveries. alert_raise writes one row per channel in its transaction; the
task (integrations.alert_notify) claims a row by conditional update (one row
or stop), sends, and records the result; a transient failure is retried with
backoff, the beat sweeper re-enqueues what a lost message left behind.

No PHI leaves here: an email or a webhook carries the alert's kind, its
count, the practice and a link to the alert list, never the reason (which
may name a client) nor any object id but the alert's own."""

import hashlib
import hmac
import json
import logging
import smtplib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F, Q
from django.utils import timezone

from integrations.errors import ConnectionInvalid, CredentialsUnreadable
from integrations.models import Alert, AlertNotification, AlertRules
from integrations.services.alerts import alert_link, alert_webhook_secret
from integrations.services.delivery import delivery_backoff
from integrations.transports.base import connection_problem, http_session, url_check
from notes.models import Membership

logger = logging.getLogger(__name__)
N = AlertNotification.State
SIGNATURE_HEADER = "X-Psyfi-Signature"
TIMESTAMP_HEADER = "X-Psyfi-Timestamp"


def _enqueue(notification_id: int, *, countdown: float | None = None) -> None:
    from integrations.tasks import alert_notify_task

    try:
        alert_notify_task.apply_async((notification_id,), countdown=countdown)
    except Exception:  # noqa: BLE001 - a broker that is down delays the alert; the sweeper re-enqueues
        logger.warning("Could not enqueue alert notification %s; the sweeper will pick it up", notification_id)


@dataclass(frozen=True)
class NotifyResult:
    state: str
    reschedule_in: float | None = None


class _Retry(Exception):
    pass


class _Permanent(Exception):
    pass


# ---------------------------------------------------------------- what is sent (pure)


def alert_email_text(*, alert: Alert, practice_name: str, link: str) -> tuple[str, str]:
    """(subject, body): kind, count and a link; nothing from the reason."""
    label = Alert.Kind(alert.kind).label
    subject = f"psyfi-review alert: {label}"
    times = "once" if alert.count == 1 else f"{alert.count} times"
    body = (
        f"{label}\n\n"
        f"Practice: {practice_name}\n"
        f"Raised {times}, first at {alert.created_at:%Y-%m-%d %H:%M} UTC.\n\n"
        f"Sign in to see what happened and to acknowledge or resolve it:\n{link}\n"
    )
    return subject, body


def alert_webhook_body(*, alert: Alert, practice_slug: str, link: str) -> bytes:
    return json.dumps(
        {
            "alert_id": alert.pk,
            "kind": alert.kind,
            "title": Alert.Kind(alert.kind).label,
            "practice": practice_slug,
            "count": alert.count,
            "raised_at": alert.created_at.isoformat(),
            "url": link,
        },
        sort_keys=True,
    ).encode()


def alert_webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>" (the timestamp so an old body
    cannot be replayed as new), hex, prefixed "sha256=" as GitHub and Stripe do."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


# ---------------------------------------------------------------- the outbox


def alert_notification_send(*, notification_id: int, now: datetime | None = None) -> NotifyResult:
    """Claim the row (pending/retrying -> sending), send, record. Never
    raises for the receiver's answer."""
    now = now or timezone.now()
    claimed = (
        AlertNotification.objects.filter(pk=notification_id, state__in=[N.PENDING, N.RETRYING])
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(state=N.SENDING, attempts=F("attempts") + 1, updated_at=now)
    )
    if claimed != 1:
        state = AlertNotification.objects.filter(pk=notification_id).values_list("state", flat=True).first()
        return NotifyResult(state or "missing")
    row = AlertNotification.objects.select_related("alert__practice").get(pk=notification_id)
    fields: dict = {"updated_at": timezone.now()}
    reschedule = None
    try:
        if row.channel == AlertNotification.Channel.EMAIL:
            _send_email(row.alert)
        else:
            _send_webhook(row.alert, row.pk)
    except _Permanent as exc:
        fields.update(state=N.FAILED, last_error=str(exc)[:2000], next_attempt_at=None)
    except _Retry as exc:
        if row.attempts >= settings.PSYFI_ALERT_NOTIFY_MAX_ATTEMPTS:
            fields.update(state=N.FAILED, last_error=f"Gave up after {row.attempts} attempts: {exc}"[:2000])
        else:
            reschedule = delivery_backoff(attempt=row.attempts, retry_after=None)
            fields.update(
                state=N.RETRYING, last_error=str(exc)[:2000], next_attempt_at=now + timedelta(seconds=reschedule)
            )
    else:
        fields.update(state=N.SENT, sent_at=timezone.now(), last_error="", next_attempt_at=None)
    AlertNotification.objects.filter(pk=row.pk, state=N.SENDING, attempts=row.attempts).update(**fields)
    if fields["state"] == N.FAILED:
        logger.warning("Alert notification %s (%s) failed for good", row.pk, row.channel)
    return NotifyResult(fields["state"], reschedule_in=reschedule)


def _send_email(alert: Alert) -> None:
    recipients = sorted(
        Membership.objects.filter(practice=alert.practice, role=Membership.Role.PRACTICE_ADMIN, is_active=True)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not recipients:
        raise _Permanent("No practice admin of this practice has an email address.")
    subject, body = alert_email_text(alert=alert, practice_name=alert.practice.name, link=alert_link(alert))
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except (smtplib.SMTPException, OSError) as exc:
        raise _Retry(f"Mail server: {type(exc).__name__}") from None


def _send_webhook(alert: Alert, notification_id: int) -> None:
    rules = AlertRules.objects.filter(practice=alert.practice).first()
    if rules is None or not rules.webhook_url:
        raise _Permanent("The practice has no webhook URL any more.")
    try:
        url_check(rules.webhook_url, field="webhook_url")
        secret = alert_webhook_secret(rules)
    except (ConnectionInvalid, CredentialsUnreadable) as exc:
        raise _Permanent(exc.message) from None
    body = alert_webhook_body(alert=alert, practice_slug=alert.practice.slug, link=alert_link(alert))
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: alert_webhook_signature(secret=secret, timestamp=timestamp, body=body),
        # The same on every retry, so the receiver can drop a repeat.
        "X-Psyfi-Notification": str(notification_id),
    }
    try:
        # The guarded session checks the egress policy at connect.
        response = http_session().post(
            rules.webhook_url,
            data=body,
            headers=headers,
            timeout=settings.PSYFI_DELIVERY_TIMEOUT,
            allow_redirects=False,
        )
    except ConnectionInvalid as exc:  # EgressRefused at connect: retrying cannot help
        raise _Permanent(exc.message) from None
    except requests.RequestException as exc:
        raise _Retry(f"Webhook: {connection_problem(exc)}") from None
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise _Retry(f"Webhook answered HTTP {status}")
    raise _Permanent(f"Webhook answered HTTP {status}")


def alert_notifications_sweep(*, now: datetime | None = None) -> int:
    """Re-enqueue notifications a lost broker message or a dead worker left
    behind; a row stuck in `sending` is tried again (an alert may arrive
    twice, never not at all)."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.PSYFI_DELIVERY_SWEEP_SECONDS)
    stale = now - timedelta(seconds=settings.PSYFI_DELIVERY_STALE_SECONDS)
    AlertNotification.objects.filter(state=N.SENDING, updated_at__lt=stale).update(
        state=N.RETRYING, next_attempt_at=None, updated_at=now
    )
    due = list(
        AlertNotification.objects.filter(
            Q(state=N.PENDING, updated_at__lt=now - grace)
            | Q(state=N.RETRYING, next_attempt_at__isnull=True)
            | Q(state=N.RETRYING, next_attempt_at__lt=now - grace)
        ).values_list("pk", flat=True)[:500]
    )
    for pk in due:
        _enqueue(pk)
    return len(due)
