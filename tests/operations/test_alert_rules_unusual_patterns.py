"""Unusual audit patterns raise alerts, each with a threshold in the
practice's alert settings: one person viewing many clients' records in a
short time, sign-offs far outside working hours, a burst of refused API
keys. A resolved alert is raised again only by new events."""

import datetime as dt
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from audit.services import audit_phi_access
from integrations.forms import AlertRulesForm
from integrations.models import Alert
from integrations.services import alert_resolve, alert_rules_save
from integrations.services.alert_rules import alert_rules_evaluate, minutes_outside_working_hours
from notes.api_keys import ai_source_key_create, ai_source_key_refusal_record, ai_source_key_refusals_flush
from tests.factories import ai_source_factory, client_factory, note_factory, note_sign_now


def _kinds(practice) -> list[str]:
    return sorted(Alert.objects.filter(practice=practice, resolved_at__isnull=True).values_list("kind", flat=True))


def _view_clients(world, n: int) -> None:
    for _ in range(n):
        audit_phi_access(user=world.colleague, client=client_factory(world.practice, world.colleague))


def test_one_person_viewing_many_clients_raises_an_alert_at_the_threshold(world):
    alert_rules_save(practice=world.practice, actor=world.admin, phi_access_clients=4, phi_access_window_minutes=60)
    _view_clients(world, 3)
    assert alert_rules_evaluate(practice=world.practice) == []
    _view_clients(world, 1)
    [alert] = alert_rules_evaluate(practice=world.practice)
    assert alert.kind == Alert.Kind.PHI_ACCESS_BURST and alert.dedup_key == f"user:{world.colleague.pk}"
    assert "4 clients" in alert.reason
    # Still going on at the next run: the same alert, counted.
    [again] = alert_rules_evaluate(practice=world.practice)
    assert again.pk == alert.pk and Alert.objects.get(pk=alert.pk).count == 2


def test_a_resolved_burst_is_raised_again_only_by_new_views(world):
    alert_rules_save(practice=world.practice, actor=world.admin, phi_access_clients=3)
    _view_clients(world, 3)
    [alert] = alert_rules_evaluate(practice=world.practice)
    alert_resolve(alert=alert, actor=world.admin)
    assert alert_rules_evaluate(practice=world.practice) == []
    _view_clients(world, 3)
    [fresh] = alert_rules_evaluate(practice=world.practice)
    assert fresh.pk != alert.pk


def test_the_phi_access_rule_can_be_turned_off(world):
    alert_rules_save(practice=world.practice, actor=world.admin, phi_access_clients=0)
    _view_clients(world, 5)
    assert alert_rules_evaluate(practice=world.practice) == []


def _working_day_excluding_now(practice) -> tuple[dt.time, dt.time]:
    """A one-hour working day at least six hours away from now (practice time)."""
    hour = timezone.now().astimezone(zoneinfo.ZoneInfo(practice.timezone)).hour
    start = hour + 6 if hour < 12 else hour - 7
    return dt.time(start, 0), dt.time(start + 1, 0)


def test_a_sign_off_far_outside_working_hours_raises_an_alert(world):
    start, end = _working_day_excluding_now(world.practice)
    alert_rules_save(
        practice=world.practice,
        actor=world.admin,
        working_day_start=start,
        working_day_end=end,
        after_hours_margin_minutes=60,
        after_hours_signs=1,
    )
    note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    [alert] = [a for a in alert_rules_evaluate(practice=world.practice) if a.kind == Alert.Kind.AFTER_HOURS_SIGN]
    assert alert.dedup_key == f"user:{world.clinician.pk}"
    assert "1 note(s) far outside working hours" in alert.reason


def test_a_sign_off_within_working_hours_raises_nothing(world):
    alert_rules_save(
        practice=world.practice, actor=world.admin, working_day_start=dt.time(0, 0), working_day_end=dt.time(23, 59)
    )
    note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    assert Alert.Kind.AFTER_HOURS_SIGN not in [a.kind for a in alert_rules_evaluate(practice=world.practice)]


