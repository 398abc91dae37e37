"""FHIR R4 payloads (MAPPING.md §3): a US Core clinical-note DocumentReference
and a Provenance recording the AI involvement. Validated with fhir.resources'
R4B models for structure, plus our own checks of the required codes, which
those models do not check (ehr-standards.md §6)."""

import base64
import hashlib
from datetime import UTC, datetime

from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.provenance import Provenance
from pydantic import ValidationError

from integrations.builders import NoteInput, render_text
from integrations.errors import PayloadInvalid
from integrations.mapping import ALLOWED_CATEGORIES, CATEGORY_SYSTEM

OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONTENT_TYPE = "text/plain; charset=utf-8"
AIAST = {"system": OBSERVATION_VALUE, "code": "AIAST", "display": "Artificial Intelligence asserted"}
# Synthetic (sandbox) clients: HL7 "test health data" label.
HTEST = {"system": ACT_REASON, "code": "HTEST", "display": "test health data"}
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def attachment_hash(data_b64: str) -> str:
    """FHIR Attachment.hash: base64 SHA-1 of the data; also what
    reconciliation compares."""
    return base64.b64encode(hashlib.sha1(base64.b64decode(data_b64)).digest()).decode()  # noqa: S324 - FHIR mandates SHA-1


def _cosigner(note: NoteInput) -> dict | None:
    if not note.cosigner_name:
        return None
    reference = {"display": note.cosigner_name}
    if note.cosigner_ehr_id:
        reference["reference"] = f"Practitioner/{note.cosigner_ehr_id}"
    return reference


def documentreference_build(note: NoteInput, mapping: dict, *, now: datetime) -> dict:
    """The DocumentReference for one signed note version. Raises
    PayloadInvalid if the result would not pass our checks."""
    fhir_map = mapping["fhir"]
    text = render_text(note, mapping)
    data = base64.b64encode(text.encode("utf-8")).decode()
    security = [AIAST] + ([HTEST] if note.synthetic else [])
    practitioner = f"Practitioner/{note.clinician_ehr_id}" if note.clinician_ehr_id else None
    author = {"display": note.clinician_name}
    if practitioner:
        author["reference"] = practitioner
    resource = {
        "resourceType": "DocumentReference",
        "meta": {"security": security},
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{note.version_uuid}"},
        "identifier": [{"system": note.identifier_system, "value": note.identifier_value}],
        "status": "current",
        "docStatus": "amended" if note.amends_ehr_id else "final",
        "type": {"coding": fhir_map["type"], "text": fhir_map.get("type_text") or "Progress note"},
        "category": [
            {"coding": [{"system": CATEGORY_SYSTEM, "code": fhir_map["category"], "display": "Clinical Note"}]}
        ],
        "subject": {"reference": f"Patient/{note.patient_ehr_id}"},
        "date": _instant(note.signed_at),
        "author": [author],
        # The legal authenticator: the supervisor when the note needed a co-signature.
        "authenticator": _cosigner(note) or dict(author),
        "content": [
            {
                "attachment": {
                    "contentType": CONTENT_TYPE,
                    "language": "en-US",
                    "data": data,
                    "size": len(base64.b64decode(data)),
                    "hash": attachment_hash(data),
                    "title": f"{fhir_map.get('type_text') or 'Progress note'} {note.session_start.date().isoformat()}",
                    "creation": _instant(note.signed_at),
                }
            }
        ],
        "context": {"period": {"start": _instant(note.session_start), "end": _instant(note.session_end)}},
    }
    if note.diagnosis_codes:
        # The diagnoses addressed, as ICD-10-CM codings (MAPPING.md §3): contained
        # Conditions the note relates to. The note text carries them too, for
        # EHRs that ignore contained resources.
        resource["contained"] = [
            {
                "resourceType": "Condition",
                "id": f"dx{i}",
                "code": {"coding": [{"system": ICD10CM, "code": code}]},
                "subject": {"reference": f"Patient/{note.patient_ehr_id}"},
            }
            for i, code in enumerate(note.diagnosis_codes, start=1)
        ]
        resource["context"]["related"] = [{"reference": f"#dx{i}"} for i in range(1, len(note.diagnosis_codes) + 1)]
    if note.amends_ehr_id:
        resource["relatesTo"] = [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{note.amends_ehr_id}"}}
        ]
    documentreference_check(resource)
    return resource


