"""EHR delivery: connections, field mappings, the outbox and its ledger, alerts,
and the built-in sandbox EHR's storage.

A Delivery row is written in the same transaction as the signature
(notes.services.note_sign), so a signed note cannot be lost between signing
and sending. Rules live in integrations/services/, not here.
"""

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from audit.history_manager import CachedHistoryManager


class EHRConnection(models.Model):
    """Where one practice's signed notes go. Credentials are encrypted at rest
    (integrations.crypto); only services read them."""

    class Kind(models.TextChoices):
        FHIR = "fhir", "FHIR R4"
        HL7 = "hl7", "HL7 v2 over MLLP"
        REST = "rest", "REST JSON"
        SANDBOX = "sandbox", "Built-in sandbox (FHIR R4)"
        # No write API (SimplePractice, TherapyNotes, ...): a person files the
        # signed note by hand and confirms it (integrations.manual_filing).
        MANUAL = "manual", "Manual filing (the EHR has no write API)"

    class Auth(models.TextChoices):
        NONE = "none", "None"
        SMART = "smart", "SMART Backend Services (signed JWT assertion)"
        CLIENT_SECRET = "client_secret", "OAuth2 client secret"
        BEARER = "bearer", "Static bearer token"
        BASIC = "basic", "HTTP basic"

    class HL7PatientCheck(models.TextChoices):
        PDQ = "pdq", "Ask the EHR first (IHE PDQ query before each note)"
        RECEIVER = "receiver", "The receiver checks (patient id, name and date of birth in the note)"

    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="ehr_connections")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Invariant 11: a sandbox connection takes synthetic clients only, a
    # production one never does.
    is_sandbox = models.BooleanField(default=True)
    # Blank only for a manual connection, which sends nothing.
    base_url = models.CharField(max_length=500, blank=True, help_text="FHIR/REST base URL, or mllp://host:port for HL7")
    # HL7 only: the IHE PDQ supplier asked before each MDM (invariant 5).
    # Blank means the same host:port as base_url.
    patient_query_url = models.CharField(
        max_length=500, blank=True, help_text="HL7: mllp(s)://host:port answering QBP^Q22; blank = the address"
    )
    # HL7 only: how invariant 5 is kept. `pdq` asks the EHR's IHE PDQ
    # supplier before each MDM; `receiver` sends PID-3 (with the assigning
    # authority), PID-5 and PID-7 and relies on the receiver refusing an
    # unknown patient (an MDM-only interface engine channel answers AR to PDQ).
    hl7_patient_check = models.CharField(max_length=10, choices=HL7PatientCheck.choices, default=HL7PatientCheck.PDQ)
    # HL7 only: the patient id's domain at the EHR (PID-3.4; a namespace id or
    # an OID). Sent in the PDQ query and the MDM; picks the right PID when a
    # multi-domain EHR answers with several. Blank: "EHR" in PID-3.4, as before.
    hl7_assigning_authority = models.CharField(max_length=100, blank=True)
    auth = models.CharField(max_length=20, choices=Auth.choices, default=Auth.NONE)
    client_id = models.CharField(max_length=200, blank=True)
    token_url = models.CharField(max_length=500, blank=True)
    scope = models.CharField(max_length=500, blank=True, default="system/DocumentReference.c system/Patient.r")
    username = models.CharField(max_length=200, blank=True)
    # Fernet token of a JSON object: client_secret, token, password.
    credentials_encrypted = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # What the server's /metadata declared at the last "test connection".
    supports_conditional_create = models.BooleanField(null=True, blank=True)
    supports_provenance = models.BooleanField(null=True, blank=True)
    metadata_checked_at = models.DateTimeField(null=True, blank=True)
    metadata_summary = models.JSONField(default=dict, blank=True)
    # The last schema-drift check (integrations.services.schema_drift): when,
    # and the problems it found (empty: what the mapping needs is declared).
    schema_checked_at = models.DateTimeField(null=True, blank=True)
    schema_problems = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager, excluded_fields=["credentials_encrypted"])

    class Meta:
        constraints = [
            # delivery_create_for_note picks "the practice's active connection".
            models.UniqueConstraint(
                fields=["practice"], condition=Q(is_active=True), name="ehrconnection_one_active_per_practice"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}{', sandbox' if self.is_sandbox else ''})"

    @property
    def usable(self) -> bool:
        return self.is_active and self.revoked_at is None


