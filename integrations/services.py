"""Delivery rules. The outbox row is the truth; the Celery message only a nudge."""

from django.db import transaction

from audit.services import actor_system, audit_record
from integrations.errors import DeliveryRefused
from integrations.models import Delivery
from notes.models import Note


def delivery_check_deliverable(note: Note) -> None:
    """Invariants 1 and 10: only a signed note version, and never a
    psychotherapy (process) note, may produce or perform a delivery."""
    if note.state != Note.State.SIGNED or note.signed_at is None or not note.content_hash:
        raise DeliveryRefused(f"Only a signed note can be delivered; this one is {note.get_state_display().lower()}.")
    if note.template_version.template.is_psychotherapy_notes:
        raise DeliveryRefused("Psychotherapy notes stay in psyfi-review and are never delivered.")


def delivery_create_for_note(*, note: Note) -> Delivery | None:
    """Called inside note_sign's transaction. Returns None for psychotherapy
    notes, which are signed but stay here."""
    if note.template_version.template.is_psychotherapy_notes:
        return None
    delivery_check_deliverable(note)
    delivery = Delivery.objects.create(
        note=note,
        practice=note.practice,
        idempotency_key=f"{note.lineage}:{note.version}",
    )
    audit_record(
        practice=note.practice,
        actor=actor_system("outbox"),
        action="delivery.create",
        obj=delivery,
        note=note,
        client=note.client,
        after={"state": delivery.state, "idempotency_key": delivery.idempotency_key},
    )
    transaction.on_commit(lambda: _enqueue(delivery.pk))
    return delivery


def _enqueue(delivery_id: int) -> None:
    from integrations.tasks import delivery_send_task

    try:
        delivery_send_task.delay(delivery_id)
    except Exception:  # noqa: BLE001 - a broker that is down delays delivery; the sweeper re-enqueues
        import logging

        logging.getLogger(__name__).warning("Could not enqueue delivery %s; the sweeper will pick it up", delivery_id)
