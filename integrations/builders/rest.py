"""REST JSON payload for EHRs with their own API: each value is placed at the
JSON path the mapping names (dotted, e.g. note.subjective)."""

from datetime import UTC, datetime

from integrations.builders import NoteInput, attestation_line, render_text


def _put(document: dict, path: str, value) -> None:
    parts = path.split(".")
    node = document
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"JSON path {path!r} collides with a value")
    node[parts[-1]] = value


def rest_build(note: NoteInput, mapping: dict, *, now: datetime) -> dict:
    rest = mapping["rest"]
    fields = rest["fields"]
    document: dict = {}
    _put(document, fields["id"], note.identifier_value)
    _put(document, fields["patient_id"], note.patient_ehr_id)
    _put(document, fields["signed_at"], note.signed_at.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    _put(document, fields["clinician"], note.clinician_name)
    _put(document, fields["attestation"], attestation_line(note))
    _put(document, fields["text"], render_text(note, mapping))
    unmapped: dict = {}
    for section in note.sections:
        value = section.text if not section.codes else {"text": section.text, "codes": list(section.codes)}
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
