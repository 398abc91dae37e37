"""FHIR R4 views of the audit trail, as plain dicts (ehr-standards.md §2.4-2.7).

- `provenance_for_note`: the sign-off Provenance of a signed note version:
  the AI scribe (a contained Device with its model and version) as author of
  the draft, the clinician as author of the final text and as verifier and
  legal authenticator, and the signature with its time.
- `auditevent_for_delivery_event`: one BALP-like AuditEvent (IHE Basic Audit
  Log Patterns, PatientCreate shape) per delivery event of our log.

Pure functions: everything comes in as arguments. The tests validate the
output with fhir.resources' R4B models.
"""

from datetime import datetime

from django.conf import settings

CS_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
CS_AI_DEVICE = "http://hl7.org/fhir/uv/aitransparency/CodeSystem/AIdeviceTypeCS"
CS_OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
CS_DOC_COMPLETION = "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion"
CS_SIGNATURE = "urn:iso-astm:E1762-95:2013"
SYSTEM_USER = "urn:psyfi-review:user"
SYSTEM_AI_SOURCE = "urn:psyfi-review:ai-source"
SYSTEM_APP = "urn:psyfi-review:application"
DEVICE_ID = "ai-scribe"


def _instant(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _coding(system: str, code: str, display: str = "") -> dict:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def person_reference(user) -> dict:
    """The EHR's Practitioner when we know its id, else our own user identifier."""
    name = user.get_full_name() or user.get_username()
    membership = getattr(user, "membership", None)
    ehr_id = getattr(membership, "ehr_practitioner_id", "") if membership is not None else ""
    if ehr_id:
        return {"reference": f"Practitioner/{ehr_id}", "display": name}
    return {"identifier": {"system": SYSTEM_USER, "value": str(user.pk)}, "display": name}


def note_identifier(note) -> dict:
    """The identifier the EHR copy carries (the same as the delivery builders use)."""
    return {"system": settings.PSYFI_IDENTIFIER_SYSTEM, "value": f"{note.lineage}:{note.version}"}


def ai_device(*, ai_source, model_name: str, model_version: str) -> dict:
    """The AI scribe as an AI-Device (AI Transparency on FHIR)."""
    device = {
        "resourceType": "Device",
        "id": DEVICE_ID,
        "identifier": [{"system": SYSTEM_AI_SOURCE, "value": str(ai_source.pk)}],
        "type": {"coding": [_coding(CS_AI_DEVICE, "Artificial-Intelligence")]},
        "deviceName": [{"name": ai_source.name, "type": "manufacturer-name"}],
    }
    if ai_source.vendor:
        device["manufacturer"] = ai_source.vendor
    if model_name:
        device["deviceName"].append({"name": model_name, "type": "model-name"})
        device["modelNumber"] = model_name
    if model_version:
        device["version"] = [{"value": model_version}]
    return device


def provenance_for_note(*, note, attribution=None, previous=None) -> dict:
    """The sign-off Provenance of a signed note version. `attribution` (an
    audit.NoteAttribution) adds the AI/clinician character shares to the
    agents' text; `previous`, the version this one amends, becomes a
    `revision` entity."""
    draft = note.draft
    signer = person_reference(note.signed_by)
    author = person_reference(note.clinician)
    ai_agent = {
        "type": {"coding": [_coding(CS_PARTICIPANT, "author", "Author")]},
        "role": [{"coding": [_coding(CS_AI_DEVICE, "Artificial-Intelligence")], "text": "Drafted the note"}],
        "who": {"reference": f"#{DEVICE_ID}", "display": draft.ai_source.name},
    }
    clinician_agent = {
        "type": {"coding": [_coding(CS_PARTICIPANT, "author", "Author")]},
        "role": [{"text": "Reviewed, edited and finalised the text"}],
        "who": author,
    }
    if attribution is not None:
        ai_agent["role"][0]["text"] = (
            f"Drafted the note; {attribution.ai_percent}% of the signed text is AI-generated and kept"
        )
        clinician_agent["role"][0]["text"] = (
            f"Reviewed and finalised the text; wrote {attribution.clinician_percent}% of the signed text"
        )
    entity = [
        {
            "role": "source",
            "what": {
                "identifier": {"system": SYSTEM_AI_SOURCE, "value": f"draft:{draft.pk}"},
                "display": "AI draft as received",
            },
        }
    ]
    if previous is not None:
        entity.append({"role": "revision", "what": {"identifier": note_identifier(previous)}})
    device = ai_device(ai_source=draft.ai_source, model_name=draft.model_name, model_version=draft.model_version)
    return {
        "resourceType": "Provenance",
        "contained": [device],
        "target": [{"type": "DocumentReference", "identifier": note_identifier(note)}],
        "occurredPeriod": {"start": _instant(draft.received_at), "end": _instant(note.signed_at)},
        "recorded": _instant(note.signed_at),
        "reason": [{"coding": [_coding(CS_OBSERVATION_VALUE, "AIAST", "Artificial Intelligence asserted")]}],
        "activity": {"coding": [_coding(CS_DOC_COMPLETION, "LA", "legally authenticated")]},
        "agent": [
            ai_agent,
            clinician_agent,
            {"type": {"coding": [_coding(CS_PARTICIPANT, "verifier", "Verifier")]}, "who": signer},
            {"type": {"coding": [_coding(CS_PARTICIPANT, "legal", "Legal Authenticator")]}, "who": signer},
        ],
        "entity": entity,
        "signature": [
            {
                "type": [
                    _coding(CS_SIGNATURE, "1.2.840.10065.1.12.1.1", "Author's Signature"),
                    _coding(CS_SIGNATURE, "1.2.840.10065.1.12.1.5", "Verification Signature"),
                ],
                "when": _instant(note.signed_at),
                "who": signer,
                "targetFormat": "application/fhir+json",
            }
        ],
    }


# Our delivery states (and the outcome words of the delivery ledger) -> R4
# AuditEvent.outcome: 0 success, 4 minor failure (will retry), 8 serious
# failure (needs a person), 12 major failure.
_OUTCOME = {
    "delivered": "0",
    "sent": "0",
    "reconciled": "0",
    "pending": "0",
    "sending": "0",
    "retrying": "4",
    "retry": "4",
    "unknown": "4",
    "not_found": "4",
    "failed": "8",
}


def _event_state(event) -> str:
    for source in (event.after or {}, event.detail or {}):
        if isinstance(source, dict):
            for key in ("outcome", "state"):
                if isinstance(source.get(key), str):
                    return source[key]
    return ""


def auditevent_for_delivery_event(*, event, delivery, note, destination: str = "") -> dict:
    """One AuditEvent for one `delivery.*` event of our log. The Delivery row
    supplies what the event does not carry (EHR id, last error); fields added
    to it later are simply not used. No PHI goes into free text."""
    state = _event_state(event)
    outcome = _OUTCOME.get(state, "0")
    is_replacement = note.amends_id is not None
    agents = [
        {
            "type": {"coding": [_coding("http://dicom.nema.org/resources/ontology/DCM", "110153", "Source Role ID")]},
            "who": {"identifier": {"system": SYSTEM_APP, "value": "psyfi-review"}, "display": event.actor_label},
            "requestor": False,
        },
        {
            "type": {
                "coding": [_coding("http://dicom.nema.org/resources/ontology/DCM", "110152", "Destination Role ID")]
            },
            "who": {"identifier": {"value": destination or "EHR"}},
            "requestor": False,
        },
    ]
    if note.signed_by_id is not None:
        agents.append(
            {
                "type": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "AUT")]},
                "who": person_reference(note.signed_by),
                "requestor": True,
            }
        )
    ehr_id = ""
    for source in (event.after or {}, event.detail or {}):
        if isinstance(source, dict) and isinstance(source.get("ehr_id"), str) and source["ehr_id"]:
            ehr_id = source["ehr_id"]
    ehr_id = ehr_id or (delivery.ehr_id if state in ("delivered", "sent", "reconciled") else "")
    data_entity = {
        "what": {"reference": f"DocumentReference/{ehr_id}"} if ehr_id else {"identifier": note_identifier(note)},
        "type": _coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
        "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "4", "Domain Resource"),
    }
    entities = [data_entity]
    if note.client.ehr_patient_id:
        entities.append(
            {
                "what": {"reference": f"Patient/{note.client.ehr_patient_id}"},
                "type": _coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"),
                "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient"),
            }
        )
    if event.request_id:
        entities.append(
            {
                "what": {"identifier": {"value": event.request_id}},
                "type": _coding("https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType", "XrequestId"),
            }
        )
    resource = {
        "resourceType": "AuditEvent",
        "id": f"psyfi-audit-{event.pk}",
        "meta": {"profile": ["https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientCreate"]},
        "type": _coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "Restful Operation"),
        "subtype": [_coding("http://hl7.org/fhir/restful-interaction", "update" if is_replacement else "create")],
        "action": "U" if is_replacement else "C",
        "recorded": _instant(event.created_at),
        "outcome": outcome,
        "agent": agents,
        "source": {
            "observer": {"display": "psyfi-review delivery worker"},
            "type": [_coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server")],
        },
        "entity": entities,
    }
    if outcome != "0":
        # The state only: last_error can quote the EHR's answer, which may hold PHI.
        resource["outcomeDesc"] = f"{event.action}: {state or 'unknown'} after {delivery.attempts} attempt(s)"
    return resource
