"""Issue 17, point 4, the markup the layout rests on (the sizes themselves are
measured in a real browser in tests/browser/test_review_layout.py): a skip
link to the sign bar first on the page, the client and session header and the
sign bar as sticky blocks, unchanged sections marked so they can collapse,
and queue cells labelled for the card layout."""

import re

from tests.factories import note_factory


def test_the_review_page_starts_with_a_skip_link_to_the_sign_bar(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    html = login_as(world.clinician).get(f"/notes/{note.pk}/review/").content.decode()
    body = html.split("<body>", 1)[1]
    first_link = re.search(r"<a\b[^>]*>", body).group(0)
    assert first_link == '<a class="skip-link" href="#sign">'
    assert '<section class="sign-bar" id="sign" aria-labelledby="sign-h" tabindex="-1">' in html
    assert '<div class="review-sticky" id="review-head">' in html


def test_unchanged_sections_are_marked_and_a_collapse_control_is_offered(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    from notes import services

    plan = note.sections.get(key="plan")
    services.note_edit_section(note=note, section_key="plan", text=plan.text + " More.", actor=world.clinician)
    html = login_as(world.clinician).get(f"/notes/{note.pk}/review/").content.decode()
    assert 'class="note-section" id="section-plan"' in html
    assert 'class="note-section is-unchanged" id="section-subjective"' in html
    assert 'id="collapse-unchanged" aria-pressed="false"' in html


def test_queue_cells_carry_their_labels_for_the_card_layout(world, login_as):
    note_factory(practice=world.practice, clinician=world.clinician)
    html = login_as(world.clinician).get("/queue/").content.decode()
    for label in ("Session", "Client", "Template", "Flags", "State"):
        assert f'data-label="{label}"' in html
