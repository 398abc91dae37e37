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


class AuditCheckpoint(models.Model):
    """A signed statement that a practice's chain head was (seq, hash) at
    signed_at (audit.anchoring). The same line goes to a sink outside the
    database, which is what a table owner who rewrites events, re-hashes the
    chain and edits this table as well cannot rewrite; audit_verify checks
    the chain against both. Written once, never changed."""

    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    key_id = models.CharField(max_length=16, help_text="First 16 hex digits of SHA-256 of the raw public key")
    signature = models.CharField(max_length=88, help_text="Ed25519 signature, base64")

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["practice_id", "seq"]
        constraints = [
            # One checkpoint per chain position: two beat runs racing make one row.
            models.UniqueConstraint(fields=["practice", "seq"], name="audit_unique_checkpoint_per_seq"),
        ]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit checkpoints are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit checkpoints are append-only.")


class NoteAttribution(models.Model):
    """Who wrote the signed text: computed at signing (audit.attribution) in
    the signature's transaction and never changed afterwards. Characters of
    the signed text are either AI-generated and kept, or written by the
    clinician; ai_removed_chars counts AI text the clinician deleted."""

    note = models.OneToOneField("notes.Note", on_delete=models.PROTECT, related_name="attribution")
    ai_source = models.ForeignKey("notes.AISource", on_delete=models.PROTECT, related_name="+")
    ai_label = models.CharField(max_length=200, help_text="AI source with model and version, as shown")
    model_name = models.CharField(max_length=100, blank=True)
    model_version = models.CharField(max_length=50, blank=True)
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    signed_at = models.DateTimeField()
    content_hash = models.CharField(max_length=64)
    total_chars = models.PositiveIntegerField()
    ai_kept_chars = models.PositiveIntegerField()
    clinician_chars = models.PositiveIntegerField()
    ai_removed_chars = models.PositiveIntegerField()
    # [{"key", "label", "total_chars", "ai_kept_chars", "clinician_chars", "ai_removed_chars"}] in section order.
    sections = models.JSONField(default=list, blank=True)
    # Names of the people whose edits are in the text (all versions of the note), first editor first.
    editors = models.JSONField(default=list, blank=True)
    # {event seq: [[op, length], ...]}: the diff of each edit event of this
    # version, computed once at signing (bounded, audit.attribution) and
    # rebuilt from the event's before/after by the timeline (audit.diffs).
    event_diffs = models.JSONField(default=dict, blank=True)
    method = models.CharField(max_length=60, help_text="How the shares were computed")
    created_at = models.DateTimeField(auto_now_add=True)

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("An attribution is stored with the signature and never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("An attribution is stored with the signature and never changed.")

    @property
    def clinician_percent(self) -> int:
        return round(100 * self.clinician_chars / self.total_chars) if self.total_chars else 0

    @property
    def ai_percent(self) -> int:
        return 100 - self.clinician_percent if self.total_chars else 0


class AuditSession(models.Model):
    """One browser session's user agent, stored once instead of on every event
    of the session. A session's events name it by key in detail["session"]
    (inside the hash chain); the event that opened it also carries the user
    agent itself, so the chain still covers the text. A new user agent in the
    same login session (a copied cookie, say) opens a new one."""

    key = models.CharField(max_length=32, unique=True, help_text="Random; kept in the login session")
    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    user_agent = models.CharField(max_length=400, blank=True)
    started_at = models.DateTimeField()

    objects = AppendOnlyQuerySet.as_manager()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("Audit sessions are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit sessions are append-only.")
