"""The clinical domain: practices and roles, clients and consent, note
templates, AI drafts, notes and their sections and flags.

Models hold fields and small derived properties. Every state change goes
through notes/services.py; nothing here enforces workflow rules in save().
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from audit.history_manager import CachedHistoryManager


class Practice(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    timezone = models.CharField(max_length=64, default="America/New_York")
    # Practice settings (issue 14, point 7). Empty means the deployment's
    # default (IDLE_TIMEOUT_MINUTES, SIGN_STEP_UP_MINUTES), so an operator's
    # environment still rules every practice that has not chosen.
    idle_logoff_minutes = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(720)]
    )
    step_up_window_minutes = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(120)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    def __str__(self) -> str:
        return self.name

    @property
    def idle_timeout(self) -> timedelta:
        if self.idle_logoff_minutes:
            return timedelta(minutes=self.idle_logoff_minutes)
        return settings.IDLE_TIMEOUT

    @property
    def step_up_window(self) -> timedelta:
        """How long one OTP step-up covers signatures in this practice."""
        if self.step_up_window_minutes:
            return timedelta(minutes=self.step_up_window_minutes)
        return settings.SIGN_STEP_UP_WINDOW


class Membership(models.Model):
    """A person's place in one practice. One practice and one role per person:
    a practice admin who also treats clients gets a second login, so that
    "an admin cannot sign" stays a property of the account."""

    class Role(models.TextChoices):
        CLINICIAN = "clinician", "Clinician"
        PRACTICE_ADMIN = "practice_admin", "Practice admin"
        QA_REVIEWER = "qa_reviewer", "QA reviewer"
        AUDITOR = "auditor", "Auditor"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="membership")
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    credentials = models.CharField(max_length=40, blank=True, help_text="e.g. PsyD, LCSW")
    licence_type = models.CharField(max_length=60, blank=True, help_text="e.g. LCSW (NY), Associate MFT")
    # A pre-licensed clinician's signed notes wait for their supervisor's
    # co-signature before delivery (the supervisor is a clinician of the practice).
    pre_licensed = models.BooleanField(default=False)
    supervisor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="supervisees"
    )
    ehr_practitioner_id = models.CharField(max_length=64, blank=True)
    is_active = models.BooleanField(default=True)
    # Single-character shortcuts (j, k, e, f, u, ?) on the review pages. A
    # speech-input or switch user turns them off (WCAG 2.1.4); kept on the
    # account, not in one browser, because a clinician reviews on several devices.
    single_key_shortcuts = models.BooleanField(default=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}, {self.practice})"


class Client(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="clients")
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="clients", help_text="Primary clinician"
    )
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    date_of_birth = models.DateField()
    ehr_patient_id = models.CharField(max_length=64, blank=True, help_text="The patient's id in the practice's EHR")
    synthetic = models.BooleanField(default=False, help_text="A made-up client for the sandbox and demos")
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        constraints = [
            # One EHR identity per client inside a practice: the intake API
            # resolves clients by it, and the transport writes to it.
            models.UniqueConstraint(
                fields=["practice", "ehr_patient_id"],
                condition=~Q(ehr_patient_id=""),
                name="client_unique_ehr_patient_id_per_practice",
            ),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def active_consent(self) -> "ClientConsent | None":
        for consent in self.consents.all():
            if consent.revoked_at is None:
                return consent
        return None


DEFAULT_DISCLOSURE_TEXT = (
    "AI tools may assist with clinical documentation, which is reviewed and approved by your clinician."
)


class DisclosureText(models.Model):
    """A version of the text a client reads before consenting to AI-assisted
    documentation. Versions are never edited: a consent names the version its
    client read, so changing the wording means adding a version."""

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="disclosure_texts")
    version = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "version"], name="disclosure_text_unique_version"),
        ]

    def __str__(self) -> str:
        return f"v{self.version}"


class ClientConsent(models.Model):
    """The client's consent to AI-assisted documentation. Revoking sets
    revoked_at; the row stays, so the record shows what was agreed when."""

    class Method(models.TextChoices):
        WRITTEN = "written", "Signed form (paper)"
        ELECTRONIC = "electronic", "Signed electronically"
        VERBAL = "verbal", "Verbal, documented by staff"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="consents")
    consented_on = models.DateField()
    disclosure_version = models.CharField(max_length=40, help_text="Version of the disclosure text the client read")
    # Blank on consents recorded before the method was asked for.
    method = models.CharField(max_length=12, choices=Method.choices, blank=True)
    # A minor consents through a parent or guardian, whose name the record keeps.
    guardian_name = models.CharField(max_length=200, blank=True)
    guardian_relationship = models.CharField(max_length=60, blank=True, help_text="e.g. mother, legal guardian")
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        constraints = [
            # At most one active consent per client.
            models.UniqueConstraint(
                fields=["client"], condition=Q(revoked_at__isnull=True), name="consent_one_active_per_client"
            ),
        ]


class NoteTemplate(models.Model):
    class Kind(models.TextChoices):
        SOAP = "soap", "SOAP"
        DAP = "dap", "DAP"
        CUSTOM = "custom", "Custom"

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="templates")
    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    is_psychotherapy_notes = models.BooleanField(
        default=False,
        help_text="Process notes in the HIPAA sense: kept here, never delivered to the EHR.",
    )
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["practice", "key"], name="template_unique_key_per_practice")]

    def __str__(self) -> str:
        return self.name


class NoteTemplateVersion(models.Model):
    """One immutable version of a template. Notes point at the version they
    were drafted under; editing a template means adding a version."""

    class UnplacedPolicy(models.TextChoices):
        FALLBACK = "fallback", "Put it in the fallback section (and flag it for review)"
        FLAG = "flag", "Flag it for manual placement"

    template = models.ForeignKey(NoteTemplate, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    is_active = models.BooleanField(default=False)
    fallback_section_key = models.SlugField(max_length=50, blank=True)
    unplaced_policy = models.CharField(max_length=10, choices=UnplacedPolicy.choices, default=UnplacedPolicy.FLAG)
    # AI output field -> section key (MAPPING.md §2). Fields not listed have no place.
    field_map = models.JSONField(default=dict)
    # A version being edited by a practice admin. Its sections may change until
    # it is published (made active); the intake never picks a draft version,
    # so no note is ever mapped onto one that later changes.
    is_draft = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["template", "version"], name="template_version_unique"),
            # The intake API picks "the practice's active version" of a template.
            models.UniqueConstraint(
                fields=["template"], condition=Q(is_active=True), name="template_one_active_version"
            ),
            # The template editor works on "the draft" of a template.
            models.UniqueConstraint(fields=["template"], condition=Q(is_draft=True), name="template_one_draft_version"),
            models.CheckConstraint(condition=~Q(is_draft=True, is_active=True), name="template_draft_not_active"),
        ]

    def __str__(self) -> str:
        return f"{self.template.name} v{self.version}"


class TemplateSection(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text", "Free text"
        DIAGNOSIS_CODES = "diagnosis_codes", "Diagnosis codes"
        INTERVENTIONS = "interventions", "Interventions"
        RISK = "risk", "Risk"

    template_version = models.ForeignKey(NoteTemplateVersion, on_delete=models.PROTECT, related_name="sections")
    key = models.SlugField(max_length=50)
    label = models.CharField(max_length=100)
    order = models.PositiveIntegerField()
    required = models.BooleanField(default=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEXT)
    loinc_code = models.CharField(max_length=20, blank=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        ordering = ["order"]
        constraints = [
            models.UniqueConstraint(fields=["template_version", "key"], name="section_unique_key_per_version"),
        ]

    def __str__(self) -> str:
        return self.label


class AISource(models.Model):
    """An AI scribe allowed to post drafts to one practice."""

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="ai_sources")
    name = models.CharField(max_length=100)
    vendor = models.CharField(max_length=100, blank=True)
    model_name = models.CharField(max_length=100, blank=True)
    model_version = models.CharField(max_length=50, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    def __str__(self) -> str:
        return self.name


class Draft(models.Model):
    """What the AI scribe posted, verbatim. Never changed after it is stored:
    the note carries every edit, this row is the AI baseline of record."""

    class SessionType(models.TextChoices):
        INDIVIDUAL = "individual", "Individual"
        COUPLE = "couple", "Couple"
        FAMILY = "family", "Family"
        GROUP = "group", "Group"

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="drafts")
    ai_source = models.ForeignKey(AISource, on_delete=models.PROTECT, related_name="drafts")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="drafts")
    clinician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="drafts")
    payload = models.JSONField()
    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=50, blank=True)
    session_start = models.DateTimeField()
    session_duration_minutes = models.PositiveIntegerField()
    session_type = models.CharField(max_length=12, choices=SessionType.choices, default=SessionType.INDIVIDUAL)
    # The billing code the scribe proposes (notes.payer_checks checks it
    # against the duration); add-on codes once per unit ("90840" twice = 2 units).
    cpt_code = models.CharField(max_length=5, blank=True)
    cpt_add_on_codes = models.JSONField(default=list, blank=True)
    external_id = models.CharField(max_length=200, blank=True, help_text="The scribe's own draft id")
    idempotency_key = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    # Only ever one "created" row: the draft is immutable (see save()). The
    # payload stays out of it: the row would only repeat, verbatim, up to
    # 1 MiB that the draft itself keeps and can never change.
    history = HistoricalRecords(history_manager=CachedHistoryManager, excluded_fields=["payload"])

    class Meta:
        constraints = [
            # A repeated POST with the same key returns the first draft (intake API).
            models.UniqueConstraint(
                fields=["ai_source", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="draft_unique_idempotency_key_per_source",
            ),
        ]

    def save(self, *args, **kwargs):
        # Immutability of the AI record is an invariant, not a workflow rule,
        # so it is enforced as close to the data as Django allows.
        if self.pk is not None and not self._state.adding:
            raise ValueError("A draft is immutable once stored.")
        super().save(*args, **kwargs)


class Note(models.Model):
    """One version of a clinical note. An amendment is a new Note row with the
    same lineage and version + 1; the earlier one becomes AMENDED once the
    amendment is signed. (lineage, version) is the identifier the EHR gets."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        # Signed by a pre-licensed clinician; the content is fixed, and nothing
        # leaves until their supervisor co-signs (notes.cosign_services).
        AWAITING_COSIGN = "awaiting_cosign", "Awaiting co-signature"
        SIGNED = "signed", "Signed"
        AMENDED = "amended", "Amended"
        DISCARDED = "discarded", "Discarded"

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="notes")
    draft = models.ForeignKey(Draft, on_delete=models.PROTECT, related_name="notes")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="notes")
    clinician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="notes")
    template_version = models.ForeignKey(NoteTemplateVersion, on_delete=models.PROTECT, related_name="notes")
    lineage = models.UUIDField(default=uuid.uuid4, editable=False)
    version = models.PositiveIntegerField(default=1)
    amends = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="amended_by")
    amendment_reason = models.TextField(blank=True)

    class BlockedCause(models.TextChoices):
        # Kept apart from the reason's wording so that lifting a block (consent
        # recorded again) touches only the notes blocked for that cause.
        NO_CONSENT = "no_consent", "No consent when the draft arrived"
        CONSENT_REVOKED = "consent_revoked", "Consent revoked while the draft was open"

    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)
    high_risk = models.BooleanField(default=False)
    blocked_reason = models.CharField(
        max_length=200, blank=True, help_text="Why this note cannot be signed (e.g. no consent)"
    )
    blocked_cause = models.CharField(max_length=20, choices=BlockedCause.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    content_hash = models.CharField(max_length=64, blank=True)
    cosigned_at = models.DateTimeField(null=True, blank=True)
    cosigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The supervisor's last comment when returning the note for edits; shown
    # to the clinician on the review page until the note is signed again.
    cosign_returned_comment = models.TextField(blank=True)
    discarded_reason = models.TextField(blank=True)
    review_seconds = models.PositiveIntegerField(default=0, help_text="Active review time")
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lineage", "version"], name="note_unique_lineage_version"),
            models.CheckConstraint(
                condition=~Q(state__in=["signed", "amended", "awaiting_cosign"])
                | (Q(signed_at__isnull=False) & Q(signed_by__isnull=False) & ~Q(content_hash="")),
                name="note_signed_has_signature",
            ),
            # A co-signature is a supervisor's, never the signer's own.
            models.CheckConstraint(
                condition=Q(cosigned_by__isnull=True)
                | (~Q(cosigned_by=models.F("signed_by")) & Q(cosigned_at__isnull=False)),
                name="note_cosigned_by_another",
            ),
            models.CheckConstraint(
                condition=~Q(state="discarded") | ~Q(discarded_reason=""),
                name="note_discarded_has_reason",
            ),
            # A block always says why, to the clinician and to the code that lifts it.
            models.CheckConstraint(
                condition=Q(blocked_reason="", blocked_cause="") | (~Q(blocked_reason="") & ~Q(blocked_cause="")),
                name="note_blocked_has_reason_and_cause",
            ),
        ]
        indexes = [
            # The clinician's review queue: their notes awaiting review.
            models.Index(fields=["clinician", "state"], name="note_queue_idx"),
        ]

    def __str__(self) -> str:
        return f"Note {self.lineage} v{self.version} ({self.get_state_display()})"

    @property
    def is_signed(self) -> bool:
        return self.state in (self.State.SIGNED, self.State.AMENDED)


