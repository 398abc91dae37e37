"""A clinician clears a day's batch in a real browser: log in with password
and OTP, one step-up, edit, fix a code, place an unmapped item, sign all
three with "sign and next", then find the signed note read-only and amend it."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from integrations.models import Delivery
from notes.models import Flag, Note
from tests.factories import PASSWORD, ai_output, note_factory, totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _backup_code(user) -> str:
    return user.staticdevice_set.get().token_set.get().token


def _draft(world, hours: int, **payload) -> Note:
    return note_factory(
        practice=world.practice,
        clinician=world.clinician,
        session_start=BASE + timedelta(hours=hours),
        payload=ai_output(**payload),
    )


def _log_in(page, live_server, user):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill(totp_now(user))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/queue/$"))


def test_a_clinician_clears_a_batch_of_three_drafts_and_amends_one(world, live_server, page, artifacts):
    edited = _draft(world, 0)
    miscoded = _draft(world, 1, diagnosis_codes=["F33.1", "F99.99"])
    unplaced = _draft(world, 2, homework_assigned="Sleep diary every morning")
    colleague_note = note_factory(practice=world.practice, clinician=world.colleague)

    _log_in(page, live_server, world.clinician)
    expect(page.locator("#queue-count")).to_have_text("3")
    expect(page.locator("#queue-table tbody tr")).to_have_count(3)
    assert f"/notes/{colleague_note.pk}/review/" not in page.content()

    # One code for the whole batch: a backup code, since the TOTP step was used to log in.
    page.get_by_label("One-time code to sign this batch").fill(_backup_code(world.clinician))
    page.get_by_role("button", name="Enable signing").click()
    expect(page.locator("#step-up-status")).to_contain_text("Signing enabled until")
    page.screenshot(path=str(artifacts / "queue.png"), full_page=True)

    # 1. Edit a section: autosave, and the diff against the AI draft updates in place.
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(rf"/notes/{edited.pk}/review/$"))
    expect(page.locator("#patient-name")).to_contain_text(edited.client.full_name)
    plan = page.get_by_role("textbox", name="Plan (required)", exact=True)
    plan.fill("Continue weekly sessions; add a sleep diary and review it next week.")
    expect(page.locator("#status-plan")).to_contain_text("Saved")
    expect(page.locator("#diff-plan ins")).to_contain_text("add a sleep diary")
    expect(page.locator("#diff-plan del")).to_contain_text("track activities daily")
    page.screenshot(path=str(artifacts / "review.png"), full_page=True)
    assert "add a sleep diary" in edited.sections.get(key="plan").text
    page.locator("#sign-next").click()

    # 2. Fix an invalid code with a billable ICD-10-CM code.
    expect(page).to_have_url(re.compile(rf"/notes/{miscoded.pk}/review/$"))
    page.get_by_label("ICD-10-CM code").fill("F41.1")
    page.get_by_role("button", name="Use this code").click()
    expect(page.locator(f"#flag-{miscoded.flags.get().pk} .hint")).to_contain_text("F41.1")
    expect(page.locator("#diff-diagnoses ins")).to_contain_text("F41.1 Generalized anxiety disorder")
    page.keyboard.press("Control+Enter")  # sign and next, from the keyboard (a modifier: WCAG 2.1.4)

    # 3. Place an unmapped item into a section.
    expect(page).to_have_url(re.compile(rf"/notes/{unplaced.pk}/review/$"))
    flag = unplaced.flags.get(kind=Flag.Kind.UNPLACED_CONTENT)
    page.get_by_label("Place into section").select_option("plan")
    page.get_by_role("button", name="Place").click()
    expect(page.locator(f"#flag-{flag.pk}")).to_have_class(re.compile("resolved"))
    expect(page.locator("#text-plan")).to_have_value(re.compile("Sleep diary every morning"))
    page.locator("#sign-next").click()

    expect(page).to_have_url(re.compile(r"/queue/$"))
    expect(page.locator(".messages")).to_contain_text("Batch cleared")
    for note in (edited, miscoded, unplaced):
        note.refresh_from_db()
        assert note.state == Note.State.SIGNED and note.signed_by == world.clinician
        assert Delivery.objects.filter(note=note).count() == 1

    # A signed note is read-only, shows its diff, and the server refuses edits.
    page.goto(f"{live_server.url}/notes/{edited.pk}/review/")
    expect(page.locator("textarea#text-plan")).to_have_count(0)
    expect(page.locator("#diff-plan ins")).to_contain_text("add a sleep diary")
    status = page.evaluate(
        """async (url) => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const body = new FormData(); body.append('text', 'sneaky change');
            const headers = {'X-CSRFToken': token, Accept: 'application/json'};
            const r = await fetch(url, {method: 'POST', body, headers});
            return [r.status, (await r.json()).detail];
        }""",
        f"/notes/{edited.pk}/sections/plan/",
    )
    assert status[0] == 409 and "only by amendment" in status[1]

    # Amend it: a reason, a new version, signed again (the step-up still covers it).
    page.get_by_label("Reason for the amendment").fill("Homework was for two weeks, not one.")
    page.get_by_role("button", name=re.compile("^Amend")).click()
    amendment = Note.objects.get(amends=edited)
    expect(page).to_have_url(re.compile(rf"/notes/{amendment.pk}/review/$"))
    expect(page.locator(".amending")).to_contain_text("Homework was for two weeks")
    page.locator("#text-plan").fill("Continue weekly sessions; sleep diary for two weeks.")
    expect(page.locator("#status-plan")).to_contain_text("Saved")
    page.locator("#sign-only").click()
    expect(page.locator("#note-state")).to_have_text("Signed")
    edited.refresh_from_db()
    amendment.refresh_from_db()
    assert edited.state == Note.State.AMENDED and amendment.version == 2
    assert Delivery.objects.filter(note=amendment).count() == 1
    assert not [e for e in page.js_errors if "Content Security Policy" in e], page.js_errors


def test_closing_the_tab_mid_edit_loses_nothing_and_j_k_walk_the_queue(world, live_server, page):
    import time

    first = _draft(world, 0)
    second = _draft(world, 1)
    _log_in(page, live_server, world.clinician)
    page.goto(f"{live_server.url}/notes/{first.pk}/review/")
    page.keyboard.press("j")
    expect(page).to_have_url(re.compile(rf"/notes/{second.pk}/review/$"))
    page.keyboard.press("k")
    expect(page).to_have_url(re.compile(rf"/notes/{first.pk}/review/$"))
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_visible()
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_be_hidden()

    # Type and close at once, before the autosave delay has passed: the
    # pagehide beacon carries the text.
    page.locator("#text-objective").fill("Alert and calm; typed just before closing the tab.")
    page.close(run_before_unload=True)
    section = first.sections.get(key="objective")
    for _ in range(50):  # the beacon arrives after close() returns
        section.refresh_from_db()
        if "closing the tab" in section.text:
            break
        time.sleep(0.1)
    assert section.text == "Alert and calm; typed just before closing the tab."


def test_review_time_counts_only_while_the_page_is_visible_and_in_use(world, live_server, page, settings):
    import time

    settings.REVIEW_HEARTBEAT_INTERVAL_SECONDS = 1
    settings.REVIEW_IDLE_AFTER_SECONDS = 2
    note = _draft(world, 0)
    _log_in(page, live_server, world.clinician)
    page.goto(f"{live_server.url}/notes/{note.pk}/review/")

    def seconds() -> int:
        return Note.objects.values_list("review_seconds", flat=True).get(pk=note.pk)

    def use_the_page(for_seconds: float) -> None:
        end = time.monotonic() + for_seconds
        x = 100
        while time.monotonic() < end:
            x = 300 if x == 100 else 100
            page.mouse.move(x, 300)
            page.wait_for_timeout(200)

    use_the_page(3)
    page.wait_for_timeout(1500)
    assert seconds() >= 1

    # Left open and untouched: counting stops once the idle limit passes.
    page.wait_for_timeout(3500)
    idle_from = seconds()
    page.wait_for_timeout(3000)
    assert seconds() == idle_from

    # In use but hidden (another tab in front): nothing counts either.
    page.evaluate("Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'})")
    use_the_page(3)
    page.wait_for_timeout(1500)
    assert seconds() == idle_from
