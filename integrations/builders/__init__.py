"""Payload builders: pure functions from one signed note version (as plain
data, NoteInput) plus its pinned mapping document to a payload. No database,
no clock, no network: `now` comes in as an argument."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class SectionInput:
    key: str
    label: str
    text: str
    codes: tuple = ()
    kind: str = "text"  # notes TemplateSection.Kind: text, diagnosis_codes, interventions, risk


@dataclass(frozen=True)
class NoteInput:
    lineage: uuid.UUID
    version: int
    sections: tuple[SectionInput, ...]
    patient_ehr_id: str
    patient_family_name: str
    patient_given_name: str
    patient_birth_date: str  # ISO date
    synthetic: bool
    clinician_name: str
    clinician_ehr_id: str
    signed_at: datetime
    session_start: datetime
    session_end: datetime
    model_name: str
    model_version: str
    ai_source_name: str
    identifier_system: str
    amends_ehr_id: str = ""
    amends_version_id: str = ""
    amendment_reason: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def identifier_value(self) -> str:
        # Stable for one note version across retries (invariant 4); also the
        # delivery's idempotency key.
        return f"{self.lineage}:{self.version}"

    @property
    def version_uuid(self) -> uuid.UUID:
        return uuid.uuid5(self.lineage, str(self.version))

    @property
    def diagnosis_codes(self) -> tuple[str, ...]:
        return tuple(str(c) for s in self.sections if s.kind == "diagnosis_codes" for c in s.codes)

    @property
    def model_label(self) -> str:
        return " ".join(p for p in (self.model_name, self.model_version) if p) or self.ai_source_name


def render_text(note: NoteInput, mapping: dict) -> str:
    """The note as the EHR shows it: sections in template order under their
    headings, then the plain AI attestation line (MAPPING.md §3), which
    survives EHRs that drop meta.security and Provenance."""
    titles = {k: v.get("title") for k, v in mapping.get("fhir", {}).get("sections", {}).items()}
    parts = []
    for section in note.sections:
        body = section.text.strip()
        if section.codes:
            codes = ", ".join(str(c) for c in section.codes)
            body = f"{body}\n{codes}".strip()
        parts.append(f"{titles.get(section.key) or section.label}\n{body or '(none)'}")
    if note.amends_version_id:
        parts.append(f"Amendment of version {note.amends_version_id}: {note.amendment_reason}".strip())
    parts.append(attestation_line(note))
    return "\n\n".join(parts) + "\n"


def attestation_line(note: NoteInput) -> str:
    when = note.signed_at.strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Drafted with AI assistance ({note.model_label}); reviewed, edited and signed by {note.clinician_name}, {when}"
    )
