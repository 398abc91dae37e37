"""Alerts: raise (deduplicated while open), acknowledge, resolve, and the
practice's alert settings (AlertRules).

alert_raise is the one way an alert comes to be, whoever raises it (the
delivery worker, manual filing, schema drift, the audit chain check, QA, the
unusual-pattern rules). A new alert writes its notifications (email, webhook)
in the same transaction; they are sent after commit by
integrations.services.alert_notify, through the outbox, never inline.

Who: a practice admin of the alert's practice acknowledges and resolves, and
edits the rules. Each of those writes an audit event naming the person."""

import secrets as secrets_module
from datetime import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.services import actor_person, actor_system, audit_record
from integrations.crypto import secret_decrypt, secret_encrypt
from integrations.egress import egress_check_url
from integrations.errors import AlertRefused
from integrations.models import Alert, AlertNotification, AlertRules
from integrations.transports.base import url_check
from notes.errors import NotPermitted
from notes.models import Membership


def _default_key(*, delivery, connection, note) -> str:
    if delivery is not None:
        return f"delivery:{delivery.pk}"
    if connection is not None:
        return f"connection:{connection.pk}"
    if note is not None:
        return f"note:{note.pk}"
    return ""


def alert_rules_for(practice) -> AlertRules:
    """The practice's rules; defaults until an admin saves them."""
    rules = AlertRules.objects.filter(practice=practice).first()
    return rules if rules is not None else AlertRules(practice=practice)


def alert_raise(
    *,
    practice,
    kind: str,
    reason: str,
    dedup_key: str | None = None,
    delivery=None,
    connection=None,
    note=None,
    actor=None,
) -> Alert:
    """Raise an alert, or count a repeat of the open one with the same
    (practice, kind, dedup_key): a flapping EHR raises one alert, not one per
    attempt. dedup_key defaults to the delivery, else the connection, else the
    note. `reason` is shown in the app only; emails and webhooks carry the
    kind, the count and a link. `actor` (a person) is who raised it; the
    system otherwise. Runs in the caller's transaction, if any. The alert
    returned has `is_new` (False for a counted repeat). Raises ValueError for
    an unknown kind."""
    if kind not in Alert.Kind.values:
        raise ValueError(f"Unknown alert kind {kind!r}")
    key = dedup_key if dedup_key is not None else _default_key(delivery=delivery, connection=connection, note=note)
    now = timezone.now()
    with transaction.atomic():
        open_alert = Alert.objects.filter(practice=practice, kind=kind, dedup_key=key, resolved_at__isnull=True)
        if open_alert.update(count=F("count") + 1, last_raised_at=now):
            return _seen(open_alert.get())
        try:
            # A savepoint: a concurrent raise of the same key commits first
            # and the unique constraint refuses this one; count it instead.
            with transaction.atomic():
                alert = Alert.objects.create(
                    practice=practice,
                    kind=kind,
                    dedup_key=key[:200],
                    delivery=delivery,
                    connection=connection,
                    note=note,
                    reason=reason,
                    last_raised_at=now,
                )
        except IntegrityError:
            if open_alert.update(count=F("count") + 1, last_raised_at=now):
                return _seen(open_alert.get())
            # alert_one_unfiled_per_delivery: raised once per delivery, ever.
            return _seen(Alert.objects.filter(practice=practice, kind=kind, delivery=delivery).order_by("-pk").first())
        alert.is_new = True
        audit_record(
            practice=practice,
            actor=actor_person(actor) if actor is not None else actor_system("alerts"),
            action="alert.raise",
            obj=alert,
            after={"kind": kind, "dedup_key": alert.dedup_key},
        )
        _notifications_create(alert)
    return alert


def _seen(alert: Alert) -> Alert:
    alert.is_new = False  # a repeat: counted, not notified again
    return alert


def _notifications_create(alert: Alert) -> None:
    rules = alert_rules_for(alert.practice)
    channels = []
    if rules.email_enabled:
        channels.append(AlertNotification.Channel.EMAIL)
    if rules.webhook_url:
        channels.append(AlertNotification.Channel.WEBHOOK)
    for channel in channels:
        row = AlertNotification.objects.create(alert=alert, channel=channel)
        transaction.on_commit(lambda pk=row.pk: alert_notification_enqueue(pk))


def alert_notification_enqueue(notification_id: int, *, countdown: float | None = None) -> None:
    from integrations.services.alert_notify import _enqueue

    _enqueue(notification_id, countdown=countdown)


def _admin_of(user, practice) -> None:
    membership = Membership.objects.filter(user=user, practice=practice, is_active=True).first()
    if membership is None or membership.role != Membership.Role.PRACTICE_ADMIN:
        raise NotPermitted("Only a practice admin can do this.")


