"""Issue 6 §5: a note's timeline shows everything that happened to it (all
versions), in order, with the diffs; only those who may see the note's
history get it, everyone else a 404."""

import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from notes import services
from tests.factories import note_factory, note_sign_now

pytestmark = pytest.mark.django_db


def _url(note):
    return reverse("audit_note_timeline", args=[note.pk])


@pytest.fixture
def amended(world):
    """A note edited, signed, amended (edited again) and re-signed."""
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_edit_section(
        note=note, section_key="plan", text="Weekly CBT; <script>alert(1)</script> safety plan.", actor=world.clinician
    )
    signed = note_sign_now(note, world.clinician)
    amendment = services.note_amend(note=signed, reason="Add homework", actor=world.clinician)
    services.note_edit_section(
        note=amendment,
        section_key="plan",
        text="Weekly CBT; <script>alert(1)</script> safety plan. Homework: sleep diary.",
        actor=world.clinician,
    )
    return signed, note_sign_now(amendment, world.clinician)


def test_the_timeline_lists_every_event_of_every_version_in_order(world, login_as, amended):
    first, second = amended
    auditor = login_as(world.auditor)
    events = list(AuditEvent.objects.filter(note__in=[first, second]).order_by("seq"))
    page = auditor.get(_url(second)).content.decode()
    positions = [page.index(f'id="event-{e.seq}"') for e in events]
    assert positions == sorted(positions)
    for action in (
        "note.draft",
        "note.edit",
        "note.sign",
        "note.amend",
        "note.supersede",
        "delivery.create",
    ):
        assert action in page
    assert "Version 1 · Amended" in page and "Version 2 · Signed" in page
    assert "amendment: Add homework" in page


def test_edits_are_shown_as_an_escaped_inline_diff(world, login_as, amended):
    first, second = amended
    page = login_as(world.clinician).get(_url(first)).content.decode()
    assert '<ins class="diff-ins">' in page and '<del class="diff-del">' in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    diffs = re.findall(r'<div class="diff" aria-label="Change">(.*?)</div>', page, re.S)
    assert len(diffs) == 2
    assert '<ins class="diff-ins"> Homework: sleep diary.</ins>' in diffs[1]


def test_the_timeline_view_is_itself_logged_as_phi_access(world, login_as, amended):
    _, second = amended
    login_as(world.qa).get(_url(second))
    assert AuditEvent.objects.filter(note=second, action="phi.view", actor_user=world.qa).exists()


def test_auditors_see_request_id_and_address_of_people_and_others_do_not(world, login_as, amended):
    _, second = amended
    login_as(world.clinician).get(reverse("note_detail", args=[second.pk]), HTTP_X_REQUEST_ID="req-seen")
    assert "req-seen" in login_as(world.auditor).get(_url(second)).content.decode()
    assert "req-seen" not in login_as(world.qa).get(_url(second)).content.decode()


@pytest.mark.parametrize(
    ("persona", "signed", "status"),
    [
        ("clinician", False, 200),
        ("clinician", True, 200),
        ("auditor", False, 200),
        ("auditor", True, 200),
        ("qa", True, 200),
        ("qa", False, 404),  # QA reviews signed notes only
        ("colleague", True, 404),  # another clinician's note
        ("admin", True, 403),  # practice admins read no note content
        ("outsider", True, 404),  # another practice
    ],
)
def test_who_may_see_a_timeline(world, login_as, persona, signed, status):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    if signed:
        note = note_sign_now(note, world.clinician)
    response = login_as(getattr(world, persona)).get(_url(note))
    assert response.status_code == status


def test_an_unknown_note_is_a_404(world, login_as):
    assert login_as(world.auditor).get(reverse("audit_note_timeline", args=[999999])).status_code == 404
