"""The pilot metrics page: every figure checked against values computed by
hand from the fixture below (practice time zone America/New_York; range
Mon 2026-11-02 to Sun 2026-11-15, so two weeks).

    note  clinician  signed (10:00 local)  review s  edited        QA errors                     delivery
    A     clinician  Tue 11-03             5         no            omission/minor                failed
    B     clinician  Wed 11-04             300       yes (+13 ch)  wrong_client/critical, tone   delivered +120 s
    C     colleague  Thu 11-05             200       no            none                          delivered +60 s
    D     clinician  Tue 11-10             600       no            (not reviewed)                delivered +30 s
    E     clinician  Fri 11-20 (outside)   9999      no            —                             —

A has an unplaced item (1 flag), B an invalid code (1 flag). Rubber stamp
at 30 s per 100 words: A only (5 s for ~60 words).
"""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from integrations.models import Delivery
from notes.models import Note
from quality.metrics import MetricFilter, unsigned_drafts_by_age
from quality.models import Cohort, CohortMember
from quality.services import ErrorIn, pulse_record, qa_review_submit
from tests.factories import ai_output, note_factory

from .helpers import policy_set, signed_note

RANGE = {"start": "2026-11-02", "end": "2026-11-15"}
PLAN = "Continue weekly sessions; track activities daily."


def _at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 15, 0, tzinfo=UTC)


@pytest.fixture
def pilot(world):
    policy_set(world.practice, sample_rate_percent=100, rubber_stamp_seconds_per_100_words=30)
    a = signed_note(world, review_seconds=5, signed_at=_at(3), payload=ai_output(homework_assigned="Sleep diary"))
    b = signed_note(
        world,
        review_seconds=300,
        signed_at=_at(4),
        edit=PLAN + " Sleep diary.",
        payload=ai_output(diagnosis_codes=["F33.1", "F99.99"]),
    )
    c = signed_note(world, clinician=world.colleague, review_seconds=200, signed_at=_at(5))
    d = signed_note(world, review_seconds=600, signed_at=_at(10))
    e = signed_note(world, review_seconds=9999, signed_at=_at(20))
    for note in (a, b, c, d, e):
        Note.objects.filter(pk=note.pk).update(created_at=note.signed_at - timedelta(hours=1))
    review = {"accuracy": 4, "completeness": 4, "ehr_placement_correct": True, "comment": "", "actor": world.qa}
    qa_review_submit(note=a, errors=[ErrorIn("omission", "minor")], **review)
    qa_review_submit(note=b, errors=[ErrorIn("wrong_client", "critical"), ErrorIn("tone", "minor")], **review)
    qa_review_submit(note=c, errors=[], **review)
    Delivery.objects.filter(note=a).update(state=Delivery.State.FAILED)
    for note, seconds in ((b, 120), (c, 60), (d, 30)):
        Delivery.objects.filter(note=note).update(
            state=Delivery.State.DELIVERED, delivered_at=note.signed_at + timedelta(seconds=seconds)
        )
    pulse_record(score=8, actor=world.clinician, now=_at(6))
    pulse_record(score=6, actor=world.colleague, now=_at(7))
    pulse_record(score=3, actor=world.clinician, now=_at(6, month=10))  # October: before the range
    return {"a": a, "b": b, "c": c, "d": d, "e": e}


def _csv(client, chart: str, **params) -> list[list[str]]:
    response = client.get(f"/pilot/metrics/{chart}.csv", {**RANGE, **params})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_documentation_time_is_the_weekly_median_of_active_review_time(world, pilot, login_as):
    client = login_as(world.admin)
    assert _csv(client, "documentation-time") == [
        ["week", "notes", "median_review_seconds"],
        ["2026-11-02", "3", "200"],  # median(5, 300, 200)
        ["2026-11-09", "1", "600"],
    ]
    page = client.get("/pilot/metrics/", RANGE).content.decode()
    assert 'data-summary="Median active review">250.0 s<' in page  # median(5, 300, 200, 600)
    assert 'data-summary="Signed notes">4<' in page


def test_the_clinician_and_cohort_filters_narrow_every_figure(world, pilot, login_as):
    client = login_as(world.admin)
    assert _csv(client, "documentation-time", clinician=world.clinician.pk)[1:] == [
        ["2026-11-02", "2", "152.5"],  # median(5, 300)
        ["2026-11-09", "1", "600"],
    ]
    wave = Cohort.objects.create(practice=world.practice, name="Wave 1")
    CohortMember.objects.create(cohort=wave, clinician=world.colleague)
    assert _csv(client, "documentation-time", cohort=wave.pk)[1:] == [
        ["2026-11-02", "1", "200"],
        ["2026-11-09", "0", ""],
    ]
    assert _csv(client, "delivery-failures", cohort=wave.pk)[1:] == [["2026-11-02", "1", "0"], ["2026-11-09", "0", "0"]]


def test_ai_text_kept_and_edit_rate(world, pilot, login_as):
    total = pilot["a"].attribution.total_chars  # the three unedited notes have this many characters
    assert pilot["c"].attribution.total_chars == total
    assert pilot["b"].attribution.clinician_chars == 13  # " Sleep diary." appended, nothing removed
    assert pilot["b"].attribution.ai_removed_chars == 0
    rows = _csv(login_as(world.admin), "ai-text-kept")
    kept = round(100 * (3 * total) / (3 * total + 13), 1)
    assert rows[1] == ["2026-11-02", "3", str(kept), "33.3"]  # 1 of 3 edited
    assert rows[2] == ["2026-11-09", "1", "100.0", "0.0"]


