"""Issue 17, point 1: a suggested ICD-10-CM code works with one click. The
chips used to share a form with the required (empty) code box, so the browser
refused to submit them; the one-click browser check is in
tests/browser/test_review_layout.py."""

import re

from notes.models import Flag
from tests.factories import ai_output, note_factory


def _forms(html: str) -> list[str]:
    return re.findall(r"<form\b.*?</form>", html, flags=re.S)


def test_the_suggested_code_chips_sit_in_a_form_with_no_required_field(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(diagnosis_codes=["F41"]))
    flag = note.flags.get(kind=Flag.Kind.INVALID_CODE)
    assert flag.suggestions, "F41 is a category: its billable children are suggested"
    html = login_as(world.clinician).get(f"/notes/{note.pk}/review/").content.decode()

    chip_forms = [f for f in _forms(html) if 'class="chip"' in f and "fix-code" in f]
    assert len(chip_forms) == 1
    assert " required" not in chip_forms[0]
    assert f'value="{flag.suggestions[0]["code"]}"' in chip_forms[0]
    # The search box is still required, in a form of its own.
    search = [f for f in _forms(html) if 'class="icd-search"' in f]
    assert len(search) == 1 and "required" in search[0] and 'class="chip"' not in search[0]


def test_posting_a_chip_alone_sets_the_code_and_resolves_the_flag(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(diagnosis_codes=["F41"]))
    flag = note.flags.get(kind=Flag.Kind.INVALID_CODE)
    code = flag.suggestions[0]["code"]
    web = login_as(world.clinician)
    web.get(f"/notes/{note.pk}/review/")
    response = web.post(f"/notes/{note.pk}/flags/{flag.pk}/fix-code/", {"code": code})
    assert response.status_code == 302
    flag.refresh_from_db()
    assert flag.resolved_at is not None
    assert code in note.sections.get(key="diagnoses").codes


def test_the_f_shortcut_goes_to_the_flags_primary_action(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(diagnosis_codes=["F41"]))
    html = login_as(world.clinician).get(f"/notes/{note.pk}/review/").content.decode()
    flag_html = re.search(r'<li class="flag open".*?</li>', html, flags=re.S).group(0)
    # The first suggestion is the primary action; exactly one per flag.
    assert flag_html.count("data-flag-primary") == 1
    assert re.search(r'<button type="submit" name="code" value="[^"]+" class="chip" data-flag-primary>', flag_html)