class SigningKey(models.Model):
    """A key pair for SMART Backend Services client assertions. Every key not
    yet removed is published in the JWKS, so rotation publishes the new key
    beside the old one before the old one goes."""

    class Alg(models.TextChoices):
        RS384 = "RS384", "RS384"
        ES384 = "ES384", "ES384"

    kid = models.CharField(max_length=64, unique=True)
    alg = models.CharField(max_length=5, choices=Alg.choices, default=Alg.ES384)
    private_key_encrypted = models.TextField()
    public_jwk = models.JSONField()
    is_signing = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["is_signing"], condition=Q(is_signing=True), name="signingkey_one_signing"),
        ]


class FieldMapping(models.Model):
    """One immutable version of how a template's sections land in the EHR
    (FHIR codes, HL7 TXA/OBX layout, REST JSON paths). A delivery pins the
    version that was active when its note was signed."""

    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="field_mappings")
    template = models.ForeignKey("notes.NoteTemplate", on_delete=models.PROTECT, related_name="field_mappings")
    version = models.PositiveIntegerField()
    document = models.JSONField()
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["template", "version"], name="fieldmapping_unique_version"),
            # delivery_create_for_note pins "the template's active mapping".
            models.UniqueConstraint(fields=["template"], condition=Q(is_active=True), name="fieldmapping_one_active"),
        ]

    def __str__(self) -> str:
        return f"{self.template} mapping v{self.version}"


class Delivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        # An amendment whose earlier version is not at the EHR yet: it must
        # replace that version, so it waits (no attempts spent, no alert).
        WAITING = "waiting", "Waiting for the earlier version"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        RETRYING = "retrying", "Retrying"
        UNKNOWN = "unknown", "Unknown (answer lost; reconcile before resending)"
        FAILED = "failed", "Failed (needs a person)"
        # A manual connection's note: open until a person confirms it is filed
        # in the EHR. Neither retried by the worker nor swept as stale.
        AWAITING_FILING = "awaiting_filing", "Awaiting filing in the EHR"

    note = models.ForeignKey("notes.Note", on_delete=models.PROTECT, related_name="deliveries")
    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="deliveries")
    connection = models.ForeignKey(
        EHRConnection, on_delete=models.PROTECT, null=True, blank=True, related_name="deliveries"
    )
    # Pinned at signing; null means the built-in default mapping of the template.
    mapping = models.ForeignKey(FieldMapping, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    # An amendment's delivery: the delivery of the version it replaces. It is
    # sent only once that one is delivered, carrying its EHR id (relatesTo,
    # TXA-13, "replaces"). The FK index also serves "who waits for this one".
    replaces = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="replaced_by")
    # Stable across retries: note lineage + version (invariant 4).
    idempotency_key = models.CharField(max_length=100)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A send whose answer was lost: the next attempt searches the EHR first.
    needs_reconcile = models.BooleanField(default=False)
    ehr_id = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # The retry budget (PSYFI_DELIVERY_RETRY_BUDGET_HOURS) counts from here,
    # not in attempts: a transient fault delays a note, never drops it.
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the EHR last confirmed the patient (invariant 5); not repeated on
    # every retry, only once older than PSYFI_PATIENT_RECHECK_HOURS.
    patient_checked_at = models.DateTimeField(null=True, blank=True)

    class ProvenanceState(models.TextChoices):
        NONE = "", "Not yet known"
        OWED = "owed", "Owed to the EHR"
        STORED = "stored", "Stored at the EHR"
        UNSUPPORTED = "unsupported", "Not supported by this EHR"

    # Where the connection supports Provenance, a delivery is complete only
    # when the note and its Provenance are both stored.
    provenance_state = models.CharField(max_length=12, choices=ProvenanceState.choices, blank=True, default="")
    provenance_ehr_id = models.CharField(max_length=200, blank=True)
    # Manual filing: who confirmed "filed in EHR" (delivered_at says when,
    # ehr_id holds the EHR reference they gave, if any).
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

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
            # The sweeper's backstop: amendments waiting for their earlier version.
            models.Index(fields=["replaces"], condition=Q(state="waiting"), name="delivery_waiting_idx"),
            # The dashboard: counts by state per practice.
            models.Index(fields=["practice", "state"], name="delivery_practice_state_idx"),
            # manual_filing_alert_overdue: unfiled notes past MANUAL_FILING_ALERT_HOURS.
            models.Index(
                fields=["created_at"], condition=Q(state="awaiting_filing"), name="delivery_awaiting_filing_idx"
            ),
        ]

    @property
    def hl7_control_id(self) -> str:
        # Same on every resend so the receiver can deduplicate (MSH-10).
        return f"PSYFI{self.pk:012d}"


