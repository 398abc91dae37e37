"""Issue 12 §7: the diffs behind attribution are bounded and computed once.

Attribution runs inside note_sign's row lock. A long rewritten stretch is no
longer aligned word by word (quadratic) but replaced whole, and the share
stays right: checked here against an independent count of what the tests
built. The timeline shows the edit diffs stored at signing, and the review
page and attribution use one diff engine."""

import random
import time

import pytest
from django.urls import reverse

from audit.attribution import attribution_diff, attribution_share
from audit.models import AuditEvent, NoteAttribution
from notes import services
from notes.review_diff import (
    SENTENCE_ALIGN_MAX_CHARS,
    WORD_ALIGN_MAX_CHARS,
    diff_from_runs,
    diff_runs,
    diff_texts,
    text_diff,
)
from tests.factories import ai_output, note_factory, note_sign_now

pytestmark = pytest.mark.django_db

AI_WORDS = "client reports sleep mood anxiety week work family stress coping skills breathing thoughts".split()
CLINICIAN_WORDS = "patient describes insomnia irritability panic evenings partner conflict grief rumination".split()


def _sentences(words: list[str], count: int, *, seed: int, tag: str) -> list[str]:
    """count distinct sentences (a numbered tag makes each unique), each ending with '. '."""
    rng = random.Random(seed)
    return [
        f"{tag} {n}: " + " ".join(rng.choice(words) for _ in range(rng.randint(8, 16))) + ". " for n in range(count)
    ]


def _text(sentences: list[str], size: int) -> str:
    return "".join(sentences)[:size].rsplit(". ", 1)[0] + "."


def _rebuilds_both(a: str, b: str, ops) -> bool:
    return "".join(t for op, t in ops if op <= 0) == a and "".join(t for op, t in ops if op >= 0) == b


def test_a_fully_rewritten_100_kb_section_is_counted_whole_and_exactly():
    ai = _text(_sentences(AI_WORDS, 2000, seed=1, tag="Ai"), 99_000)
    final = _text(_sentences(CLINICIAN_WORDS, 2000, seed=2, tag="Dr"), 99_000)
    assert len(ai) + len(final) > SENTENCE_ALIGN_MAX_CHARS

    share = attribution_share(key="plan", label="Plan", ai_text=ai, final_text=final)

    assert share.coarse is True  # the fallback, not word-by-word alignment
    assert (share.ai_kept_chars, share.clinician_chars, share.ai_removed_chars) == (0, len(final), len(ai))
    assert share.total_chars == len(final)


def test_a_long_partly_kept_section_credits_the_ai_with_exactly_the_sentences_kept():
    ai_sentences = _sentences(AI_WORDS, 60, seed=3, tag="Ai")
    kept, replaced = ai_sentences[:30], ai_sentences[30:]
    rewritten = _sentences(CLINICIAN_WORDS, 30, seed=4, tag="Dr")
    ai, final = "".join(ai_sentences), "".join(kept + rewritten)
    # The rewritten stretch is too long to align word by word.
    assert len("".join(replaced)) + len("".join(rewritten)) > WORD_ALIGN_MAX_CHARS

    share = attribution_share(key="plan", label="Plan", ai_text=ai, final_text=final)

    assert share.coarse is True
    # Independent count: the kept sentences, and nothing of the rewritten stretch.
    assert share.ai_kept_chars == len("".join(kept))
    assert share.clinician_chars == len("".join(rewritten))
    assert share.ai_removed_chars == len("".join(replaced))


def test_a_spent_time_budget_gives_a_coarse_diff_that_still_rebuilds_both_texts():
    ai = "Client slept poorly. Mood low. Walked daily. Plan: continue."
    final = "Client slept well. Mood low. Walked twice. Plan: continue."
    fine = diff_texts(ai, final)
    spent = diff_texts(ai, final, deadline=time.monotonic())  # no time left at all

    assert fine.coarse is False and spent.coarse is True
    assert _rebuilds_both(ai, final, fine.ops) and _rebuilds_both(ai, final, spent.ops)
    kept = "".join(t for op, t in spent.ops if op == 0)
    assert kept == " Mood low. Plan: continue."  # only whole sentences both share
    assert "Client slept " in "".join(t for op, t in fine.ops if op == 0)  # alignment, when affordable, is finer


def test_signing_a_note_whose_100_kb_section_was_rewritten_stores_a_bounded_exact_share(world):
    ai = _text(_sentences(AI_WORDS, 2000, seed=5, tag="Ai"), 99_000)
    final = _text(_sentences(CLINICIAN_WORDS, 2000, seed=6, tag="Dr"), 99_000)
    note = note_factory(practice=world.practice, clinician=world.clinician, payload=ai_output(next_steps=ai))
    assert note.sections.get(key="plan").ai_text == ai
    services.note_edit_section(note=note, section_key="plan", text=final, actor=world.clinician)

    signed = note_sign_now(note, world.clinician)

    attribution = NoteAttribution.objects.get(note=signed)
    plan = {s["key"]: s for s in attribution.sections}["plan"]
    assert plan["coarse"] is True
    assert (plan["ai_kept_chars"], plan["clinician_chars"], plan["ai_removed_chars"]) == (0, len(final), len(ai))
    edit = AuditEvent.objects.get(note=signed, action="note.edit")
    runs = attribution.event_diffs[str(edit.seq)]
    assert runs == [[-1, len(ai)], [1, len(final)]]  # the edit's diff, stored once


def test_signing_stores_each_edit_diff_and_the_timeline_shows_the_stored_one(world, login_as):
    note = note_factory(practice=world.practice, clinician=world.clinician)
    old = note.sections.get(key="plan").text
    services.note_edit_section(note=note, section_key="plan", text=old + " Add a sleep diary.", actor=world.clinician)
    signed = note_sign_now(note, world.clinician)
    edit = AuditEvent.objects.get(note=signed, action="note.edit")
    attribution = NoteAttribution.objects.get(note=signed)
    stored = attribution.event_diffs[str(edit.seq)]
    assert stored == diff_runs(diff_texts(old, old + " Add a sleep diary.").ops)
    assert diff_from_runs(old, old + " Add a sleep diary.", stored)[-1] == (1, " Add a sleep diary.")

    # Replace the stored runs by a whole replacement (a valid diff of the same
    # texts that a fresh diff would never give): the timeline shows it, so it
    # reads what was stored and does not diff again.
    NoteAttribution.objects.filter(pk=attribution.pk).update(
        event_diffs={str(edit.seq): [[-1, len(old)], [1, len(old) + len(" Add a sleep diary.")]]}
    )
    page = login_as(world.clinician).get(reverse("audit_note_timeline", args=[signed.pk])).content.decode()
    assert f'<del class="diff-del">{old}</del><ins class="diff-ins">{old} Add a sleep diary.</ins>' in page


def test_the_review_page_and_attribution_use_one_diff_engine():
    ai = "Client is anxious today. Sleep is poor. Continue weekly sessions."
    final = "Client is calm today. Sleep is poor. Continue weekly sessions; add a diary."
    ops = diff_texts(ai, final).ops
    assert attribution_diff(ai, final) == ops
    html = str(text_diff(ai, final).html)
    assert html == "".join(f"<ins>{t}</ins>" if op == 1 else f"<del>{t}</del>" if op == -1 else t for op, t in ops)
