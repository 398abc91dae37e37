"""HL7 v2.5.1 MDM^T02 (original) and MDM^T10 (replacement for an amendment),
built with hl7apy (ehr-standards.md §5). TXA-12 is the note version id and
MSH-10 the delivery's control id: both stay the same on every resend, so the
receiver can deduplicate. hl7apy does not check table values, so TXA-2 and
TXA-17 are checked here."""

import re
from datetime import UTC, datetime

from hl7apy.core import Message

from integrations.builders import NoteInput, section_body
from integrations.errors import PayloadInvalid
from integrations.mapping import HL7_DOCUMENT_TYPES

SENDING_APP = "PSYFI"
_BR = "PSYFILINEBREAK7F3A"


def hl7_escape(text: str) -> str:
    """Escape HL7 delimiters; line breaks become \\.br\\ (one OBX per section)."""
    out = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("~", "\\R\\")
    out = out.replace("&", "\\T\\")
    # hl7apy would escape the backslashes of \.br\, so a placeholder stands
    # in for line breaks until the message is rendered.
    return out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", _BR)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%d%H%M%S")


_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def hl7_authority(authority: str) -> str:
    """An assigning authority as an HD (PID-3.4): an OID goes in HD-2 with
    HD-3 "ISO", anything else is a namespace id (HD-1). Blank is "EHR", the
    placeholder sent before connections named their authority."""
    if not authority:
        return "EHR"
    if _OID.match(authority):
        return f"&{authority}&ISO"
    return hl7_escape(authority)


# XCN-7 is an IS (20 characters); Membership.credentials may list several.
_DEGREE_MAX = 20


def _degree(credentials: str) -> str:
    """The credentials when they fit XCN-7, else the first one listed
    ("PsyD, LCSW, LMFT, CADC-II" -> "PsyD"), else none: a degree that does
    not fit must not stop the note (the text names the signer in full)."""
    credentials = credentials.strip()
    if len(hl7_escape(credentials)) <= _DEGREE_MAX:
        return credentials
    first = re.split(r"[,;/\s]+", credentials)[0]
    return first if len(hl7_escape(first)) <= _DEGREE_MAX else ""


def hl7_xcn(*, ehr_id: str, family: str, given: str, degree: str) -> list[str]:
    """An XCN (HL7 v2.5) as its components: 1 ID (the practitioner's EHR id,
    empty when unknown), 2 family name, 3 given name, 4 middle, 5 suffix,
    6 prefix, 7 degree (the credentials, e.g. PsyD). Built from the stored
    name parts, never parsed from a display name; trailing empties dropped."""
    components = [hl7_escape(v.strip()) for v in (ehr_id, family, given, "", "", "", _degree(degree))]
    while components and not components[-1]:
        components.pop()
    return components


def mdm_build(
    note: NoteInput,
    mapping: dict,
    *,
    control_id: str,
    now: datetime,
    receiving_app: str = "EHR",
    assigning_authority: str = "",
) -> str:
    """The ER7 wire text (segments separated by \\r). `now` is not used for
    any field that changes between resends: the message time is the signing
    time so a resend is byte-identical. `assigning_authority` is the patient
    id's domain at the EHR (PID-3.4, hl7_authority)."""
    hl7_map = mapping["hl7"]
    doc_type = hl7_map.get("document_type", "PN")
    if doc_type not in HL7_DOCUMENT_TYPES:
        raise PayloadInvalid(f"TXA-2 document type {doc_type!r} is not allowed.")
    event = "T10" if note.amends_version_id else "T02"
    signed = _ts(note.signed_at)
    # T02 and T10 share the MDM_T02 message structure (HL7 v2.5.1 ch. 9).
    msg = Message("MDM_T02", version="2.5.1")
    msg.msh.msh_3 = SENDING_APP
    msg.msh.msh_5 = hl7_escape(receiving_app)
    msg.msh.msh_7 = signed
    msg.msh.msh_9 = f"MDM^{event}^MDM_T02"
    msg.msh.msh_10 = control_id
    msg.msh.msh_11 = "P"
    msg.msh.msh_12 = "2.5.1"
    msg.msh.msh_15 = "AL"
    msg.msh.msh_16 = "NE"
    msg.msh.msh_18 = "UNICODE UTF-8"  # section labels and text are not ASCII-only
    msg.evn.evn_1 = event
    msg.evn.evn_2 = signed
    msg.pid.pid_3 = f"{hl7_escape(note.patient_ehr_id)}^^^{hl7_authority(assigning_authority)}^MR"
    msg.pid.pid_5 = f"{hl7_escape(note.patient_family_name)}^{hl7_escape(note.patient_given_name)}"
    msg.pid.pid_7 = note.patient_birth_date.replace("-", "")
    msg.pv1.pv1_2 = "O"
    xcn = hl7_xcn(
        ehr_id=note.clinician_ehr_id,
        family=note.clinician_family_name,
        given=note.clinician_given_name,
        degree=note.clinician_credentials,
    )
    clinician = "^".join(xcn)
    msg.txa.txa_1 = "1"
    msg.txa.txa_2 = doc_type
    msg.txa.txa_3 = "TX"
    msg.txa.txa_4 = _ts(note.session_start)
    msg.txa.txa_5 = clinician
    msg.txa.txa_6 = _ts(note.session_end)
    msg.txa.txa_9 = clinician
    msg.txa.txa_12 = f"{note.version_uuid}^{SENDING_APP}"
    if note.amends_version_id:
        msg.txa.txa_13 = f"{note.amends_version_id}^{SENDING_APP}"
    msg.txa.txa_17 = "LA"
    msg.txa.txa_18 = "R"
    msg.txa.txa_19 = "AV"
    # TXA-22 is a PPN: the XCN's 14 components, then 15 the time signed.
    authenticators = ["^".join([*xcn, *[""] * (14 - len(xcn)), signed])]
    if note.cosigner_name and note.cosigned_at is not None:
        # A co-signed note: the supervisor is the assigned authenticator
        # (TXA-10) and the second authentication (TXA-22 repeats, "~").
        cosigner = hl7_xcn(
            ehr_id=note.cosigner_ehr_id,
            family=note.cosigner_family_name,
            given=note.cosigner_given_name,
            degree=note.cosigner_credentials,
        )
        msg.txa.txa_10 = "^".join(cosigner)
        authenticators.append("^".join([*cosigner, *[""] * (14 - len(cosigner)), _ts(note.cosigned_at)]))
    msg.txa.txa_22 = authenticators[0]
    for more in authenticators[1:]:
        msg.txa.add_field("TXA_22").value = more  # a repetition; "~" in a value would be escaped
    layout = hl7_map.get("sections", {})
    for index, section in enumerate(note.sections, start=1):
        spec = layout.get(section.key) or {"code": section.key.upper(), "text": section.label, "system": "L"}
        group = msg.add_group("MDM_T02_OBXNTE_SUPPGRP")
        obx = group.add_segment("OBX")
        obx.obx_1 = str(index)
        obx.obx_2 = "TX"
        obx.obx_3 = f"{hl7_escape(spec['code'])}^{hl7_escape(spec['text'])}^{spec.get('system', 'LN')}"
        obx.obx_5 = hl7_escape(section_body(section))
        obx.obx_11 = "F"
    text = msg.to_er7().replace(_BR, "\\.br\\")
    mdm_check(text)
    return text


