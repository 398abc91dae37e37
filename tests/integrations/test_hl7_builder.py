from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from integrations.builders import SectionInput
from integrations.builders.hl7 import mdm_build, pdq_query_build
from integrations.mapping import mapping_default_document
from tests.integrations.test_fhir_builder import SECTIONS, SIGNED, note_input


def build(**overrides) -> str:
    return mdm_build(
        note_input(**overrides), mapping_default_document(SECTIONS), control_id="PSYFI000000000007", now=SIGNED
    )


def test_an_mdm_t02_parses_strictly_with_one_obx_per_section():
    message = parse_message(build(), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.msh.msh_9.to_er7() == "MDM^T02^MDM_T02"
    assert message.msh.msh_10.to_er7() == "PSYFI000000000007"
    assert message.txa.txa_17.to_er7() == "LA"
    assert message.txa.txa_2.to_er7() == "PN"
    assert message.txa.txa_12.to_er7() == f"{note_input().version_uuid}^PSYFI"
    obx = [s for s in build().split("\r") if s.startswith("OBX")]
    assert len(obx) == 3
    assert obx[0].startswith("OBX|1|TX|61150-9^Subjective^LN||Client reports better sleep.")


def test_a_resend_is_byte_identical():
    assert build() == build()


def test_delimiters_and_line_breaks_in_text_are_escaped():
    sections = (SectionInput("subjective", "Subjective", "a|b^c&d~e\\f\nnext line"),)
    text = build(sections=sections)
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    obx = [s for s in text.split("\r") if s.startswith("OBX")][0]
    assert obx.split("|")[5] == "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\next line"


def test_an_amendment_is_an_mdm_t10_with_the_parent_document():
    text = build(version=2, amends_version_id="parent-uuid", amends_ehr_id="x")
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.msh.msh_9.to_er7() == "MDM^T10^MDM_T02"
    assert message.txa.txa_13.to_er7() == "parent-uuid^PSYFI"


def test_a_pdq_query_is_a_qbp_q22_asking_for_the_patient_id():
    text = pdq_query_build(patient_id="PAT00042", query_id="PDQ0123456789ABCDEF0", now=SIGNED)
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.msh.msh_9.to_er7() == "QBP^Q22^QBP_Q21"
    assert message.msh.msh_10.to_er7() == "PDQ0123456789ABCDEF0"
    assert message.msh.msh_7.to_er7() == "20261124160200"
    assert message.qpd.qpd_1.to_er7() == "IHE PDQ Query"
    assert message.qpd.qpd_2.to_er7() == "PDQ0123456789ABCDEF0"
    assert message.qpd.qpd_3.to_er7() == "@PID.3.1^PAT00042"
    assert message.rcp.rcp_1.to_er7() == "I"


def test_delimiters_in_the_queried_patient_id_are_escaped():
    text = pdq_query_build(patient_id="A|B^C", query_id="PDQ1", now=SIGNED)
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    qpd = [s for s in text.split("\r") if s.startswith("QPD")][0]
    assert qpd.split("|")[3] == "@PID.3.1^A\\F\\B\\S\\C"
