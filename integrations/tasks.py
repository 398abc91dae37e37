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