class NoteSection(models.Model):
    class Origin(models.TextChoices):
        AI = "ai", "AI draft"
        FALLBACK = "fallback", "AI draft, placed by fallback rule"
        CLINICIAN = "clinician", "Written by the clinician"

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="sections")
    key = models.SlugField(max_length=50)
    label = models.CharField(max_length=100)
    order = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=TemplateSection.Kind.choices, default=TemplateSection.Kind.TEXT)
    required = models.BooleanField(default=False)
    text = models.TextField(blank=True)
    ai_text = models.TextField(blank=True, help_text="The AI baseline this section started from")
    # Structured values for code sections (ICD-10-CM codes, intervention terms).
    codes = models.JSONField(default=list, blank=True)
    ai_codes = models.JSONField(default=list, blank=True)
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.AI)
    # Raised by one on every saved change (notes.services.note_edit_section). A
    # save must name the version it started from: two tabs or devices editing
    # one section then get a conflict to resolve instead of the later autosave
    # silently overwriting the earlier one.
    version = models.PositiveIntegerField(default=1)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        ordering = ["order"]
        constraints = [models.UniqueConstraint(fields=["note", "key"], name="note_section_unique_key")]


class Flag(models.Model):
    """Something the clinician must resolve before signing (invariant 7)."""

    class Kind(models.TextChoices):
        UNPLACED_CONTENT = "unplaced_content", "Content with no place in the template"
        MISSING_REQUIRED = "missing_required", "Required section is empty"
        INVALID_CODE = "invalid_code", "Invalid diagnosis code"
        UNKNOWN_INTERVENTION = "unknown_intervention", "Intervention not in the practice vocabulary"
        RISK = "risk", "Risk item to acknowledge"
        OTHER_PARTICIPANT = "other_participant", "Another group member named"
        # Payer checks (notes.payer_checks): raised at intake when a CPT code is posted.
        CPT_CODE = "cpt_code", "CPT code does not fit the session"
        MEDICAL_NECESSITY = "medical_necessity", "Medical-necessity element missing"

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="flags")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    section_key = models.SlugField(max_length=50, blank=True)
    field = models.CharField(max_length=100, blank=True, help_text="The AI output field it came from")
    value = models.JSONField(null=True, blank=True, help_text="The offending value, verbatim")
    message = models.TextField()
    suggestions = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolution = models.TextField(blank=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        indexes = [
            # note_sign: "does this note have unresolved flags?"
            models.Index(fields=["note"], condition=Q(resolved_at__isnull=True), name="flag_open_idx"),
        ]

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class InterventionTerm(models.Model):
    """The practice's controlled vocabulary of interventions and modalities.
    Synonyms let "motivational interviewing" find MI."""

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="intervention_terms")
    term = models.CharField(max_length=100)
    synonyms = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        ordering = ["term"]
        constraints = [models.UniqueConstraint(fields=["practice", "term"], name="intervention_unique_term")]

    def __str__(self) -> str:
        return self.term