def test_qa_error_rate_and_critical_errors(world, pilot, login_as):
    client = login_as(world.qa)
    rows = _csv(client, "qa-errors")
    assert rows[0] == ["error_type", "errors", "critical"]
    assert {r[0]: (r[1], r[2]) for r in rows[1:]} == {
        "Omission": ("1", "0"),
        "Hallucination or unsupported statement": ("0", "0"),
        "Wrong section": ("0", "0"),
        "Wrong client or misattribution": ("1", "1"),
        "Risk misclassified": ("0", "0"),
        "Coding error": ("0", "0"),
        "Tone": ("1", "0"),
    }
    page = client.get("/pilot/metrics/", RANGE).content.decode()
    assert 'data-summary="Notes reviewed">3<' in page
    assert 'data-summary="QA error rate">66.7 %<' in page  # A and B of A, B, C
    assert 'data-summary="Critical errors">1<' in page


def test_delivery_failures_and_latency(world, pilot, login_as):
    client = login_as(world.admin)
    assert _csv(client, "delivery-failures")[1:] == [["2026-11-02", "3", "1"], ["2026-11-09", "1", "0"]]
    assert _csv(client, "delivery-latency")[1:] == [
        ["2026-11-02", "2", "90.0"],  # median(120, 60)
        ["2026-11-09", "1", "30.0"],
    ]
    page = client.get("/pilot/metrics/", RANGE).content.decode()
    assert 'data-summary="Failure rate">25.0 %<' in page
    assert 'data-summary="Median latency">60.0 s<' in page


def test_unsigned_drafts_are_counted_by_age(world, pilot):
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    for hours in (2, 30, 50, 24 * 10):
        note = note_factory(practice=world.practice, clinician=world.clinician)
        Note.objects.filter(pk=note.pk).update(created_at=now - timedelta(hours=hours))
    chart = unsigned_drafts_by_age(
        MetricFilter(practice=world.practice, start=date(2026, 11, 2), end=date(2026, 11, 15)), now=now
    )
    assert chart.rows == [["< 1 day", 1], ["1–3 days", 2], ["3–7 days", 0], ["7+ days", 1]]


def test_flags_per_note_by_kind(world, pilot, login_as):
    rows = {r[0]: r[1:] for r in _csv(login_as(world.admin), "flags-per-note")[1:]}
    assert rows["Content with no place in the template"] == ["1", "0.25"]  # 1 flag over A, B, C, D
    assert rows["Invalid diagnosis code"] == ["1", "0.25"]
    assert rows["Risk item to acknowledge"] == ["0", "0.0"]


def test_satisfaction_trend_is_the_monthly_mean(world, pilot, login_as):
    client = login_as(world.admin)
    assert _csv(client, "satisfaction") == [["month", "answers", "mean_score"], ["2026-11", "2", "7.0"]]
    assert _csv(client, "satisfaction", start="2026-10-01")[1:] == [["2026-10", "1", "3.0"], ["2026-11", "2", "7.0"]]


def test_the_page_draws_an_svg_chart_per_metric_with_a_csv_link(world, pilot, login_as):
    page = login_as(world.admin).get("/pilot/metrics/", RANGE).content.decode()
    for key in (
        "documentation-time",
        "ai-text-kept",
        "qa-errors",
        "delivery-failures",
        "delivery-latency",
        "unsigned-drafts",
        "flags-per-note",
        "satisfaction",
        "rubber-stamp",
    ):
        section = page.split(f'id="chart-{key}"', 1)[1].split("</section>", 1)[0]
        assert '<svg xmlns="http://www.w3.org/2000/svg"' in section
        assert f"/pilot/metrics/{key}.csv?start=2026-11-02&amp;end=2026-11-15" in section
    assert "<script" not in page.split("<main>", 1)[1]  # server-rendered, no chart script
    # The documentation-time line has its two weekly points, with their values.
    doc = page.split('id="chart-documentation-time"', 1)[1].split("</section>", 1)[0]
    assert doc.count('class="point"') == 2 and 'data-value="200"' in doc and 'data-value="600"' in doc


def test_a_bad_range_is_refused_with_a_message(world, login_as):
    client = login_as(world.admin)
    response = client.get("/pilot/metrics/", {"start": "2026-11-15", "end": "2026-11-02"})
    assert response.status_code == 400
    assert "The start date must be on or before the end date." in response.content.decode()
    bad = {"start": "2026-11-15", "end": "2026-11-01"}
    assert client.get("/pilot/metrics/documentation-time.csv", bad).status_code == 400
    assert client.get("/pilot/metrics/nope.csv").status_code == 404
    for far in ({"start": "9999-12-01", "end": "9999-12-31"}, {"end": "0001-01-05"}):
        response = client.get("/pilot/metrics/", far)
        assert response.status_code == 400 and "Choose a date between 2000 and 2100" in response.content.decode()
        assert client.get("/pilot/metrics/documentation-time.csv", far).status_code == 400


def test_clinicians_and_auditors_do_not_see_the_metrics(world, login_as):
    assert login_as(world.clinician).get("/pilot/metrics/").status_code == 403
    assert login_as(world.auditor).get("/pilot/metrics/documentation-time.csv").status_code == 403


def test_a_name_a_spreadsheet_would_run_as_a_formula_is_quoted_in_the_csv(world, login_as):
    from tests.factories import member_factory

    sly = member_factory(world.practice, first_name="=HYPERLINK(1)", last_name="X").user
    signed_note(world, clinician=sly, signed_at=_at(3))
    rows = _csv(login_as(world.admin), "rubber-stamp")
    assert rows[1][0] == "'=HYPERLINK(1) X"
