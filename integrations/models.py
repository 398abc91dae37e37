"""EHR delivery: the outbox. A Delivery row is written in the same transaction
as the signature (notes.services.note_sign), so a signed note cannot be lost
between signing and sending."""

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords


class Delivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        RETRYING = "retrying", "Retrying"
        UNKNOWN = "unknown", "Unknown (answer lost; reconcile before resending)"
        FAILED = "failed", "Failed (needs a person)"

    note = models.ForeignKey("notes.Note", on_delete=models.PROTECT, related_name="deliveries")
    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="deliveries")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    # Stable across retries: note lineage + version (invariant 4).
    idempotency_key = models.CharField(max_length=100)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    ehr_id = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            # One delivery per note version (invariant 4).
            models.UniqueConstraint(fields=["note"], name="delivery_one_per_note_version"),
        ]
        indexes = [
            # The beat sweeper: deliveries waiting or stuck.
            models.Index(
                fields=["updated_at"],
                condition=Q(state__in=["pending", "sending", "retrying"]),
                name="delivery_outstanding_idx",
            ),
        ]
