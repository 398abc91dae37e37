"""AI output -> note sections and flags (MAPPING.md §1-2). Pure: the template
and vocabulary come in as arguments, nothing touches the database, so the
same draft and template give the same note.

Nothing the scribe sends is dropped: every content field lands in a section,
in the template's fallback section, or in a flag for manual placement.
"""

import json
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field as dc_field

from notes.risk_language import (
    RiskSource,
    risk_confirm_message,
    risk_current_message,
    risk_findings,
    risk_scan_shared,
)
from notes.vocabulary import InterventionVocabulary, icd10_check

# The AI output fields of intake schema v1 that carry note content.
CONTENT_FIELDS = (
    "client_reported_symptoms",
    "clinician_observations",
    "clinical_impressions",
    "risk_assessment",
    "next_steps",
    "diagnosis_codes",
    "interventions",
)
# Envelope fields: who, when, which model. They describe the draft, not the note.
ENVELOPE_FIELDS = (
    "client",
    "clinician",
    "session",
    "model",
    "transcript_ref",
    "draft_id",
    "schema_version",
    "template",
    # Billing, checked by notes.payer_checks; not note content.
    "cpt_code",
    "cpt_add_on_codes",
)

FIELD_LABELS = {
    "client_reported_symptoms": "Client report",
    "clinician_observations": "Observations",
    "clinical_impressions": "Impressions",
    "risk_assessment": "Risk",
    "next_steps": "Next steps",
    "diagnosis_codes": "Diagnosis codes",
    "interventions": "Interventions",
}

RISK_LEVELS = ("none", "low", "moderate", "high", "imminent")
HIGH_RISK_LEVELS = ("high", "imminent")


@dataclass(frozen=True)
class SectionSpec:
    key: str
    label: str
    order: int
    kind: str = "text"
    required: bool = False


@dataclass(frozen=True)
class TemplateSpec:
    sections: list[SectionSpec]
    field_map: dict[str, str]
    fallback_section_key: str = ""
    unplaced_policy: str = "flag"  # "flag" or "fallback"


@dataclass
class MappedSection:
    key: str
    label: str
    order: int
    kind: str
    required: bool
    text: str = ""
    codes: list = dc_field(default_factory=list)
    origin: str = "ai"


@dataclass(frozen=True)
class FlagSpec:
    kind: str
    message: str
    section_key: str = ""
    field: str = ""
    value: object = None
    suggestions: list = dc_field(default_factory=list)


@dataclass
class MappedNote:
    sections: list[MappedSection]
    flags: list[FlagSpec]
    high_risk: bool


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _append(section: MappedSection, text: str, *, heading: str = "") -> None:
    if not text:
        return
    block = f"{heading}: {text}" if heading else text
    section.text = f"{section.text}\n\n{block}" if section.text else block


