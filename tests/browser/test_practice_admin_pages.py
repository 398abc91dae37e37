"""Issue 14 §3-6 in a real browser: a practice admin imports clients from a
CSV (preview, then import), edits a template's draft and publishes it, and
creates a scribe key and copies it. Screenshots go to test-artifacts/."""

import json
import re

import pytest
from playwright.sync_api import expect

from notes.models import AISourceKey, Client, NoteTemplate
from tests.factories import PASSWORD, ai_source_factory, totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page, live_server, user):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill(totp_now(user))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/clients/$"))


def _js_errors(page) -> list[str]:
    return [e for e in page.js_errors if not e.startswith("Failed to load resource")]  # favicon


def test_an_admin_imports_clients_from_csv_after_a_preview(world, live_server, page, artifacts, tmp_path):
    _log_in(page, live_server, world.admin)
    page.get_by_role("link", name="Practice admin").click()
    page.get_by_role("link", name="Import from CSV").click()
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"First Name,Last Name,DOB,MRN,Clinician\nAda,Lovelace,1815-12-10,M-1,{world.clinician.username}\n"
        "Alan,Turing,not a date,M-2,nobody\n"
    )
    page.get_by_label("CSV file exported from the EHR").set_input_files(str(bad))
    page.get_by_role("button", name="Check the file").click()
    errors = page.locator("#import-errors")
    expect(errors).to_contain_text("Nothing was imported")
    expect(errors).to_contain_text("Date of birth “not a date” is not a date")
    expect(errors).to_contain_text("“nobody” is not an active clinician of this practice")
    page.screenshot(path=str(artifacts / "practice-admin-import-errors.png"), full_page=True)
    assert not Client.objects.filter(ehr_patient_id="M-1").exists()

    good = tmp_path / "good.csv"
    good.write_text(
        f"First Name,Last Name,DOB,MRN,Clinician\nAda,Lovelace,1815-12-10,M-1,{world.clinician.username}\n"
        "Alan,Turing,06/23/1912,M-2,\n"
    )
    page.get_by_label("CSV file exported from the EHR").set_input_files(str(good))
    page.get_by_label("Clinician for rows without one").select_option(label=world.colleague.get_full_name())
    page.get_by_role("button", name="Check the file").click()
    preview = page.locator("#import-preview")
    expect(preview).to_contain_text("Preview: 2 clients to import")
    expect(preview).to_contain_text("Turing, Alan")
    page.screenshot(path=str(artifacts / "practice-admin-import-preview.png"), full_page=True)
    assert not Client.objects.filter(ehr_patient_id__in=["M-1", "M-2"]).exists()
    page.get_by_role("button", name="Import 2 clients").click()
    expect(page.locator(".messages")).to_contain_text("Imported 2 clients.")
    expect(page.locator("#clients")).to_contain_text("Lovelace, Ada")
    assert Client.objects.get(ehr_patient_id="M-2").clinician == world.colleague
    page.get_by_label("Search by name").fill("turing")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#clients tbody tr")).to_have_count(1)
    page.screenshot(path=str(artifacts / "practice-admin-clients.png"), full_page=True)
    assert _js_errors(page) == []


