"""Field mapping documents (pure): the built-in default for a template, the
checks a document must pass against its template, and a diff between two
versions. Stored versions live in FieldMapping; services save them."""

import copy
import difflib
import json
import re
from urllib.parse import urlsplit

LOINC = "http://loinc.org"
CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
# US Core DocumentReference category slice: only clinical-note for notes.
ALLOWED_CATEGORIES = {"clinical-note"}
# HL7 table 0270 document types we allow for notes.
HL7_DOCUMENT_TYPES = {"PN", "CN", "DS", "HP", "CD", "TS"}
UNMAPPED_TARGETS = {"fhir": {"text"}, "hl7": {"obx"}}
_LOINC_RE = re.compile(r"^\d{1,7}-\d$")
_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
REST_FIELDS = ("id", "patient_id", "signed_at", "clinician", "attestation", "text")
# rest.patient.url: where the REST transport reads the target patient before
# writing (invariant 5), relative to the connection's base URL.
PATIENT_ID_PLACEHOLDER = "{patient_id}"
DEFAULT_REST_PATIENT = {"url": "patients/{patient_id}", "identifier": "id", "birth_date": "birthDate"}

DEFAULT_TYPE = [
    {"system": LOINC, "code": "34904-3", "display": "Mental health Progress note"},
    {"system": LOINC, "code": "11506-3", "display": "Progress note"},
]


def mapping_default_document(sections: list[dict]) -> dict:
    """The mapping a template gets when the practice has written none:
    MAPPING.md §3 defaults. `sections` are dicts with key, label, loinc_code."""
    fhir_sections = {s["key"]: {"title": s["label"], "loinc": s.get("loinc_code", "")} for s in sections}
    return {
        "schema": 1,
        "fhir": {
            "type": copy.deepcopy(DEFAULT_TYPE),
            "type_text": "Psychotherapy progress note",
            "category": "clinical-note",
            "sections": fhir_sections,
            "unmapped": "text",
        },
        "hl7": {
            "document_type": "PN",
            "sections": {
                s["key"]: {
                    "code": s.get("loinc_code") or s["key"].upper(),
                    "text": s["label"],
                    "system": "LN" if s.get("loinc_code") else "L",
                }
                for s in sections
            },
            "unmapped": "obx",
        },
        "rest": {
            "fields": {
                "id": "id",
                "patient_id": "patient.id",
                "signed_at": "signedAt",
                "clinician": "author.name",
                "attestation": "attestation",
                "text": "text",
            },
            "sections": {s["key"]: f"sections.{s['key']}" for s in sections},
            "unmapped": "sections.other",
            "patient": dict(DEFAULT_REST_PATIENT),
        },
    }


