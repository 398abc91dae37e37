from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notes.models import Note
from tests.factories import ai_output, client_factory, note_factory
from tests.notes.review_fixtures import notes_bulk_clone

pytestmark = pytest.mark.django_db


def _rows(response) -> list[str]:
    return [n["client_name"] for n in response.context["notes"]]


def test_the_queue_lists_only_my_waiting_drafts_with_counts(world, login_as):
    mine = note_factory(practice=world.practice, clinician=world.clinician)
    note_factory(practice=world.practice, clinician=world.colleague)
    signed = note_factory(practice=world.practice, clinician=world.clinician)
    Note.objects.filter(pk=signed.pk).update(state=Note.State.DISCARDED, discarded_reason="dup")
    response = login_as(world.clinician).get("/queue/")
    assert response.status_code == 200
    assert [n["pk"] for n in response.context["notes"]] == [mine.pk]
    assert response.context["counts"]["all"] == 1
    assert f"/notes/{mine.pk}/review/" in response.content.decode()


def test_the_queue_filters_by_today_client_and_flags(world, login_as):
    now = timezone.now()
    alice = client_factory(world.practice, world.clinician, family_name="Alvarez")
    bob = client_factory(world.practice, world.clinician, family_name="Brown")
    today = note_factory(practice=world.practice, clinician=world.clinician, client=alice, session_start=now)
    old = note_factory(
        practice=world.practice,
        clinician=world.clinician,
        client=bob,
        session_start=now - timedelta(days=3),
        payload=ai_output(diagnosis_codes=["F99.99"]),
    )
    web = login_as(world.clinician)
    assert [n["pk"] for n in web.get("/queue/?when=today").context["notes"]] == [today.pk]
    assert [n["pk"] for n in web.get(f"/queue/?client={bob.pk}").context["notes"]] == [old.pk]
    assert [n["pk"] for n in web.get("/queue/?flags=open").context["notes"]] == [old.pk]
    assert [n["pk"] for n in web.get("/queue/?flags=none").context["notes"]] == [today.pk]
    counts = web.get("/queue/").context["counts"]
    assert counts["all"] == 2 and counts["today"] == 1 and counts["with_flags"] == 1


def test_the_queue_sorts_by_session_client_and_flags(world, login_as):
    base = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    zed = client_factory(world.practice, world.clinician, family_name="Zed")
    amy = client_factory(world.practice, world.clinician, family_name="Amy")
    early = note_factory(practice=world.practice, clinician=world.clinician, client=zed, session_start=base)
    late = note_factory(
        practice=world.practice,
        clinician=world.clinician,
        client=amy,
        session_start=base + timedelta(hours=2),
        payload=ai_output(diagnosis_codes=["F99.99", "X"]),
    )
    web = login_as(world.clinician)
    assert [n["pk"] for n in web.get("/queue/").context["notes"]] == [early.pk, late.pk]
    assert [n["pk"] for n in web.get("/queue/?sort=-session").context["notes"]] == [late.pk, early.pk]
    assert [n["pk"] for n in web.get("/queue/?sort=client").context["notes"]] == [late.pk, early.pk]
    assert [n["pk"] for n in web.get("/queue/?sort=flags").context["notes"]] == [late.pk, early.pk]


def test_bad_filter_values_are_ignored_not_a_500(world, login_as):
    note_factory(practice=world.practice, clinician=world.clinician)
    response = login_as(world.clinician).get("/queue/?client=abc&flags=zzz&sort=drop+table&when=x")
    assert response.status_code == 200
    assert len(response.context["notes"]) == 1


def test_the_queue_runs_the_same_number_of_queries_for_5_and_500_drafts(world, login_as):
    prototype = note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(mood=3))
    clients = [client_factory(world.practice, world.clinician) for _ in range(5)]
    web = login_as(world.clinician)
    web.get("/queue/")  # warm the session and caches

    notes_bulk_clone(prototype=prototype, clients=clients, count=4)
    with CaptureQueriesContext(connection) as few:
        response = web.get("/queue/")
    assert len(response.context["notes"]) == 5

    notes_bulk_clone(prototype=prototype, clients=clients, count=495)
    with CaptureQueriesContext(connection) as many:
        response = web.get("/queue/")
    assert len(response.context["notes"]) == 500
    assert len(many.captured_queries) == len(few.captured_queries), [q["sql"][:120] for q in many.captured_queries]
    assert len(many.captured_queries) <= 12
