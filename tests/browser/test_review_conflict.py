"""Issue 12 §5 in a real browser: two tabs of one logged-in clinician edit
the same section. The later autosave is refused as a conflict, both texts
are on screen, nothing is lost, and each choice (keep mine, take the saved
text) resolves it."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, note_factory, totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT_A = "Continue weekly sessions; written in tab A."
TEXT_B = "Add a sleep diary; written in tab B."
TEXT_A2 = "Tab A again, typed before it saw tab B's save."


def _log_in(page, live_server, user):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill(totp_now(user))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/queue/$"))


def test_two_tabs_editing_one_section_get_a_conflict_and_lose_no_text(world, live_server, page, artifacts):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    plan = note.sections.get(key="plan")
    _log_in(page, live_server, world.clinician)
    url = f"{live_server.url}/notes/{note.pk}/review/"
    tab_a = page
    tab_a.goto(url)
    tab_b = page.context.new_page()  # a second tab of the same session
    tab_b.set_default_timeout(15_000)
    tab_b.goto(url)

    # Tab A saves first.
    tab_a.get_by_role("textbox", name="Plan (required)", exact=True).fill(TEXT_A)
    expect(tab_a.locator("#status-plan")).to_contain_text("Saved")
    plan.refresh_from_db()
    assert (plan.text, plan.version) == (TEXT_A, 2)

    # Tab B, still at version 1, saves later: refused, both texts shown, nothing overwritten.
    tab_b.get_by_role("textbox", name="Plan (required)", exact=True).fill(TEXT_B)
    conflict_b = tab_b.locator("#conflict-plan")
    expect(conflict_b).to_be_visible()
    expect(tab_b.locator("#status-plan")).to_contain_text("Not saved")
    expect(tab_b.locator("#conflict-theirs-plan")).to_have_text(TEXT_A)
    expect(tab_b.locator("#conflict-mine-plan")).to_have_text(TEXT_B)
    tab_b.locator("#section-plan").screenshot(path=str(artifacts / "review-conflict.png"))
    plan.refresh_from_db()
    assert plan.text == TEXT_A

    # Signing while the conflict is open is held back: the page points at the conflict.
    tab_b.locator("#sign-only").click()
    expect(tab_b.locator("#status-plan")).to_contain_text("Choose a text for this section first")
    assert tab_b.url == url

    # Keep mine: saved against the new version.
    conflict_b.get_by_role("button", name="Keep mine").click()
    expect(conflict_b).to_be_hidden()
    expect(tab_b.locator("#status-plan")).to_contain_text("Saved")
    expect(tab_b.locator("#diff-plan ins")).to_contain_text("written in tab B")
    plan.refresh_from_db()
    assert (plan.text, plan.version) == (TEXT_B, 3)

    # Tab A, now stale, types again: its conflict shows tab B's text; it takes it.
    tab_a.get_by_role("textbox", name="Plan (required)", exact=True).fill(TEXT_A2)
    conflict_a = tab_a.locator("#conflict-plan")
    expect(conflict_a).to_be_visible()
    expect(tab_a.locator("#conflict-theirs-plan")).to_have_text(TEXT_B)
    expect(tab_a.locator("#conflict-mine-plan")).to_have_text(TEXT_A2)
    tab_a.screenshot(path=str(artifacts / "review-conflict-page.png"), full_page=True)
    conflict_a.get_by_role("button", name="Take the saved text").click()
    expect(conflict_a).to_be_hidden()
    expect(tab_a.get_by_role("textbox", name="Plan (required)", exact=True)).to_have_value(TEXT_B)
    expect(tab_a.locator("#status-plan")).to_contain_text("Loaded the text saved elsewhere")

    # Both tabs are now at the stored version: the next edit in tab A saves cleanly.
    tab_a.get_by_role("textbox", name="Plan (required)", exact=True).fill(TEXT_B + " Reviewed in tab A.")
    expect(tab_a.locator("#status-plan")).to_contain_text("Saved")
    plan.refresh_from_db()
    assert (plan.text, plan.version) == (TEXT_B + " Reviewed in tab A.", 4)
    # The 409s are expected answers (the browser logs each refused request); no script failed.
    assert not [e for e in page.js_errors if not e.startswith("Failed to load resource")]
    tab_b.close()
