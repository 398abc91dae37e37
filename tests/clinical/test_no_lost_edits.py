"""Issue 12 §5: two tabs (or devices) editing one draft lose nothing. Each
section has a version raised by every save; a save against a stale version
is refused with 409 carrying the text saved meanwhile, nothing is written,
and saving again against the new version keeps the clinician's text."""

import pytest

from audit.models import AuditEvent
from notes import services
from notes.errors import SectionConflict
from tests.factories import note_factory

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


def _url(note) -> str:
    return f"/notes/{note.pk}/sections/plan/"


def test_every_save_raises_the_section_version_and_the_answer_carries_it(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    assert note.sections.get(key="plan").version == 1
    web = login_as(world.clinician)
    first = web.post(_url(note), {"text": "First.", "version": 1}, **JSON)
    assert first.status_code == 200 and first.json()["version"] == 2
    second = web.post(_url(note), {"text": "Second.", "version": 2}, **JSON)
    assert second.status_code == 200 and second.json()["version"] == 3
    assert note.sections.get(key="plan").version == 3


def test_the_later_save_from_a_stale_tab_is_refused_with_both_texts_and_writes_nothing(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    tab_a = tab_b = login_as(world.clinician)  # two tabs of one session: only the version tells them apart
    assert tab_a.post(_url(note), {"text": "Written in tab A.", "version": 1}, **JSON).status_code == 200

    response = tab_b.post(_url(note), {"text": "Written in tab B.", "version": 1}, **JSON)

    assert response.status_code == 409
    data = response.json()
    assert "saved elsewhere" in data["detail"]
    assert data["conflict"]["text"] == "Written in tab A."
    assert data["conflict"]["yours"] == "Written in tab B."
    assert data["conflict"]["version"] == 2
    assert "<ins>Written in tab A</ins>" in data["conflict"]["diff_html"]
    section = note.sections.get(key="plan")
    assert (section.text, section.version) == ("Written in tab A.", 2)
    assert AuditEvent.objects.filter(note=note, action="note.edit").count() == 1


def test_keeping_mine_saves_against_the_new_version_and_both_edits_are_in_the_record(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    tab_a = tab_b = login_as(world.clinician)
    tab_a.post(_url(note), {"text": "Written in tab A.", "version": 1}, **JSON)
    conflict = tab_b.post(_url(note), {"text": "Written in tab B.", "version": 1}, **JSON).json()["conflict"]

    kept = tab_b.post(_url(note), {"text": "Written in tab B.", "version": conflict["version"]}, **JSON)

    assert kept.status_code == 200 and kept.json()["version"] == 3
    assert note.sections.get(key="plan").text == "Written in tab B."
    edits = AuditEvent.objects.filter(note=note, action="note.edit").order_by("seq")
    assert [e.after["text"] for e in edits] == ["Written in tab A.", "Written in tab B."]
    assert edits[1].before["text"] == "Written in tab A."  # the overwrite is a recorded, chosen edit


def test_a_stale_save_of_the_text_already_saved_is_no_conflict(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    tab_a = tab_b = login_as(world.clinician)
    tab_a.post(_url(note), {"text": "Same words.", "version": 1}, **JSON)
    response = tab_b.post(_url(note), {"text": "Same words.", "version": 1}, **JSON)
    assert response.status_code == 200
    assert response.json()["changed"] is False and response.json()["version"] == 2


def test_the_service_refuses_a_stale_version_with_a_domain_error_carrying_the_stored_section(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_edit_section(note=note, section_key="plan", text="One.", expected_version=1, actor=world.clinician)
    with pytest.raises(SectionConflict) as caught:
        services.note_edit_section(
            note=note, section_key="plan", text="Two.", expected_version=1, actor=world.clinician
        )
    assert caught.value.status_code == 409
    assert (caught.value.section.text, caught.value.section.version) == ("One.", 2)


def test_a_no_script_save_that_conflicts_shows_both_texts_and_keeps_mine_in_the_box(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    tab_a = tab_b = login_as(world.clinician)
    tab_a.post(_url(note), {"text": "Written in tab A.", "version": 1})
    response = tab_b.post(_url(note), {"text": "Written <in> tab B.", "version": 1})
    assert response.status_code == 409
    html = response.content.decode()
    assert '<div class="conflict" id="conflict-plan" data-testid="conflict">' in html  # not hidden
    assert '<pre class="conflict-text" id="conflict-theirs-plan">Written in tab A.</pre>' in html
    assert '<pre class="conflict-text" id="conflict-mine-plan">Written &lt;in&gt; tab B.</pre>' in html
    assert '<input type="hidden" name="version" value="2">' in html  # saving again keeps mine
    assert 'spellcheck="true">Written &lt;in&gt; tab B.</textarea>' in html
