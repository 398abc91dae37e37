"""Issue 15 §5 in a real browser: a pre-licensed clinician signs, the note
waits for co-signature, the supervisor reviews it (draft, signed text, diff)
and returns it with a comment, the clinician edits and signs again, and the
supervisor co-signs with a one-time code. Screenshots go to test-artifacts/."""

import re

import pytest
from django_otp.plugins.otp_static.models import StaticToken
from playwright.sync_api import expect

from integrations.models import Delivery
from notes import services
from notes.cosign_services import membership_supervision_set
from notes.models import Note
from tests.factories import PASSWORD, note_factory, note_resolve_all_flags, totp_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMMENT = "Say how the client responded to the exposure exercise."


def _log_in(page, live_server, user):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill(totp_now(user))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/queue/$"))


def _backup_code(user) -> str:
    # The login used the current TOTP, which django-otp refuses a second time.
    return StaticToken.objects.get(device__user=user).token


def test_a_pre_licensed_note_is_returned_then_cosigned_and_only_then_delivered(
    world, live_server, page, browser, artifacts
):
    world.colleague.first_name, world.colleague.last_name = "Dana", "Supervisor"
    world.colleague.save()
    membership_supervision_set(
        membership=world.clinician.membership, pre_licensed=True, supervisor=world.colleague, actor=world.admin
    )
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_open(note=note, actor=world.clinician)
    note_resolve_all_flags(note, world.clinician)

    # The clinician signs: the note waits for the supervisor, nothing is delivered.
    _log_in(page, live_server, world.clinician)
    page.goto(f"{live_server.url}/notes/{note.pk}/review/")
    page.get_by_role("textbox", name="Plan (required)", exact=True).fill("Continue weekly sessions; exposure homework.")
    expect(page.locator("#status-plan")).to_contain_text("Saved")
    page.locator("#sign-otp").fill(_backup_code(world.clinician))
    page.locator("#sign-only").click()
    expect(page.locator("#note-state")).to_have_text("Awaiting co-signature")
    expect(page.locator("#awaiting-cosign")).to_be_visible()
    page.screenshot(path=str(artifacts / "cosign-1-awaiting.png"), full_page=True)
    assert Note.objects.get(pk=note.pk).state == Note.State.AWAITING_COSIGN
    assert not Delivery.objects.filter(note=note).exists()

    # The supervisor sees it in their queue, reviews the diff and returns it.
    supervisor_context = browser.new_context(viewport={"width": 1280, "height": 900})
    supervisor = supervisor_context.new_page()
    supervisor.set_default_timeout(15_000)
    try:
        _log_in(supervisor, live_server, world.colleague)
        supervisor.locator("#nav-cosign").click()
        expect(supervisor.locator("#cosign-count")).to_have_text("1")
        supervisor.screenshot(path=str(artifacts / "cosign-2-queue.png"), full_page=True)
        supervisor.get_by_role("link", name=note.client.full_name).click()
        expect(supervisor.locator("#signed-by")).to_contain_text(world.clinician.last_name)
        plan_diff = supervisor.locator("#section-plan [data-testid=diff]")
        expect(plan_diff.locator("ins")).to_contain_text("exposure homework")
        supervisor.screenshot(path=str(artifacts / "cosign-3-review.png"), full_page=True)
        supervisor.locator("#return-submit").click()  # an empty comment: the browser keeps the form
        assert Note.objects.get(pk=note.pk).state == Note.State.AWAITING_COSIGN
        supervisor.locator("#return-comment").fill(COMMENT)
        supervisor.locator("#return-submit").click()
        expect(supervisor.locator("#cosign-count")).to_have_text("0")
        assert Note.objects.get(pk=note.pk).state == Note.State.IN_REVIEW

        # The clinician reads the comment, edits and signs again (the step-up still holds).
        page.goto(f"{live_server.url}/notes/{note.pk}/review/")
        expect(page.locator("#cosign-returned")).to_contain_text(COMMENT)
        page.screenshot(path=str(artifacts / "cosign-4-returned.png"), full_page=True)
        page.get_by_role("textbox", name="Assessment (required)", exact=True).fill(
            "Client tolerated the exposure with moderate anxiety that eased within the session."
        )
        expect(page.locator("#status-assessment")).to_contain_text("Saved")
        page.locator("#sign-only").click()
        expect(page.locator("#note-state")).to_have_text("Awaiting co-signature")

        # The supervisor co-signs with a one-time code; only now is there a delivery.
        supervisor.goto(f"{live_server.url}/cosign/{note.pk}/")
        supervisor.locator("#cosign-submit").click()
        expect(supervisor.locator("#cosign-error")).to_contain_text("Enter a code")
        assert not Delivery.objects.filter(note=note).exists()
        supervisor.locator("#cosign-otp").fill(_backup_code(world.colleague))
        supervisor.locator("#cosign-submit").click()
        expect(supervisor.locator("#cosign-count")).to_have_text("0")
        expect(supervisor.get_by_text("Co-signed the note for")).to_be_visible()
        supervisor.screenshot(path=str(artifacts / "cosign-5-cosigned.png"), full_page=True)
    finally:
        supervisor_context.close()

    note.refresh_from_db()
    assert note.state == Note.State.SIGNED and note.cosigned_by == world.colleague
    assert Delivery.objects.filter(note=note).count() == 1
    page.goto(f"{live_server.url}/notes/{note.pk}/review/")
    expect(page.locator("#cosigned")).to_contain_text("Dana Supervisor")
    page.screenshot(path=str(artifacts / "cosign-6-clinician-sees-cosigned.png"), full_page=True)
    assert [e for e in page.js_errors if not e.startswith("Failed to load resource")] == []  # favicon
