"""A QA reviewer reviews a sampled note in a real browser: the queue, the AI
draft beside the signed note and the diff, a critical error recorded; then
the clinician finds the QA result on their note, and the practice admin the
alert."""

import re

import pytest
from playwright.sync_api import expect

from integrations.models import Alert
from quality.models import QAReview
from tests.factories import PASSWORD, totp_now
from tests.quality.helpers import policy_set, signed_note

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EDIT = "Continue weekly sessions; add a sleep diary and review it next week."


def _log_in(page, live_server, user, landing: str):
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill(totp_now(user))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(landing))


def test_a_qa_reviewer_records_a_critical_error_and_the_clinician_sees_it(world, live_server, page, artifacts):
    policy_set(world.practice, sample_rate_percent=100)
    note = signed_note(world, edit=EDIT)

    _log_in(page, live_server, world.qa, r"/signed/$")
    page.get_by_role("link", name="QA queue").click()
    expect(page.locator(f"#qa-row-{note.pk}")).to_contain_text(note.client.full_name)
    expect(page.locator(f"#qa-row-{note.pk}")).to_contain_text("Random draw")
    page.screenshot(path=str(artifacts / "qa_queue.png"), full_page=True)
    page.locator(f"#qa-row-{note.pk} a").click()
    expect(page).to_have_url(re.compile(rf"/quality/notes/{note.pk}/review/$"))

    plan = page.locator("#qa-section-plan")
    expect(plan.locator(".qa-ai")).to_have_text("Continue weekly sessions; track activities daily.")
    expect(plan.locator(".qa-signed")).to_have_text(EDIT)
    expect(plan.locator(".qa-diff ins").first).to_contain_text("add a sleep diary")
    expect(plan.locator(".qa-diff del").first).to_contain_text("track activities daily")
    expect(page.locator("#qa-section-subjective .qa-diff")).to_contain_text("unchanged")

    page.locator('input[name="accuracy"][value="3"]').check()
    page.locator('input[name="completeness"][value="4"]').check()
    page.locator('input[name="ehr_placement_correct"][value="no"]').check()
    page.locator('select[name="errors-0-kind"]').select_option("wrong_client")
    page.locator('select[name="errors-0-severity"]').select_option("critical")
    page.locator('input[name="errors-0-comment"]').fill("Plan belongs to another client's session.")
    page.locator('select[name="errors-1-kind"]').select_option("tone")
    page.locator('select[name="errors-1-severity"]').select_option("minor")
    page.screenshot(path=str(artifacts / "qa_review_form.png"), full_page=True)
    page.get_by_role("button", name="Record QA review").click()

    expect(page).to_have_url(re.compile(r"/quality/queue/$"))
    expect(page.locator(".messages")).to_contain_text("QA review recorded.")
    expect(page.locator("#qa-queue-empty")).to_be_visible()
    review = QAReview.objects.get(note=note)
    assert (review.accuracy, review.completeness, review.ehr_placement_correct, review.has_critical) == (
        3,
        4,
        False,
        True,
    )
    assert sorted(review.errors.values_list("kind", "severity")) == [("tone", "minor"), ("wrong_client", "critical")]
    assert Alert.objects.filter(practice=world.practice, kind="qa_critical").count() == 1

    page.get_by_role("button", name="Log out").click()
    _log_in(page, live_server, world.clinician, r"/queue/$")
    page.goto(f"{live_server.url}/notes/{note.pk}/")
    result = page.locator("#qa-result")
    expect(result.get_by_role("alert")).to_contain_text("A QA reviewer found a critical error in this note")
    expect(result).to_contain_text("Wrong client or misattribution — Plan belongs to another client's session.")
    expect(result).to_contain_text("EHR placement incorrect")
    page.screenshot(path=str(artifacts / "qa_result_on_note.png"), full_page=True)

    page.get_by_role("button", name="Log out").click()
    _log_in(page, live_server, world.admin, r"/clients/$")
    page.goto(f"{live_server.url}/integrations/deliveries/")
    expect(page.get_by_text(f"QA review found a critical error in note #{note.pk}")).to_be_visible()
    assert [e for e in page.js_errors if not e.startswith("Failed to load resource")] == []  # favicon
