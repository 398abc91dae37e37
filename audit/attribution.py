"""Attribution at signing: how much of the signed text the AI wrote and the
clinician kept, and how much the clinician wrote.

Each section's signed text is compared with the AI baseline it started from
(NoteSection.ai_text and ai_codes, which amendments carry over) with the
review page's diff engine (notes.review_diff.diff_texts), so the shares and
the diff the clinician saw agree: words, whitespace runs and punctuation
marks are the units, so a word the clinician left as the AI wrote it is the
AI's, and a word they typed or changed is theirs (a pure character diff would
credit the AI with letters that merely coincide, "ly." shared by "poorly."
and "daily."). Shares are counted in characters.

It runs inside note_sign's row lock, so it is bounded: one time budget for
the whole signing, and a long rewritten stretch is replaced whole rather
than aligned (see notes.review_diff). Such a coarse share never credits the
AI with text it did not write; it is marked per section ("coarse"). The
result is stored with the signature, with the diffs the timeline shows, and
never computed again.
"""

import time
from dataclasses import asdict, dataclass

from audit.models import AuditEvent, NoteAttribution
from notes.review_diff import DIFF_TIME_BUDGET_SECONDS, diff_runs, diff_texts

METHOD = "word diff (notes.review_diff), bounded, chars"
# The edit events whose diffs the timeline shows (and signing stores).
EDIT_ACTIONS = ("note.edit",)


@dataclass(frozen=True)
class SectionShare:
    key: str
    label: str
    total_chars: int
    ai_kept_chars: int
    clinician_chars: int
    ai_removed_chars: int
    coarse: bool = False  # a rewritten stretch was counted whole (see notes.review_diff)


def _code_text(codes) -> str:
    parts = []
    for code in codes or []:
        if isinstance(code, dict):
            code = code.get("code") or code.get("term") or ""
        parts.append(str(code))
    return "\n".join(parts)


def section_text(text: str, codes) -> str:
    """What a section contributes to the signed text: its prose, then its codes one a line."""
    code_text = _code_text(codes)
    return f"{text}\n{code_text}" if text and code_text else (text or code_text)


def attribution_diff(ai_text: str, final_text: str, *, deadline: float | None = None) -> list[tuple[int, str]]:
    """The diff by unit: (op, text) with op -1 removed, 0 kept, 1 added."""
    return diff_texts(ai_text, final_text, deadline=deadline).ops


def attribution_share(
    *, key: str, label: str, ai_text: str, final_text: str, deadline: float | None = None
) -> SectionShare:
    diff = diff_texts(ai_text, final_text, deadline=deadline)
    kept = added = removed = 0
    for op, text in diff.ops:
        if op == 0:
            kept += len(text)
        elif op == 1:
            added += len(text)
        else:
            removed += len(text)
    return SectionShare(key, label, kept + added, kept, added, removed, diff.coarse)


def note_attribution_compute(note, *, deadline: float | None = None) -> list[SectionShare]:
    deadline = time.monotonic() + DIFF_TIME_BUDGET_SECONDS if deadline is None else deadline
    return [
        attribution_share(
            key=s.key,
            label=s.label,
            ai_text=section_text(s.ai_text, s.ai_codes),
            final_text=section_text(s.text, s.codes),
            deadline=deadline,
        )
        for s in note.sections.order_by("order")
    ]


def note_event_diffs_compute(note, *, deadline: float) -> dict[str, list[list[int]]]:
    """The diff of each edit event of this version, by event seq, as runs
    (the texts are in the events): what the timeline shows of a signed note."""
    from audit.diffs import event_texts

    out = {}
    for event in AuditEvent.objects.filter(note=note, action__in=EDIT_ACTIONS).only("seq", "before", "after"):
        texts = event_texts(event)
        if texts is not None:
            out[str(event.seq)] = diff_runs(diff_texts(*texts, deadline=deadline).ops)
    return out


def note_attribution_record(*, note) -> NoteAttribution:
    """Compute and store the attribution of a note being signed. Called by
    notes.services.note_sign inside its transaction, after signed_at,
    signed_by and content_hash are set."""
    # One time budget for every diff of this signing (it holds the note's row lock).
    deadline = time.monotonic() + DIFF_TIME_BUDGET_SECONDS
    shares = note_attribution_compute(note, deadline=deadline)
    draft = note.draft
    lineage_ids = type(note).objects.filter(lineage=note.lineage, practice_id=note.practice_id).values("pk")
    editors: list[str] = []
    for label in (
        AuditEvent.objects.filter(note__in=lineage_ids, action="note.edit", actor_type=AuditEvent.ActorType.PERSON)
        .order_by("seq")
        .values_list("actor_label", flat=True)
    ):
        if label not in editors:
            editors.append(label)
    model = " ".join(part for part in (draft.model_name, draft.model_version) if part)
    attribution = NoteAttribution(
        note=note,
        ai_source=draft.ai_source,
        ai_label=(f"{draft.ai_source.name} ({model})" if model else draft.ai_source.name)[:200],
        model_name=draft.model_name,
        model_version=draft.model_version,
        signed_by=note.signed_by,
        signed_at=note.signed_at,
        content_hash=note.content_hash,
        total_chars=sum(s.total_chars for s in shares),
        ai_kept_chars=sum(s.ai_kept_chars for s in shares),
        clinician_chars=sum(s.clinician_chars for s in shares),
        ai_removed_chars=sum(s.ai_removed_chars for s in shares),
        sections=[asdict(s) for s in shares],
        editors=editors,
        event_diffs=note_event_diffs_compute(note, deadline=deadline),
        method=METHOD,
    )
    attribution.full_clean()
    attribution.save()
    return attribution
