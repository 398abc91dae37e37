"""Issue 13 §8 in a real browser: on the filing page of a note awaiting
manual filing, a section's copy button puts that section's text on the
clipboard, and "Copy the whole note" puts every section under its heading."""

import re

import pytest
from playwright.sync_api import expect

from integrations.models import Delivery
from integrations.services import connection_create, delivery_send
from tests.factories import PASSWORD, note_factory, note_sign_now, totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page, live_server, user):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill(totp_now(user))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/queue/$"))


def test_the_copy_buttons_put_the_section_text_on_the_clipboard(world, live_server, page, artifacts):
    connection_create(practice=world.practice, name="SimplePractice", kind="manual", base_url="", is_sandbox=True)
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    delivery = Delivery.objects.get(note=note)
    delivery_send(delivery_id=delivery.pk)
    first = note.sections.order_by("order").first()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    _log_in(page, live_server, world.clinician)
    page.goto(f"{live_server.url}/notes/{note.pk}/")
    page.get_by_role("link", name="File in EHR").click()
    page.get_by_role("button", name=f"Copy {first.label}").click()
    expect(page.locator("#copy-status")).to_have_text(f"{first.label} copied.")
    assert page.evaluate("navigator.clipboard.readText()") == first.text
    page.get_by_role("button", name="Copy the whole note").click()
    expect(page.locator("#copy-status")).to_have_text("The whole note copied.")
    whole = page.evaluate("navigator.clipboard.readText()")
    assert whole.startswith(f"{first.label}\n{first.text}\n\n")
    assert "Drafted with AI assistance" in whole
    page.screenshot(path=str(artifacts / "manual-filing-page.png"), full_page=True)
    assert [e for e in page.js_errors if not e.startswith("Failed to load resource")] == []  # favicon
