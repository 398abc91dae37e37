"""Issue #12, point 2: every piece of AI text is scanned at intake (placed,
fallback, awaiting placement), and a section is rescanned whenever a
clinician edits it or places content into it."""

import pytest

from audit.models import AuditEvent
from notes import review_services, services
from notes.models import Flag
from tests.factories import ai_output, note_factory

pytestmark = pytest.mark.django_db


def _note(world, **overrides):
    return note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(**overrides))


def test_a_crisis_statement_in_a_field_awaiting_placement_is_flagged_at_intake(world):
    note = _note(world, parent_comment="Mother says he wants to die and has been giving away his things.")
    assert note.flags.filter(kind=Flag.Kind.UNPLACED_CONTENT, field="parent_comment").exists()
    [risk] = note.flags.filter(kind=Flag.Kind.RISK)
    assert risk.field == "parent_comment" and "wants to die" in risk.value["statements"]
    assert note.high_risk is True


def test_another_group_members_name_in_a_field_awaiting_placement_is_flagged(world):
    note = note_factory(
        practice=world.practice,
        clinician=world.clinician,
        payload=ai_output(group_dynamics="Quinn interrupted twice."),
        other_participant_names=["Quinn"],
    )
    assert note.flags.filter(kind=Flag.Kind.OTHER_PARTICIPANT, value="Quinn").exists()


def test_an_edit_that_adds_a_plan_to_overdose_raises_a_risk_flag_before_signing(world):
    note = _note(world)
    assert note.high_risk is False and not note.flags.filter(kind=Flag.Kind.RISK).exists()
    section = note.sections.get(key="subjective")
    services.note_edit_section(
        note=note,
        section_key="subjective",
        text=section.text + " She plans to overdose this weekend.",
        actor=world.clinician,
    )
    [flag] = note.flags.filter(kind=Flag.Kind.RISK)
    assert flag.is_open and flag.section_key == "subjective" and "plans to overdose" in flag.value["statements"]
    note.refresh_from_db()
    assert note.high_risk is True
    event = AuditEvent.objects.get(note=note, action="flag.raise")
    assert event.after["statements"] == flag.value["statements"]


def test_autosaves_of_the_same_statement_do_not_repeat_the_flag(world):
    note = _note(world)
    text = note.sections.get(key="subjective").text + " Reports NSSI twice this week."
    for extra in ("", " Tearful.", " Tearful, guarded."):
        services.note_edit_section(note=note, section_key="subjective", text=text + extra, actor=world.clinician)
    assert note.flags.filter(kind=Flag.Kind.RISK).count() == 1
    services.note_edit_section(
        note=note, section_key="subjective", text=text + " Also has stockpiled pills.", actor=world.clinician
    )
    assert note.flags.filter(kind=Flag.Kind.RISK).count() == 2


def test_an_edit_that_adds_only_a_denial_raises_nothing(world):
    note = _note(world)
    section = note.sections.get(key="subjective")
    services.note_edit_section(
        note=note,
        section_key="subjective",
        text=section.text + " Denies SI, HI, plan or intent.",
        actor=world.clinician,
    )
    assert not note.flags.filter(kind=Flag.Kind.RISK).exists()
    note.refresh_from_db()
    assert note.high_risk is False


def test_placing_crisis_content_keeps_it_flagged_once(world):
    note = _note(world, parent_comment="She says she wants to die.")
    unplaced = note.flags.get(kind=Flag.Kind.UNPLACED_CONTENT)
    review_services.flag_place_content(flag=unplaced, section_key="subjective", actor=world.clinician)
    [risk] = note.flags.filter(kind=Flag.Kind.RISK)
    assert risk.is_open and "wants to die" in risk.value["statements"]
