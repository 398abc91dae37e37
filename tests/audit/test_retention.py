"""Issue 6 §8: a configurable retention period (six years by default) and a
beat task that reports what is past it; nothing is deleted."""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from audit.models import AuditEvent
from audit.retention import audit_retention_report, retention_cutoff
from audit.tasks import audit_retention_report_task
from integrations.models import Delivery
from notes.models import Draft, Note
from tests.factories import note_factory, note_sign_now

pytestmark = pytest.mark.django_db


def test_the_default_period_is_six_years_and_the_report_runs_daily():
    assert settings.AUDIT_RETENTION_YEARS == 6
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "audit.retention_report")
    assert entry["schedule"] == timedelta(days=1)


def test_the_cutoff_handles_the_29th_of_february():
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert retention_cutoff(now=leap, years=6) == datetime(2022, 2, 28, 12, 0, tzinfo=UTC)


def test_nothing_recent_is_past_retention(world):
    note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    reports = audit_retention_report()
    assert reports[world.practice.pk] == {"audit_events": 0, "signed_notes": 0, "discarded_notes": 0, "drafts": 0}


def test_what_is_past_retention_is_reported_and_nothing_is_deleted(world, settings, caplog):
    settings.AUDIT_RETENTION_YEARS = 2
    signed = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    note_factory(practice=world.practice, clinician=world.clinician)
    before = {
        "events": AuditEvent.objects.count(),
        "notes": Note.objects.count(),
        "drafts": Draft.objects.count(),
        "deliveries": Delivery.objects.count(),
    }
    events_before = AuditEvent.objects.filter(practice=world.practice).count()

    with caplog.at_level(logging.WARNING, logger="audit.retention"):
        reports = audit_retention_report(now=timezone.now() + timedelta(days=2 * 366 + 1))

    assert reports[world.practice.pk] == {
        "audit_events": events_before,
        "signed_notes": 1,
        "discarded_notes": 0,
        "drafts": 2,
    }
    assert "past the 2-year retention period" in caplog.text and "Nothing was deleted" in caplog.text
    event = AuditEvent.objects.get(practice=world.practice, action="audit.retention_report")
    assert event.actor_type == AuditEvent.ActorType.SYSTEM
    assert event.detail["retention_years"] == 2
    assert event.detail["past_retention"]["signed_notes"] == 1
    after = {
        "events": AuditEvent.objects.count() - len(reports),  # one report event per practice, nothing else
        "notes": Note.objects.count(),
        "drafts": Draft.objects.count(),
        "deliveries": Delivery.objects.count(),
    }
    assert after == before
    assert Note.objects.filter(pk=signed.pk, state=Note.State.SIGNED).exists()


def test_the_beat_task_runs_the_report(world):
    note_factory(practice=world.practice, clinician=world.clinician)
    result = audit_retention_report_task.apply().get()
    assert set(result) == {str(world.practice.pk), str(world.other_practice.pk)}
    assert AuditEvent.objects.filter(action="audit.retention_report").count() == 2
