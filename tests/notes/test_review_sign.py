from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from integrations.models import Delivery
from notes import services
from notes.models import Note
from tests.factories import ai_output, client_factory, note_factory, note_resolve_all_flags, note_sign_now

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
BASE = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _batch(world, n=3):
    notes = [
        note_factory(practice=world.practice, clinician=world.clinician, session_start=BASE + timedelta(hours=i))
        for i in range(n)
    ]
    for note in notes:
        services.note_open(note=note, actor=world.clinician)
        note_resolve_all_flags(note, world.clinician)
    return notes


def _backup_code(user) -> str:
    return user.staticdevice_set.get().token_set.get().token


def test_signing_without_a_step_up_is_refused_and_nothing_is_delivered(world, login_as):
    (note,) = _batch(world, 1)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/sign/", {}, **JSON)
    assert response.status_code == 409
    assert "otp_token" in response.json()["errors"]
    note.refresh_from_db()
    assert note.state == Note.State.IN_REVIEW and not Delivery.objects.exists()


def test_a_wrong_code_is_a_400_with_a_field_error(world, login_as):
    (note,) = _batch(world, 1)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/sign/", {"otp_token": "000000"}, **JSON)
    assert response.status_code == 400
    (message,) = response.json()["errors"]["otp_token"]
    assert message.startswith("That code is not valid.")
    assert Note.objects.get(pk=note.pk).state == Note.State.IN_REVIEW


def test_one_step_up_signs_a_whole_batch_and_sign_and_next_walks_the_queue(world, login_as):
    first, second, third = _batch(world)
    web = login_as(world.clinician)
    response = web.post("/step-up/", {"otp_token": _backup_code(world.clinician), "next": "/queue/"})
    assert response.status_code == 302
    response = web.post(f"/notes/{first.pk}/sign/", {"then": "next"})
    assert response.status_code == 302 and response["Location"] == f"/notes/{second.pk}/review/"
    response = web.post(f"/notes/{second.pk}/sign/", {"then": "next"})
    assert response["Location"] == f"/notes/{third.pk}/review/"
    response = web.post(f"/notes/{third.pk}/sign/", {"then": "next"})
    assert response["Location"] == "/queue/"
    for note in (first, second, third):
        note.refresh_from_db()
        assert note.state == Note.State.SIGNED and note.signed_by == world.clinician
        assert Delivery.objects.filter(note=note).count() == 1
    assert AuditEvent.objects.filter(action="note.sign").count() == 3


def test_a_code_entered_on_the_sign_form_is_the_step_up(world, login_as):
    (note,) = _batch(world, 1)
    web = login_as(world.clinician)
    response = web.post(f"/notes/{note.pk}/sign/", {"otp_token": _backup_code(world.clinician)}, **JSON)
    assert response.status_code == 200, response.content
    assert Note.objects.get(pk=note.pk).state == Note.State.SIGNED
    assert web.session["step_up_at"]


def test_the_step_up_expires_after_the_window(world, login_as, settings):
    settings.SIGN_STEP_UP_WINDOW = timedelta(minutes=15)
    first, second = _batch(world, 2)
    web = login_as(world.clinician)
    session = web.session
    session["step_up_at"] = (timezone.now() - timedelta(minutes=14)).isoformat()
    session.save()
    assert web.post(f"/notes/{first.pk}/sign/", {}, **JSON).status_code == 200
    session = web.session
    session["step_up_at"] = (timezone.now() - timedelta(minutes=16)).isoformat()
    session.save()
    response = web.post(f"/notes/{second.pk}/sign/", {}, **JSON)
    assert response.status_code == 409 and "authenticator" in response.json()["detail"]


