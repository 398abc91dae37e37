"""Issue 6 §3: django-simple-history records the acting user also when the
change comes from a Celery task or the API, not only from a web page."""

import json
import uuid

import pytest
from celery import shared_task
from django.contrib.auth import get_user_model
from django.urls import reverse

from audit.history import HEADER, history_acting_user, history_user
from notes import services
from notes.models import Note
from psyfi_review.celery import app
from tests.factories import note_factory

pytestmark = pytest.mark.django_db


@shared_task(name="tests.audit.section_edit")
def section_edit_task(note_id: int, actor_id: int, text: str) -> None:
    """Like a real task: load by id, call the service; no request anywhere."""
    note = Note.objects.get(pk=note_id)
    actor = get_user_model().objects.get(pk=actor_id)
    services.note_edit_section(note=note, section_key="plan", text=text, actor=actor)


def _last_history_users(note):
    section = note.sections.get(key="plan")
    return note.history.first().history_user, section.history.first().history_user


def test_without_a_request_or_an_acting_user_history_has_no_user(world):
    """The gap this issue closes: a bare service call outside a request."""
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_edit_section(note=note, section_key="plan", text="Plan A", actor=world.clinician)
    assert _last_history_users(note) == (None, None)


def test_a_service_run_as_the_acting_user_outside_a_request_records_them(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with history_user(world.clinician):
        assert history_acting_user() == world.clinician
        services.note_edit_section(note=note, section_key="plan", text="Plan B", actor=world.clinician)
    assert history_acting_user() is None  # nothing leaks past the block
    assert _last_history_users(note) == (world.clinician, world.clinician)


def test_a_task_enqueued_by_a_person_runs_as_that_person(world):
    """The acting user rides in the task message's headers (published through
    the real broker) and the worker attributes the task's changes to them."""
    note = note_factory(practice=world.practice, clinician=world.clinician)
    queue = f"test-audit-history-{uuid.uuid4().hex}"
    with history_user(world.clinician):
        section_edit_task.apply_async(args=[note.pk, world.clinician.pk, "Plan C"], queue=queue)
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            message = simple.get(timeout=10)
            message.ack()
        finally:
            simple.queue.delete()
            simple.close()
    assert message.headers[HEADER] == world.clinician.pk
    assert message.headers["task"] == "tests.audit.section_edit"

    # Run it as the worker would, with the headers it received.
    section_edit_task.apply(args=[note.pk, world.clinician.pk, "Plan C"], headers=message.headers)
    assert _last_history_users(note) == (world.clinician, world.clinician)
    assert history_acting_user() is None  # reset after the task


def test_a_task_enqueued_without_a_person_stays_unattributed(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    section_edit_task.apply(args=[note.pk, world.clinician.pk, "Plan D"], headers={})
    assert _last_history_users(note) == (None, None)


@pytest.mark.urls("tests.audit.history_api_urls")
def test_a_change_through_the_api_records_the_authenticated_user(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    api = login_as(world.clinician)
    response = api.put(
        f"/test-api/notes/{note.pk}/sections/plan", data=json.dumps({"text": "Plan E"}), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert _last_history_users(note) == (world.clinician, world.clinician)


def test_a_change_through_a_web_page_records_the_logged_in_user(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    browser = login_as(world.clinician)
    response = browser.post(reverse("review_section_save", args=[note.pk, "plan"]), {"text": "Plan F"})
    assert response.status_code in (200, 302)
    assert _last_history_users(note) == (world.clinician, world.clinician)
