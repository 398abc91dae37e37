"""Monthly satisfaction pulse (0–10) per clinician, shown as a trend."""

from datetime import UTC, date, datetime

import pytest

from audit.models import AuditEvent
from notes.errors import DomainError, NotPermitted
from quality.models import SatisfactionPulse
from quality.services import pulse_record


def test_a_clinician_answers_the_pulse_for_the_current_month(world, login_as):
    client = login_as(world.clinician)
    assert client.get("/quality/pulse/").status_code == 200
    response = client.post("/quality/pulse/", {"score": "7", "comment": "Saves me time."})
    assert response.status_code == 302
    pulse = SatisfactionPulse.objects.get(clinician=world.clinician)
    assert (pulse.score, pulse.comment, pulse.practice) == (7, "Saves me time.", world.practice)
    assert pulse.month.day == 1
    event = AuditEvent.objects.get(action="qa.pulse")
    assert event.actor_user == world.clinician and event.after["score"] == 7
    assert "7/10" in client.get("/quality/pulse/").content.decode()


def test_a_second_answer_in_the_month_replaces_the_first(world):
    pulse_record(score=4, actor=world.clinician, now=datetime(2026, 11, 3, 15, tzinfo=UTC))
    pulse_record(score=9, actor=world.clinician, now=datetime(2026, 11, 28, 15, tzinfo=UTC))
    assert list(SatisfactionPulse.objects.values_list("month", "score")) == [(date(2026, 11, 1), 9)]


def test_the_month_is_the_practices_local_month(world):
    # 2026-12-01 03:00 UTC is still 30 November in New York.
    pulse = pulse_record(score=5, actor=world.clinician, now=datetime(2026, 12, 1, 3, tzinfo=UTC))
    assert pulse.month == date(2026, 11, 1)


def test_a_score_outside_0_to_10_is_refused(world, login_as):
    with pytest.raises(DomainError, match="from 0 to 10"):
        pulse_record(score=11, actor=world.clinician)
    response = login_as(world.clinician).post("/quality/pulse/", {"score": "11"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not SatisfactionPulse.objects.exists()


def test_only_clinicians_answer_the_pulse(world, login_as):
    with pytest.raises(NotPermitted):
        pulse_record(score=5, actor=world.admin)
    assert login_as(world.qa).get("/quality/pulse/").status_code == 403


def test_the_metrics_page_shows_the_monthly_mean_as_a_trend(world, login_as):
    for clinician, day, score in (
        (world.clinician, datetime(2026, 9, 10, 15, tzinfo=UTC), 4),
        (world.colleague, datetime(2026, 9, 11, 15, tzinfo=UTC), 5),
        (world.clinician, datetime(2026, 10, 10, 15, tzinfo=UTC), 6),
        (world.clinician, datetime(2026, 11, 10, 15, tzinfo=UTC), 9),
        (world.colleague, datetime(2026, 11, 11, 15, tzinfo=UTC), 6),
    ):
        pulse_record(score=score, actor=clinician, now=day)
    client = login_as(world.admin)
    query = {"start": "2026-09-01", "end": "2026-11-30"}
    csv_rows = client.get("/pilot/metrics/satisfaction.csv", query).content.decode().splitlines()
    assert csv_rows == ["month,answers,mean_score", "2026-09,2,4.5", "2026-10,1,6.0", "2026-11,2,7.5"]
    mine = client.get("/pilot/metrics/satisfaction.csv", {**query, "clinician": world.clinician.pk})
    assert mine.content.decode().splitlines()[1:] == ["2026-09,1,4.0", "2026-10,1,6.0", "2026-11,1,9.0"]
    page = client.get("/pilot/metrics/", query).content.decode()
    section = page.split('id="chart-satisfaction"', 1)[1].split("</section>", 1)[0]
    assert section.count('class="point"') == 3 and "<polyline" in section
    assert 'data-summary="Mean">6.0<' in section  # (4 + 5 + 6 + 9 + 6) / 5