def test_after_hours_is_measured_round_the_clock_past_midnight():
    # A day ending at 22:00 with a 180-minute margin: 00:30 is 150 minutes after it.
    start, end = dt.time(8, 0), dt.time(22, 0)
    assert minutes_outside_working_hours(dt.time(0, 30), start, end) == 150
    assert minutes_outside_working_hours(dt.time(3, 30), start, end) == 270
    assert minutes_outside_working_hours(dt.time(6, 0), start, end) == 120  # before the start
    assert minutes_outside_working_hours(dt.time(12, 0), start, end) == 0


def test_a_night_shift_schedule_running_over_midnight_is_its_working_day():
    start, end = dt.time(22, 0), dt.time(6, 0)
    for inside in (dt.time(22, 0), dt.time(23, 59), dt.time(0, 0), dt.time(3, 0), dt.time(6, 0)):
        assert minutes_outside_working_hours(inside, start, end) == 0, inside
    assert minutes_outside_working_hours(dt.time(7, 0), start, end) == 60
    assert minutes_outside_working_hours(dt.time(21, 0), start, end) == 60
    assert minutes_outside_working_hours(dt.time(14, 0), start, end) == 480


def test_the_settings_form_takes_a_night_shift_and_refuses_an_empty_day(world):
    form = {
        "phi_access_clients": "10",
        "phi_access_window_minutes": "30",
        "after_hours_margin_minutes": "120",
        "after_hours_signs": "1",
        "api_key_refusals": "20",
        "api_key_refusals_window_minutes": "10",
    }
    night = AlertRulesForm({**form, "working_day_start": "22:00", "working_day_end": "06:00"})
    assert night.is_valid(), night.errors
    empty = AlertRulesForm({**form, "working_day_start": "08:00", "working_day_end": "08:00"})
    assert not empty.is_valid() and "start and end at the same time" in str(empty.errors["working_day_end"])


def test_a_night_shift_sign_off_inside_its_hours_raises_nothing(world):
    # A 23-hour day that started an hour ago and ends an hour before it
    # started: its start is later than its end (except between 01:00 and 02:00).
    now = timezone.now().astimezone(zoneinfo.ZoneInfo(world.practice.timezone))
    start, end = (now - timedelta(hours=1)).time(), (now - timedelta(hours=2)).time()
    alert_rules_save(
        practice=world.practice,
        actor=world.admin,
        working_day_start=start,
        working_day_end=end,
        after_hours_margin_minutes=0,
        after_hours_signs=1,
    )
    note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    assert Alert.Kind.AFTER_HOURS_SIGN not in [a.kind for a in alert_rules_evaluate(practice=world.practice)]


def test_a_burst_of_refused_api_keys_raises_an_alert(world):
    alert_rules_save(practice=world.practice, actor=world.admin, api_key_refusals=5, api_key_refusals_window_minutes=10)
    key, plain = ai_source_key_create(ai_source=ai_source_factory(world.practice))
    prefix = plain.split("_", 2)[1]
    now = timezone.now()
    for _ in range(4):
        ai_source_key_refusal_record(prefix=prefix, reason="revoked", method="POST", path="/api/v1/drafts", now=now)
    ai_source_key_refusals_flush(now=now + timedelta(minutes=1))
    assert alert_rules_evaluate(practice=world.practice) == []  # 4 refusals: under the threshold
    ai_source_key_refusal_record(
        prefix=prefix, reason="revoked", method="POST", path="/api/v1/drafts", now=now + timedelta(minutes=1)
    )
    [alert] = alert_rules_evaluate(practice=world.practice)
    assert alert.kind == Alert.Kind.API_KEY_REFUSALS and "5 API calls" in alert.reason


def test_the_rules_run_on_beat_and_cover_every_practice_with_recent_events(world):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"integrations.alert_rules_evaluate", "integrations.audit_chain_check"} <= tasks
    alert_rules_save(practice=world.practice, actor=world.admin, phi_access_clients=2)
    _view_clients(world, 2)
    assert [a.practice_id for a in alert_rules_evaluate()] == [world.practice.pk]
