import base64
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.provenance import Provenance

from integrations.builders import NoteInput, SectionInput
from integrations.builders.fhir import documentreference_build, documentreference_check, provenance_build
from integrations.errors import PayloadInvalid
from integrations.mapping import mapping_default_document

SIGNED = datetime(2026, 11, 24, 16, 2, tzinfo=UTC)
SECTIONS = [
    {"key": "subjective", "label": "Subjective", "loinc_code": "61150-9"},
    {"key": "assessment", "label": "Assessment", "loinc_code": "51848-0"},
    {"key": "diagnoses", "label": "Assessment · diagnosis codes", "loinc_code": ""},
]


def note_input(**overrides) -> NoteInput:
    values = dict(
        lineage=uuid.UUID("8c2d0d8e-3b7a-4f5e-9d0b-6a1c2e4f9a10"),
        version=1,
        sections=(
            SectionInput("subjective", "Subjective", "Client reports better sleep."),
            SectionInput("assessment", "Assessment", "Improving."),
            SectionInput("diagnoses", "Assessment · diagnosis codes", "", ("F33.1",), kind="diagnosis_codes"),
        ),
        patient_ehr_id="PAT123",
        patient_family_name="Doe",
        patient_given_name="Jane",
        patient_birth_date="1990-04-12",
        synthetic=False,
        clinician_name="Alex Smith, PsyD",
        clinician_ehr_id="456",
        signed_at=SIGNED,
        session_start=SIGNED - timedelta(hours=1),
        session_end=SIGNED - timedelta(minutes=10),
        model_name="scribe-llm",
        model_version="2.3",
        ai_source_name="Demo Scribe",
        identifier_system="urn:psyfi-review:test:note-id",
    )
    values.update(overrides)
    return NoteInput(**values)


def build(**overrides) -> dict:
    return documentreference_build(note_input(**overrides), mapping_default_document(SECTIONS), now=SIGNED)


def test_the_document_reference_validates_as_r4_with_the_mapping_codes():
    resource = build()
    DocumentReference.model_validate({k: v for k, v in resource.items() if k != "resourceType"})
    assert resource["status"] == "current" and resource["docStatus"] == "final"
    assert [c["code"] for c in resource["type"]["coding"]] == ["34904-3", "11506-3"]
    assert resource["category"][0]["coding"][0]["code"] == "clinical-note"
    assert resource["subject"] == {"reference": "Patient/PAT123"}
    assert resource["author"][0]["reference"] == "Practitioner/456"
    assert resource["authenticator"]["reference"] == "Practitioner/456"
    assert resource["date"] == "2026-11-24T16:02:00Z"
    assert resource["context"]["period"] == {"start": "2026-11-24T15:02:00Z", "end": "2026-11-24T15:52:00Z"}
    assert resource["meta"]["security"][0]["code"] == "AIAST"
    assert "relatesTo" not in resource


def test_the_identifier_is_stable_for_note_and_version():
    a, b = build(), build()
    assert a == b  # pure: same input, same output
    assert a["identifier"] == [{"system": "urn:psyfi-review:test:note-id", "value": f"{note_input().lineage}:1"}]
    assert a["masterIdentifier"]["value"].startswith("urn:uuid:")
    assert build(version=2)["identifier"][0]["value"].endswith(":2")
    assert build(version=2)["masterIdentifier"] != a["masterIdentifier"]


def test_the_text_has_section_headings_and_the_attestation_line():
    text = base64.b64decode(build()["content"][0]["attachment"]["data"]).decode()
    assert text.index("Subjective\nClient reports better sleep.") < text.index("Assessment\nImproving.")
    assert "F33.1" in text
    assert text.strip().endswith(
        "Drafted with AI assistance (scribe-llm 2.3); reviewed, edited and signed by Alex Smith, PsyD, "
        "2026-11-24 16:02 UTC"
    )
    assert build()["content"][0]["attachment"]["contentType"] == "text/plain; charset=utf-8"


def test_a_synthetic_client_carries_the_htest_label():
    codes = [c["code"] for c in build(synthetic=True)["meta"]["security"]]
    assert codes == ["AIAST", "HTEST"]


def test_an_amendment_replaces_the_earlier_document():
    resource = build(version=2, amends_ehr_id="doc-1001", amends_version_id="x", amendment_reason="typo")
    assert resource["relatesTo"] == [{"code": "replaces", "target": {"reference": "DocumentReference/doc-1001"}}]
    assert resource["docStatus"] == "amended"


def test_bad_codes_that_fhir_resources_accepts_are_refused_by_our_check():
    resource = build()
    resource["status"] = "bogus"
    DocumentReference.model_validate({k: v for k, v in resource.items() if k != "resourceType"})  # passes
    with pytest.raises(PayloadInvalid, match="status must be current"):
        documentreference_check(resource)
    resource = build()
    resource["content"][0]["attachment"]["contentType"] = "text/html"
    with pytest.raises(PayloadInvalid, match="contentType"):
        documentreference_check(resource)


def test_a_missing_patient_id_is_refused():
    with pytest.raises(PayloadInvalid, match="subject"):
        build(patient_ehr_id="")


def test_the_provenance_names_the_ai_device_and_the_verifying_clinician():
    resource = provenance_build(note_input(), target_reference="DocumentReference/doc-1", now=SIGNED)
    Provenance.model_validate({k: v for k, v in resource.items() if k != "resourceType"})
    roles = {a["type"]["coding"][0]["code"]: a["who"] for a in resource["agent"]}
    assert roles["author"]["reference"] == "#ai-scribe"
    assert roles["verifier"]["reference"] == "Practitioner/456"
    assert resource["contained"][0]["modelNumber"] == "scribe-llm"
    assert resource["reason"][0]["coding"][0]["code"] == "AIAST"


def test_diagnosis_codes_travel_as_icd10cm_codings_the_note_relates_to():
    resource = build()
    [condition] = [c for c in resource["contained"] if c["resourceType"] == "Condition"]
    assert condition["code"]["coding"] == [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F33.1"}]
    assert resource["context"]["related"] == [{"reference": f"#{condition['id']}"}]
    DocumentReference.model_validate({k: v for k, v in resource.items() if k != "resourceType"})


def test_a_note_without_diagnoses_carries_no_conditions():
    data = note_input()
    resource = documentreference_build(
        replace(data, sections=tuple(s for s in data.sections if s.kind != "diagnosis_codes")),
        mapping_default_document(SECTIONS),
        now=SIGNED,
    )
    assert "contained" not in resource and "related" not in resource["context"]
