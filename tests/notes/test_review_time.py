from datetime import timedelta

import pytest
from django.utils import timezone

from notes import review_services
from notes.errors import NotPermitted
from notes.models import Note
from tests.factories import note_factory, note_sign_now

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


def _seconds(note) -> int:
    return Note.objects.values_list("review_seconds", flat=True).get(pk=note.pk)


def test_a_heartbeat_credits_active_seconds_up_to_the_cap(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    web = login_as(world.clinician)
    response = web.post(f"/notes/{note.pk}/heartbeat/", {"seconds": 3600}, **JSON)
    assert response.status_code == 200
    assert response.json()["credited"] == review_services.REVIEW_HEARTBEAT_MAX_SECONDS
    assert _seconds(note) == review_services.REVIEW_HEARTBEAT_MAX_SECONDS


def test_heartbeats_in_quick_succession_add_no_more_than_the_time_between_them(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    now = timezone.now()
    credited = review_services.note_review_time_add(
        note=note, actor=world.clinician, seconds=15, last_beat_at=now - timedelta(seconds=4), now=now
    )
    assert credited == 4
    credited = review_services.note_review_time_add(
        note=note, actor=world.clinician, seconds=15, last_beat_at=now - timedelta(minutes=10), now=now
    )
    assert credited == 15
    assert _seconds(note) == 19


def test_a_burst_of_heartbeats_from_one_session_is_not_counted_twice(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    web = login_as(world.clinician)
    web.post(f"/notes/{note.pk}/heartbeat/", {"seconds": 15}, **JSON)
    second = web.post(f"/notes/{note.pk}/heartbeat/", {"seconds": 15}, **JSON).json()["credited"]
    assert second <= 1
    assert _seconds(note) <= 16


def test_signed_notes_accrue_no_review_time(world, login_as):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/heartbeat/", {"seconds": 10}, **JSON)
    assert response.json()["credited"] == 0 and _seconds(note) == 0


@pytest.mark.parametrize("seconds", ["", "abc", "-5", "99999"])
def test_a_bad_heartbeat_is_a_400_and_counts_nothing(world, login_as, seconds):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/heartbeat/", {"seconds": seconds}, **JSON)
    assert response.status_code == 400 and "seconds" in response.json()["errors"]
    assert _seconds(note) == 0


def test_only_the_notes_clinician_adds_review_time(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with pytest.raises(NotPermitted):
        review_services.note_review_time_add(note=note, actor=world.colleague, seconds=10, last_beat_at=None)
    assert _seconds(note) == 0