def test_open_flags_block_signing_even_with_a_step_up(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(diagnosis_codes=["X"]))
    web = login_as(world.clinician)
    response = web.post(f"/notes/{note.pk}/sign/", {"otp_token": _backup_code(world.clinician)})
    assert response.status_code == 409
    # the page is opened by the first GET; a draft never opened cannot be signed
    assert "cannot be signed" in response.content.decode() or "flag" in response.content.decode()
    web.get(f"/notes/{note.pk}/review/")
    response = web.post(f"/notes/{note.pk}/sign/", {}, **JSON)
    assert response.status_code == 409 and "Resolve the 1 open flag" in response.json()["detail"]
    assert not Delivery.objects.filter(note=note).exists()


def test_signing_a_note_for_a_client_without_consent_is_refused(world, login_as):
    client = client_factory(world.practice, world.clinician, consent=False)
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    web = login_as(world.clinician)
    web.get(f"/notes/{note.pk}/review/")
    note_resolve_all_flags(note, world.clinician)
    response = web.post(f"/notes/{note.pk}/sign/", {"otp_token": _backup_code(world.clinician)}, **JSON)
    assert response.status_code == 409 and "consent" in response.json()["detail"]


def test_discarding_needs_a_reason_and_moves_on_to_the_next_draft(world, login_as):
    first, second = _batch(world, 2)
    web = login_as(world.clinician)
    response = web.post(f"/notes/{first.pk}/discard/", {"reason": ""})
    assert response.status_code == 400 and Note.objects.get(pk=first.pk).state == Note.State.IN_REVIEW
    response = web.post(f"/notes/{first.pk}/discard/", {"reason": "Duplicate of another session"})
    assert response["Location"] == f"/notes/{second.pk}/review/"
    first.refresh_from_db()
    assert first.state == Note.State.DISCARDED and first.discarded_reason == "Duplicate of another session"
    assert not Delivery.objects.filter(note=first).exists()


def test_amending_a_signed_note_needs_a_reason_creates_a_version_and_signs_again(world, login_as):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    web = login_as(world.clinician)
    assert web.post(f"/notes/{note.pk}/amend/", {"reason": " "}).status_code == 400
    response = web.post(f"/notes/{note.pk}/amend/", {"reason": "Wrong homework recorded"})
    amendment = Note.objects.get(amends=note)
    assert response["Location"] == f"/notes/{amendment.pk}/review/"
    assert amendment.version == 2 and amendment.amendment_reason == "Wrong homework recorded"
    page = web.get(f"/notes/{amendment.pk}/review/").content.decode()
    assert "Amendment of version 1" in page
    web.post(f"/notes/{amendment.pk}/sections/plan/", {"text": "Homework: sleep diary."}, **JSON)
    response = web.post(f"/notes/{amendment.pk}/sign/", {"otp_token": _backup_code(world.clinician)}, **JSON)
    assert response.status_code == 200, response.content
    note.refresh_from_db()
    assert note.state == Note.State.AMENDED
    assert Delivery.objects.filter(note=amendment).count() == 1


def test_the_version_history_lists_versions_and_edits_with_their_diff(world, login_as):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    web = login_as(world.clinician)
    web.post(f"/notes/{note.pk}/amend/", {"reason": "Typo in plan"})
    amendment = Note.objects.get(amends=note)
    web.post(f"/notes/{amendment.pk}/sections/plan/", {"text": "Fixed plan."}, **JSON)
    response = web.get(f"/notes/{note.pk}/history/")
    assert response.status_code == 200
    html = response.content.decode()
    assert [v.version for v in response.context["versions"]] == [1, 2]
    assert "Typo in plan" in html and "note.edit" in html and "<ins>Fixed plan" in html
    assert login_as(world.colleague).get(f"/notes/{note.pk}/history/").status_code == 404


def test_a_wrong_step_up_code_on_the_queue_is_a_400_and_enables_nothing(world, login_as):
    web = login_as(world.clinician)
    response = web.post("/step-up/", {"otp_token": "123456", "next": "/queue/"})
    assert response.status_code == 400
    assert "That code is not valid." in response.content.decode()
    assert "step_up_at" not in web.session
    response = web.post("/step-up/", {"otp_token": ""}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and "otp_token" in response.json()["errors"]
