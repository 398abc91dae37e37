"""Issue 13, point 7, in a real browser: a clinician has the signed note open;
the note reaches the EHR (delivery_send against a loopback FakeEHR, from the
test thread); the page says "Delivered to EHR" without a reload. Then the
practice admin's dashboard shows that delivery's row with the EHR id."""

import re

import pytest
from playwright.sync_api import expect

from integrations.models import Delivery
from integrations.services import delivery_send
from tests.factories import PASSWORD, client_factory, note_factory, note_sign_now, totp_now
from tests.integrations.support import FakeEHR, fhir_connection

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_ehr():
    ehr = FakeEHR().start()
    yield ehr
    ehr.stop()


def _log_in(page, live_server, user, *, lands_on: str):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill(totp_now(user))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(lands_on))


def test_the_note_page_turns_to_delivered_without_a_reload(world, live_server, page, browser, artifacts, fake_ehr):
    fhir_connection(world.practice, fake_ehr.base_url)
    client = client_factory(world.practice, world.clinician)
    note = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, client=client), world.clinician
    )
    delivery = Delivery.objects.get(note=note)

    polls: list[int] = []
    page.on("response", lambda r: polls.append(r.status) if "/integrations/ehr-status/" in r.url else None)
    _log_in(page, live_server, world.clinician, lands_on=r"/queue/$")
    page.goto(f"{live_server.url}/notes/{note.pk}/")
    status = page.locator("#ehr-status")
    expect(status).to_contain_text("Queued for the EHR")
    # A marker the server never renders: if the page reloaded, it would be gone.
    page.evaluate("document.body.dataset.sameDocument = 'yes'")

    fake_ehr.add_patient(client)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.DELIVERED

    expect(status).to_contain_text("Delivered to EHR", timeout=20_000)
    expect(status).to_contain_text(f"id {delivery.ehr_id}")
    expect(status.locator(".ehr-status-link")).to_have_attribute(
        "href", f"{fake_ehr.base_url}/DocumentReference/{delivery.ehr_id}"
    )
    expect(status.locator("[aria-live=polite]")).to_have_count(1)
    assert page.evaluate("document.body.dataset.sameDocument") == "yes"
    assert polls and set(polls) == {200}
    # (The browser's own favicon request is the only resource allowed to 404.)
    assert [e for e in page.js_errors if not e.startswith("Failed to load resource")] == []
    page.screenshot(path=str(artifacts / "ehr-status-note.png"), full_page=True)

    # The admin's dashboard: one row per delivery, with the EHR id linked.
    admin_context = browser.new_context(viewport={"width": 1280, "height": 900})
    admin_page = admin_context.new_page()
    try:
        _log_in(admin_page, live_server, world.admin, lands_on=r"/clients/$")
        admin_page.goto(f"{live_server.url}/integrations/deliveries/?state=delivered")
        row = admin_page.locator(f'#delivery-rows tr[data-delivery="{delivery.pk}"]')
        expect(row).to_contain_text("Delivered to EHR")
        expect(row.get_by_role("link", name=delivery.ehr_id)).to_be_visible()
        admin_page.screenshot(path=str(artifacts / "ehr-status-dashboard.png"), full_page=True)
    finally:
        admin_context.close()
