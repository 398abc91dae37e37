"""Payload builders: pure functions from one signed note version (as plain
data, NoteInput) plus its pinned mapping document to a payload. No database,
no clock, no network: `now` comes in as an argument."""

import re
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
    # Display text per code, same order (ICD-10-CM descriptions); "" or
    # absent when there is none. Used only when the text does not state a code.
    code_labels: tuple = ()


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
    clinician_name: str  # as people read it ("Sam Rivera, PsyD"): text and attestation only
    clinician_ehr_id: str
    signed_at: datetime
    session_start: datetime
    session_end: datetime
    model_name: str
    model_version: str
    ai_source_name: str
    identifier_system: str
    # The signer's name as stored (User last/first name, Membership
    # credentials), never parsed from clinician_name: HL7 XCN is built from these.
    clinician_family_name: str = ""
    clinician_given_name: str = ""
    clinician_credentials: str = ""
    # The supervisor who co-signed a pre-licensed clinician's note (issue 15):
    # named beside the signer in the attestation, FHIR authenticator, HL7 TXA-10/22.
    cosigner_name: str = ""
    cosigner_ehr_id: str = ""
    cosigner_family_name: str = ""
    cosigner_given_name: str = ""
    cosigner_credentials: str = ""
    cosigned_at: datetime | None = None
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


# Risk levels as notes.mapping writes them into a risk section's codes.
RISK_LEVELS = ("none", "low", "moderate", "high", "imminent")
_ICD10_SHAPE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")


def _find(pattern: str, text: str) -> re.Match | None:
    return re.search(pattern, text, re.IGNORECASE)


def section_body(section: SectionInput, *, empty: str = "(none)") -> str:
    """One section as the EHR text shows it, each value once.

    The signed text is what the clinician read and edited in review, so it is
    rendered as it stands. A section's codes (the chips above the text on the
    review page: risk level, diagnosis codes, interventions) are signed too;
    notes.mapping already writes them into the text ("Risk level: low.",
    "F33.1 Major depressive disorder…", "CBT, Behavioral activation"), so a
    code is added only when the text does not state it, in the same format
    the mapping writes: a risk level first, diagnoses and interventions after
    the text. Nothing signed is dropped and nothing is said twice."""
    text = section.text.strip()
    codes = list(dict.fromkeys(str(c).strip() for c in section.codes if str(c).strip()))
    labels = dict(zip((str(c).strip() for c in section.codes), section.code_labels, strict=False))
    before: list[str] = []
    after: list[str] = []
    missing_terms: list[str] = []
    # Longest terms first, and a found term is blanked out, so "CBT" is not
    # taken as stated by "Trauma-focused CBT".
    remaining = text
    for code in sorted(codes, key=len, reverse=True):
        if section.kind in ("risk", "text") and code.lower() in RISK_LEVELS:
            if not _find(rf"risk level:\s*{re.escape(code)}\b", text):
                before.append(f"Risk level: {code.lower()}")
        elif section.kind != "interventions" and _ICD10_SHAPE.match(code.upper()):
            if not _find(rf"(?<![A-Za-z0-9.]){re.escape(code)}(?![A-Za-z0-9]|\.[A-Za-z0-9])", text):
                after.append(f"{code} {labels.get(code, '')}".strip())
        else:
            match = _find(rf"(?<!\w){re.escape(code)}(?!\w)", remaining)
            if match:
                remaining = remaining[: match.start()] + "\0" * len(code) + remaining[match.end() :]
            else:
                missing_terms.append(code)
    # Added values keep the order of the codes, not the search order.
    after.sort(key=lambda line: codes.index(line.split(" ", 1)[0]))
    if missing_terms:
        after.append(", ".join(c for c in codes if c in missing_terms))
    body = "\n".join(part for part in (*before, text, *after) if part)
    return body or empty


def render_text(note: NoteInput, mapping: dict) -> str:
    """The note as the EHR shows it: sections in template order under their
    headings (section_body: each value once), then the plain AI attestation
    line (MAPPING.md §3), which survives EHRs that drop meta.security and
    Provenance. The one text all three builders send."""
    titles = {k: v.get("title") for k, v in mapping.get("fhir", {}).get("sections", {}).items()}
    parts = [f"{titles.get(section.key) or section.label}\n{section_body(section)}" for section in note.sections]
    if note.amends_version_id:
        parts.append(f"Amendment of version {note.amends_version_id}: {note.amendment_reason}".strip())
    parts.append(attestation_line(note))
    return "\n\n".join(parts) + "\n"


def attestation_line(note: NoteInput) -> str:
    when = note.signed_at.strftime("%Y-%m-%d %H:%M UTC")
    line = (
        f"Drafted with AI assistance ({note.model_label}); reviewed, edited and signed by {note.clinician_name}, {when}"
    )
    if note.cosigner_name and note.cosigned_at is not None:
        line += f"; co-signed by supervisor {note.cosigner_name}, {note.cosigned_at.strftime('%Y-%m-%d %H:%M UTC')}"
    return line
