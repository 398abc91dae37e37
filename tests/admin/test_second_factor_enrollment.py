"""Enrolling an authenticator from the QR code after accepting an invitation:
the page's SVG carries the otpauth URI, the first code confirms it, backup
codes are shown once, and until then the session reaches nothing else."""

import pytest
from django.core import mail  # noqa: F401  (outbox cleared per test by pytest-django)
from django.test import Client as DjangoClient
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from tests.admin.helpers import (
    NEW_PASSWORD,
    backup_codes,
    code_for,
    last_event,
    otpauth_from_page,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def invited(world):
    """A browser that has just set its password from an invitation."""
    invitation, token = services.invitation_create(
        practice=world.practice, email="enroll@example.org", role="clinician", actor=world.admin
    )
    browser = DjangoClient()
    browser.get(f"/accounts/invitation/{token}/")
    response = browser.post("/accounts/invitation/accept/", {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    return browser


def test_the_enrollment_page_shows_an_svg_qr_code_of_the_otpauth_uri(invited):
    html = invited.get("/accounts/enroll/").content.decode()
    assert "<svg" in html and "QR code for your authenticator app" in html
    uri = otpauth_from_page(html)
    assert uri.startswith("otpauth://totp/") and "secret=" in uri
    # Reloading shows the same secret: one unconfirmed device, reused.
    assert otpauth_from_page(invited.get("/accounts/enroll/").content.decode()) == uri
    assert TOTPDevice.objects.filter(user__username="enroll@example.org", confirmed=False).count() == 1


def test_the_qr_svg_decodes_to_the_same_uri_as_the_page_states(invited):
    import segno  # the page's SVG is segno's rendering of the URI: compare the modules

    html = invited.get("/accounts/enroll/").content.decode()
    uri = otpauth_from_page(html)
    expected = segno.make(uri, error="m").svg_inline(scale=5, title="QR code for your authenticator app")
    assert expected in html


def test_until_enrolled_the_session_reaches_nothing_but_enrollment(invited):
    assert invited.get("/queue/").status_code == 302
    assert invited.get("/queue/")["Location"].startswith("/login/")


def test_a_wrong_first_code_is_refused_and_nothing_is_confirmed(invited):
    html = invited.get("/accounts/enroll/").content.decode()
    uri = otpauth_from_page(html)
    wrong = "000000" if code_for(uri) != "000000" else "111111"
    response = invited.post("/accounts/enroll/", {"otp_token": wrong})
    assert response.status_code == 400 and "not valid" in response.content.decode()
    assert not TOTPDevice.objects.filter(user__username="enroll@example.org", confirmed=True).exists()


def test_the_first_code_confirms_shows_ten_backup_codes_once_and_logs_in(world, invited):
    uri = otpauth_from_page(invited.get("/accounts/enroll/").content.decode())
    response = invited.post("/accounts/enroll/", {"otp_token": code_for(uri)})
    assert response.status_code == 200
    codes = backup_codes(response.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    assert set(
        StaticToken.objects.filter(device__user__username="enroll@example.org").values_list("token", flat=True)
    ) == set(codes)
    assert invited.get("/queue/").status_code == 200
    # Shown once: the enrollment page now sends a person with a device home.
    again = invited.get("/accounts/enroll/")
    assert again.status_code == 302 and "backup-codes" not in again.content.decode()
    event = last_event("member.otp_enroll")
    assert event.actor_user.username == "enroll@example.org"
    assert not any(code in str(event.detail) for code in codes)


def test_a_backup_code_from_enrollment_logs_in(invited):
    uri = otpauth_from_page(invited.get("/accounts/enroll/").content.decode())
    codes = backup_codes(invited.post("/accounts/enroll/", {"otp_token": code_for(uri)}).content.decode())
    response = DjangoClient().post(
        "/login/", {"username": "enroll@example.org", "password": NEW_PASSWORD, "otp_token": codes[0]}
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_a_person_with_an_authenticator_cannot_log_in_with_the_password_alone(world):
    response = DjangoClient().post(
        "/login/", {"username": world.clinician.username, "password": "correct horse battery staple"}
    )
    assert response.status_code == 200 and "Enter the code" in response.content.decode()
