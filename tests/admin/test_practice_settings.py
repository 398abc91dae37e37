"""Practice settings: the time zone every time is shown in, the idle logoff
and the signing step-up window, each change audited with before and after."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from accounts import services
from accounts.models import Invitation
from notes.models import Practice
from tests.admin.helpers import last_event
from tests.factories import note_factory, note_resolve_all_flags

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_browser(world, login_as):
    return login_as(world.admin)


def _save(browser, **fields):
    data = {"timezone": "America/New_York", "idle_logoff_minutes": "", "step_up_window_minutes": ""}
    data.update({k: str(v) for k, v in fields.items()})
    return browser.post("/practice/settings/", data)


def test_saving_settings_changes_the_practice_and_audits_before_and_after(world, admin_browser):
    response = _save(admin_browser, timezone="Europe/Berlin", idle_logoff_minutes=30, step_up_window_minutes=5)
    assert response.status_code == 302
    practice = Practice.objects.get(pk=world.practice.pk)
    assert (practice.timezone, practice.idle_logoff_minutes, practice.step_up_window_minutes) == (
        "Europe/Berlin",
        30,
        5,
    )
    event = last_event("practice.settings_change")
    assert event.actor_user == world.admin
    assert event.before == {"timezone": "America/New_York", "idle_logoff_minutes": None, "step_up_window_minutes": None}
    assert event.after == {"timezone": "Europe/Berlin", "idle_logoff_minutes": 30, "step_up_window_minutes": 5}


def test_bad_values_are_refused_with_field_errors_and_nothing_changes(world, admin_browser):
    response = _save(admin_browser, timezone="Mars/Olympus", idle_logoff_minutes=0, step_up_window_minutes=500)
    assert response.status_code == 400
    html = response.content.decode()
    assert (
        "Select a valid choice" in html and "greater than or equal to 1" in html and "less than or equal to 120" in html
    )
    practice = Practice.objects.get(pk=world.practice.pk)
    assert (practice.timezone, practice.idle_logoff_minutes) == ("America/New_York", None)
    assert last_event("practice.settings_change") is None


def test_settings_are_for_practice_admins_only(world, login_as):
    assert _save(login_as(world.clinician), timezone="UTC").status_code == 403
    assert Practice.objects.get(pk=world.practice.pk).timezone == "America/New_York"


def test_times_on_the_people_page_follow_the_practice_time_zone(world, admin_browser):
    services.invitation_create(practice=world.practice, email="tz@example.org", role="auditor", actor=world.admin)
    Invitation.objects.update(expires_at=datetime(2026, 12, 8, 15, 30, tzinfo=UTC))
    html = admin_browser.get("/practice/people/").content.decode()
    assert "Tue 8 Dec 2026, 10:30 EST" in html
    _save(admin_browser, timezone="Europe/Berlin")
    html = admin_browser.get("/practice/people/").content.decode()
    assert "Tue 8 Dec 2026, 16:30 CET" in html


@override_settings(IDLE_TIMEOUT=timedelta(minutes=60))
def test_the_practice_idle_logoff_overrides_the_deployment_default(world, admin_browser, login_as):
    import time

    _save(admin_browser, idle_logoff_minutes=5)
    browser = login_as(world.clinician)
    session = browser.session
    session["last_activity"] = time.time() - 6 * 60  # six minutes idle: past the practice's five
    session.save()
    response = browser.get("/queue/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@override_settings(IDLE_TIMEOUT=timedelta(minutes=5))
def test_a_longer_practice_idle_logoff_keeps_the_session(world, admin_browser, login_as):
    import time

    _save(admin_browser, idle_logoff_minutes=60)
    browser = login_as(world.clinician)
    session = browser.session
    session["last_activity"] = time.time() - 6 * 60
    session.save()
    assert browser.get("/queue/").status_code == 200


def test_signing_uses_the_practice_step_up_window(world):
    from notes import services as note_services
    from notes.errors import StepUpRequired

    Practice.objects.filter(pk=world.practice.pk).update(step_up_window_minutes=2)
    note = note_factory(practice=world.practice, clinician=world.clinician)
    note_services.note_open(note=note, actor=world.clinician)
    note_resolve_all_flags(note, world.clinician)
    now = datetime.now(UTC)
    with pytest.raises(StepUpRequired):
        note_services.note_sign(note=note, actor=world.clinician, step_up_at=now - timedelta(minutes=3), now=now)
    signed = note_services.note_sign(note=note, actor=world.clinician, step_up_at=now - timedelta(minutes=1), now=now)
    assert signed.state == "signed"


def test_the_settings_page_keeps_a_place_for_the_qa_sampling_rate(world, admin_browser):
    assert 'id="qa-sampling-settings"' in admin_browser.get("/practice/settings/").content.decode()
