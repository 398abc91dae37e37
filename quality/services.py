"""Writes of the quality loop. Each takes keyword-only arguments and the
actor, runs in one transaction and writes its AuditEvent in it.

qa_draw_at_signing runs inside notes.services.note_sign, after the note is
signed: it only reads, then inserts its own QADraw row (nobody else locks it)
and its audit event, so it keeps note_sign's lock order (notes/services.py).
One exception: a practice's very first signature creates its SamplingPolicy
row after the chain head is locked. An admin saving the policy at that very
moment takes the two in the other order; PostgreSQL then aborts one of them
as a deadlock and retry_on_conflict runs it again.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.attribution import section_text
from audit.services import actor_person, actor_system, audit_record
from notes.errors import DomainError, IllegalTransition, NotPermitted
from notes.models import Note
from notes.roles import Role, membership_of
from psyfi_review.db_retry import retry_on_conflict
from quality.alerts import qa_critical_alert_raise
from quality.models import Cohort, CohortMember, QADraw, QAError, QAReview, SamplingPolicy, SatisfactionPulse
from quality.sampling import draw_uniform, is_rubber_stamp, sampling_decide, word_count


def _require_role(actor, practice_id: int, *roles: str):
    membership = membership_of(actor)
    if membership is None or membership.practice_id != practice_id:
        raise NotPermitted("You are not a member of this practice.")
    if membership.role not in roles:
        raise NotPermitted(f"A {membership.get_role_display().lower()} cannot do this.")
    return membership


def sampling_policy_for(*, practice) -> SamplingPolicy:
    """The practice's policy, created with the defaults (25 %) on first use."""
    policy = SamplingPolicy.objects.filter(practice=practice).first()
    if policy is not None:
        return policy
    try:
        with transaction.atomic():
            return SamplingPolicy.objects.create(practice=practice)
    except IntegrityError:  # created meanwhile by another signing
        return SamplingPolicy.objects.get(practice=practice)


# --- the draw at signing ------------------------------------------------------------------------


def qa_draw_at_signing(*, note: Note, now: datetime | None = None) -> QADraw:
    """Decide whether a note just signed goes to QA review, and record why.
    Called by notes.services.note_sign in its transaction; never raises a
    domain error, so it can never block a signature."""
    existing = QADraw.objects.filter(note=note).first()
    if existing is not None:
        # Signed again after a supervisor returned it (notes.cosign_services):
        # the draw stays the one made at its first signature.
        return existing
    policy = sampling_policy_for(practice=note.practice)
    member = CohortMember.objects.select_related("cohort").filter(clinician_id=note.clinician_id).first()
    cohort = member.cohort if member is not None and member.cohort.practice_id == note.practice_id else None
    rate = cohort.sample_rate_percent if cohort is not None and cohort.sample_rate_percent is not None else None
    rate = policy.sample_rate_percent if rate is None else rate

    sections = list(note.sections.all())
    edited = any(s.text != s.ai_text or s.codes != s.ai_codes for s in sections)
    words = sum(word_count(section_text(s.text, s.codes)) for s in sections)
    rubber_stamp = is_rubber_stamp(
        edited=edited,
        words=words,
        review_seconds=note.review_seconds,
        seconds_per_100_words=policy.rubber_stamp_seconds_per_100_words,
    )
    earlier_signed = (
        Note.objects.filter(practice_id=note.practice_id, clinician_id=note.clinician_id, signed_at__isnull=False)
        .exclude(pk=note.pk)
        .count()
    )
    draw = draw_uniform(seed=policy.seed, note_id=note.pk)
    decision = sampling_decide(
        draw=draw,
        rate_percent=rate,
        high_risk=note.high_risk,
        amendment=note.amends_id is not None,
        earlier_signed=earlier_signed,
        first_notes_always=policy.first_notes_always,
        rubber_stamp=rubber_stamp,
        rubber_stamp_rate_percent=policy.rubber_stamp_rate_percent,
    )
    row = QADraw.objects.create(
        note=note,
        practice_id=note.practice_id,
        clinician_id=note.clinician_id,
        cohort=cohort,
        drawn_at=now or note.signed_at or timezone.now(),
        draw=draw,
        rate_percent=decision.rate_percent,
        sampled=decision.sampled,
        reason=decision.reason,
        edited=edited,
        words=words,
        review_seconds=note.review_seconds,
        rubber_stamp=rubber_stamp,
    )
    audit_record(
        practice=note.practice,
        actor=actor_system("QA sampling"),
        action="qa.draw",
        obj=row,
        note=note,
        client=note.client,
        after={"sampled": decision.sampled, "reason": decision.reason},
        detail={
            "draw": draw,
            "rate_percent": str(decision.rate_percent),
            "cohort": cohort.name if cohort else "",
            "rubber_stamp": rubber_stamp,
            "method": "HMAC-SHA256(practice seed, note:<id>)[:8] / 2^64",
        },
    )
    return row


