"""A new clinical row and its simple-history "created" row are written in one
statement (audit.history_writes); the history row must be the one the library
itself would write."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.history import history_user
from audit.history_writes import create_with_history
from notes.models import Draft, NoteSection
from tests.factories import note_factory

pytestmark = pytest.mark.django_db

# What differs between two history rows of two rows written alike.
_PER_ROW = {"id", "history_id", "history_date", "note_id"}


def _tracked(history_row) -> dict:
    return {f.attname: getattr(history_row, f.attname) for f in type(history_row).tracked_fields}


def _sections(note, keys):
    return [
        NoteSection(
            note=note,
            key=k,
            label=k.title(),
            order=90 + i,
            kind="text",
            text=f"{k} “text”",
            ai_text="",
            codes=["F33.1"],
        )
        for i, k in enumerate(keys)
    ]


def test_rows_come_back_saved_and_each_has_one_created_history_row(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with transaction.atomic(), history_user(world.clinician):
        rows = create_with_history(NoteSection, _sections(note, ["extra_a", "extra_b", "extra_c"]))
    assert [r.key for r in rows] == ["extra_a", "extra_b", "extra_c"]
    for row in rows:
        stored = NoteSection.objects.get(pk=row.pk)
        assert (stored.key, stored.text, stored.codes) == (row.key, row.text, ["F33.1"])
        [created] = NoteSection.history.filter(id=row.pk)
        assert created.history_type == "+" and created.history_user == world.clinician
        assert _tracked(created) == {f.attname: getattr(stored, f.attname) for f in type(created).tracked_fields}


def test_the_history_row_matches_what_the_library_writes_itself(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    with history_user(world.clinician):
        by_library = NoteSection.objects.create(
            note=note, key="same", label="Same", order=98, kind="text", text="t", codes=["F33.1"]
        )
        with transaction.atomic():
            [ours] = create_with_history(
                NoteSection,
                [NoteSection(note=note, key="same2", label="Same", order=99, kind="text", text="t", codes=["F33.1"])],
            )
    theirs_row = NoteSection.history.get(id=by_library.pk)
    ours_row = NoteSection.history.get(id=ours.pk)
    differs = {"key", "order"} | _PER_ROW
    assert {k: v for k, v in _tracked(ours_row).items() if k not in differs} == {
        k: v for k, v in _tracked(theirs_row).items() if k not in differs
    }
    for name in ("history_type", "history_user_id", "history_change_reason"):
        assert getattr(ours_row, name) == getattr(theirs_row, name), name
    assert abs(ours_row.history_date - timezone.now()).total_seconds() < 60


def test_a_refused_insert_leaves_neither_rows_nor_history(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    draft = note.draft
    Draft.objects.filter(pk=draft.pk).update(idempotency_key="used-once")
    before = (Draft.objects.count(), Draft.history.count())
    duplicate = Draft(
        practice=draft.practice,
        ai_source=draft.ai_source,
        client=draft.client,
        clinician=draft.clinician,
        payload={"x": 1},
        model_name="m",
        session_start=draft.session_start,
        session_duration_minutes=50,
        idempotency_key="used-once",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        create_with_history(Draft, [duplicate])
    assert (Draft.objects.count(), Draft.history.count()) == before
    assert duplicate.pk is None


def test_a_drafts_history_row_does_not_repeat_its_payload(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    [created] = Draft.history.filter(id=note.draft_id)
    assert created.history_type == "+"
    assert "payload" not in {f.name for f in type(created)._meta.fields}
    assert Draft.objects.get(pk=note.draft_id).payload  # kept once, on the draft


def test_many_rows_go_as_one_array_per_column_and_match_the_few_rows_path(world):
    from audit.history_writes import COLUMN_ARRAYS_FROM
    from notes.models import Flag

    note = note_factory(practice=world.practice, clinician=world.clinician)
    many = COLUMN_ARRAYS_FROM + 5

    def flags(prefix, n):
        return [
            Flag(
                note=note,
                kind="unplaced_content",
                field=f"{prefix}_{i}",
                value={"text": f"“{prefix}” {i}", "n": i, "none": None} if i % 2 else [f"{prefix}", i],
                message=f"{prefix} {i}",
                suggestions=[] if i % 3 else [{"code": "F33.1"}],
            )
            for i in range(n)
        ]

    with transaction.atomic(), history_user(world.clinician):
        few = create_with_history(Flag, flags("few", 3))
        lots = create_with_history(Flag, flags("lots", many))
    assert len(lots) == many and all(f.pk for f in lots)
    assert [f.pk for f in lots] == sorted(f.pk for f in lots)  # returned in insert order
    for row in few + lots:
        stored = Flag.objects.get(pk=row.pk)
        assert (stored.field, stored.value, stored.suggestions) == (row.field, row.value, row.suggestions)
        [created] = Flag.history.filter(id=row.pk)
        assert created.history_type == "+" and created.history_user == world.clinician
        assert _tracked(created) == {f.attname: getattr(stored, f.attname) for f in type(created).tracked_fields}
