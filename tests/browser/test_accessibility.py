"""Issue #17, done-when: axe-core reports no violations on the pages a
clinician, an auditor, a practice admin and a QA reviewer use: login, queue,
review, step-up, note, client, timeline, audit log (paged, filtered, with a
bad filter), PHI access log, deliveries dashboard, EHR connections, mappings,
signed notes. axe runs from the vendored copy in tests/browser/vendor/ (no
CDN); each page's violations are printed in full when the test fails."""

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from audit.services import actor_system, audit_record
from notes import services
from tests.factories import PASSWORD, ai_output, note_factory, note_sign_now, totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VENDOR = Path(__file__).parent / "vendor"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"  # axe-core 4.14.1
BASE = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def axe_source() -> str:
    source = (VENDOR / "axe.min.js").read_text(encoding="utf-8")
    assert hashlib.sha256(source.encode()).hexdigest() == AXE_SHA256, "tests/browser/vendor/axe.min.js changed"
    return source


def _violations(page, axe_source: str) -> list[dict]:
    page.add_script_tag(content=axe_source)
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [{"target": n["target"], "summary": n.get("failureSummary", "")} for n in v["nodes"]],
        }
        for v in results["violations"]
    ]


class Checker:
    """Opens pages as one person and collects axe's findings per page."""

    def __init__(self, browser, live_server, axe_source, found):
        self.browser, self.live_server, self.axe_source, self.found = browser, live_server, axe_source, found
        self.contexts = []

    def session(self, user=None, viewport=DESKTOP):
        # The app's CSP refuses inline scripts, rightly; only the test's axe needs the bypass.
        context = self.browser.new_context(viewport=viewport, bypass_csp=True)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        if user is not None:
            page.goto(f"{self.live_server.url}/login/")
            page.get_by_label("Username").fill(user.username)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_label("One-time code").fill(totp_now(user))
            page.get_by_role("button", name="Log in").click()
            expect(page).not_to_have_url(re.compile(r"/login/"))
        return page

    def check(self, page, label: str, path: str | None = None, status: int = 200):
        if path is not None:
            response = page.goto(f"{self.live_server.url}{path}")
            assert response.status == status, (label, response.status)
        page.wait_for_load_state("load")
        self.found[label] = _violations(page, self.axe_source)

    def close(self):
        for context in self.contexts:
            context.close()


def test_axe_finds_no_violations_on_the_review_queue_audit_and_admin_pages(
    world, browser, quiet_server, axe_source, artifacts
):
    live_server = quiet_server
    call_command("integrations_demo_setup", practice=world.practice.slug)
    flagged = note_factory(
        practice=world.practice,
        clinician=world.clinician,
        session_start=BASE,
        payload=ai_output(diagnosis_codes=["F33.1", "F99.99"], homework_assigned="Sleep diary every morning"),
    )
    clean = note_factory(practice=world.practice, clinician=world.clinician, session_start=BASE + timedelta(hours=1))
    services.note_open(note=clean, actor=world.clinician)
    signed = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, session_start=BASE + timedelta(hours=2)),
        world.clinician,
    )

    for i in range(60):  # more than a page of the audit log, so the older page is checked too
        audit_record(
            practice=world.practice, actor=actor_system("test"), action="test.marker", object_type="x", object_id=str(i)
        )

    found: dict[str, list] = {}
    checker = Checker(browser, live_server, axe_source, found)
    try:
        # Logged out: the login page, and its one-time-code message (a colleague who will not log in here).
        page = checker.session()
        checker.check(page, "login", "/login/")
        page.get_by_label("Username").fill(world.colleague.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("One-time code").fill("000000" if totp_now(world.colleague) != "000000" else "111111")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_contain_text("tries before logging in is locked")
        checker.check(page, "login, wrong code")
        page.screenshot(path=str(artifacts / "login-code-message.png"), full_page=True)

        # The clinician: queue, review (flags and clean), note, client, timeline, step-up with a wrong code.
        page = checker.session(world.clinician)
        checker.check(page, "queue", "/queue/")
        checker.check(page, "review, flagged draft", f"/notes/{flagged.pk}/review/")
        checker.check(page, "review, clean draft", f"/notes/{clean.pk}/review/")
        checker.check(page, "signed note", f"/notes/{signed.pk}/")
        checker.check(page, "client", f"/clients/{flagged.client_id}/")
        checker.check(page, "note timeline (clinician)", f"/audit/notes/{signed.pk}/timeline/")
        checker.check(page, "version history", f"/notes/{signed.pk}/history/")
        page.goto(f"{live_server.url}/queue/")
        page.get_by_label("One-time code to sign this batch").fill("abc")
        page.get_by_role("button", name="Enable signing").click()
        checker.check(page, "step-up, wrong code")
        page.screenshot(path=str(artifacts / "step-up-code-message.png"), full_page=True)

        # The pages that change most with the screen, again on a phone (same session: a code works once).
        page.set_viewport_size(PHONE)
        checker.check(page, "queue, phone", "/queue/")
        checker.check(page, "review, flagged draft, phone", f"/notes/{flagged.pk}/review/")

        # The auditor: the audit log (first page, older page, filtered, bad filter), PHI access, timeline.
        page = checker.session(world.auditor)
        checker.check(page, "audit log", "/audit/")
        page.locator("#audit-older").click()
        expect(page).to_have_url(re.compile(r"before=\d+"))
        checker.check(page, "audit log, older page")
        checker.check(page, "audit log, filtered", f"/audit/?action=note.&client={flagged.client_id}")
        checker.check(page, "audit log, bad filter", "/audit/?date_from=yesterday&user=abc", status=400)
        page.screenshot(path=str(artifacts / "audit-log-bad-filter.png"), full_page=True)
        checker.check(page, "audit log, filtered", f"/audit/?action=note.&user={world.clinician.pk}")
        page.screenshot(path=str(artifacts / "audit-log.png"), full_page=True)
        checker.check(page, "PHI access log", "/audit/access/")
        today = datetime.now(UTC).date()
        days = f"date_from={today - timedelta(days=1)}&date_to={today + timedelta(days=1)}"
        checker.check(page, "PHI access log, results", f"/audit/access/?client={signed.client_id}&{days}")
        checker.check(page, "note timeline (auditor)", f"/audit/notes/{signed.pk}/timeline/")
        page.set_viewport_size(PHONE)
        checker.check(page, "audit log, phone", "/audit/")
        page.screenshot(path=str(artifacts / "audit-log-phone.png"), full_page=True)

        # The practice admin: deliveries, EHR connections, mappings, clients.
        page = checker.session(world.admin)
        checker.check(page, "deliveries dashboard", "/integrations/deliveries/")
        checker.check(page, "EHR connections", "/integrations/connections/")
        checker.check(page, "mappings", "/integrations/mappings/")
        checker.check(page, "client list", "/clients/")
        checker.check(page, "client (admin)", f"/clients/{signed.client_id}/")

        checker.check(page, "vocabulary proposals", "/vocabulary/proposals/")
        page.set_viewport_size(PHONE)
        checker.check(page, "deliveries dashboard, phone", "/integrations/deliveries/")

        # The QA reviewer: signed notes.
        page = checker.session(world.qa)
        checker.check(page, "signed notes", "/signed/")
        checker.check(page, "signed note (QA)", f"/notes/{signed.pk}/")

    finally:
        checker.close()

    with_violations = {label: v for label, v in found.items() if v}
    assert len(found) >= 20, sorted(found)
    assert not with_violations, json.dumps(with_violations, indent=2)
