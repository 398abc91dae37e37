"""Issue 6 §4: at signing, the share of the signed text that is AI-generated
and kept versus written by the clinician, per section and for the whole
note, is stored with the signature and shown on the note."""

from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from audit.attribution import attribution_share, note_attribution_compute
from audit.models import NoteAttribution
from notes import services
from tests.factories import note_factory, note_sign_now

pytestmark = pytest.mark.django_db


def test_kept_ai_text_and_clinician_text_are_counted_by_character():
    share = attribution_share(
        key="plan",
        label="Plan",
        ai_text="Continue weekly sessions.",
        final_text="Continue weekly sessions. Add sleep diary.",
    )
    assert share.ai_kept_chars == len("Continue weekly sessions.")
    assert share.clinician_chars == len(" Add sleep diary.")
    assert share.ai_removed_chars == 0
    assert share.total_chars == len("Continue weekly sessions. Add sleep diary.")


def test_a_rewritten_sentence_is_not_credited_to_the_ai_for_letters_it_happens_to_share():
    share = attribution_share(key="s", label="S", ai_text="Client slept poorly.", final_text="Mood is brighter today!")
    assert share.ai_kept_chars == 0
    assert share.clinician_chars == len("Mood is brighter today!")
    assert share.ai_removed_chars == len("Client slept poorly.")


def test_a_corrected_word_is_the_clinicians_and_the_rest_stays_the_ais():
    share = attribution_share(
        key="s", label="S", ai_text="Continue weekly sesions.", final_text="Continue weekly sessions."
    )
    assert (share.ai_kept_chars, share.clinician_chars, share.ai_removed_chars) == (
        17,
        8,
        7,
    )  # “sesions” → “sessions”: the word is the clinician's


def test_deleting_ai_text_leaves_only_kept_text_in_the_signed_share():
    share = attribution_share(
        key="s", label="S", ai_text="Alert and oriented. Mildly anxious.", final_text="Alert and oriented."
    )
    assert (share.ai_kept_chars, share.clinician_chars, share.ai_removed_chars) == (19, 0, 16)


def test_signing_stores_the_attribution_with_the_signature(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    plan_ai = note.sections.get(key="plan").text
    addition = " Safety plan reviewed with client."
    services.note_edit_section(note=note, section_key="plan", text=plan_ai + addition, actor=world.clinician)
    signed = note_sign_now(note, world.clinician)

    attribution = NoteAttribution.objects.get(note=signed)
    assert attribution.signed_by == world.clinician and attribution.signed_at == signed.signed_at
    assert attribution.content_hash == signed.content_hash
    assert attribution.ai_label == "Demo Scribe (scribe-llm 2.3)"
    assert (attribution.model_name, attribution.model_version) == ("scribe-llm", "2.3")
    assert attribution.editors == [world.clinician.get_full_name()]
    sections = {s["key"]: s for s in attribution.sections}
    assert sections["plan"]["clinician_chars"] == len(addition)
    assert sections["plan"]["ai_kept_chars"] == len(plan_ai)
    assert sections["subjective"]["clinician_chars"] == 0
    total = sum(len(s.text) for s in signed.sections.all())
    assert attribution.total_chars >= total  # prose plus codes, one a line
    assert attribution.clinician_chars == len(addition)
    assert attribution.ai_kept_chars + attribution.clinician_chars == attribution.total_chars
    assert attribution.clinician_percent == round(100 * len(addition) / attribution.total_chars)
    with pytest.raises(PermissionError):
        attribution.save()


def test_codes_the_clinician_adds_count_as_their_text(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    shares = {s.key: s for s in note_attribution_compute(note)}
    coded = next(s for s in note.sections.all() if s.ai_codes)
    services.note_edit_section(
        note=note, section_key=coded.key, text=coded.text, codes=[*coded.codes, "F41.1"], actor=world.clinician
    )
    after = {s.key: s for s in note_attribution_compute(note)}
    assert after[coded.key].clinician_chars == shares[coded.key].clinician_chars + len("\nF41.1")


def test_an_amendment_is_attributed_against_the_original_ai_draft(world):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    services.note_edit_section(note=note, section_key="plan", text="Mine entirely", actor=world.clinician)
    signed = note_sign_now(note, world.clinician)
    amendment = services.note_amend(note=signed, reason="Add detail", actor=world.clinician)
    services.note_edit_section(note=amendment, section_key="subjective", text="Also mine.", actor=world.clinician)
    amended = note_sign_now(amendment, world.clinician)
    first, second = NoteAttribution.objects.get(note=signed), NoteAttribution.objects.get(note=amended)
    assert second.clinician_chars > first.clinician_chars
    assert {s["key"]: s["clinician_chars"] for s in second.sections}["plan"] == len("Mine entirely")


def test_the_note_page_shows_who_drafted_edited_and_signed(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    plan = note.sections.get(key="plan").text
    services.note_edit_section(note=note, section_key="plan", text=plan + " Extra words.", actor=world.clinician)
    signed = note_sign_now(note, world.clinician)
    attribution = NoteAttribution.objects.get(note=signed)
    name = world.clinician.get_full_name()

    page = login_as(world.qa).get(reverse("note_detail", args=[signed.pk])).content.decode()
    assert (
        f"Drafted by Demo Scribe (scribe-llm 2.3) · edited by {name} ({attribution.clinician_percent}% of text)"
        # In the practice's timezone, named (issue 17, point 6).
        f" · signed by {name} at {signed.signed_at.astimezone(ZoneInfo(world.practice.timezone)):%Y-%m-%d %H:%M %Z}"
    ) in page
    assert reverse("audit_note_timeline", args=[signed.pk]) in page


def test_an_unedited_note_says_so(world, login_as):
    signed = note_sign_now(note_factory(practice=world.practice, clinician=world.clinician), world.clinician)
    page = login_as(world.clinician).get(reverse("note_detail", args=[signed.pk])).content.decode()
    assert "Drafted by Demo Scribe (scribe-llm 2.3) · not edited (0% of text by the clinician) · signed by" in page
