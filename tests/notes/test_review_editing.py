import re

import pytest

from audit.models import AuditEvent
from notes.models import Note
from notes.review_diff import text_diff
from tests.factories import note_factory, note_sign_now

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}


def test_opening_the_review_page_puts_the_draft_in_review_and_shows_who_it_is_for(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    response = login_as(world.clinician).get(f"/notes/{note.pk}/review/")
    assert response.status_code == 200
    html = response.content.decode()
    assert note.client.full_name in html and note.client.ehr_patient_id in html
    assert "1990-04-12" in html and "synthetic" in html
    assert "Demo Scribe" in html and "scribe-llm 2.3" in html
    note.refresh_from_db()
    assert note.state == Note.State.IN_REVIEW


def test_another_clinicians_note_is_not_found(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.colleague)
    web = login_as(world.clinician)
    assert web.get(f"/notes/{note.pk}/review/").status_code == 404
    assert web.post(f"/notes/{note.pk}/sections/plan/", {"text": "x"}, **JSON).status_code == 404
    assert login_as(world.outsider).get(f"/notes/{note.pk}/review/").status_code == 404


def test_autosave_records_before_and_after_and_returns_the_diff(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    old = note.sections.get(key="plan").text
    web = login_as(world.clinician)
    response = web.post(f"/notes/{note.pk}/sections/plan/", {"text": old + " Add <b>sleep</b> diary."}, **JSON)
    assert response.status_code == 200
    data = response.json()
    assert data["saved"] and data["changed"] and data["edited"]
    assert "<ins>" in data["diff_html"] and "&lt;b&gt;sleep&lt;/b&gt;" in data["diff_html"]
    event = AuditEvent.objects.get(note=note, action="note.edit")
    assert event.before["text"] == old and event.after["text"].endswith("diary.")
    assert event.actor_user == world.clinician


def test_autosaving_unchanged_text_records_nothing(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    text = note.sections.get(key="plan").text
    response = login_as(world.clinician).post(f"/notes/{note.pk}/sections/plan/", {"text": text}, **JSON)
    assert response.status_code == 200 and response.json()["changed"] is False
    assert not AuditEvent.objects.filter(note=note, action="note.edit").exists()


def test_autosave_of_an_unknown_section_or_oversized_text_is_a_400_with_field_errors(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    web = login_as(world.clinician)
    response = web.post(f"/notes/{note.pk}/sections/nope/", {"text": "x"}, **JSON)
    assert response.status_code == 400 and "section" in response.json()["errors"]
    response = web.post(f"/notes/{note.pk}/sections/plan/", {"text": "x" * 100_001}, **JSON)
    assert response.status_code == 400 and "text" in response.json()["errors"]
    assert not AuditEvent.objects.filter(note=note, action="note.edit").exists()


def test_a_signed_note_refuses_edits_with_409_and_shows_read_only_with_its_diff(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    from notes import services

    services.note_edit_section(note=note, section_key="plan", text="Completely new plan.", actor=world.clinician)
    note_sign_now(note, world.clinician)
    web = login_as(world.clinician)
    response = web.post(f"/notes/{note.pk}/sections/plan/", {"text": "changed after signing"}, **JSON)
    assert response.status_code == 409
    assert "only by amendment" in response.json()["detail"]
    page = web.get(f"/notes/{note.pk}/review/").content.decode()
    assert '<textarea id="text-plan"' not in page
    assert "<ins>" in page and "<del>" in page and "Reason for the amendment" in page
    assert note.sections.get(key="plan").text == "Completely new plan."


def test_the_no_script_save_button_redirects_back_to_the_section(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    response = login_as(world.clinician).post(f"/notes/{note.pk}/sections/plan/", {"text": "Plain form save."})
    assert response.status_code == 302 and response["Location"].endswith("#section-plan")
    assert note.sections.get(key="plan").text == "Plain form save."


def test_every_form_control_on_the_review_page_has_a_label(world, login_as):
    note = note_factory(
        practice=world.practice,
        clinician=world.clinician,
        payload={
            **{"client_reported_symptoms": "ok", "mood_rating": 4, "diagnosis_codes": ["F33"]},
            "risk_assessment": {"level": "moderate", "text": "passive SI"},
        },
    )
    html = login_as(world.clinician).get(f"/notes/{note.pk}/review/").content.decode()
    controls = re.findall(r"<(input|textarea|select)\b([^>]*)>", html)
    labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', html))
    checked = 0
    for tag, attrs in controls:
        if 'type="hidden"' in attrs:
            continue
        control_id = re.search(r'id="([^"]+)"', attrs)
        assert control_id and control_id.group(1) in labelled, f"unlabelled <{tag}{attrs}>"
        checked += 1
    assert checked >= 8


def test_the_diff_marks_word_insertions_and_deletions_and_escapes_html():
    diff = text_diff("Client is anxious today.", "Client is calm <today>.")
    assert diff.changed and diff.inserted_words == 2 and diff.deleted_words == 2
    assert str(diff.html) == "Client is <del>anxious today</del><ins>calm &lt;today&gt;</ins>."
    same = text_diff("a <b>", "a <b>")
    assert not same.changed and str(same.html) == "a &lt;b&gt;"


def _side(html: str, keep: str, drop: str) -> str:
    import html as htmllib

    html = re.sub(rf"<{drop}>.*?</{drop}>", "", html, flags=re.S)
    return htmllib.unescape(html.replace(f"<{keep}>", "").replace(f"</{keep}>", ""))


def test_the_diff_always_rebuilds_both_the_ai_text_and_the_edited_text():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    text = st.text(alphabet="ab c.\n<&é!", max_size=80)

    @settings(max_examples=300, deadline=None)
    @given(text, text)
    def check(a, b):
        html = str(text_diff(a, b).html)
        assert _side(html, keep="del", drop="ins") == a
        assert _side(html, keep="ins", drop="del") == b

    check()