def test_an_admin_edits_a_draft_previews_it_and_publishes_it(world, live_server, page, artifacts):
    soap = NoteTemplate.objects.get(practice=world.practice, key="soap")
    _log_in(page, live_server, world.admin)
    page.goto(f"{live_server.url}/practice/templates/")
    page.get_by_role("link", name=soap.name).click()
    page.get_by_role("button", name="Edit as a new draft version").click()
    expect(page.locator("#draft-editor")).to_contain_text("Draft v2")
    rows = page.locator("#sections tbody tr")
    last = rows.nth(rows.count() - 1)  # the formset's empty row
    last.locator("input[name$='-order']").fill("20")
    last.locator("input[name$='-key']").fill("homework")
    last.locator("input[name$='-label']").fill("Homework")
    page.screenshot(path=str(artifacts / "practice-admin-template-draft.png"), full_page=True)
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".messages")).to_contain_text("Draft v2 saved.")
    page.get_by_role("link", name="Preview a sample draft on v2").click()
    page.get_by_role("button", name="Map the sample").click()
    expect(page.locator("#preview-result")).to_contain_text("Homework")
    expect(page.locator("#preview-result")).to_contain_text("Client reports sleeping about six hours")
    page.screenshot(path=str(artifacts / "practice-admin-template-preview.png"), full_page=True)
    page.get_by_role("link", name=f"Back to {soap.name}").click()
    page.get_by_role("button", name="Publish v2").click()
    expect(page.locator(".messages")).to_contain_text("v2 is now the active version")
    page.get_by_role("link", name="Compare versions").click()
    expect(page.locator("#template-diff")).to_contain_text("+ homework “Homework”")
    page.screenshot(path=str(artifacts / "practice-admin-template-diff.png"), full_page=True)
    active = soap.versions.get(is_active=True)
    assert active.version == 2 and "homework" in set(active.sections.values_list("key", flat=True))
    assert _js_errors(page) == []


def test_an_admin_creates_a_key_and_copies_it(world, live_server, page, artifacts):
    source = ai_source_factory(world.practice)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    _log_in(page, live_server, world.admin)
    page.goto(f"{live_server.url}/practice/scribes/")
    page.get_by_role("button", name=f"Create a key for {source.name}").click()
    shown = page.get_by_label("API key").input_value()
    key = AISourceKey.objects.get(ai_source=source)
    assert shown.startswith(f"psk_{key.prefix}_")
    page.get_by_role("button", name="Copy key").click()
    expect(page.locator("#copy-status")).to_have_text("Key copied.")
    assert page.evaluate("navigator.clipboard.readText()") == shown
    expect(page.get_by_role("link", name="intake guide")).to_have_attribute("href", "/practice/scribes/intake-guide/")
    page.screenshot(path=str(artifacts / "practice-admin-new-key.png"), full_page=True)
    assert _js_errors(page) == []


def test_axe_finds_no_violations_on_the_practice_admin_pages(world, browser, quiet_server, artifacts):
    from practice_admin.services.templates import template_draft_start
    from tests.browser.test_accessibility import VENDOR, Checker
    from tests.factories import client_factory, member_factory

    axe_source = (VENDOR / "axe.min.js").read_text(encoding="utf-8")
    admin = member_factory(world.practice, "practice_admin").user  # its own TOTP: the world admin's code stays unused
    client = client_factory(world.practice, world.clinician, consent=False)
    soap = NoteTemplate.objects.get(practice=world.practice, key="soap")
    template_draft_start(actor=admin, template=soap)
    source = ai_source_factory(world.practice)
    found: dict[str, list] = {}
    checker = Checker(browser, quiet_server, axe_source, found)
    try:
        page = checker.session(admin)
        for label, path in [
            ("clients", "/practice/clients/?q=Jordan"),
            ("client", f"/practice/clients/{client.pk}/"),
            ("client edit", f"/practice/clients/{client.pk}/edit/"),
            ("client import", "/practice/clients/import/"),
            ("disclosure", "/practice/consent-disclosure/"),
            ("templates", "/practice/templates/"),
            ("template draft editor", f"/practice/templates/{soap.pk}/"),
            ("template diff", f"/practice/templates/{soap.pk}/diff/"),
            ("template preview", f"/practice/templates/{soap.pk}/v2/preview/"),
            ("vocabulary", "/practice/vocabulary/"),
            ("scribes", "/practice/scribes/"),
        ]:
            checker.check(page, label, path)
        page.goto(f"{quiet_server.url}/practice/scribes/")
        page.get_by_role("button", name=f"Create a key for {source.name}").click()
        checker.check(page, "new key")
    finally:
        checker.close()
    failing = {label: v for label, v in found.items() if v}
    assert failing == {}, json.dumps(failing, indent=2)
