"""axe-core finds no violations on the people, practice settings, password
and codes pages, or on the invitation, enrollment and backup-code pages a new
member sees (the vendored axe of tests/browser/test_accessibility.py)."""

import json
import re

import pytest
from playwright.sync_api import expect

from accounts import services
from tests.admin.helpers import NEW_PASSWORD, code_for
from tests.browser.test_accessibility import AXE_SHA256, VENDOR, _violations
from tests.factories import PASSWORD, totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def axe_source() -> str:
    import hashlib

    source = (VENDOR / "axe.min.js").read_text(encoding="utf-8")
    assert hashlib.sha256(source.encode()).hexdigest() == AXE_SHA256
    return source


def test_axe_finds_no_violations_on_the_people_and_onboarding_pages(world, browser, quiet_server, axe_source):
    live_server = quiet_server
    found: dict[str, list] = {}
    services.invitation_create(practice=world.practice, email="pending@example.org", role="auditor", actor=world.admin)
    _, token = services.invitation_create(
        practice=world.practice, email="newcomer@example.org", role="clinician", actor=world.admin
    )
    # The app's CSP refuses inline scripts, rightly; only the test's axe needs the bypass.
    context = browser.new_context(viewport={"width": 1366, "height": 900}, bypass_csp=True)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill(world.admin.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("One-time code").fill(totp_now(world.admin))
        page.get_by_role("button", name="Log in").click()
        expect(page).not_to_have_url(re.compile(r"/login/"))
        for label, path in (
            ("people", "/practice/people/"),
            ("settings", "/practice/settings/"),
            ("security", "/accounts/security/"),
        ):
            assert page.goto(f"{live_server.url}{path}").status == 200
            found[label] = _violations(page, axe_source)
        # An invitation with field errors shown.
        page.goto(f"{live_server.url}/practice/people/")
        page.locator("#id_email").fill("not an address")
        page.get_by_role("button", name="Send invitation").click()
        expect(page.locator(".error").first).to_be_visible()
        found["people with errors"] = _violations(page, axe_source)
        page.get_by_role("button", name="Log out").click()

        page.goto(f"{live_server.url}/accounts/invitation/{token}/")
        found["accept"] = _violations(page, axe_source)
        page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("Password again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set password").click()
        expect(page).to_have_url(re.compile(r"/accounts/enroll/$"))
        found["enroll"] = _violations(page, axe_source)
        page.get_by_label("Code from your authenticator app").fill(
            code_for(page.locator("#totp-qr").get_attribute("data-otpauth"))
        )
        page.get_by_role("button", name="Confirm").click()
        expect(page.locator("#backup-codes")).to_be_visible()
        found["backup codes"] = _violations(page, axe_source)
    finally:
        context.close()
    failures = {label: v for label, v in found.items() if v}
    assert not failures, json.dumps(failures, indent=1)
