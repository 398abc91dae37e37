"""Interventions and codes as the scribe wrote them: only true synonyms and
case/space variants resolve silently; anything else is a flag with the nearest
vocabulary terms as one-click choices; a normalised diagnosis code shows what
the scribe wrote beside it."""

from audit.models import AuditEvent
from notes.default_templates import DEFAULT_INTERVENTIONS
from notes.models import Flag
from notes.vocabulary import InterventionVocabulary
from tests.factories import ai_output, note_factory


def _interventions(note):
    return note.sections.get(key="interventions")


def test_punctuation_is_part_of_what_was_written(world):
    note = note_factory(
        practice=world.practice, clinician=world.clinician, payload=ai_output(interventions=["CBT++", "DBT-A"])
    )
    assert _interventions(note).codes == []
    flags = {f.value: f for f in note.flags.filter(kind=Flag.Kind.UNKNOWN_INTERVENTION)}
    assert set(flags) == {"CBT++", "DBT-A"}
    assert flags["CBT++"].suggestions[0] == "CBT"
    assert flags["DBT-A"].suggestions[0] == "DBT"


def test_case_spacing_hyphens_and_listed_synonyms_still_resolve(world):
    written = [" cbt ", "Behavioural   Activation", "trauma focused CBT", "Motivational Interviewing"]
    note = note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(interventions=written))
    assert _interventions(note).codes == ["CBT", "Behavioral activation", "Trauma-focused CBT", "MI"]
    assert not note.flags.filter(kind=Flag.Kind.UNKNOWN_INTERVENTION).exists()


def test_the_nearest_terms_are_offered_not_the_whole_vocabulary():
    vocabulary = InterventionVocabulary(DEFAULT_INTERVENTIONS)
    assert vocabulary.nearest("behavioural activaton") == ["Behavioral activation"]
    assert vocabulary.nearest("mindfullness") == ["Mindfulness"]
    assert vocabulary.nearest("EMDR therapy")[0] == "EMDR"
    assert len(vocabulary.nearest("EMDR therapy")) <= 5
    assert vocabulary.nearest("sand tray") == []  # nothing near: no noise to click by mistake


def test_one_click_on_a_nearest_term_sets_it_and_resolves_the_flag(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(interventions=["CBT++"]))
    flag = note.flags.get(kind=Flag.Kind.UNKNOWN_INTERVENTION)
    browser = login_as(world.clinician)
    page = browser.get(f"/notes/{note.pk}/review/").content.decode()
    assert f'action="/notes/{note.pk}/flags/{flag.pk}/choose-term/"' in page
    assert 'name="term" value="CBT"' in page

    response = browser.post(f"/notes/{note.pk}/flags/{flag.pk}/choose-term/", {"term": "CBT"})

    assert response.status_code == 302
    flag.refresh_from_db()
    assert flag.resolved_at is not None and flag.resolution == "Chose “CBT” for “CBT++”."
    section = _interventions(note)
    assert section.codes == ["CBT"] and section.text == "CBT"
    edit = AuditEvent.objects.filter(action="note.edit", note=note).latest("seq")
    assert edit.after["codes"] == ["CBT"] and edit.actor_user == world.clinician


def test_a_term_outside_the_vocabulary_is_refused_and_nothing_changes(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(interventions=["CBT++"]))
    flag = note.flags.get(kind=Flag.Kind.UNKNOWN_INTERVENTION)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/flags/{flag.pk}/choose-term/", {"term": "CBT++"})
    assert response.status_code == 400
    assert "“CBT++” is not in the practice&#x27;s intervention vocabulary." in response.content.decode()
    flag.refresh_from_db()
    assert flag.resolved_at is None and _interventions(note).codes == []


def test_a_normalised_code_shows_what_the_scribe_wrote(world, login_as):
    note = note_factory(
        practice=world.practice,
        clinician=world.clinician,
        payload=ai_output(diagnosis_codes=["f41.1", "F331", "F43.10"]),
    )
    diagnoses = note.sections.get(kind="diagnosis_codes")
    assert diagnoses.codes == ["F41.1", "F33.1", "F43.10"]
    page = login_as(world.clinician).get(f"/notes/{note.pk}/review/").content.decode()
    assert "scribe wrote “f41.1”" in page
    assert "scribe wrote “F331”" in page
    assert "scribe wrote “F43.10”" not in page  # written as stored: nothing to show
