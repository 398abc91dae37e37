from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from integrations.models import Delivery
from notes import services
from notes.errors import IllegalTransition, NotPermitted, SignBlocked, StepUpRequired
from notes.models import Flag, Note, NoteSection
from tests.factories import note_factory, note_resolve_all_flags, note_sign_now

pytestmark = pytest.mark.django_db


def _fresh():
    return timezone.now() - timedelta(seconds=5)


def test_opening_a_draft_puts_it_in_review_and_audits_it(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_open(note=note, actor=world.clinician)
    note.refresh_from_db()
    assert note.state == Note.State.IN_REVIEW
    event = AuditEvent.objects.filter(note=note, action="note.open").get()
    assert event.actor_user == world.clinician
    assert event.before == {"state": "draft"} and event.after == {"state": "in_review"}


def test_editing_records_before_and_after(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    old = note.sections.get(key="plan").text
    services.note_edit_section(
        note=note, section_key="plan", text="Weekly CBT; safety plan reviewed.", actor=world.clinician
    )
    event = AuditEvent.objects.get(note=note, action="note.edit")
    assert event.before["text"] == old
    assert event.after["text"] == "Weekly CBT; safety plan reviewed."
    section = note.sections.get(key="plan")
    assert section.ai_text == old and section.origin == "clinician"


def test_signing_writes_signature_hash_and_delivery_in_one_transaction(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    signed = note_sign_now(note, world.clinician)
    assert signed.state == Note.State.SIGNED
    assert signed.signed_by == world.clinician and signed.signed_at is not None
    assert len(signed.content_hash) == 64 and signed.content_hash == services.note_content_hash(signed)
    delivery = Delivery.objects.get(note=signed)
    assert delivery.state == Delivery.State.PENDING
    assert delivery.idempotency_key == f"{signed.lineage}:1"


def test_signing_from_draft_without_opening_is_refused(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with pytest.raises(IllegalTransition):
        services.note_sign(note=note, actor=world.clinician, step_up_at=_fresh())


def test_signing_twice_is_refused(world):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    with pytest.raises(IllegalTransition):
        services.note_sign(note=note, actor=world.clinician, step_up_at=_fresh())
    assert Delivery.objects.filter(note=note).count() == 1


def test_a_signed_note_cannot_be_edited_or_discarded(world):
    note = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    with pytest.raises(IllegalTransition, match="only by amendment"):
        services.note_edit_section(note=note, section_key="plan", text="changed", actor=world.clinician)
    with pytest.raises(IllegalTransition):
        services.note_discard(note=note, reason="oops", actor=world.clinician)
    assert note.sections.get(key="plan").text != "changed"


def test_open_flags_block_signing(world):
    note = note_factory(
        practice=world.practice, clinician=world.clinician, payload={"client_reported_symptoms": "x", "mood_rating": 4}
    )
    services.note_open(note=note, actor=world.clinician)
    assert note.flags.filter(resolved_at__isnull=True).exists()
    with pytest.raises(SignBlocked, match="open flag"):
        services.note_sign(note=note, actor=world.clinician, step_up_at=_fresh())
    note_resolve_all_flags(note, world.clinician)
    assert services.note_sign(note=note, actor=world.clinician, step_up_at=_fresh()).state == Note.State.SIGNED


def test_signing_needs_a_recent_step_up(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_open(note=note, actor=world.clinician)
    note_resolve_all_flags(note, world.clinician)
    with pytest.raises(StepUpRequired):
        services.note_sign(note=note, actor=world.clinician, step_up_at=None)
    with pytest.raises(StepUpRequired):
        services.note_sign(note=note, actor=world.clinician, step_up_at=timezone.now() - timedelta(minutes=16))


def test_a_note_without_consent_cannot_be_signed(world):
    from tests.factories import client_factory

    client = client_factory(world.practice, world.clinician, consent=False)
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    assert note.blocked_reason
    services.note_open(note=note, actor=world.clinician)
    note_resolve_all_flags(note, world.clinician)
    with pytest.raises(SignBlocked, match="consent"):
        services.note_sign(note=note, actor=world.clinician, step_up_at=_fresh())


def test_only_the_sessions_clinician_may_sign(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_open(note=note, actor=world.clinician)
    note_resolve_all_flags(note, world.clinician)
    for other in (world.colleague, world.admin, world.qa, world.outsider):
        with pytest.raises(NotPermitted):
            services.note_sign(note=note, actor=other, step_up_at=_fresh())
    note.refresh_from_db()
    assert note.state == Note.State.IN_REVIEW


def test_discarding_needs_a_reason_and_never_delivers(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with pytest.raises(Exception, match="reason"):
        services.note_discard(note=note, reason="  ", actor=world.clinician)
    services.note_discard(note=note, reason="Wrong client recorded by scribe", actor=world.clinician)
    note.refresh_from_db()
    assert note.state == Note.State.DISCARDED
    assert not Delivery.objects.filter(note=note).exists()
    with pytest.raises(IllegalTransition):
        services.note_open(note=note, actor=world.clinician)


def test_amendment_is_a_new_version_that_supersedes_on_signing(world):
    original = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    with pytest.raises(Exception, match="reason"):
        services.note_amend(note=original, reason="", actor=world.clinician)
    amendment = services.note_amend(note=original, reason="Corrected medication name", actor=world.clinician)
    assert (amendment.lineage, amendment.version, amendment.state) == (original.lineage, 2, Note.State.IN_REVIEW)
    services.note_edit_section(note=amendment, section_key="plan", text="Corrected plan", actor=world.clinician)
    original.refresh_from_db()
    assert original.state == Note.State.SIGNED  # still the note of record until the amendment is signed
    services.note_sign(note=amendment, actor=world.clinician, step_up_at=_fresh())
    original.refresh_from_db()
    assert original.state == Note.State.AMENDED
    assert original.sections.get(key="plan").text != "Corrected plan"
    assert Delivery.objects.filter(note__lineage=original.lineage).count() == 2


def test_psychotherapy_notes_are_signed_but_never_get_a_delivery(world):
    from notes.models import NoteTemplate

    NoteTemplate.objects.filter(practice=world.practice, key="dap").update(is_psychotherapy_notes=True)
    note = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, template_key="dap"), world.clinician
    )
    assert note.state == Note.State.SIGNED
    assert not Delivery.objects.filter(note=note).exists()


def test_the_database_refuses_a_signed_note_without_signature(world):
    from django.db import IntegrityError, transaction

    note = note_factory(practice=world.practice, clinician=world.clinician)
    with pytest.raises(IntegrityError), transaction.atomic():
        Note.objects.filter(pk=note.pk).update(state=Note.State.SIGNED)


def test_every_clinical_row_of_a_new_note_has_its_history(world):
    note = note_factory(
        practice=world.practice, clinician=world.clinician, payload={"client_reported_symptoms": "x", "mood_rating": 4}
    )
    assert note.draft.history.count() == 1
    assert note.history.count() == 1
    assert {h.key for h in NoteSection.history.filter(note_id=note.pk)} == set(
        note.sections.values_list("key", flat=True)
    )
    assert Flag.history.filter(note_id=note.pk).count() == note.flags.count() > 0


def test_an_amendments_sections_are_attributed_to_the_amending_clinician_in_history(world):
    original = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    amendment = services.note_amend(note=original, reason="Typo", actor=world.clinician)
    users = {h.history_user for h in NoteSection.history.filter(note_id=amendment.pk)}
    assert users == {world.clinician}
