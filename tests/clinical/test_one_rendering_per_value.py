"""Issue #12, point 4: the text the EHR receives says each value once.

The notes come from the real intake path (draft_ingest maps the scribe's
output onto the template, exactly as for a clinician's unedited draft); only
the envelope (who, when, identifiers) is fixed so the output can be compared
with golden files byte for byte. The golden files were written from this
output after reading it line by line; regenerate them with
PSYFI_GOLDEN_WRITE=1 only after the same hand check."""

import json
import os
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from integrations.builders import SectionInput, render_text, section_body
from integrations.builders.fhir import documentreference_build
from integrations.builders.hl7 import mdm_build
from integrations.builders.rest import rest_build
from integrations.models import Delivery
from integrations.services import delivery_mapping_document, note_input
from notes import services
from tests.factories import note_factory, note_sign_now

GOLDEN = Path(__file__).parent / "golden"
SIGNED = datetime(2026, 11, 24, 16, 2, tzinfo=UTC)

CUSTOM = {
    "key": "intake_summary",
    "name": "Intake summary",
    "kind": "custom",
    # Several fields feed one text section, codes included: the case where a
    # text section carries a risk level, diagnosis codes and interventions.
    "sections": [
        {"key": "presentation", "label": "Presentation", "kind": "text", "required": True, "loinc_code": ""},
        {"key": "formulation", "label": "Formulation", "kind": "text", "required": True, "loinc_code": ""},
        {"key": "plan", "label": "Plan", "kind": "text", "required": True, "loinc_code": "18776-5"},
    ],
    "field_map": {
        "client_reported_symptoms": "presentation",
        "clinician_observations": "presentation",
        "clinical_impressions": "formulation",
        "risk_assessment": "formulation",
        "diagnosis_codes": "formulation",
        "next_steps": "plan",
        "interventions": "plan",
    },
}


def _signed_input(world, template_key: str):
    """A signed, unedited note through the real path, as its builders get it."""
    if template_key == CUSTOM["key"]:
        services.template_create(practice=world.practice, spec=CUSTOM)
    note = note_sign_now(
        note_factory(practice=world.practice, clinician=world.clinician, template_key=template_key), world.clinician
    )
    delivery = Delivery.objects.get(note=note)
    data = replace(
        note_input(delivery),
        lineage=uuid.UUID("8c2d0d8e-3b7a-4f5e-9d0b-6a1c2e4f9a10"),
        patient_ehr_id="PAT123",
        patient_family_name="Doe",
        patient_given_name="Jane",
        patient_birth_date="1990-04-12",
        clinician_name="Alex Smith, PsyD",
        clinician_ehr_id="456",
        signed_at=SIGNED,
        session_start=SIGNED - timedelta(hours=1),
        session_end=SIGNED - timedelta(minutes=10),
    )
    return data, delivery_mapping_document(delivery)


def _golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PSYFI_GOLDEN_WRITE"):
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8")


def _fhir_text(data, mapping) -> str:
    import base64

    resource = documentreference_build(data, mapping, now=SIGNED)
    return base64.b64decode(resource["content"][0]["attachment"]["data"]).decode()


def _obx(data, mapping) -> str:
    message = mdm_build(data, mapping, control_id="PSYFI000000000001", now=SIGNED)
    return "\n".join(seg for seg in message.split("\r") if seg.startswith("OBX")) + "\n"


def _rest(data, mapping) -> str:
    return json.dumps(rest_build(data, mapping, now=SIGNED), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("template_key", ["soap", "dap", CUSTOM["key"]])
def test_the_fhir_attachment_text_matches_its_golden_file(world, template_key):
    data, mapping = _signed_input(world, template_key)
    _golden(f"{template_key}.fhir.txt", _fhir_text(data, mapping))


@pytest.mark.parametrize("template_key", ["soap", "dap", CUSTOM["key"]])
def test_the_hl7_obx_segments_match_their_golden_file(world, template_key):
    data, mapping = _signed_input(world, template_key)
    _golden(f"{template_key}.hl7-obx.txt", _obx(data, mapping))


@pytest.mark.parametrize("template_key", ["soap", "dap", CUSTOM["key"]])
def test_the_rest_document_matches_its_golden_file(world, template_key):
    data, mapping = _signed_input(world, template_key)
    _golden(f"{template_key}.rest.json", _rest(data, mapping))


@pytest.mark.parametrize("template_key", ["soap", "dap", CUSTOM["key"]])
def test_an_unedited_note_states_each_structured_value_once_in_every_format(world, template_key):
    data, mapping = _signed_input(world, template_key)
    texts = {
        "fhir": _fhir_text(data, mapping),
        "hl7": _obx(data, mapping),
        "rest": json.loads(_rest(data, mapping))["text"],
    }
    for kind, text in texts.items():
        assert len(re.findall(r"\bCBT\b", text)) == 1, kind
        assert len(re.findall(r"Behavioral activation", text)) == 1, kind  # the assessment says "behavioral"
        assert len(re.findall(r"F33\.1", text)) == 1, kind
        assert len(re.findall(r"\blow\b", text)) == 1, kind  # "Risk level: low." and never a bare "low"
        assert "Major depressive disorder, recurrent, moderate" in text, kind


def test_the_three_formats_carry_the_same_section_text(world):
    data, mapping = _signed_input(world, "soap")
    fhir = _fhir_text(data, mapping)
    obx = mdm_build(data, mapping, control_id="PSYFI000000000001", now=SIGNED).split("\r")
    rest = json.loads(_rest(data, mapping))
    for section in data.sections:
        body = section_body(section)
        assert f"\n{body}\n" in fhir
        assert rest["text"] == fhir
        escaped = body.replace("\n", "\\.br\\")
        assert any(seg.startswith("OBX") and seg.split("|")[5] == escaped for seg in obx), section.key


def test_a_code_the_clinician_took_out_of_the_text_is_still_said_once_in_the_same_format():
    # The chip stays (it was signed); the text no longer states it.
    diagnoses = SectionInput(
        "diagnoses",
        "Diagnoses",
        "Rule out GAD at next visit.",
        ("F33.1",),
        kind="diagnosis_codes",
        code_labels=("Major depressive disorder, recurrent, moderate",),
    )
    assert section_body(diagnoses) == (
        "Rule out GAD at next visit.\nF33.1 Major depressive disorder, recurrent, moderate"
    )
    risk = SectionInput("risk", "Risk", "Denies SI/HI. Protective factors: family.", ("moderate",), kind="risk")
    assert section_body(risk) == "Risk level: moderate\nDenies SI/HI. Protective factors: family."
    interventions = SectionInput(
        "interventions", "Interventions", "Trauma-focused CBT", ("CBT", "Trauma-focused CBT"), kind="interventions"
    )
    # "CBT" inside "Trauma-focused CBT" is not the CBT chip.
    assert section_body(interventions) == "Trauma-focused CBT\nCBT"


def test_a_section_with_neither_text_nor_codes_says_none_once(world):
    data, mapping = _signed_input(world, "soap")
    empty = replace(data, sections=(SectionInput("plan", "Plan", "  "),))
    assert "Plan\n(none)\n\n" in render_text(empty, mapping)