def mapping_validate(document, *, section_keys: list[str]) -> dict[str, list[str]]:
    """Field errors ({path: [messages]}); empty when the document fits the
    template whose section keys are given."""
    errors: dict[str, list[str]] = {}

    def err(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    if not isinstance(document, dict):
        return {"document": ["A mapping document is a JSON object."]}
    if document.get("schema") != 1:
        err("schema", "Unsupported mapping schema; expected 1.")
    known = set(section_keys)
    for target in ("fhir", "hl7", "rest"):
        part = document.get(target)
        if not isinstance(part, dict):
            err(target, "Missing or not an object.")
            continue
        sections = part.get("sections")
        if not isinstance(sections, dict):
            err(f"{target}.sections", "Missing or not an object.")
            continue
        for key in sections:
            if key not in known:
                err(f"{target}.sections.{key}", f"The template has no section '{key}'.")
        unmapped = part.get("unmapped")
        if target in UNMAPPED_TARGETS and unmapped not in UNMAPPED_TARGETS[target]:
            err(f"{target}.unmapped", f"Content with no field must go to one of {sorted(UNMAPPED_TARGETS[target])}.")
        if target == "rest" and (not isinstance(unmapped, str) or not _PATH_RE.match(unmapped)):
            err("rest.unmapped", "A JSON path such as sections.other is required.")
    fhir = document.get("fhir") if isinstance(document.get("fhir"), dict) else {}
    types = fhir.get("type")
    if not isinstance(types, list) or not types:
        err("fhir.type", "At least one note type coding is required.")
    else:
        for i, coding in enumerate(types):
            if not isinstance(coding, dict) or not coding.get("system") or not coding.get("code"):
                err(f"fhir.type.{i}", "A coding needs system and code.")
            elif coding["system"] == LOINC and not _LOINC_RE.match(str(coding["code"])):
                err(f"fhir.type.{i}", f"'{coding['code']}' is not a LOINC code.")
    if fhir and fhir.get("category") not in ALLOWED_CATEGORIES:
        err("fhir.category", "The category must be clinical-note.")
    for key, spec in (fhir.get("sections") or {}).items() if isinstance(fhir.get("sections"), dict) else []:
        if not isinstance(spec, dict):
            err(f"fhir.sections.{key}", "Not an object.")
        elif spec.get("loinc") and not _LOINC_RE.match(str(spec["loinc"])):
            err(f"fhir.sections.{key}.loinc", f"'{spec['loinc']}' is not a LOINC code.")
    hl7 = document.get("hl7") if isinstance(document.get("hl7"), dict) else {}
    if hl7 and hl7.get("document_type") not in HL7_DOCUMENT_TYPES:
        err("hl7.document_type", f"Must be one of {sorted(HL7_DOCUMENT_TYPES)} (HL7 table 0270).")
    for key, spec in (hl7.get("sections") or {}).items() if isinstance(hl7.get("sections"), dict) else []:
        if not isinstance(spec, dict) or not spec.get("code") or not spec.get("text"):
            err(f"hl7.sections.{key}", "An OBX layout needs code and text.")
    rest = document.get("rest") if isinstance(document.get("rest"), dict) else {}
    paths = list((rest.get("sections") or {}).items()) if isinstance(rest.get("sections"), dict) else []
    fields = rest.get("fields") if isinstance(rest.get("fields"), dict) else {}
    if rest and not fields:
        err("rest.fields", f"JSON paths for {', '.join(REST_FIELDS)} are required.")
    for name in REST_FIELDS if rest and fields else ():
        if name not in fields:
            err(f"rest.fields.{name}", "A JSON path is required.")
    for name, path in paths + list(fields.items()):
        if not isinstance(path, str) or not _PATH_RE.match(path):
            err(f"rest.{name}", f"'{path}' is not a JSON path such as note.subjective.")
    schema_url = rest.get("schema_url") if rest else None
    if schema_url is not None and (
        not isinstance(schema_url, str)
        or urlsplit(schema_url).scheme not in ("https", "http")
        or not urlsplit(schema_url).netloc
    ):
        # Optional: the EHR's JSON Schema of a note, read by the schema-drift check.
        err("rest.schema_url", "An absolute https URL of the EHR's JSON Schema for a note.")
    if rest:
        for path, messages in rest_patient_errors(rest.get("patient")).items():
            errors.setdefault(path, []).extend(messages)
    return errors


def rest_patient_errors(spec) -> dict[str, list[str]]:
    """Field errors of a `rest.patient` block, which tells the REST transport
    where to read the target patient before writing (invariant 5):

    * `url`: relative to the connection's base URL (the URL documents are
      POSTed to), resolved as a link would be (RFC 3986): with base
      https://ehr.example/api/notes, `patients/{patient_id}` is
      https://ehr.example/api/patients/<id> and `/v2/patients/{patient_id}`
      https://ehr.example/v2/patients/<id>. Never another host: the read
      carries the connection's credentials. `{patient_id}` is required.
    * `identifier`, `birth_date`: dotted JSON paths into the answer."""
    if not isinstance(spec, dict):
        return {"rest.patient": ["Where to read the patient before writing is required (url, identifier, birth_date)."]}
    errors: dict[str, list[str]] = {}
    url = spec.get("url")
    if not isinstance(url, str) or PATIENT_ID_PLACEHOLDER not in url:
        errors["rest.patient.url"] = [f"A URL with {PATIENT_ID_PLACEHOLDER} in it, such as patients/{{patient_id}}."]
    else:
        probe = url.replace(PATIENT_ID_PLACEHOLDER, "x")
        parts = urlsplit(probe)
        if parts.scheme or parts.netloc or probe.startswith("//"):
            errors["rest.patient.url"] = ["Must be relative to the connection's base URL (no scheme or host)."]
        elif any(c in probe for c in "{}#\\") or any(c.isspace() for c in probe):
            errors["rest.patient.url"] = ["No braces (other than {patient_id}), '#', backslashes or spaces."]
    for name in ("identifier", "birth_date"):
        path = spec.get(name)
        if not isinstance(path, str) or not _PATH_RE.match(path):
            errors[f"rest.patient.{name}"] = [f"'{path}' is not a JSON path into the patient answer, such as id."]
    return errors


def mapping_diff(old: dict, new: dict, *, old_label: str = "old", new_label: str = "new") -> str:
    """A unified diff of two mapping documents (canonical JSON, sorted keys)."""
    a = json.dumps(old, indent=2, sort_keys=True).splitlines()
    b = json.dumps(new, indent=2, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, fromfile=old_label, tofile=new_label, lineterm=""))