# --- the practice's policy and cohorts ---------------------------------------------------------------


def _clean(obj) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise DomainError(" ".join(messages), field=field) from None


@retry_on_conflict
@transaction.atomic
def sampling_policy_update(
    *,
    practice,
    sample_rate_percent: Decimal,
    first_notes_always: int,
    rubber_stamp_seconds_per_100_words: int,
    rubber_stamp_rate_percent: Decimal,
    actor,
) -> SamplingPolicy:
    _require_role(actor, practice.pk, Role.PRACTICE_ADMIN)
    policy = sampling_policy_for(practice=practice)
    policy = SamplingPolicy.objects.select_for_update().get(pk=policy.pk)
    fields = (
        "sample_rate_percent",
        "first_notes_always",
        "rubber_stamp_seconds_per_100_words",
        "rubber_stamp_rate_percent",
    )
    before = {f: str(getattr(policy, f)) for f in fields}
    policy.sample_rate_percent = sample_rate_percent
    policy.first_notes_always = first_notes_always
    policy.rubber_stamp_seconds_per_100_words = rubber_stamp_seconds_per_100_words
    policy.rubber_stamp_rate_percent = rubber_stamp_rate_percent
    _clean(policy)
    policy.save(update_fields=[*fields, "updated_at"])
    audit_record(
        practice=practice,
        actor=actor_person(actor),
        action="qa.policy_update",
        obj=policy,
        before=before,
        after={f: str(getattr(policy, f)) for f in fields},
    )
    return policy


@retry_on_conflict
@transaction.atomic
def cohort_save(
    *, practice, name: str, sample_rate_percent: Decimal | None, actor, cohort: Cohort | None = None
) -> Cohort:
    """Create a cohort, or change its name and rate (None: the practice's rate)."""
    _require_role(actor, practice.pk, Role.PRACTICE_ADMIN)
    name = name.strip()
    if not name:
        raise DomainError("Give the cohort a name.", field="name")
    if Cohort.objects.filter(practice=practice, name=name).exclude(pk=getattr(cohort, "pk", None)).exists():
        raise DomainError(f"There is already a cohort named “{name}”.", field="name")
    before = None if cohort is None else {"name": cohort.name, "rate": str(cohort.sample_rate_percent)}
    cohort = cohort or Cohort(practice=practice)
    cohort.name = name
    cohort.sample_rate_percent = sample_rate_percent
    _clean(cohort)
    cohort.save()
    audit_record(
        practice=practice,
        actor=actor_person(actor),
        action="qa.cohort_save",
        obj=cohort,
        before=before,
        after={"name": cohort.name, "rate": str(cohort.sample_rate_percent)},
    )
    return cohort


@retry_on_conflict
@transaction.atomic
def cohort_assign(*, practice, clinician, cohort: Cohort | None, actor) -> None:
    """Put a clinician in a cohort (or in none)."""
    _require_role(actor, practice.pk, Role.PRACTICE_ADMIN)
    membership = membership_of(clinician)
    if membership is None or membership.practice_id != practice.pk or membership.role != Role.CLINICIAN:
        raise DomainError("Only a clinician of this practice can join a cohort.", field="clinician")
    if cohort is not None and cohort.practice_id != practice.pk:
        raise DomainError("No such cohort.", field="cohort")
    current = CohortMember.objects.select_for_update().filter(clinician=clinician).first()
    before = current.cohort.name if current else ""
    if current is not None and (cohort is None or current.cohort_id != cohort.pk):
        current.delete()
        current = None
    if cohort is not None and current is None:
        CohortMember.objects.create(cohort=cohort, clinician=clinician)
    audit_record(
        practice=practice,
        actor=actor_person(actor),
        action="qa.cohort_assign",
        object_type="auth.user",
        object_id=str(clinician.pk),
        before={"cohort": before},
        after={"cohort": cohort.name if cohort else ""},
    )


