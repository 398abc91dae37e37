"""Issue 17 in a real browser: one click on a suggested code fixes the flag
(point 1); signing by keyboard needs Ctrl/Cmd+Enter and single-key shortcuts
can be turned off, with a batch still at most two actions per clean draft
(point 3); the review page and the queue fit a 1366x900 laptop and a 390x844
phone: the sign control is on screen without scrolling, nothing scrolls
sideways (point 4). Screenshots go to test-artifacts/."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from notes.models import Flag, Membership, Note
from tests.browser.test_review_batch import _backup_code, _log_in
from tests.factories import ai_output, note_factory, note_resolve_all_flags

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
SIZES = {"laptop": (1366, 900), "phone": (390, 844)}

IN_VIEWPORT = """(el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0
        && r.bottom <= window.innerHeight && r.right <= window.innerWidth;
}"""
NO_SIDEWAYS = "() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth"


def _draft(world, hours: int, **payload) -> Note:
    return note_factory(
        practice=world.practice,
        clinician=world.clinician,
        session_start=BASE + timedelta(hours=hours),
        payload=ai_output(**payload),
    )


def _enable_signing(page, user):
    page.get_by_label("One-time code to sign this batch").fill(_backup_code(user))
    page.get_by_role("button", name="Enable signing").click()
    expect(page.locator("#step-up-status")).to_contain_text("Signing enabled until")


def test_one_click_on_a_suggested_code_fixes_the_flag(world, live_server, page, artifacts):
    note = _draft(world, 0, diagnosis_codes=["F41"])
    flag = note.flags.get(kind=Flag.Kind.INVALID_CODE)
    code = flag.suggestions[0]["code"]
    _log_in(page, live_server, world.clinician)
    page.goto(f"{live_server.url}/notes/{note.pk}/review/")

    # f goes to the flag's main action: the first suggestion.
    page.keyboard.press("f")
    assert page.evaluate("document.activeElement.value") == code
    page.screenshot(path=str(artifacts / "review-code-suggestions.png"), full_page=True)
    page.locator(f"#flag-{flag.pk} button.chip").first.click()

    expect(page.locator(f"#flag-{flag.pk}")).to_have_class(re.compile("resolved"))
    flag.refresh_from_db()
    assert flag.resolved_at is not None and code in note.sections.get(key="diagnoses").codes


def test_keyboard_signing_needs_ctrl_enter_and_single_keys_can_be_turned_off(world, live_server, page, artifacts):
    drafts = [_draft(world, h) for h in range(3)]
    for note in drafts:
        note_resolve_all_flags(note, world.clinician)
    _log_in(page, live_server, world.clinician)
    _enable_signing(page, world.clinician)

    actions = 0
    page.keyboard.press("n")
    actions += 1
    expect(page).to_have_url(re.compile(rf"/notes/{drafts[0].pk}/review/$"))
    expect(page.locator("#sign-next")).to_contain_text("Ctrl+Enter")
    # A stray s signs nothing any more (WCAG 2.1.4).
    page.keyboard.press("s")
    page.wait_for_timeout(300)
    expect(page).to_have_url(re.compile(rf"/notes/{drafts[0].pk}/review/$"))
    drafts[0].refresh_from_db()
    assert drafts[0].state != Note.State.SIGNED

    for i, note in enumerate(drafts):
        expect(page).to_have_url(re.compile(rf"/notes/{note.pk}/review/$"))
        page.keyboard.press("Control+Enter")
        actions += 1
        expected = r"/queue/$" if i == len(drafts) - 1 else rf"/notes/{drafts[i + 1].pk}/review/$"
        expect(page).to_have_url(re.compile(expected))
    assert all(Note.objects.get(pk=n.pk).state == Note.State.SIGNED for n in drafts)
    assert actions / len(drafts) <= 2

    # Turn single-key shortcuts off: stored on the account; j no longer moves.
    first, second = _draft(world, 5), _draft(world, 6)
    page.goto(f"{live_server.url}/notes/{first.pk}/review/")
    page.get_by_role("button", name=re.compile("^Shortcuts")).click()
    page.get_by_label("Use single-key shortcuts").uncheck()
    page.screenshot(path=str(artifacts / "review-shortcuts-dialog.png"))
    page.locator("#shortcuts-pref").get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Single-key shortcuts are off")
    assert Membership.objects.get(user=world.clinician).single_key_shortcuts is False
    page.keyboard.press("j")
    page.wait_for_timeout(300)
    expect(page).to_have_url(re.compile(rf"/notes/{first.pk}/review/$"))
    assert second.pk  # still waiting, not visited


@pytest.mark.parametrize("size", SIZES)
def test_review_and_queue_fit_the_screen_with_sign_in_view(world, live_server, browser, quiet_server, size, artifacts):
    width, height = SIZES[size]
    notes = [_draft(world, h) for h in range(3)]
    # A long review: a flag of each fixable kind and a long section.
    long_note = _draft(
        world,
        4,
        diagnosis_codes=["F41", "F99.99"],
        interventions=["CBT", "EMDR-lite"],
        homework_assigned="Sleep diary every morning",
        client_reported_symptoms=" ".join(["Client reports a hard week at work and at home."] * 40),
    )
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        _log_in(page, live_server, world.clinician)
        assert page.evaluate(NO_SIDEWAYS), f"the queue scrolls sideways at {width}px"
        page.screenshot(path=str(artifacts / f"queue-{size}.png"), full_page=True)
        if size == "phone":
            # Cards, not a table: the header row is hidden and every row is a block.
            assert page.locator("#queue-table tbody tr").first.evaluate("el => getComputedStyle(el).display") == "block"

        page.goto(f"{live_server.url}/notes/{long_note.pk}/review/")
        sign = page.locator("#sign-next")
        assert sign.evaluate(IN_VIEWPORT), f"Sign is off screen on load at {width}x{height}"
        assert page.evaluate(NO_SIDEWAYS), f"the review page scrolls sideways at {width}px"
        page.screenshot(path=str(artifacts / f"review-{size}.png"))
        # Scrolled to the middle: the client's name and the sign control stay in view.
        page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight / 2)")
        assert page.evaluate("window.scrollY") > 0
        assert sign.evaluate(IN_VIEWPORT) and page.locator("#patient-name").evaluate(IN_VIEWPORT)
        page.screenshot(path=str(artifacts / f"review-{size}-scrolled.png"))

        # Collapse unchanged sections: the page gets shorter, the edited one stays open.
        page.evaluate("window.scrollTo(0, 0)")
        tall = page.evaluate("document.scrollingElement.scrollHeight")
        page.locator("#collapse-unchanged").click()
        expect(page.locator("#text-objective")).to_be_hidden()
        assert page.evaluate("document.scrollingElement.scrollHeight") < tall
        page.screenshot(path=str(artifacts / f"review-{size}-collapsed.png"), full_page=True)

        # The skip link is the first thing Tab reaches and lands on the sign bar.
        page.goto(f"{live_server.url}/notes/{notes[0].pk}/review/")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "sign"
        assert sign.evaluate(IN_VIEWPORT)
    finally:
        page.goto("about:blank")
        context.close()
