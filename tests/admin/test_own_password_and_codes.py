"""A member changes their own password (Django's validators) and makes new
backup codes (the old ones stop working); both are audited, neither secret is."""

import pytest
from django.test import Client as DjangoClient

from tests.admin.helpers import backup_codes, last_event
from tests.factories import PASSWORD, totp_now

pytestmark = pytest.mark.django_db


def test_a_member_changes_their_password_and_stays_logged_in(world, login_as):
    browser = login_as(world.clinician)
    new = "tidal orchard compass 19"
    response = browser.post(
        "/accounts/security/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302
    world.clinician.refresh_from_db()
    assert world.clinician.check_password(new)
    assert browser.get("/queue/").status_code == 200  # update_session_auth_hash
    event = last_event("member.password_change")
    assert event.actor_user == world.clinician and new not in str(event.detail)


def test_a_wrong_current_password_or_a_weak_new_one_is_refused(world, login_as):
    browser = login_as(world.clinician)
    new = "tidal orchard compass 19"
    response = browser.post("/accounts/security/", {"old_password": "nope", "new_password1": new, "new_password2": new})
    assert response.status_code == 400 and "current password is not correct" in response.content.decode()
    response = browser.post(
        "/accounts/security/", {"old_password": PASSWORD, "new_password1": "12345678", "new_password2": "12345678"}
    )
    assert response.status_code == 400 and "entirely numeric" in response.content.decode()
    world.clinician.refresh_from_db()
    assert world.clinician.check_password(PASSWORD)


def test_new_backup_codes_replace_the_old_ones(world, login_as):
    browser = login_as(world.clinician)
    old = world.clinician.staticdevice_set.get().token_set.get().token
    response = browser.post("/accounts/security/backup-codes/")
    codes = backup_codes(response.content.decode())
    assert len(codes) == 10 and old not in codes
    login = {"username": world.clinician.username, "password": PASSWORD}
    # The new code first: a refused code throttles the device (django-otp) for a moment.
    assert DjangoClient().post("/login/", {**login, "otp_token": codes[0]}).status_code == 302
    assert DjangoClient().post("/login/", {**login, "otp_token": old}).status_code == 200
    event = last_event("member.backup_codes_regenerate")
    assert event.actor_user == world.clinician and not any(c in str(event.detail) for c in codes)


def test_making_backup_codes_needs_a_fully_logged_in_session(world):
    browser = DjangoClient()
    browser.post(
        "/login/", {"username": world.clinician.username, "password": PASSWORD, "otp_token": totp_now(world.clinician)}
    )
    browser.post("/logout/")
    assert browser.post("/accounts/security/backup-codes/").status_code == 302
    assert world.clinician.staticdevice_set.get().token_set.count() == 1
