"""Attribution at signing: how much of the signed text the AI wrote and the
clinician kept, and how much the clinician wrote.

Each section's signed text is compared with the AI baseline it started from
(NoteSection.ai_text and ai_codes, which amendments carry over) using Google's
diff-match-patch in its documented word mode: words, whitespace runs and
punctuation marks are the units, so a word the clinician left as the AI wrote
it is the AI's, and a word they typed or changed is theirs. A pure character
diff would credit the AI with letters that merely coincide ("ly." shared by
"poorly." and "daily." in a rewritten sentence). The diff is then cleaned up
semantically (diff_cleanupSemantic: a run of kept units no longer than the
edits on both sides of it is a coincidence). Shares are counted in
characters. The diff timeout is off, so the same texts always give the same
figures.
"""

import re
from dataclasses import asdict, dataclass

from diff_match_patch import diff_match_patch

from audit.models import AuditEvent, NoteAttribution

METHOD = "diff-match-patch word mode, semantic cleanup, chars"


@dataclass(frozen=True)
class SectionShare:
    key: str
    label: str
    total_chars: int
    ai_kept_chars: int
    clinician_chars: int
    ai_removed_chars: int


def _differ() -> diff_match_patch:
    dmp = diff_match_patch()
    dmp.Diff_Timeout = 0  # deterministic: never settle for a quicker, coarser diff
    return dmp


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


_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")
# Units are encoded as one character each (dmp's line-mode trick), from
# U+0100 on, skipping the surrogates.


def _unit_char(index: int) -> str:
    code = 0x100 + index
    return chr(code + 0x800 if code >= 0xD800 else code)


def _encode(texts: tuple[str, str]) -> tuple[list[str], list[str]]:
    index: dict[str, int] = {}
    units: list[str] = []
    encoded = []
    for text in texts:
        chars = []
        for unit in _TOKEN.findall(text):
            i = index.get(unit)
            if i is None:
                i = index[unit] = len(units)
                units.append(unit)
            chars.append(_unit_char(i))
        encoded.append("".join(chars))
    return encoded, units


def _decode(chars: str, units: list[str]) -> str:
    out = []
    for c in chars:
        code = ord(c)
        out.append(units[(code - 0x800 if code >= 0xE000 else code) - 0x100])
    return "".join(out)


def attribution_diff(ai_text: str, final_text: str) -> list[tuple[int, str]]:
    """The cleaned-up diff by unit: (op, text) with op -1 removed, 0 kept, 1 added."""
    if ai_text == final_text:
        return [(0, final_text)] if final_text else []
    dmp = _differ()
    (ai_chars, final_chars), units = _encode((ai_text, final_text))
    diffs = dmp.diff_main(ai_chars, final_chars, False)
    dmp.diff_cleanupSemantic(diffs)
    return [(op, _decode(chars, units)) for op, chars in diffs if chars]


def attribution_share(*, key: str, label: str, ai_text: str, final_text: str) -> SectionShare:
    kept = added = removed = 0
    for op, text in attribution_diff(ai_text, final_text):
        if op == 0:
            kept += len(text)
        elif op == 1:
            added += len(text)
        else:
            removed += len(text)
    return SectionShare(key, label, kept + added, kept, added, removed)


def note_attribution_compute(note) -> list[SectionShare]:
    return [
        attribution_share(
            key=s.key,
            label=s.label,
            ai_text=section_text(s.ai_text, s.ai_codes),
            final_text=section_text(s.text, s.codes),
        )
        for s in note.sections.order_by("order")
    ]


def note_attribution_record(*, note) -> NoteAttribution:
    """Compute and store the attribution of a note being signed. Called by
    notes.services.note_sign inside its transaction, after signed_at,
    signed_by and content_hash are set."""
    shares = note_attribution_compute(note)
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
        method=METHOD,
    )
    attribution.full_clean()
    attribution.save()
    return attribution