# TX (OBX-2) allows 65536 characters; hl7apy checks an OBX-5 of type
# "varies" as ST (199), which would refuse any longer section.
TX_MAX_LENGTH = 65536


def _obx_values_set_aside(text: str) -> str:
    """The message with each OBX-5 replaced by a placeholder once its own
    length is checked, so the strict parse checks everything else."""
    segments = text.split("\r")
    for i, segment in enumerate(segments):
        fields = segment.split("|")
        if fields[0] == "OBX" and len(fields) > 5:
            if len(fields[5]) > TX_MAX_LENGTH:
                raise PayloadInvalid(f"OBX-{fields[1]} text is longer than {TX_MAX_LENGTH} characters.")
            fields[5] = "TX"
            segments[i] = "|".join(fields)
    return "\r".join(segments)


def mdm_check(text: str) -> None:
    """Parse strictly with hl7apy and check the table values it ignores."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    try:
        parsed = parse_message(_obx_values_set_aside(text), validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    except Exception as exc:  # noqa: BLE001 - hl7apy raises many unrelated types
        raise PayloadInvalid(f"The HL7 message does not parse: {exc}") from exc
    txa = parsed.txa
    if txa.txa_17.to_er7() != "LA":
        raise PayloadInvalid("TXA-17 must be LA (legally authenticated).")
    if txa.txa_2.to_er7() not in HL7_DOCUMENT_TYPES:
        raise PayloadInvalid("TXA-2 is not an allowed document type.")


def pdq_query_build(
    *, patient_id: str, query_id: str, now: datetime, receiving_app: str = "EHR", assigning_authority: str = ""
) -> str:
    """IHE PDQ (ITI-21) QBP^Q22: "which patient has this identifier?", asked
    before an MDM is sent (invariant 5). `query_id` is both MSH-10 and the
    QPD-2 query tag; the caller makes it unique per query. RCP-2 asks for a
    few records so an ambiguous identifier shows up as several PIDs. With an
    `assigning_authority` the query names the id's domain too (PID-3.4 as
    hl7_authority writes it), for EHRs with several identifier domains."""
    msg = Message("QBP_Q21", version="2.5.1")
    msg.msh.msh_3 = SENDING_APP
    msg.msh.msh_5 = hl7_escape(receiving_app)
    msg.msh.msh_7 = _ts(now)
    msg.msh.msh_9 = "QBP^Q22^QBP_Q21"
    msg.msh.msh_10 = query_id
    msg.msh.msh_11 = "P"
    msg.msh.msh_12 = "2.5.1"
    msg.msh.msh_18 = "UNICODE UTF-8"
    msg.qpd.qpd_1 = "IHE PDQ Query"
    msg.qpd.qpd_2 = query_id
    parameters = [f"@PID.3.1^{hl7_escape(patient_id)}"]
    if assigning_authority:
        if _OID.match(assigning_authority):
            parameters += [f"@PID.3.4.2^{assigning_authority}", "@PID.3.4.3^ISO"]
        else:
            parameters.append(f"@PID.3.4.1^{hl7_escape(assigning_authority)}")
    msg.qpd.qpd_3 = parameters[0]
    msg.rcp.rcp_1 = "I"  # immediate
    msg.rcp.rcp_2 = "5^RD"
    text = msg.to_er7()
    if len(parameters) > 1:
        # IHE PDQ repeats QPD-3 (one repetition per parameter); hl7apy's
        # generic QBP_Q21 allows one, so the others are added to the text.
        qpd = f"|{parameters[0]}\r"
        text = text.replace(qpd, "|" + "~".join(parameters) + "\r", 1)
    return text