def map_ai_output(
    ai_output: dict,
    template: TemplateSpec,
    *,
    vocabulary: InterventionVocabulary,
    other_participant_names: list[str] = (),
) -> MappedNote:
    """Place each AI output field into the template's sections.

    ai_output holds the content fields and any extra fields the scribe sent
    (envelope fields are ignored here). Diagnosis codes and interventions are
    checked against their vocabularies; invalid ones become flags and never
    enter the note as free text.
    """
    sections = {
        s.key: MappedSection(key=s.key, label=s.label, order=s.order, kind=s.kind, required=s.required)
        for s in template.sections
    }
    flags: list[FlagSpec] = []
    high_risk = False

    # Which fields land in each section, so a section fed by several fields
    # (DAP "Data") labels each part.
    feeds: dict[str, list[str]] = {}
    for name, key in template.field_map.items():
        if key in sections:
            feeds.setdefault(key, []).append(name)

    fields = [f for f in CONTENT_FIELDS if f in ai_output] + sorted(
        f for f in ai_output if f not in CONTENT_FIELDS and f not in ENVELOPE_FIELDS
    )
    for name in fields:
        value = ai_output[name]
        if value in (None, "", [], {}):
            continue
        target_key = template.field_map.get(name)
        target = sections.get(target_key) if target_key else None
        if target is None:
            flags.extend(_place_unplaced(name, value, template, sections))
            continue
        heading = FIELD_LABELS.get(name, name) if len(feeds.get(target.key, [])) > 1 else ""
        if name == "diagnosis_codes":
            flags.extend(_map_diagnoses(value, target))
        elif name == "interventions":
            flags.extend(_map_interventions(value, target, vocabulary))
        elif name == "risk_assessment":
            risk_flags, is_high = _map_risk(value, target, heading)
            flags.extend(risk_flags)
            high_risk = high_risk or is_high
        else:
            _append(target, _as_text(value), heading=heading)

    # Every piece of AI text is scanned: placed, fallback and awaiting
    # placement (issue #12, point 2). Only asserted-current risk marks the note.
    sources = [RiskSource(text=s.text, section_key=s.key) for s in sections.values()] + [
        RiskSource(text=_as_text(f.value), field=f.field) for f in flags if f.kind == "unplaced_content"
    ]
    all_text = "\n".join(source.text for source in sources)
    current, denials = risk_findings(sources)
    for finding in current:
        high_risk = True
        where = f"in “{finding.source.field}”, awaiting placement" if finding.source.field else "in the draft"
        flags.append(
            FlagSpec(
                kind="risk",
                section_key=finding.source.section_key,
                field=finding.source.field,
                value={"statements": list(finding.statements)},
                message=risk_current_message(finding, where=where),
            )
        )
    if denials and _risk_unassessed(ai_output.get("risk_assessment")):
        flags.append(
            FlagSpec(
                kind="risk",
                field="risk_assessment",
                value={"denials": sorted({s for d in denials for s in d.statements})},
                message=risk_confirm_message(denials),
            )
        )

    named = _names_in(all_text, [n for n in other_participant_names if n])
    for name in named:
        # "Sam Okafor" found: one flag, not three more for "Sam" and "Okafor".
        if any(name.lower() != other.lower() and name.lower() in other.lower() for other in named):
            continue
        flags.append(
            FlagSpec(
                kind="other_participant",
                message=f"This note names another group member (“{name}”). A group note must not disclose "
                "other clients: remove or de-identify the name.",
                value=name,
            )
        )

    for section in sections.values():
        if section.required and not section.text.strip() and not section.codes:
            flags.append(
                FlagSpec(
                    kind="missing_required",
                    section_key=section.key,
                    message=f"“{section.label}” is required and the draft has nothing for it.",
                )
            )

    return MappedNote(sections=sorted(sections.values(), key=lambda s: s.order), flags=flags, high_risk=high_risk)


# Per line of text, the names already looked for in it and whether each was
# found, in the current shared_text_scans() block; None outside one.
_NAME_MEMO: ContextVar[dict[str, dict[str, bool]] | None] = ContextVar("mapping_name_memo", default=None)


@contextmanager
def shared_text_scans():
    """Within this block each distinct line of text is scanned once for risk
    language and once for each name, however many notes it is mapped into. A
    group session's notes each hold the session-wide text again: 30
    participants would otherwise scan it 30 times. Each note's own lines are
    still scanned; the memo ends with the block."""
    token = _NAME_MEMO.set({})
    try:
        with risk_scan_shared():
            yield
    finally:
        _NAME_MEMO.reset(token)


def _name_found(name: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text, re.IGNORECASE) is not None


def _names_in(text: str, names: list[str]) -> list[str]:
    """The names found in text as whole words, in any case. A name without a
    line break can only be found within one line, so inside
    shared_text_scans() each line is searched once per name; one search for
    all the names first skips the line when none is in it."""
    memo = _NAME_MEMO.get()
    if memo is None or any(n.splitlines() != [n] for n in names):
        return [n for n in names if _name_found(n, text)]
    found = set()
    for line in dict.fromkeys(text.splitlines()):
        seen = memo.setdefault(line, {})
        todo = [n for n in names if n not in seen]
        if todo:
            any_of = re.search(r"\b(?:" + "|".join(re.escape(n) for n in todo) + r")\b", line, re.IGNORECASE)
            for n in todo:
                seen[n] = any_of is not None and _name_found(n, line)
        found.update(n for n in names if seen[n])
    return [n for n in names if n in found]


