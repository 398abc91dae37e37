"""Issue 17, point 3: signing by keyboard needs a modifier (Ctrl/Cmd+Enter),
shown in the button; a person turns single-key shortcuts off for their account
(every device). The key presses themselves are checked in a real browser in
tests/browser/test_review_layout.py."""

from notes.models import Membership
from tests.factories import note_factory


def test_the_sign_button_shows_ctrl_enter_and_no_single_key(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    html = login_as(world.clinician).get(f"/notes/{note.pk}/review/").content.decode()
    assert 'aria-keyshortcuts="Control+Enter Meta+Enter">Sign and next <kbd class="sign-key">Ctrl+Enter</kbd>' in html
    assert "<kbd>s</kbd>" not in html


def test_turning_single_key_shortcuts_off_is_kept_on_the_account(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    web = login_as(world.clinician)
    assert 'data-single-keys="1"' in web.get(f"/notes/{note.pk}/review/").content.decode()

    response = web.post("/preferences/shortcuts/", {"next": f"/notes/{note.pk}/review/"})
    assert response.status_code == 302 and response["Location"] == f"/notes/{note.pk}/review/"
    assert Membership.objects.get(user=world.clinician).single_key_shortcuts is False
    html = web.get(f"/notes/{note.pk}/review/").content.decode()
    assert 'data-single-keys="0"' in html and "Next <kbd>j</kbd>" not in html
    assert 'data-single-keys="0"' in web.get("/queue/").content.decode()

    web.post("/preferences/shortcuts/", {"single_key_shortcuts": "on"})
    assert Membership.objects.get(user=world.clinician).single_key_shortcuts is True
    # Another person's choice is their own.
    assert Membership.objects.get(user=world.colleague).single_key_shortcuts is True


def test_the_preference_redirects_only_inside_the_site(world, login_as):
    response = login_as(world.clinician).post("/preferences/shortcuts/", {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/queue/"
