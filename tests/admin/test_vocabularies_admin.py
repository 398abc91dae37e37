"""Issue 14 §5: the practice's intervention terms and synonyms, editable
with history; a CSV import that changes all rows or none; a term in use is
retired, never deleted."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from notes.errors import DomainError
from notes.models import InterventionTerm
from notes.services import practice_vocabulary
from practice_admin.forms import CsvUploadForm
from practice_admin.services import vocabularies as vocab
from practice_admin.services.vocabularies import MAX_IMPORT_BYTES
from tests.factories import ai_output, note_factory

pytestmark = pytest.mark.django_db


def _term(world, name: str, practice=None) -> InterventionTerm:
    return InterventionTerm.objects.get(practice=practice or world.practice, term=name)


def test_an_admin_adds_a_term_that_later_drafts_code(world, login_as):
    response = login_as(world.admin).post(
        "/practice/vocabulary/", {"term": "Narrative therapy", "synonyms": "narrative, re-authoring"}
    )
    assert response.status_code == 302
    term = _term(world, "Narrative therapy")
    assert term.synonyms == ["narrative", "re-authoring"]
    assert practice_vocabulary(practice_id=world.practice.pk).resolve("Re-Authoring") == "Narrative therapy"
    assert AuditEvent.objects.get(action="vocabulary.term_add").actor_user == world.admin


def test_a_synonym_that_belongs_to_another_term_is_refused(world, login_as):
    response = login_as(world.admin).post("/practice/vocabulary/", {"term": "Talk therapy", "synonyms": "MI"})
    assert response.status_code == 400
    assert "“MI” is already a term." in response.content.decode()
    assert not InterventionTerm.objects.filter(term="Talk therapy").exists()


def test_editing_synonyms_keeps_history_with_who_changed_them(world, login_as):
    term = _term(world, "MI")
    admin = login_as(world.admin)
    response = admin.post(f"/practice/vocabulary/{term.pk}/", {"synonyms": "motivational interviewing, MINT"})
    assert response.status_code == 302
    term.refresh_from_db()
    assert term.synonyms == ["motivational interviewing", "MINT"]
    latest = term.history.order_by("-history_date").first()
    assert latest.history_user == world.admin and latest.synonyms == ["motivational interviewing", "MINT"]
    event = AuditEvent.objects.get(action="vocabulary.term_edit")
    assert event.before == {"synonyms": ["motivational interviewing"]}
    page = admin.get(f"/practice/vocabulary/{term.pk}/").content.decode()
    assert "motivational interviewing, MINT" in page and world.admin.get_full_name() in page


def test_a_term_in_use_cannot_be_deleted_only_retired(world, login_as):
    note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(interventions=["CBT"]))
    cbt = _term(world, "CBT")
    assert vocab.term_in_use(cbt)
    admin = login_as(world.admin)
    admin.post(f"/practice/vocabulary/{cbt.pk}/delete/")
    assert InterventionTerm.objects.filter(pk=cbt.pk).exists()
    with pytest.raises(DomainError, match="cannot be deleted; retire it instead"):
        vocab.term_delete(actor=world.admin, term=cbt)
    response = admin.post(f"/practice/vocabulary/{cbt.pk}/retire/")
    assert response.status_code == 302
    cbt.refresh_from_db()
    assert not cbt.is_active
    assert practice_vocabulary(practice_id=world.practice.pk).resolve("CBT") is None
    assert AuditEvent.objects.get(action="vocabulary.term_retire").actor_user == world.admin


def test_a_term_no_note_used_can_be_deleted(world, login_as):
    emdr = _term(world, "EMDR")
    response = login_as(world.admin).post(f"/practice/vocabulary/{emdr.pk}/delete/")
    assert response.status_code == 302
    assert not InterventionTerm.objects.filter(pk=emdr.pk).exists()
    event = AuditEvent.objects.get(action="vocabulary.term_delete")
    assert event.actor_user == world.admin and event.before["term"] == "EMDR"


def _upload(text: str):
    return SimpleUploadedFile("terms.csv", text.encode(), content_type="text/csv")


def test_the_csv_import_adds_and_updates_terms(world, login_as):
    response = login_as(world.admin).post(
        "/practice/vocabulary/import/",
        {
            "file": _upload(
                "term,synonyms\nNarrative therapy,narrative;re-authoring\ndbt,DBT skills;dialectical behavior therapy\n"
            )
        },
    )
    assert response.status_code == 302
    assert _term(world, "Narrative therapy").synonyms == ["narrative", "re-authoring"]
    assert _term(world, "DBT").synonyms == ["DBT skills", "dialectical behavior therapy"]
    event = AuditEvent.objects.get(action="vocabulary.import")
    assert event.actor_user == world.admin
    assert event.detail == {"added": ["Narrative therapy"], "updated": ["DBT"]}


def test_a_csv_just_over_the_limit_is_refused_on_the_file_field_before_it_is_read(world, login_as):
    text = "term,synonyms\nNarrative therapy,narrative\n"
    text += "x" * (MAX_IMPORT_BYTES + 1 - len(text))
    response = login_as(world.admin).post("/practice/vocabulary/import/", {"file": _upload(text)})
    assert response.status_code == 400
    assert response.context["import_form"].errors["file"] == ["The file is larger than 1 MB; split it."]
    assert not InterventionTerm.objects.filter(term="Narrative therapy").exists()

    class Unreadable(SimpleUploadedFile):
        def read(self, *args, **kwargs):
            raise AssertionError("the oversized upload was read")

    oversized = Unreadable("terms.csv", b"", content_type="text/csv")
    oversized.size = MAX_IMPORT_BYTES + 1
    form = CsvUploadForm(data={}, files={"file": oversized})
    assert not form.is_valid() and form.errors["file"] == ["The file is larger than 1 MB; split it."]


def test_one_bad_csv_line_rejects_the_file_with_each_lines_error(world, login_as):
    response = login_as(world.admin).post(
        "/practice/vocabulary/import/",
        {"file": _upload("term,synonyms\nNarrative therapy,narrative\n,orphan\nTalk,motivational interviewing\n")},
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "line 3: the term is empty." in page
    assert "line 4: “motivational interviewing” already belongs to “MI”." in page
    assert not InterventionTerm.objects.filter(term="Narrative therapy").exists()
    assert not AuditEvent.objects.filter(action="vocabulary.import").exists()


def test_csv_errors_name_the_files_line_after_a_blank_line(world, login_as):
    response = login_as(world.admin).post(
        "/practice/vocabulary/import/", {"file": _upload("term,synonyms\n\nNarrative therapy,narrative\n,orphan\n")}
    )
    assert response.status_code == 400
    assert "line 4: the term is empty." in response.content.decode()


def test_another_practices_term_is_unreachable(world, login_as):
    theirs = _term(world, "CBT", practice=world.other_practice)
    admin = login_as(world.admin)
    assert admin.get(f"/practice/vocabulary/{theirs.pk}/").status_code == 404
    assert admin.post(f"/practice/vocabulary/{theirs.pk}/delete/").status_code == 404
    assert InterventionTerm.objects.filter(pk=theirs.pk, is_active=True).exists()


def test_a_retired_term_can_be_made_active_again(world, login_as):
    dbt = _term(world, "DBT")
    vocab.term_active_set(actor=world.admin, term=dbt, active=False)
    response = login_as(world.admin).post(f"/practice/vocabulary/{dbt.pk}/reactivate/")
    assert response.status_code == 302
    dbt.refresh_from_db()
    assert dbt.is_active
    assert practice_vocabulary(practice_id=world.practice.pk).resolve("dialectical behavior therapy") == "DBT"
    assert AuditEvent.objects.get(action="vocabulary.term_reactivate").actor_user == world.admin