class DeliveryAttempt(models.Model):
    """The send ledger: one row per attempt and its answer (invariant 6)."""

    class Outcome(models.TextChoices):
        # Written and committed before the request leaves; completed with the
        # answer. A row still `sending` is a request that may have reached the EHR.
        SENDING = "sending", "Sent, no answer recorded yet"
        SENT = "sent", "Sent"
        RETRY = "retry", "Retry later"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Answer lost"
        RECONCILED = "reconciled", "Found at the EHR"
        NOT_FOUND = "not_found", "Not at the EHR (reconciled)"
        # Manual connection: nothing sent; the note waits for a person to file it.
        TO_FILE = "to_file", "Ready to file by hand"
        FILED = "filed", "Filed in the EHR by a person"

    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    ehr_id = models.CharField(max_length=200, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["started_at", "pk"]


class Alert(models.Model):
    """Something a person must look at: a delivery problem, a mapping error,
    EHR schema drift, a broken audit chain, a QA critical error or an unusual
    audit pattern. Raised only through integrations.services.alerts.alert_raise
    (one open alert per (practice, kind, dedup_key); a repeat counts), shown
    in the app (badge and list), sent by email and to the practice's webhook
    (AlertNotification), acknowledged and resolved by a person."""

    class Kind(models.TextChoices):
        DEAD_LETTER = "dead_letter", "Delivery failed"
        UNREACHABLE = "unreachable", "EHR unreachable"
        PATIENT_MISMATCH = "patient_mismatch", "Patient mismatch"
        CONFIGURATION = "configuration", "Connection configuration"
        DUPLICATE = "duplicate", "Duplicate at the EHR"
        UNFILED = "unfiled", "Not filed in the EHR"
        LONG_RETRY = "long_retry", "Delivery retrying for a long time"
        MAPPING_ERROR = "mapping_error", "Field mapping error"
        SCHEMA_DRIFT = "schema_drift", "EHR schema changed"
        AUDIT_CHAIN = "audit_chain", "Audit chain verification failed"
        QA_CRITICAL = "qa_critical", "QA critical error"
        PHI_ACCESS_BURST = "phi_access_burst", "Many clients' records viewed in a short time"
        AFTER_HOURS_SIGN = "after_hours_sign", "Sign-offs far outside working hours"
        API_KEY_REFUSALS = "api_key_refusals", "Burst of refused API keys"

    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="alerts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What makes two raises "the same alert" within a kind (a delivery, a
    # connection, a user); see alert_raise.
    dedup_key = models.CharField(max_length=200, blank=True, default="")
    delivery = models.ForeignKey(Delivery, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts")
    connection = models.ForeignKey(
        EHRConnection, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    note = models.ForeignKey("notes.Note", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Shown in the app only (it may name a client); never emailed or posted.
    reason = models.TextField()
    # How many times it was raised while open.
    count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_raised_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            # manual_filing_alert_overdue raises this alert once per delivery,
            # even with two sweepers at once.
            models.UniqueConstraint(
                fields=["delivery"], condition=Q(kind="unfiled"), name="alert_one_unfiled_per_delivery"
            ),
            # alert_raise: one open alert per (practice, kind, key), even with
            # two workers raising it at once; a repeat increments its count.
            models.UniqueConstraint(
                fields=["practice", "kind", "dedup_key"],
                condition=Q(resolved_at__isnull=True),
                name="alert_one_open_per_key",
            ),
        ]
        indexes = [
            # The dashboard, the alert list and the badge: open alerts of a practice.
            models.Index(fields=["practice"], condition=Q(resolved_at__isnull=True), name="alert_open_idx"),
        ]

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class AlertRules(models.Model):
    """A practice's alert settings: where alerts go and the threshold of each
    rule. A blank threshold uses the server's default (settings); 0 turns an
    unusual-pattern rule off. Set by practice admins on the alert settings page
    (integrations.services.alerts.alert_rules_save)."""

    practice = models.OneToOneField("notes.Practice", on_delete=models.PROTECT, related_name="alert_rules")
    email_enabled = models.BooleanField(default=True, help_text="Email the practice admins")
    # Checked against the egress policy at save and at every connect.
    webhook_url = models.CharField(max_length=500, blank=True)
    # Fernet token of {"secret": ...}: the HMAC-SHA256 key of the webhook body.
    webhook_secret_encrypted = models.TextField(blank=True)
    # Delivery rules (blank: PSYFI_DELIVERY_LONG_RETRY_ALERT_MINUTES / PSYFI_DELIVERY_ALERT_AFTER_ATTEMPTS).
    long_retry_minutes = models.PositiveIntegerField(null=True, blank=True)
    unreachable_after_attempts = models.PositiveIntegerField(null=True, blank=True)
    # One person viewing at least this many clients' records within the window.
    phi_access_clients = models.PositiveIntegerField(default=25)
    phi_access_window_minutes = models.PositiveIntegerField(default=60)
    # A sign-off more than the margin before the start or after the end of the
    # working day (practice time zone).
    working_day_start = models.TimeField(default=datetime.time(8, 0))
    working_day_end = models.TimeField(default=datetime.time(18, 0))
    after_hours_margin_minutes = models.PositiveIntegerField(default=180)
    after_hours_signs = models.PositiveIntegerField(default=1)
    # At least this many refused API-key calls within the window.
    api_key_refusals = models.PositiveIntegerField(default=20)
    api_key_refusals_window_minutes = models.PositiveIntegerField(default=10)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager, excluded_fields=["webhook_secret_encrypted"])


class AlertNotification(models.Model):
    """The alert outbox: one row per alert and channel, sent by
    alert_notification_send (Celery, retried with backoff) the way deliveries
    are: claim by conditional update, record the result. Carries no content:
    the message is built from the alert's kind and count at send time."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, related_name="notifications")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # alert_notifications_sweep: rows waiting or stuck.
            models.Index(
                fields=["updated_at"],
                condition=Q(state__in=["pending", "sending", "retrying"]),
                name="alertnotif_outstanding_idx",
            ),
        ]


class SandboxResource(models.Model):
    """What the built-in sandbox EHR stores (integrations.sandbox), per
    practice: a request sees only the data of the practice whose sandbox
    connection's credentials it carries."""

    # Sandbox data is synthetic and goes with its practice.
    practice = models.ForeignKey("notes.Practice", on_delete=models.CASCADE, related_name="+")
    resource_type = models.CharField(max_length=40)
    logical_id = models.CharField(max_length=64)
    identifier_system = models.CharField(max_length=300, blank=True)
    identifier_value = models.CharField(max_length=300, blank=True)
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Patient ids come from the practice (PUT), so two practices may use the same one.
            models.UniqueConstraint(
                fields=["practice", "resource_type", "logical_id"], name="sandbox_practice_unique_id"
            ),
        ]
        indexes = [
            # Conditional create and search by identifier, within the practice.
            models.Index(
                fields=["practice", "resource_type", "identifier_system", "identifier_value"],
                name="sandbox_practice_ident_idx",
            ),
        ]


class SandboxFaults(models.Model):
    """Fault injection for the sandbox EHR; a single row (pk=1), set from tests
    or the Django admin."""

    conditional_create = models.BooleanField(default=True, help_text="Declare and honour If-None-Exist")
    rate_503 = models.FloatField(default=0.0)
    retry_after_seconds = models.PositiveIntegerField(default=1)
    rate_429 = models.FloatField(default=0.0)
    delay_ms = models.PositiveIntegerField(default=0)
    drop_after_commit_rate = models.FloatField(default=0.0)
    rename_birth_date = models.BooleanField(default=False, help_text="Patient.birthDate answered as birth_date")
    # An EHR update: DocumentReference.date renamed to `indexed` in the
    # declared profile (StructureDefinition), and writes without it refused.
    renamed_field = models.BooleanField(default=False, help_text="DocumentReference.date renamed to indexed")

    @classmethod
    def current(cls) -> "SandboxFaults":
        return cls.objects.get_or_create(pk=1)[0]
