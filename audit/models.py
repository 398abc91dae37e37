"""The append-only event log. Rows are written only by audit.services
.audit_record, never updated or deleted (the ORM refuses, and on PostgreSQL a
trigger does too); each row carries the hash of the previous one in its
practice's chain so tampering is detectable (`manage.py audit_verify`)."""

from django.conf import settings
from django.db import models


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only.")

    def delete(self):
        raise PermissionError("Audit events are append-only.")


class AuditEvent(models.Model):
    class ActorType(models.TextChoices):
        PERSON = "person", "Person"
        AI = "ai", "AI source"
        SYSTEM = "system", "System / worker"

    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="audit_events")
    seq = models.PositiveBigIntegerField(help_text="Position in the practice's chain, from 1")
    created_at = models.DateTimeField()
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_ai_source = models.ForeignKey(
        "notes.AISource", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=200, help_text="Who, as shown: name, or AI source with model")
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    note = models.ForeignKey("notes.Note", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    client = models.ForeignKey("notes.Client", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["practice_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["practice", "seq"], name="audit_unique_seq_per_practice")]
        indexes = [
            # A note's timeline.
            models.Index(fields=["note", "seq"], name="audit_note_idx"),
            # "Who viewed client X between dates".
            models.Index(fields=["client", "created_at"], name="audit_client_idx"),
        ]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")


class AuditChainHead(models.Model):
    """The last link of a practice's chain. Locked (select_for_update) while an
    event is appended, which serialises writers per practice."""

    practice = models.OneToOneField("notes.Practice", on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)
