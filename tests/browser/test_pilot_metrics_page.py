"""A practice admin reads the pilot metrics in a real browser: the charts
are drawn server-side as SVG, the filters narrow them, and each chart's data
downloads as CSV."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from integrations.models import Delivery
from quality.services import ErrorIn, pulse_record, qa_review_submit
from tests.factories import PASSWORD, totp_now
from tests.quality.helpers import policy_set, signed_note

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHARTS = (
    "documentation-time",
    "ai-text-kept",
    "qa-errors",
    "delivery-failures",
    "delivery-latency",
    "unsigned-drafts",
    "flags-per-note",
    "satisfaction",
    "rubber-stamp",
)


def _at(day: int) -> datetime:
    return datetime(2026, 11, day, 15, 0, tzinfo=UTC)


def test_a_practice_admin_filters_the_pilot_metrics_and_downloads_a_chart(world, live_server, page, artifacts):
    policy_set(world.practice, sample_rate_percent=100, rubber_stamp_seconds_per_100_words=30)
    a = signed_note(world, review_seconds=120, signed_at=_at(3))
    b = signed_note(world, review_seconds=2, signed_at=_at(4))  # a rubber stamp
    c = signed_note(world, clinician=world.colleague, review_seconds=480, signed_at=_at(11))
    review = {"accuracy": 4, "completeness": 4, "ehr_placement_correct": True, "comment": "", "actor": world.qa}
    qa_review_submit(note=a, errors=[ErrorIn("omission", "major")], **review)
    qa_review_submit(note=b, errors=[], **review)
    Delivery.objects.filter(note=a).update(
        state=Delivery.State.DELIVERED, delivered_at=a.signed_at + timedelta(seconds=40)
    )
    Delivery.objects.filter(note=c).update(state=Delivery.State.FAILED)
    pulse_record(score=8, actor=world.clinician, now=_at(5))
    pulse_record(score=5, actor=world.colleague, now=_at(6))

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill(world.admin.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill(totp_now(world.admin))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/clients/$"))
    page.get_by_role("link", name="Pilot metrics").click()
    expect(page).to_have_url(re.compile(r"/pilot/metrics/$"))

    page.locator("#id_start").fill("2026-11-02")
    page.locator("#id_end").fill("2026-11-15")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#metrics-range")).to_contain_text("2026-11-02 to 2026-11-15")
    for key in CHARTS:
        expect(page.locator(f"#chart-{key} svg.chart")).to_be_visible()
    doc = page.locator("#chart-documentation-time")
    expect(doc.locator('[data-summary="Signed notes"]')).to_have_text("3")
    expect(doc.locator('[data-summary="Median active review"]')).to_have_text("120 s")  # median(120, 2, 480)
    expect(doc.locator("circle.point")).to_have_count(2)  # two weeks
    expect(page.locator('#chart-qa-errors [data-summary="QA error rate"]')).to_have_text("50.0 %")
    expect(page.locator('#chart-delivery-failures [data-summary="Failed"]')).to_have_text("1")
    expect(page.locator('#chart-satisfaction [data-summary="Mean"]')).to_have_text("6.5")
    expect(page.locator('#chart-rubber-stamp [data-summary="Rubber-stamp notes"]')).to_have_text("1")
    page.screenshot(path=str(artifacts / "pilot_metrics.png"), full_page=True)

    page.locator("#id_clinician").select_option(str(world.colleague.pk))
    page.get_by_role("button", name="Apply").click()
    expect(doc.locator('[data-summary="Signed notes"]')).to_have_text("1")
    expect(doc.locator('[data-summary="Median active review"]')).to_have_text("480 s")
    page.screenshot(path=str(artifacts / "pilot_metrics_one_clinician.png"), full_page=True)

    with page.expect_download() as info:
        doc.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename == "documentation-time_2026-11-02_2026-11-15.csv"
    lines = open(download.path(), encoding="utf-8").read().splitlines()
    assert lines == ["week,notes,median_review_seconds", "2026-11-02,0,", "2026-11-09,1,480"]
    assert [e for e in page.js_errors if not e.startswith("Failed to load resource")] == []  # favicon