@transaction.atomic
def alert_acknowledge(*, alert: Alert, actor) -> Alert:
    """Someone is on it. Raises NotPermitted (not a practice admin of the
    alert's practice) or AlertRefused (resolved, or already acknowledged)."""
    _admin_of(actor, alert.practice)
    now = timezone.now()
    changed = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True, acknowledged_at__isnull=True).update(
        acknowledged_at=now, acknowledged_by=actor
    )
    if not changed:
        raise AlertRefused("This alert is already acknowledged or resolved.")
    alert.refresh_from_db()
    audit_record(
        practice=alert.practice,
        actor=actor_person(actor),
        action="alert.acknowledge",
        obj=alert,
        after={"kind": alert.kind, "acknowledged_at": now.isoformat()},
    )
    return alert


@transaction.atomic
def alert_resolve(*, alert: Alert, actor) -> Alert:
    """Closed by a person; the same problem again raises a new alert.
    Raises NotPermitted or AlertRefused (already resolved)."""
    _admin_of(actor, alert.practice)
    now = timezone.now()
    changed = Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(resolved_at=now, resolved_by=actor)
    if not changed:
        raise AlertRefused("This alert is already resolved.")
    alert.refresh_from_db()
    audit_record(
        practice=alert.practice,
        actor=actor_person(actor),
        action="alert.resolve",
        obj=alert,
        after={"kind": alert.kind, "resolved_at": now.isoformat()},
    )
    return alert


def alerts_resolve_for_delivery(*, delivery, actor=None) -> int:
    """A delivery a person reprocessed or filed: its open alerts are closed
    with that action (which has its own audit event)."""
    return Alert.objects.filter(delivery=delivery, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=actor
    )


def alerts_resolve_settled(*, delivery, kind: str, why: str) -> int:
    """The problem an open alert of the delivery's reported is over (a
    long-retrying delivery was delivered, or gave up and has its dead-letter
    alert instead): closed by the system, one audit event per alert. Runs in
    the caller's transaction."""
    now = timezone.now()
    alerts = [
        alert
        for alert in Alert.objects.filter(delivery=delivery, kind=kind, resolved_at__isnull=True)
        # A person may have resolved it meanwhile; theirs stands.
        if Alert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(resolved_at=now)
    ]
    for alert in alerts:
        audit_record(
            practice=alert.practice,
            actor=actor_system("delivery worker"),
            action="alert.resolve",
            obj=alert,
            after={"kind": alert.kind, "resolved_at": now.isoformat()},
            detail={"why": why},
        )
    return len(alerts)


# ---------------------------------------------------------------- settings

RULE_FIELDS = (
    "email_enabled",
    "webhook_url",
    "long_retry_minutes",
    "unreachable_after_attempts",
    "phi_access_clients",
    "phi_access_window_minutes",
    "working_day_start",
    "working_day_end",
    "after_hours_margin_minutes",
    "after_hours_signs",
    "api_key_refusals",
    "api_key_refusals_window_minutes",
)


def alert_webhook_url_check(url: str) -> None:
    """Raises ConnectionInvalid (field webhook_url): not https (plain http on
    loopback only), or refused by the egress policy."""
    url_check(url, field="webhook_url")
    egress_check_url(url, field="webhook_url")


@transaction.atomic
def alert_rules_save(*, practice, actor, new_secret: bool = False, **values) -> tuple[AlertRules, str]:
    """Save the practice's alert settings. A webhook gets a signing secret
    when it is first set or when asked (new_secret); the secret is returned
    once, to show to the admin, and stored encrypted. Returns (rules, secret
    or ""). Raises NotPermitted, ConnectionInvalid for the webhook URL, or
    ValueError for an unknown setting."""
    _admin_of(actor, practice)
    unknown = set(values) - set(RULE_FIELDS)
    if unknown:
        raise ValueError(f"Unknown alert settings: {sorted(unknown)}")
    rules = AlertRules.objects.select_for_update().filter(practice=practice).first() or AlertRules(practice=practice)
    before = {name: _jsonable(getattr(rules, name)) for name in RULE_FIELDS}
    for name, value in values.items():
        setattr(rules, name, value)
    if rules.webhook_url:
        alert_webhook_url_check(rules.webhook_url)
    issued = ""
    if rules.webhook_url and (new_secret or not rules.webhook_secret_encrypted):
        issued = secrets_module.token_urlsafe(32)
        rules.webhook_secret_encrypted = secret_encrypt({"secret": issued})
    if not rules.webhook_url:
        rules.webhook_secret_encrypted = ""
    rules.full_clean()
    rules.save()
    audit_record(
        practice=practice,
        actor=actor_person(actor),
        action="alert_rules.update",
        obj=rules,
        before=before,
        after={**{name: _jsonable(getattr(rules, name)) for name in RULE_FIELDS}, "secret_issued": bool(issued)},
    )
    return rules, issued


def alert_webhook_secret(rules: AlertRules) -> str:
    return secret_decrypt(rules.webhook_secret_encrypted).get("secret", "")


def _jsonable(value):
    return value.isoformat() if isinstance(value, time) else value


def alert_link(alert: Alert) -> str:
    """The link in an email or webhook: the alert list, never the object."""
    return settings.PSYFI_PUBLIC_URL.rstrip("/") + f"/integrations/alerts/#alert-{alert.pk}"