def documentreference_check(resource: dict) -> None:
    """Structure via fhir.resources R4B, then the required codes it lets
    through. Raises PayloadInvalid with the first problems found."""
    problems = []
    try:
        DocumentReference.model_validate({k: v for k, v in resource.items() if k != "resourceType"})
    except ValidationError as exc:
        problems.extend(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
    if resource.get("status") != "current":
        problems.append("status must be current")
    if resource.get("docStatus") not in ("final", "amended"):
        problems.append("docStatus must be final or amended")
    codes = {c.get("code") for cat in resource.get("category", []) for c in cat.get("coding", [])}
    if not codes & ALLOWED_CATEGORIES:
        problems.append("category must include clinical-note")
    if not resource.get("type", {}).get("coding"):
        problems.append("type needs at least one coding")
    for rel in resource.get("relatesTo", []):
        if rel.get("code") != "replaces":
            problems.append("relatesTo.code must be replaces")
    for content in resource.get("content", []):
        if content.get("attachment", {}).get("contentType") != CONTENT_TYPE:
            problems.append(f"attachment contentType must be {CONTENT_TYPE}")
    if (
        not str(resource.get("subject", {}).get("reference", "")).startswith("Patient/")
        or resource.get("subject", {}).get("reference") == "Patient/"
    ):
        problems.append("subject must reference the client's EHR Patient")
    for contained in resource.get("contained", []):
        if contained.get("resourceType") == "Condition":
            for coding in contained.get("code", {}).get("coding", []):
                if coding.get("system") != ICD10CM or not coding.get("code"):
                    problems.append("diagnosis codings must be ICD-10-CM")
    if problems:
        raise PayloadInvalid("The DocumentReference is not valid: " + "; ".join(problems))


def provenance_build(note: NoteInput, *, target_reference: str, now: datetime) -> dict:
    """Provenance after the AI Transparency on FHIR guide: the AI scribe as a
    Device author, the clinician as verifier and legal signer. Kept in our
    records; sent only to EHRs that declare Provenance support."""
    clinician = {"display": note.clinician_name}
    if note.clinician_ehr_id:
        clinician["reference"] = f"Practitioner/{note.clinician_ehr_id}"
    resource = {
        "resourceType": "Provenance",
        "contained": [
            {
                "resourceType": "Device",
                "id": "ai-scribe",
                "type": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/uv/aitransparency/CodeSystem/AIdeviceTypeCS",
                            "code": "Artificial-Intelligence",
                        }
                    ]
                },
                "deviceName": [
                    {"name": note.ai_source_name or "AI scribe", "type": "manufacturer-name"},
                    {"name": note.model_name or "unknown", "type": "model-name"},
                ],
                "modelNumber": note.model_name or "unknown",
                "version": [{"value": note.model_version or "unknown"}],
            }
        ],
        "target": [{"reference": target_reference}],
        "recorded": _instant(note.signed_at),
        "reason": [{"coding": [AIAST]}],
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion",
                    "code": "LA",
                    "display": "legally authenticated",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                        }
                    ]
                },
                "who": {"reference": "#ai-scribe", "display": note.model_label},
            },
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "verifier",
                        }
                    ]
                },
                "who": clinician,
            },
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "legal"}
                    ]
                },
                "who": dict(clinician),
            },
        ],
    }
    try:
        Provenance.model_validate({k: v for k, v in resource.items() if k != "resourceType"})
    except ValidationError as exc:
        raise PayloadInvalid(f"The Provenance is not valid: {exc.errors()[0]['msg']}") from exc
    return resource