# --- QA review --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorIn:
    kind: str
    severity: str
    comment: str = ""


@retry_on_conflict
@transaction.atomic
def qa_review_submit(
    *,
    note: Note,
    accuracy: int,
    completeness: int,
    ehr_placement_correct: bool,
    comment: str,
    errors: list[ErrorIn],
    actor,
    now: datetime | None = None,
) -> QAReview:
    """Record a QA reviewer's verdict on a sampled note. A critical error
    raises an alert for the practice admin; the clinician sees the review on
    the note. Raises NotPermitted (not a QA reviewer of the practice),
    IllegalTransition (not sampled, or reviewed already) or DomainError."""
    _require_role(actor, note.practice_id, Role.QA_REVIEWER)
    # The draw row is the queue entry; locking it serialises two reviewers.
    draw = QADraw.objects.select_for_update().filter(note=note, sampled=True).first()
    if draw is None:
        raise IllegalTransition("This note was not sampled for QA review.")
    if QAReview.objects.filter(note=note).exists():
        raise IllegalTransition("This note has already been reviewed.")
    kinds, severities = set(QAError.Kind.values), set(QAError.Severity.values)
    for i, error in enumerate(errors):
        if error.kind not in kinds:
            raise DomainError(f"Error {i + 1}: choose a type.", field="errors")
        if error.severity not in severities:
            raise DomainError(f"Error {i + 1}: choose a severity.", field="errors")
    has_critical = any(e.severity == QAError.Severity.CRITICAL for e in errors)
    review = QAReview(
        note=note,
        practice_id=note.practice_id,
        reviewer=actor,
        accuracy=accuracy,
        completeness=completeness,
        ehr_placement_correct=ehr_placement_correct,
        comment=comment.strip(),
        has_critical=has_critical,
        created_at=now or timezone.now(),
    )
    _clean(review)
    review.save()
    QAError.objects.bulk_create(
        [QAError(review=review, kind=e.kind, severity=e.severity, comment=e.comment.strip()) for e in errors]
    )
    alert = qa_critical_alert_raise(review=review) if has_critical else None
    audit_record(
        practice=note.practice,
        actor=actor_person(actor),
        action="qa.review",
        obj=review,
        note=note,
        client=note.client,
        after={
            "accuracy": accuracy,
            "completeness": completeness,
            "ehr_placement_correct": ehr_placement_correct,
            "errors": [{"kind": e.kind, "severity": e.severity} for e in errors],
        },
        detail={"alert": alert.pk} if alert else {},
    )
    return review


# --- satisfaction pulse ------------------------------------------------------------------------------------


def month_of(day: date) -> date:
    return day.replace(day=1)


@retry_on_conflict
@transaction.atomic
def pulse_record(*, score: int, comment: str = "", actor, now: datetime | None = None) -> SatisfactionPulse:
    """The clinician's 0–10 answer for the current month (in the practice's
    time zone); answering again in the month replaces the answer."""
    membership = _require_role(actor, getattr(membership_of(actor), "practice_id", None), Role.CLINICIAN)
    if not isinstance(score, int) or not 0 <= score <= 10:
        raise DomainError("Choose a score from 0 to 10.", field="score")
    now = now or timezone.now()
    month = month_of(now.astimezone(ZoneInfo(membership.practice.timezone)).date())
    pulse = SatisfactionPulse.objects.select_for_update().filter(clinician=actor, month=month).first()
    before = None if pulse is None else {"score": pulse.score}
    if pulse is None:
        pulse = SatisfactionPulse(practice_id=membership.practice_id, clinician=actor, month=month)
    pulse.score = score
    pulse.comment = comment.strip()
    pulse.answered_at = now
    pulse.save()
    audit_record(
        practice=membership.practice,
        actor=actor_person(actor),
        action="qa.pulse",
        obj=pulse,
        before=before,
        after={"month": month.isoformat(), "score": score},
    )
    return pulse