class InterventionProposal(models.Model):
    """A term a clinician kept as written in a note, proposed for the
    practice's vocabulary. Until a practice admin accepts it, it is text in the
    note only, never a coded intervention (invariant 8)."""

    class State(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"

    practice = models.ForeignKey(Practice, on_delete=models.PROTECT, related_name="intervention_proposals")
    term = models.CharField(max_length=100)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.ForeignKey(Note, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PROPOSED)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            # The practice admin's list of proposals waiting for a decision.
            models.Index(fields=["practice", "created_at"], condition=Q(state="proposed"), name="proposal_open_idx"),
        ]

    def __str__(self) -> str:
        return self.term


class AISourceKey(models.Model):
    """An API key of an AI source. Only a hash is stored; the key is shown
    once. Rotation adds a new key and gives the old one an expiry, so both
    work during the overlap window."""

    ai_source = models.ForeignKey(AISource, on_delete=models.PROTECT, related_name="keys")
    prefix = models.CharField(max_length=16, unique=True, help_text="Public part, to find the key")
    key_hash = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)


class DraftFeedback(models.Model):
    """A clinician's rating of one AI draft, read by the scribe vendor through
    GET /api/v1/feedback. Holds no PHI by design: the vendor gets the draft id
    and these fields only (the comment's help text asks for none)."""

    class Reason(models.TextChoices):
        OMISSION = "omission", "Omission"
        HALLUCINATION = "hallucination", "Hallucination or unsupported statement"
        WRONG_SECTION = "wrong_section", "Wrong section"
        TONE = "tone", "Tone"
        OTHER = "other", "Other"

    draft = models.ForeignKey(Draft, on_delete=models.PROTECT, related_name="feedback")
    # Copied from the draft, so the vendor's list is one index scan.
    ai_source = models.ForeignKey(AISource, on_delete=models.PROTECT, related_name="feedback")
    clinician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    rating = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 (poor) to 5 (excellent)")
    reasons = models.JSONField(default=list, blank=True)
    comment = models.TextField(blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["draft", "clinician"], name="feedback_one_per_draft_and_clinician"),
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5), name="feedback_rating_1_to_5"
            ),
        ]
        indexes = [
            # GET /api/v1/feedback: one AI source's feedback, in id order.
            models.Index(fields=["ai_source", "id"], name="feedback_source_idx"),
        ]
