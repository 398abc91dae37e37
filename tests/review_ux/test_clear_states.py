"""Issue 17, point 6: a blocked draft reads as blocked, with the reason and
what to do; "sign and next" walks the queue as filtered and sorted; times are
in the practice's timezone with the zone named."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from notes import services
from notes.models import Note
from tests.factories import ai_output, client_factory, note_factory, note_resolve_all_flags

SESSION = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 10:00 in New York (EST)


def _row(html: str, client_name: str) -> str:
    start = html.index(client_name, html.index('id="queue-table"'))
    return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]


def test_a_draft_without_consent_is_blocked_in_the_queue_with_what_to_do(world, login_as):
    client = client_factory(world.practice, world.clinician, consent=False, family_name="Noconsent")
    note_factory(practice=world.practice, clinician=world.clinician, client=client)
    row = _row(login_as(world.clinician).get("/queue/").content.decode(), "Noconsent")
    assert '<strong class="state">Blocked</strong>' in row
    assert ">Draft<" not in row and ">In review<" not in row
    assert "What to do:" in row and "Ask the practice admin to record the client's consent" in row


def test_a_revoked_consent_says_so_and_what_to_do(world, login_as):
    client = client_factory(world.practice, world.clinician, family_name="Revoked")
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    services.consent_revoke(client=client, actor=world.admin)
    web = login_as(world.clinician)
    row = _row(web.get("/queue/").content.decode(), "Revoked")
    assert '<strong class="state">Blocked</strong>' in row and "blocked: consent revoked" in row
    assert "revoked consent" in row and "record the client's consent again" in row
    page = web.get(f"/notes/{note.pk}/review/").content.decode()
    assert "<strong>Blocked.</strong>" in page and "What to do:" in page


def _clean(world, family_name: str, hours: int) -> Note:
    client = client_factory(world.practice, world.clinician, family_name=family_name)
    note = note_factory(
        practice=world.practice,
        clinician=world.clinician,
        client=client,
        session_start=SESSION + timedelta(hours=hours),
    )
    # Opened, as the review page does before anyone can sign.
    services.note_open(note=note, actor=world.clinician)
    note_resolve_all_flags(note, world.clinician)
    return note


def test_sign_and_next_follows_the_queues_sort(world, login_as):
    # Session order: Adams, Zed, Moore. By client name: Adams, Moore, Zed.
    adams = _clean(world, "Adams", 0)
    zed = _clean(world, "Zed", 1)
    moore = _clean(world, "Moore", 2)
    web = login_as(world.clinician)
    queue = web.get("/queue/", {"sort": "client"}).content.decode()
    assert f'href="/notes/{adams.pk}/review/?sort=client"' in queue
    page = web.get(f"/notes/{adams.pk}/review/", {"sort": "client"}).content.decode()
    assert f'action="/notes/{adams.pk}/sign/?sort=client"' in page
    assert f'data-next-url="/notes/{moore.pk}/review/?sort=client"' in page

    session = web.session
    session["step_up_at"] = timezone.now().isoformat()
    session.save()
    response = web.post(f"/notes/{adams.pk}/sign/?sort=client", {"then": "next"})
    assert response.status_code == 302, response.content.decode()[-3000:]
    # By session Zed would be next.
    assert response["Location"] == f"/notes/{moore.pk}/review/?sort=client"
    response = web.post(f"/notes/{moore.pk}/sign/?sort=client", {"then": "next"})
    assert response["Location"] == f"/notes/{zed.pk}/review/?sort=client"
    response = web.post(f"/notes/{zed.pk}/sign/?sort=client", {"then": "next"})
    assert response["Location"] == "/queue/?sort=client"


def test_sign_and_next_follows_the_queues_filter(world, login_as):
    first = _clean(world, "First", 0)
    flagged = note_factory(
        practice=world.practice,
        clinician=world.clinician,
        session_start=SESSION + timedelta(hours=1),
        payload=ai_output(diagnosis_codes=["F99.99"]),
    )
    assert flagged.flags.filter(resolved_at__isnull=True).exists()
    last = _clean(world, "Last", 2)
    web = login_as(world.clinician)
    session = web.session
    session["step_up_at"] = timezone.now().isoformat()
    session.save()
    # "No open flags": the flagged draft in between is skipped.
    response = web.post(f"/notes/{first.pk}/sign/?flags=none", {"then": "next"})
    assert response["Location"] == f"/notes/{last.pk}/review/?flags=none"
    # Without the filter the default order goes to the flagged one.
    response = web.post(f"/notes/{last.pk}/sign/", {"then": "next"})
    assert response["Location"] == f"/notes/{flagged.pk}/review/"


def test_times_are_shown_in_the_practices_timezone_with_the_zone_named(world, login_as):
    assert world.practice.timezone == "America/New_York"
    note = note_factory(practice=world.practice, clinician=world.clinician, session_start=SESSION)
    web = login_as(world.clinician)
    review = web.get(f"/notes/{note.pk}/review/").content.decode()
    assert "Session Tue 24 Nov 2026, 10:00 EST" in review
    assert "15:00" not in review.split('id="session-line"', 1)[1][:80]
    queue = web.get("/queue/").content.decode()
    assert "Tue 24 Nov, 10:00 EST" in queue and "(America/New_York)" in queue

    services.note_open(note=note, actor=world.clinician)
    note_resolve_all_flags(note, world.clinician)
    signed = services.note_sign(note=note, actor=world.clinician, step_up_at=timezone.now() - timedelta(seconds=1))
    detail = web.get(f"/notes/{signed.pk}/").content.decode()
    assert "Session 2026-11-24 10:00 EST" in detail
    timeline = web.get(f"/audit/notes/{signed.pk}/timeline/").content.decode()
    assert "2026-11-24 10:00 EST" in timeline and "all times America/New_York" in timeline


def test_another_practice_sees_its_own_zone(world, login_as):
    world.other_practice.timezone = "Asia/Dubai"
    world.other_practice.save(update_fields=["timezone"])
    note = note_factory(practice=world.other_practice, clinician=world.outsider, session_start=SESSION)
    review = login_as(world.outsider).get(f"/notes/{note.pk}/review/").content.decode()
    assert "Session Tue 24 Nov 2026, 19:00 +04" in review
