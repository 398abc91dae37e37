"""From an empty database to a clinician signing a scribe's draft, in a real
browser and with no shell: the operator's command creates the practice and
prints the first admin's link; the admin sets a password, enrolls an
authenticator from the QR code and invites a clinician; the clinician accepts
from the emailed link, enrolls and keeps the backup codes. The admin then, on
the practice admin pages, registers the scribe, creates its key and copies it
from the page that shows it once (what a real admin hands to the vendor), adds
the client with their EHR patient id and records the client's consent. The
scribe posts a draft with that key over HTTP; the clinician logs in with a
backup code, finds the draft and signs it.

Screenshots go to test-artifacts/onboarding-*.png."""

import json
import re
from datetime import timedelta
from io import BytesIO, StringIO

import pytest
import requests
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from notes.models import AISource, AISourceKey, Client, Note, Practice
from tests.admin.helpers import code_for
from tests.factories import ai_output

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _decode_qr(png: bytes) -> str:
    import zxingcpp
    from PIL import Image

    found = zxingcpp.read_barcodes(Image.open(BytesIO(png)))
    assert len(found) == 1, "expected one QR code on the enrollment page"
    return found[0].text


ADMIN_PASSWORD = "harbor admin lighthouse 2026"
CLINICIAN_PASSWORD = "seagull tide notebook 77"


def _accept_and_enroll(page, link: str, password: str, artifacts, name: str, full_name=None) -> list[str]:
    """Open the invitation, choose the password, enroll the authenticator
    from the QR code the page draws (decoded from a screenshot of its SVG,
    as a phone's camera would), and return the backup codes it shows."""
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/accounts/invitation/accept/$"))  # the token left the address bar
    if full_name:
        page.get_by_label("First name").fill(full_name[0])
        page.get_by_label("Last name").fill(full_name[1])
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password again").fill(password)
    page.get_by_role("button", name="Set password").click()
    expect(page).to_have_url(re.compile(r"/accounts/enroll/$"))
    qr = page.locator("#totp-qr svg")
    expect(qr).to_be_visible()
    uri = _decode_qr(qr.screenshot())
    assert uri.startswith("otpauth://totp/") and "secret=" in uri
    assert uri == page.locator("#totp-qr").get_attribute("data-otpauth")
    page.screenshot(path=str(artifacts / f"onboarding-{name}-enroll.png"), full_page=True)
    page.get_by_label("Code from your authenticator app").fill(code_for(uri))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Your authenticator is set up")).to_be_visible()
    codes = page.locator("#backup-codes code").all_inner_texts()
    assert len(codes) == 10
    page.screenshot(path=str(artifacts / f"onboarding-{name}-backup-codes.png"), full_page=True)
    return codes


