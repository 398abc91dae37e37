"""Login with password plus a one-time code, lockout, idle logoff, cookies, CSP."""

from datetime import timedelta

import pytest
from django.test import Client, override_settings

from tests.factories import PASSWORD, note_factory, totp_now

pytestmark = pytest.mark.django_db


def _post_login(browser, user, *, password=PASSWORD, otp="000000"):
    return browser.post("/login/", {"username": user.username, "password": password, "otp_token": otp})


def test_a_password_without_a_code_does_not_log_in(world):
    browser = Client()
    response = browser.post("/login/", {"username": world.clinician.username, "password": PASSWORD})
    assert response.status_code == 200
    assert browser.get("/queue/").status_code == 302


def test_a_wrong_code_does_not_log_in(world):
    browser = Client()
    response = _post_login(
        browser, world.clinician, otp="123456" if totp_now(world.clinician) != "123456" else "654321"
    )
    assert response.status_code == 200 and "not valid" in response.content.decode()
    assert browser.get("/queue/").status_code == 302


def test_password_and_totp_code_log_in(world):
    browser = Client()
    response = _post_login(browser, world.clinician, otp=totp_now(world.clinician))
    assert response.status_code == 302
    assert browser.get("/queue/").status_code == 200


def test_a_backup_code_works_once(world):
    from django_otp.plugins.otp_static.models import StaticToken

    token = StaticToken.objects.get(device__user=world.clinician).token
    assert _post_login(Client(), world.clinician, otp=token).status_code == 302
    assert _post_login(Client(), world.clinician, otp=token).status_code == 200


def test_repeated_failures_lock_the_account_even_with_the_right_credentials_after(world):
    for _ in range(5):
        _post_login(Client(), world.clinician, password="wrong password")
    response = _post_login(Client(), world.clinician, otp=totp_now(world.clinician))
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def test_wrong_codes_count_towards_the_lockout(world):
    for _ in range(5):
        _post_login(Client(), world.clinician, otp="abcdefgh")
    assert _post_login(Client(), world.clinician, otp=totp_now(world.clinician)).status_code == 429


def test_an_idle_session_is_logged_off(world, login_as):
    browser = login_as(world.clinician)
    assert browser.get("/queue/").status_code == 200
    session = browser.session
    session["last_activity"] -= timedelta(minutes=16).total_seconds()
    session.save()
    response = browser.get("/queue/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert browser.get("/queue/").status_code == 302  # really logged out, not just redirected once


@override_settings(IDLE_TIMEOUT=timedelta(minutes=60))
def test_the_idle_timeout_is_configurable(world, login_as):
    browser = login_as(world.clinician)
    browser.get("/queue/")
    session = browser.session
    session["last_activity"] -= timedelta(minutes=16).total_seconds()
    session.save()
    assert browser.get("/queue/").status_code == 200


def test_pages_carry_a_content_security_policy_and_safe_cookie_flags(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    browser = login_as(world.clinician)
    response = browser.get(f"/notes/{note.pk}/")
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    session_cookie = browser.cookies["sessionid"]
    assert session_cookie["httponly"] and session_cookie["samesite"] == "Lax"


def test_login_redirect_refuses_other_hosts(world):
    browser = Client()
    response = browser.post(
        "/login/?next=https://evil.example/",
        {
            "username": world.clinician.username,
            "password": PASSWORD,
            "otp_token": totp_now(world.clinician),
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 302 and "evil" not in response["Location"]