def _place_unplaced(name, value, template: TemplateSpec, sections) -> list[FlagSpec]:
    fallback = sections.get(template.fallback_section_key)
    if template.unplaced_policy == "fallback" and fallback is not None:
        _append(fallback, _as_text(value), heading=FIELD_LABELS.get(name, name))
        fallback.origin = "fallback"
        return []
    return [
        FlagSpec(
            kind="unplaced_content",
            field=name,
            value=value,
            message=f"The draft's “{name}” has no place in this template. Place it into a section or dismiss "
            "it with a reason.",
        )
    ]


def _map_diagnoses(value, target: MappedSection) -> list[FlagSpec]:
    flags = []
    codes = value if isinstance(value, list) else [value]
    lines = []
    for raw in codes:
        raw_code = raw.get("code") if isinstance(raw, dict) else raw
        check = icd10_check(str(raw_code))
        if check.valid:
            if check.code not in target.codes:
                target.codes.append(check.code)
                lines.append(f"{check.code} {check.description}")
        else:
            flags.append(
                FlagSpec(
                    kind="invalid_code",
                    section_key=target.key,
                    field="diagnosis_codes",
                    value=raw_code,
                    message=check.message,
                    suggestions=check.suggestions,
                )
            )
    _append(target, "\n".join(lines))
    return flags


def code_corrections(payload: dict) -> dict[str, str]:
    """{code as stored: as the scribe wrote it} for each valid diagnosis code
    the mapping normalised (case, the ICD-10-CM dot): shown beside the code in
    review, so that no correction of the AI's output is silent."""
    value = payload.get("diagnosis_codes") if isinstance(payload, dict) else None
    written = value if isinstance(value, list) else [value] if value else []
    corrections = {}
    for raw in written:
        raw_code = str(raw.get("code") if isinstance(raw, dict) else raw).strip()
        check = icd10_check(raw_code)
        if check.valid and raw_code != check.code:
            corrections.setdefault(check.code, raw_code)
    return corrections


def _map_interventions(value, target: MappedSection, vocabulary: InterventionVocabulary) -> list[FlagSpec]:
    flags = []
    terms = value if isinstance(value, list) else [value]
    for raw in terms:
        term = vocabulary.resolve(str(raw))
        if term is None:
            flags.append(
                FlagSpec(
                    kind="unknown_intervention",
                    section_key=target.key,
                    field="interventions",
                    value=raw,
                    message=f"“{raw}” is not in the practice's intervention vocabulary as written. Choose "
                    "the term meant, or ask your practice admin to add it.",
                    suggestions=vocabulary.nearest(str(raw)),
                )
            )
        elif term not in target.codes:
            target.codes.append(term)
    _append(target, ", ".join(target.codes))
    return flags


def _map_risk(value, target: MappedSection, heading: str) -> tuple[list[FlagSpec], bool]:
    if isinstance(value, dict):
        level = str(value.get("level", "")).lower()
        text = _as_text(value.get("text", ""))
    else:
        level, text = "", _as_text(value)
    if level:
        target.codes = [level]
    summary = f"Risk level: {level}." if level else ""
    _append(target, " ".join(p for p in (summary, text) if p), heading=heading)
    flags = []
    if level in ("moderate", *HIGH_RISK_LEVELS):
        flags.append(
            FlagSpec(
                kind="risk",
                section_key=target.key,
                field="risk_assessment",
                value=level,
                message=f"Risk assessed as {level}. Confirm the risk assessment and safety plan before signing.",
            )
        )
    return flags, level in HIGH_RISK_LEVELS


def _risk_unassessed(value) -> bool:
    """No risk assessment in the draft: absent, empty, or level "none" with no text."""
    if isinstance(value, dict):
        return not _as_text(value.get("text", "")) and str(value.get("level", "") or "none").lower() == "none"
    return not _as_text(value)