def test_a_practice_goes_from_the_operator_command_to_a_clinician_reading_a_scribe_draft(
    live_server, page, browser, artifacts
):
    # 1. The operator's command.
    out = StringIO()
    call_command(
        "practice_create",
        "--name",
        "Harbor Light Therapy",
        "--admin-email",
        "owner@harbor.example",
        "--timezone",
        "America/Chicago",
        "--base-url",
        live_server.url,
        stdout=out,
    )
    admin_link = next(line for line in out.getvalue().splitlines() if "/accounts/invitation/" in line)
    practice = Practice.objects.get(slug="harbor-light-therapy")

    # 2. The first admin accepts and enrolls; continuing lands on their pages.
    _accept_and_enroll(page, admin_link, ADMIN_PASSWORD, artifacts, "admin", full_name=("Dana", "Whitfield"))
    page.get_by_role("link", name="Continue").click()
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("People")
    expect(page.locator(".who")).to_contain_text("Dana Whitfield · Practice admin · Harbor Light Therapy")

    # 3. The admin invites a clinician.
    page.get_by_role("link", name="People").click()
    page.locator("#id_email").fill("sam.okafor@harbor.example")
    page.locator("#id_first_name").fill("Sam")
    page.locator("#id_last_name").fill("Okafor")
    page.locator("#id_role").select_option("clinician")
    page.locator("#id_credentials").fill("LCSW")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".messages")).to_contain_text("Invitation sent to sam.okafor@harbor.example")
    expect(page.locator("#invitations")).to_contain_text("sam.okafor@harbor.example")
    page.screenshot(path=str(artifacts / "onboarding-admin-people.png"), full_page=True)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["sam.okafor@harbor.example"]
    clinician_link = re.search(r"https?://\S+/accounts/invitation/\S+/", mail.outbox[0].body).group(0)
    assert clinician_link not in page.content()  # the admin never sees the link

    # 4. The clinician accepts from the email, in their own browser, and enrolls.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    clinician_page = context.new_page()
    clinician_page.set_default_timeout(15_000)
    try:
        codes = _accept_and_enroll(clinician_page, clinician_link, CLINICIAN_PASSWORD, artifacts, "clinician")
        clinician = practice.memberships.get(role="clinician").user
        assert clinician.membership.credentials == "LCSW"

        # 5. The admin registers the scribe and creates its key, copied from
        # the page that shows it once: all the vendor ever gets.
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
        page.get_by_role("link", name="Practice admin").click()
        admin_nav = page.get_by_role("navigation", name="Practice administration")
        admin_nav.get_by_role("link", name="Scribes and keys").click()
        page.get_by_label("Name", exact=True).fill("Harbor Scribe")
        page.get_by_label("Vendor").fill("Example AI")
        page.get_by_label("Model", exact=True).fill("scribe-llm")
        page.get_by_label("Model version").fill("2.3")
        page.get_by_role("button", name="Register").click()
        expect(page.locator(".messages")).to_contain_text("“Harbor Scribe” registered; create a key for it.")
        source = AISource.objects.get(practice=practice, name="Harbor Scribe")
        page.get_by_role("button", name="Create a key for Harbor Scribe").click()
        expect(page.get_by_role("heading", name="New key for Harbor Scribe")).to_be_visible()
        page.get_by_role("button", name="Copy key").click()
        expect(page.locator("#copy-status")).to_have_text("Key copied.")
        key = page.evaluate("navigator.clipboard.readText()")
        assert key == page.get_by_label("API key").input_value()
        assert key.startswith(f"psk_{AISourceKey.objects.get(ai_source=source).prefix}_")
        page.screenshot(path=str(artifacts / "onboarding-admin-scribe-key.png"), full_page=True)
        page.get_by_role("link", name="Done").click()
        expect(page.locator(f"#source-{source.pk}")).not_to_contain_text(key)  # shown once, never again

        # 6. The admin adds the client with their EHR patient id and records consent.
        admin_nav.get_by_role("link", name="Clients").click()
        page.get_by_role("link", name="Add a client").click()
        page.get_by_label("Given name").fill("Robin")
        page.get_by_label("Family name").fill("Marsh")
        page.get_by_label("Date of birth").fill("1988-03-14")
        page.get_by_label("EHR patient id").fill("HL-0001")
        page.get_by_label("Primary clinician").select_option(label="Sam Okafor")
        page.get_by_role("button", name="Add client").click()
        expect(page.locator(".messages")).to_contain_text("Robin Marsh added.")
        expect(page.locator("#consent")).to_contain_text("No active consent")
        consented_on = timezone.localdate() - timedelta(days=7)
        page.get_by_label("Consent date").fill(consented_on.isoformat())
        page.get_by_label("How the client consented").select_option(label="Signed form (paper)")
        page.get_by_role("button", name="Record consent").click()
        expect(page.locator(".messages")).to_contain_text("Consent recorded.")
        expect(page.locator("#consent")).to_contain_text(f"Active: consented {consented_on.isoformat()}")
        page.screenshot(path=str(artifacts / "onboarding-admin-client-consent.png"), full_page=True)
        client = Client.objects.get(practice=practice, ehr_patient_id="HL-0001")
        assert client.clinician == clinician and client.active_consent is not None
        assert [e for e in page.js_errors if not e.startswith("Failed to load resource")] == []  # favicon

        # 7. The scribe posts a draft with the copied key, over real HTTP.
        body = {
            "schema_version": 1,
            "template": "soap",
            "client": {"ehr_patient_id": client.ehr_patient_id},
            "clinician": {"id": clinician.pk},
            "session": {"start": "2026-11-24T10:00:00-06:00", "duration_minutes": 50, "type": "individual"},
            "model": {"name": "scribe-llm", "version": "2.3"},
            **ai_output(),
        }
        response = requests.post(
            f"{live_server.url}/api/v1/drafts",
            data=json.dumps(body),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 201, response.text[:500]

        # 8. The clinician logs out, logs in with a backup code, and finds the draft.
        clinician_page.goto(f"{live_server.url}/")
        clinician_page.get_by_role("button", name="Log out").click()
        clinician_page.get_by_label("Username").fill("sam.okafor@harbor.example")
        clinician_page.get_by_label("Password").fill(CLINICIAN_PASSWORD)
        clinician_page.get_by_label("One-time code").fill(codes[0])
        clinician_page.get_by_role("button", name="Log in").click()
        expect(clinician_page).to_have_url(re.compile(r"/queue/$"))
        expect(clinician_page.locator("#queue-table tbody tr")).to_have_count(1)
        row = clinician_page.locator("#queue-table tbody tr").first
        expect(row).to_contain_text("Robin Marsh")
        # Shown in the practice's zone (America/Chicago), as the scribe sent it.
        expect(row).to_contain_text("10:00 CST")
        clinician_page.screenshot(path=str(artifacts / "onboarding-clinician-queue.png"), full_page=True)

        # 9. And signs it: a second backup code for the step-up, then sign.
        clinician_page.get_by_label("One-time code to sign this batch").fill(codes[1])
        clinician_page.get_by_role("button", name="Enable signing").click()
        expect(clinician_page.locator("#step-up-status")).to_contain_text("Signing enabled until")
        row.get_by_role("link").first.click()
        expect(clinician_page).to_have_url(re.compile(r"/notes/\d+/review/$"))
        clinician_page.locator("#sign-only").click()
        expect(clinician_page.locator("#note-state")).to_have_text("Signed")
        note = Note.objects.get(client=client)
        assert note.state == Note.State.SIGNED and note.signed_by == clinician
        clinician_page.screenshot(path=str(artifacts / "onboarding-clinician-signed.png"), full_page=True)
    finally:
        clinician_page.goto("about:blank")
        context.close()
