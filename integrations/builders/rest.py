"""REST JSON payload for EHRs with their own API: each value is placed at the
JSON path the mapping names (dotted, e.g. note.subjective). Also what the
patient check reads (mapping `rest.patient`, invariant 5): the URL and the
values at the identifier and date-of-birth paths of the answer."""

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urljoin, urlsplit

from integrations.builders import NoteInput, attestation_line, render_text, section_body
from integrations.errors import MappingInvalid
from integrations.mapping import PATIENT_ID_PLACEHOLDER, rest_patient_errors


def _put(document: dict, path: str, value) -> None:
    parts = path.split(".")
    node = document
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"JSON path {path!r} collides with a value")
    node[parts[-1]] = value


def json_path_read(document, path: str):
    """The value at a dotted path. Raises KeyError when a step is missing or
    is not an object (lists are not indexed: a path names object keys only)."""
    node = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def identifier_values(value) -> set[str]:
    """The identifiers a value at the identifier path names: a string or an
    integer, or a list of those and of objects with a "value" (as in FHIR's
    identifier list). Anything else names none."""
    items = value if isinstance(value, list) else [value]
    found = set()
    for item in items:
        if isinstance(item, dict):
            item = item.get("value")
        if isinstance(item, str) and item:
            found.add(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            found.add(str(item))
    return found


@dataclass(frozen=True)
class PatientRead:
    url: str
    identifier_path: str
    birth_date_path: str


def rest_patient_read(mapping: dict, *, base_url: str, patient_id: str) -> PatientRead:
    """Where to read the target patient and which answer fields to compare.
    The URL is resolved against the connection's base URL before the id is
    put in (quoted, so an id cannot change the path). Raises MappingInvalid
    when the mapping has no valid patient block (a version saved before the
    check existed): then nothing may be written."""
    spec = mapping.get("rest", {}).get("patient")
    errors = rest_patient_errors(spec)
    if errors:
        raise MappingInvalid(
            "The REST mapping has no valid patient check (rest.patient), so the note cannot be written; "
            "save a new mapping version with one, then reprocess.",
            errors=errors,
        )
    quoted = quote(patient_id, safe="")
    if quoted in (".", ".."):
        quoted = "%2E" * len(quoted)  # a dot segment would move up the path
    url = urljoin(base_url, spec["url"]).replace(PATIENT_ID_PLACEHOLDER, quoted)
    base, resolved = urlsplit(base_url), urlsplit(url)
    if (resolved.scheme, resolved.netloc) != (base.scheme, base.netloc):
        raise MappingInvalid(
            "rest.patient.url leaves the connection's host.", errors={"rest.patient.url": ["Relative only."]}
        )
    return PatientRead(url=url, identifier_path=spec["identifier"], birth_date_path=spec["birth_date"])


def rest_build(note: NoteInput, mapping: dict, *, now: datetime) -> dict:
    rest = mapping["rest"]
    fields = rest["fields"]
    document: dict = {}
    _put(document, fields["id"], note.identifier_value)
    _put(document, fields["patient_id"], note.patient_ehr_id)
    _put(document, fields["signed_at"], note.signed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    _put(document, fields["clinician"], note.clinician_name)
    if note.cosigner_name:
        _put(document, fields.get("cosigner") or "cosigner.name", note.cosigner_name)
    _put(document, fields["attestation"], attestation_line(note))
    _put(document, fields["text"], render_text(note, mapping))
    unmapped: dict = {}
    for section in note.sections:
        # Codes travel as data beside the text; the text says each once (section_body).
        value = (
            section.text
            if not section.codes
            else {"text": section_body(section, empty=""), "codes": list(section.codes)}
        )
        path = rest["sections"].get(section.key)
        if path:
            _put(document, path, value)
        else:
            unmapped[section.key] = value
    if unmapped:
        _put(document, rest["unmapped"], unmapped)
    if note.amends_ehr_id:
        document["replaces"] = note.amends_ehr_id
    return document
