"""Issue 6 §1: every state change and edit writes an AuditEvent with the right
actor, before/after for edits, and (for people) request id, IP and user agent;
the table is append-only in the ORM and, on PostgreSQL, in the database."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from audit.context import RequestContext, current_request
from audit.models import AuditEvent
from notes import services
from notes.models import Note
from tests.factories import ai_output, note_factory, note_resolve_all_flags, note_sign_now

pytestmark = pytest.mark.django_db

REQUEST = RequestContext(request_id="req-7f3a", ip_address="203.0.113.9", user_agent="Firefox/140 (test)")


@pytest.fixture
def in_request():
    """What audit.middleware sets for a request, for services called directly."""
    token = current_request.set(REQUEST)
    yield REQUEST
    current_request.reset(token)


def _events(note):
    return list(AuditEvent.objects.filter(note__lineage=note.lineage).order_by("seq"))


def test_a_whole_note_lifecycle_writes_one_event_per_change_with_the_right_actor(world, in_request):
    # An invalid code gives a flag to resolve.
    note = note_factory(
        practice=world.practice, clinician=world.clinician, payload=ai_output(diagnosis_codes=["F33.1", "XYZ.9"])
    )
    services.note_open(note=note, actor=world.clinician)
    services.note_edit_section(note=note, section_key="plan", text="Weekly CBT.", actor=world.clinician)
    note_resolve_all_flags(note, world.clinician)
    signed = note_sign_now(note, world.clinician)
    amendment = services.note_amend(note=signed, reason="Wrong homework", actor=world.clinician)
    services.note_edit_section(note=amendment, section_key="plan", text="Biweekly CBT.", actor=world.clinician)
    note_sign_now(amendment, world.clinician)

    events = _events(note)
    actions = [e.action for e in events]
    for expected in ("note.draft", "note.open", "note.edit", "flag.resolve", "note.sign", "delivery.create"):
        assert expected in actions
    assert {"note.amend", "note.supersede"} <= set(actions)
    assert actions.count("note.edit") == 2 and actions.count("note.sign") == 2
    resolve = next(e for e in events if e.action == "flag.resolve")
    assert resolve.after == {"kind": "invalid_code", "resolution": "Reviewed"}

    draft = events[0]
    assert draft.action == "note.draft"
    assert draft.actor_type == AuditEvent.ActorType.AI
    assert draft.actor_ai_source == note.draft.ai_source and draft.actor_user is None
    assert draft.actor_label == "Demo Scribe (scribe-llm 2.3)"  # the source with its model and version
    delivery = next(e for e in events if e.action == "delivery.create")
    assert delivery.actor_type == AuditEvent.ActorType.SYSTEM and delivery.actor_user is None
    for event in events:
        if event.action in ("note.draft", "delivery.create", "qa.draw"):  # qa.draw: the QA sampling draw
            # Machines have no address or browser.
            assert event.actor_type != AuditEvent.ActorType.PERSON
            assert event.ip_address is None and event.user_agent == ""
        else:
            assert event.actor_type == AuditEvent.ActorType.PERSON
            assert event.actor_user == world.clinician
            assert (event.request_id, event.ip_address, event.user_agent) == (
                "req-7f3a",
                "203.0.113.9",
                "Firefox/140 (test)",
            )


def test_an_edit_records_the_text_before_and_after(world, in_request):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    old = note.sections.get(key="subjective").text
    services.note_edit_section(
        note=note, section_key="subjective", text="Reports <b>better</b> sleep.", actor=world.clinician
    )
    event = AuditEvent.objects.get(note=note, action="note.edit")
    assert event.before == {"text": old, "codes": []}
    assert event.after == {"text": "Reports <b>better</b> sleep.", "codes": []}
    assert event.detail == {"section": "subjective"}
    assert event.object_type == "notes.notesection"


def test_discarding_records_the_reason_and_states(world, in_request):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_discard(note=note, reason="Wrong client", actor=world.clinician)
    event = AuditEvent.objects.get(note=note, action="note.discard")
    assert event.before == {"state": Note.State.DRAFT}
    assert event.after == {"state": Note.State.DISCARDED, "reason": "Wrong client"}
    assert event.actor_user == world.clinician and event.request_id == "req-7f3a"


def test_a_view_through_the_web_carries_request_id_address_and_user_agent(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    browser = login_as(world.clinician)
    response = browser.get(
        reverse("note_detail", args=[note.pk]),
        HTTP_X_REQUEST_ID="trace-123",
        HTTP_USER_AGENT="Safari/19",
        REMOTE_ADDR="198.51.100.4",
    )
    assert response.status_code == 200
    assert response["X-Request-Id"] == "trace-123"
    event = AuditEvent.objects.filter(note=note, action="phi.view").get()
    assert event.actor_user == world.clinician
    assert (event.request_id, event.ip_address, event.user_agent) == ("trace-123", "198.51.100.4", "Safari/19")


def test_an_edit_through_the_web_carries_request_id_address_and_user_agent(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    browser = login_as(world.clinician)
    response = browser.post(
        reverse("review_section_save", args=[note.pk, "plan"]),
        {"text": "Safety plan reviewed."},
        HTTP_USER_AGENT="Edge/150",
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code in (200, 302)
    event = AuditEvent.objects.get(note=note, action="note.edit")
    assert event.after["text"] == "Safety plan reviewed."
    assert event.actor_user == world.clinician
    assert len(event.request_id) == 32  # generated by the middleware when the caller sends none
    assert response["X-Request-Id"] == event.request_id
    assert (event.ip_address, event.user_agent) == ("198.51.100.7", "Edge/150")


def test_the_orm_refuses_to_update_or_delete_an_event(world):
    event = AuditEvent.objects.filter(practice=world.practice).first()
    event.actor_label = "someone else"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(actor_label="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL")
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET actor_label = 'forged' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_the_database_refuses_raw_update_and_delete(world, sql):
    event = AuditEvent.objects.filter(practice=world.practice).first()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk, actor_label=event.actor_label).exists()
