"""Retention: what is older than the practice's retention period.

HIPAA asks for six years of documentation; state rules for clinical records
vary, so the period is a setting (AUDIT_RETENTION_YEARS). This only reports:
nothing clinical, and nothing of the audit log, is ever deleted automatically.
Deleting is a decision for a person, with the report in hand.
"""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import actor_system, audit_record
from notes.models import Draft, Note, Practice

logger = logging.getLogger(__name__)


def retention_cutoff(*, now: datetime, years: int) -> datetime:
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February
        return now.replace(year=now.year - years, day=28)


def audit_retention_report(*, now: datetime | None = None, years: int | None = None) -> dict[int, dict]:
    """Count, per practice, the records past retention and write one system
    event per practice saying so. Returns {practice id: counts}."""
    now = now or timezone.now()
    years = settings.AUDIT_RETENTION_YEARS if years is None else years
    cutoff = retention_cutoff(now=now, years=years)
    reports = {}
    for practice in Practice.objects.order_by("pk"):
        counts = {
            "audit_events": AuditEvent.objects.filter(practice=practice, created_at__lt=cutoff).count(),
            "signed_notes": Note.objects.filter(
                practice=practice, state__in=[Note.State.SIGNED, Note.State.AMENDED], signed_at__lt=cutoff
            ).count(),
            "discarded_notes": Note.objects.filter(
                practice=practice, state=Note.State.DISCARDED, created_at__lt=cutoff
            ).count(),
            "drafts": Draft.objects.filter(practice=practice, received_at__lt=cutoff).count(),
        }
        with transaction.atomic():
            audit_record(
                practice=practice,
                actor=actor_system("retention report"),
                action="audit.retention_report",
                object_type="notes.practice",
                object_id=str(practice.pk),
                detail={"retention_years": years, "cutoff": cutoff.isoformat(), "past_retention": counts},
            )
        if any(counts.values()):
            logger.warning(
                "Practice %s has records past the %s-year retention period (before %s): %s. Nothing was deleted.",
                practice.slug,
                years,
                cutoff.date(),
                counts,
            )
        else:
            logger.info("Practice %s: nothing past the %s-year retention period.", practice.slug, years)
        reports[practice.pk] = counts
    return reports
