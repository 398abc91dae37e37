"""Issue #17, point 5: one-time-code messages a person can act on. A code
already used says so and to wait for the next one (and costs no try), a
wrong code says how long to wait, a login says how many tries are left
before the lockout and for how long."""

import pytest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


def _code(user, steps_ahead: int = 0) -> str:
    """The code the authenticator shows now, or steps_ahead periods later
    (within the device's tolerance, so it is accepted now)."""
    device = TOTPDevice.objects.get(user=user)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift + steps_ahead)
    return f"{totp.token():0{device.digits}d}"


def _wrong_code(user) -> str:
    right = {_code(user, n) for n in (-1, 0, 1)}
    return next(c for c in ("123456", "654321", "111111", "222222") if c not in right)


def _login(user, code: str):
    browser = Client()
    response = browser.post("/login/", {"username": user.username, "password": PASSWORD, "otp_token": code})
    return browser, response


def test_reentering_the_login_code_to_enable_signing_says_it_was_used_and_to_wait_for_the_next(world):
    code = _code(world.clinician)
    browser, response = _login(world.clinician, code)
    assert response.status_code == 302

    response = browser.post("/step-up/", {"otp_token": code, "next": "/queue/"}, **JSON)

    assert response.status_code == 400
    message = response.json()["detail"]
    assert "already used" in message and "each code works once" in message
    assert "Wait for the next code" in message and "every 30 seconds" in message
    assert response.json()["errors"]["otp_token"] == [message]


def test_a_reused_code_costs_no_try_so_the_next_code_works_at_once(world):
    code = _code(world.clinician)
    browser, _ = _login(world.clinician, code)
    browser.post("/step-up/", {"otp_token": code, "next": "/queue/"})

    assert TOTPDevice.objects.get(user=world.clinician).throttling_failure_count == 0
    response = browser.post("/step-up/", {"otp_token": _code(world.clinician, 1), "next": "/queue/"})
    assert response.status_code == 302 and response["Location"] == "/queue/"


def test_the_step_up_page_shows_the_reused_code_message(world):
    code = _code(world.clinician)
    browser, _ = _login(world.clinician, code)
    response = browser.post("/step-up/", {"otp_token": code, "next": "/queue/"})
    assert response.status_code == 400
    assert "That code was already used: each code works once." in response.content.decode()


def test_a_wrong_code_says_how_long_to_wait_and_a_try_too_soon_says_how_much_longer(world):
    browser, _ = _login(world.clinician, _code(world.clinician))

    response = browser.post("/step-up/", {"otp_token": _wrong_code(world.clinician)}, **JSON)
    message = response.json()["detail"]
    assert message.startswith("That code is not valid.")
    assert "Wait 1 second before the next try" in message and "(next: 2 seconds)" in message

    response = browser.post("/step-up/", {"otp_token": _wrong_code(world.clinician)}, **JSON)
    message = response.json()["detail"]
    assert message.startswith("Too many wrong codes in a row (1). Wait 1 second")


def test_a_wrong_backup_code_says_each_works_once(world):
    browser, _ = _login(world.clinician, _code(world.clinician))
    response = browser.post("/step-up/", {"otp_token": "nosuchcode"}, **JSON)
    assert "Each backup code works once." in response.json()["detail"]


def test_a_wrong_login_code_says_how_many_tries_remain_before_the_lockout_and_how_long_it_lasts(world):
    _, response = _login(world.clinician, _wrong_code(world.clinician))
    assert response.status_code == 200
    assert "4 more tries before logging in is locked for 30 minutes." in response.content.decode()


def test_logging_in_twice_with_one_code_says_the_code_was_used(world):
    code = _code(world.clinician)
    assert _login(world.clinician, code)[1].status_code == 302
    _, response = _login(world.clinician, code)
    page = response.content.decode()
    assert response.status_code == 200
    assert "That code was already used" in page and "4 more tries before logging in is locked" in page
