"""The delivery worker's hot reads are compiled once per connection and
prepared on PostgreSQL, and give exactly what their querysets give."""

import pytest
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext

from notes.models import Note, NoteSection
from psyfi_review.compiled_reads import CompiledRead
from tests.factories import note_factory, world_factory

pytestmark = pytest.mark.django_db

NOTE_READ = CompiledRead(
    lambda pk: (
        Note.objects.select_related("client", "draft__ai_source", "signed_by__membership", "template_version__template")
        .defer("draft__payload")
        .filter(pk=pk)
    )
)
SECTIONS_READ = CompiledRead(lambda note_id: NoteSection.objects.filter(note_id=note_id).order_by("-order"))


@pytest.fixture
def note():
    world = world_factory()
    return note_factory(practice=world.practice, clinician=world.clinician)


def _fields(obj) -> dict:
    return {
        f.attname: getattr(obj, f.attname)
        for f in obj._meta.concrete_fields
        if f.attname not in obj.get_deferred_fields()
    }


def test_a_compiled_read_builds_the_instances_its_queryset_builds(note):
    expected = (
        Note.objects.select_related("client", "draft__ai_source", "signed_by__membership", "template_version__template")
        .defer("draft__payload")
        .get(pk=note.pk)
    )
    got = NOTE_READ.get(note.pk)
    assert _fields(got) == _fields(expected)
    # The related rows come with it, with no query of their own.
    with CaptureQueriesContext(connection) as queries:
        related = [got.client, got.draft, got.draft.ai_source, got.template_version, got.template_version.template]
    assert queries.captured_queries == []
    assert [_fields(r) for r in related] == [
        _fields(r)
        for r in (
            expected.client,
            expected.draft,
            expected.draft.ai_source,
            expected.template_version,
            expected.template_version.template,
        )
    ]
    assert got.draft.get_deferred_fields() == {"payload"}
    assert got.draft.payload == note.draft.payload  # a deferred field still loads when asked for


def test_all_gives_the_rows_in_the_querysets_order(note):
    expected = list(NoteSection.objects.filter(note_id=note.pk).order_by("-order"))
    assert len(expected) > 1
    assert [s.pk for s in SECTIONS_READ.all(note.pk)] == [s.pk for s in expected]
    assert SECTIONS_READ.all(note.pk + 10_000) == []


def test_a_missing_row_raises_the_models_does_not_exist(note):
    with pytest.raises(Note.DoesNotExist):
        NOTE_READ.get(note.pk + 10_000)


def test_a_read_is_compiled_once_per_connection(note, monkeypatch):
    NOTE_READ.get(note.pk)
    compiles = []
    original = SQLCompiler.as_sql
    monkeypatch.setattr(SQLCompiler, "as_sql", lambda self, *a, **k: compiles.append(1) or original(self, *a, **k))
    other = note_factory(practice=note.practice, clinician=note.clinician)
    compiles.clear()
    assert NOTE_READ.get(other.pk).pk == other.pk
    assert compiles == []


def test_on_postgresql_the_read_is_a_prepared_statement(note):
    NOTE_READ.get(note.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    assert any(s.startswith('SELECT "notes_note"."id"') and "$1" in s for s in statements)


@pytest.mark.django_db(transaction=True)
def test_a_new_connection_reads_and_prepares_again(note):
    NOTE_READ.get(note.pk)
    connection.close()
    assert NOTE_READ.get(note.pk).pk == note.pk


def test_the_logged_query_shows_its_values(note):
    with CaptureQueriesContext(connection) as queries:
        NOTE_READ.get(note.pk)
    assert len(queries.captured_queries) == 1
    assert f'"notes_note"."id" = {note.pk}' in queries.captured_queries[0]["sql"]


def test_an_argument_must_be_one_parameter_of_its_own(note):
    twice = CompiledRead(lambda pk: Note.objects.filter(pk=pk) | Note.objects.filter(amends_id=pk))
    with pytest.raises(ValueError, match="exactly once"):
        twice.get(note.pk)
