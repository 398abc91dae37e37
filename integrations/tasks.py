"""Celery tasks: thin wrappers that load by id and call a service. The row
is the truth; a message is only a nudge, so duplicates are harmless."""

from celery import shared_task

from integrations import services


# max_retries=None: the row counts attempts and turns `failed` after the last.
@shared_task(bind=True, name="integrations.delivery_send", acks_late=True, max_retries=None)
def delivery_send_task(self, delivery_id: int) -> str:
    result = services.delivery_send(delivery_id=delivery_id)
    if result.reschedule_in is not None:
        # Backoff with jitter (Retry-After honoured) computed from the row's
        # attempt count; after the last attempt the row is already `failed`.
        raise self.retry(countdown=result.reschedule_in)
    return result.state


@shared_task(name="integrations.delivery_sweep")
def delivery_sweep_task() -> int:
    return services.delivery_sweep()


# ---------------------------------------------------------------- alerts


@shared_task(bind=True, name="integrations.alert_notify", acks_late=True, max_retries=None)
def alert_notify_task(self, notification_id: int) -> str:
    from integrations.services.alert_notify import alert_notification_send

    result = alert_notification_send(notification_id=notification_id)
    if result.reschedule_in is not None:
        raise self.retry(countdown=result.reschedule_in)
    return result.state


@shared_task(name="integrations.alert_notifications_sweep")
def alert_notifications_sweep_task() -> int:
    from integrations.services.alert_notify import alert_notifications_sweep

    return alert_notifications_sweep()


@shared_task(name="integrations.alert_rules_evaluate")
def alert_rules_evaluate_task() -> int:
    from integrations.services.alert_rules import alert_rules_evaluate

    return len(alert_rules_evaluate())


@shared_task(name="integrations.audit_chain_check")
def audit_chain_check_task() -> int:
    from integrations.services.alert_rules import audit_chain_check

    return len(audit_chain_check())


@shared_task(name="integrations.schema_drift_check_all")
def schema_drift_check_all_task() -> int:
    """Fans out: one task per connection, so one slow EHR delays no other."""
    from integrations.services.schema_drift import schema_drift_connections

    ids = schema_drift_connections()
    for connection_id in ids:
        schema_drift_check_task.delay(connection_id)
    return len(ids)


@shared_task(name="integrations.schema_drift_check")
def schema_drift_check_task(connection_id: int) -> int:
    from integrations.models import EHRConnection
    from integrations.services.schema_drift import schema_drift_check

    connection = EHRConnection.objects.filter(pk=connection_id, is_active=True).first()
    if connection is None:
        return 0
    return len(schema_drift_check(connection=connection).problems)
