"""The pilot and quality loop: the practice's QA sampling policy and cohorts,
the draw made for every signed note, QA reviews with their error taxonomy,
and the clinicians' monthly satisfaction pulse.

Models hold fields and small derived properties; the rules are in
quality/services.py (writes) and quality/selectors.py, quality/metrics.py (reads).
"""

import secrets
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from audit.history_manager import CachedHistoryManager

PERCENT = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))]


def _new_seed() -> str:
    return secrets.token_hex(16)


class SamplingPolicy(models.Model):
    """One per practice: how many signed notes go to QA review. A cohort may
    set its own rate (Cohort.sample_rate_percent); the always-sampled rules
    and the seed are the practice's."""

    practice = models.OneToOneField("notes.Practice", on_delete=models.PROTECT, related_name="sampling_policy")
    sample_rate_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("25"), validators=PERCENT)
    # A clinician's first N signed notes are always reviewed (a new user of the scribe).
    first_notes_always = models.PositiveIntegerField(default=10)
    # Rubber-stamp signal: signed with no edit in less than this many seconds
    # of active review per 100 words. Informs QA; never blocks signing.
    rubber_stamp_seconds_per_100_words = models.PositiveIntegerField(default=30)
    rubber_stamp_rate_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("50"), validators=PERCENT
    )
    # HMAC key of the draw (quality.sampling): the draw of a note can be
    # re-derived from its id and this seed, and nobody can predict it without the seed.
    seed = models.CharField(max_length=64, default=_new_seed)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager, excluded_fields=["seed"])

    class Meta:
        verbose_name_plural = "sampling policies"


class Cohort(models.Model):
    """A group of clinicians in the pilot (e.g. "wave 1"). Its rate, when set,
    replaces the practice's rate for its clinicians' notes."""

    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="cohorts")
    name = models.CharField(max_length=60)
    sample_rate_percent = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True, validators=PERCENT)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["practice", "name"], name="cohort_unique_name_per_practice")]

    def __str__(self) -> str:
        return self.name


class CohortMember(models.Model):
    """A clinician's cohort: at most one, so their rate is never ambiguous."""

    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, related_name="members")
    clinician = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cohort_member")
    added_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)


class QADraw(models.Model):
    """The sampling draw made when a note was signed, sampled or not: the
    record of why a note was (or was not) sent to QA, and the base of the
    rubber-stamp counts. Written once, in the signature's transaction."""

    class Reason(models.TextChoices):
        HIGH_RISK = "high_risk", "High-risk note"
        AMENDMENT = "amendment", "Amendment"
        FIRST_NOTES = "first_notes", "Among the clinician's first signed notes"
        RUBBER_STAMP = "rubber_stamp", "Signed quickly with no edit (higher rate)"
        RANDOM = "random", "Random draw"

    note = models.OneToOneField("notes.Note", on_delete=models.PROTECT, related_name="qa_draw")
    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="+")
    clinician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    drawn_at = models.DateTimeField()
    # HMAC-SHA256(seed, note id) as a uniform number in [0, 1).
    draw = models.FloatField()
    rate_percent = models.DecimalField(max_digits=5, decimal_places=2)
    sampled = models.BooleanField()
    reason = models.CharField(max_length=20, choices=Reason.choices, blank=True)
    # Rubber-stamp signal, fixed at signing with the threshold then in force.
    edited = models.BooleanField()
    words = models.PositiveIntegerField()
    review_seconds = models.PositiveIntegerField()
    rubber_stamp = models.BooleanField()

    class Meta:
        indexes = [
            # The QA queue: sampled notes of a practice, oldest first.
            models.Index(fields=["practice", "drawn_at"], condition=Q(sampled=True), name="qadraw_sampled_idx"),
        ]


class QAReview(models.Model):
    """A QA reviewer's verdict on one sampled note. Written once (reviews are
    evidence of the pilot's error rate); a correction is a comment elsewhere."""

    class Score(models.IntegerChoices):
        POOR = 1, "1 – poor"
        FAIR = 2, "2 – fair"
        GOOD = 3, "3 – good"
        VERY_GOOD = 4, "4 – very good"
        EXCELLENT = 5, "5 – excellent"

    note = models.OneToOneField("notes.Note", on_delete=models.PROTECT, related_name="qa_review")
    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="+")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    accuracy = models.PositiveSmallIntegerField(choices=Score.choices)
    completeness = models.PositiveSmallIntegerField(choices=Score.choices)
    ehr_placement_correct = models.BooleanField()
    comment = models.TextField(blank=True)
    has_critical = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    history = HistoricalRecords(history_manager=CachedHistoryManager)


class QAError(models.Model):
    class Kind(models.TextChoices):
        OMISSION = "omission", "Omission"
        HALLUCINATION = "hallucination", "Hallucination or unsupported statement"
        WRONG_SECTION = "wrong_section", "Wrong section"
        WRONG_CLIENT = "wrong_client", "Wrong client or misattribution"
        RISK_MISCLASSIFIED = "risk_misclassified", "Risk misclassified"
        CODING = "coding", "Coding error"
        TONE = "tone", "Tone"

    class Severity(models.TextChoices):
        MINOR = "minor", "Minor"
        MAJOR = "major", "Major"
        CRITICAL = "critical", "Critical"

    review = models.ForeignKey(QAReview, on_delete=models.PROTECT, related_name="errors")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    comment = models.TextField(blank=True)
    history = HistoricalRecords(history_manager=CachedHistoryManager)


class SatisfactionPulse(models.Model):
    """A clinician's answer to "how likely are you to keep using AI drafts"
    (0–10), once a month; a second answer in the month replaces the first."""

    practice = models.ForeignKey("notes.Practice", on_delete=models.PROTECT, related_name="+")
    clinician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    month = models.DateField(help_text="First day of the month answered for")
    score = models.PositiveSmallIntegerField(validators=[MaxValueValidator(10)])
    comment = models.TextField(blank=True)
    answered_at = models.DateTimeField()
    history = HistoricalRecords(history_manager=CachedHistoryManager)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinician", "month"], name="pulse_one_per_clinician_month"),
            models.CheckConstraint(condition=Q(score__lte=10), name="pulse_score_0_to_10"),
        ]
