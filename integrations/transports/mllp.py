"""HL7 v2 over MLLP with python-hl7's asyncio client (mllps:// is MLLP over
TLS 1.2+ with verified certificates; plain mllp:// only on loopback). The
connection goes through the egress policy (integrations.egress): the host is
resolved once, checked, and the checked address is dialled, with TLS naming
the host (SNI and certificate check). AA
completes; AE/AR fail with the receiver's reason; no answer means resend
with the same MSH-10 and TXA-12, which the receiver deduplicates on.

Invariant 5 is kept in one of two ways, per connection
(EHRConnection.hl7_patient_check). `pdq`: before an MDM, patient_check asks
the EHR's IHE PDQ supplier (QBP^Q22, answered by RSP^K22) who has the patient
id (in the connection's assigning authority, if any), and compares the date
of birth; pdq_answer_check reads that answer without I/O. `receiver`: the MDM
carries PID-3 with the assigning authority, PID-5 and PID-7, the receiver
refuses a patient it does not know, and mdm_send reads an AE/AR that names
the patient as a patient mismatch."""

import asyncio
import ssl
from urllib.parse import urlparse

import hl7
from hl7.mllp import open_hl7_connection

from integrations.egress import stream_open
from integrations.transports.base import Outcome, failed, retry, sent

__all__ = ["Outcome", "mdm_send", "patient_check", "pdq_answer_check"]


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _exchange(host: str, port: int, message: str, timeout: float, tls: bool) -> str:
    reader, writer = await asyncio.wait_for(
        stream_open(open_hl7_connection, host, port, ssl=_tls_context() if tls else None, encoding="utf-8"), timeout
    )
    try:
        writer.writemessage(hl7.parse(message))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readmessage(), timeout)
        return str(ack)
    finally:
        writer.close()


def _send_and_read(url: str, message: str, timeout: float) -> str:
    """One exchange with the receiver at mllp(s)://host:port: the answer's
    text. Raises EgressRefused when the policy refuses the host (a delivery
    that fails for good), OSError or EOFError when there is no answer."""
    parsed = urlparse(url)
    return asyncio.run(_exchange(parsed.hostname, parsed.port or 2575, message, timeout, tls=parsed.scheme == "mllps"))


def mdm_send(*, url: str, message: str, control_id: str, timeout: float, patient_id: str = "") -> Outcome:
    """AA/CA: sent. AE/AR: failed for good with the receiver's text (MSA-3,
    else ERR-8); when the refusal names the patient (ack_names_patient) it is
    a patient mismatch. No answer, or one that cannot be read: resend."""
    try:
        ack_text = _send_and_read(url, message, timeout)
    except ConnectionRefusedError as exc:
        return retry(f"HL7 receiver unreachable: {exc}", alert="unreachable")
    except (OSError, EOFError) as exc:  # TimeoutError, a closed connection: no ACK
        return retry(f"No acknowledgement from the HL7 receiver ({type(exc).__name__}); resending with the same ids")
    try:
        ack = hl7.parse(ack_text)
        msa = ack.segment("MSA")
    except (KeyError, hl7.ParseException, IndexError):
        return retry("The HL7 acknowledgement could not be read; resending with the same ids")
    code = str(msa[1])
    if str(msa[2]) != control_id:
        return retry(f"The acknowledgement is for another message ({msa[2]}); resending")
    if code in ("AA", "CA"):
        return sent(control_id)
    text = str(msa[3]) if len(msa) > 3 else ""
    try:
        err = ack.segment("ERR")
        text = text or str(err[8] if len(err) > 8 else err)
    except KeyError:
        pass
    if ack_names_patient(ack, text=text, patient_id=patient_id):
        return failed(
            f"HL7 receiver answered {code} about the patient: {text or 'no reason given'}. Nothing was written; "
            "check the client's EHR id, name and date of birth against the EHR.",
            alert="patient_mismatch",
        )
    return failed(f"HL7 receiver answered {code}: {text or 'no reason given'}", permanent=True)


def ack_names_patient(ack, *, text: str, patient_id: str) -> bool:
    """Whether a refusal is about the patient: an ERR located in PID (ERR-2
    or the v2.3 ERR-1), or a reason that says "patient" or carries the
    patient id. Receivers word this freely; these are what interface engines
    put in a "refuse unknown patients" rule."""
    try:
        errs = list(ack.segments("ERR"))
    except KeyError:
        errs = []
    for err in errs:
        for index in (1, 2):
            location = _field(err, index)
            if location.split(ack.separators[3], 1)[0] == "PID":
                return True
    lowered = text.lower()
    return "patient" in lowered or bool(patient_id and patient_id.lower() in lowered)


def patient_check(
    *,
    url: str,
    message: str,
    query_id: str,
    patient_id: str,
    birth_date: str,
    timeout: float,
    assigning_authority: str = "",
) -> Outcome | None:
    """Invariant 5 for HL7: send the PDQ query (`message`, built by
    pdq_query_build with `query_id`) and compare the answer with the client.
    None when the EHR's patient matches; otherwise the outcome. A query
    writes nothing, so an unanswered one is simply asked again."""
    try:
        answer = _send_and_read(url, message, timeout)
    except ConnectionRefusedError as exc:
        return retry(f"HL7 patient query: receiver unreachable: {exc}", alert="unreachable")
    except (OSError, EOFError) as exc:  # TimeoutError, a closed connection: no answer
        return retry(f"No answer to the HL7 patient query ({type(exc).__name__})", alert="unreachable")
    return pdq_answer_check(
        answer,
        query_id=query_id,
        patient_id=patient_id,
        birth_date=birth_date,
        assigning_authority=assigning_authority,
    )


def _field(segment, index: int) -> str:
    return str(segment[index]) if len(segment) > index else ""


def pdq_answer_check(
    answer: str, *, query_id: str, patient_id: str, birth_date: str, assigning_authority: str = ""
) -> Outcome | None:
    """Read an RSP^K22 (or the ACK of a receiver without PDQ). `birth_date`
    is ISO (YYYY-MM-DD). None when exactly one PID carries `patient_id` in a
    PID-3 repetition and its PID-7 date is the client's; a mismatch or an
    unknown id fails for good (nothing is written), a receiver that cannot
    answer PDQ fails with a configuration alert. With an
    `assigning_authority`, the PID whose PID-3 carries the id in that domain
    (PID-3.4, namespace id or universal id) is the one compared: a
    multi-domain EHR may answer with one PID per domain that uses the id."""
    try:
        msg = hl7.parse(answer)
        msa = msg.segment("MSA")
    except (KeyError, hl7.ParseException, IndexError):
        return retry("The answer to the HL7 patient query could not be read; asking again")
    if _field(msa, 2) != query_id:
        return retry(f"The answer is for another message ({_field(msa, 2)}); asking again")
    try:
        qak = msg.segment("QAK")
    except KeyError:
        qak = None
    status = _field(qak, 2) if qak is not None else ""
    ack_code = _field(msa, 1)
    if ack_code in ("AE", "AR", "CE", "CR") or status in ("AE", "AR"):
        reason = _field(msa, 3)
        try:
            err = msg.segment("ERR")
            reason = reason or _field(err, 8) or str(err)
        except KeyError:
            pass
        return failed(
            f"The HL7 receiver refused the patient query ({status or ack_code}): {reason or 'no reason given'}. "
            "It must answer IHE PDQ (QBP^Q22); nothing was written.",
            alert="configuration",
        )
    if qak is None:
        # An ACK without QAK: the receiver took the query for a message and did not answer it.
        return failed(
            "The HL7 receiver acknowledged the patient query without answering it (no RSP^K22): it does not "
            "support IHE PDQ; nothing was written.",
            alert="configuration",
        )
    if status not in ("", "OK", "NF"):
        return failed(f"The HL7 receiver answered the patient query with QAK-2 {status}.", alert="configuration")
    if _field(qak, 1) not in ("", query_id):
        return retry(f"The answer is for another query ({_field(qak, 1)}); asking again")
    try:
        pids = list(msg.segments("PID"))
    except KeyError:
        pids = []
    if status == "NF" or not pids:
        return failed(
            f"The EHR has no patient with id {patient_id}; check the client's EHR id. Nothing was written.",
            alert="patient_mismatch",
        )
    if assigning_authority:
        pids = [pid for pid in pids if _pid_has_id(msg, pid, patient_id, assigning_authority)]
        if not pids:
            return failed(
                f"The EHR has no patient with id {patient_id} in assigning authority {assigning_authority}; "
                "nothing was written.",
                alert="patient_mismatch",
            )
    if len(pids) > 1:
        return failed(
            f"The EHR has {len(pids)} patients with id {patient_id}; nothing was written.", alert="patient_mismatch"
        )
    pid = pids[0]
    if not _pid_has_id(msg, pid, patient_id, assigning_authority):
        return failed(
            f"The EHR answered for patient id {patient_id} with another record; nothing was written.",
            alert="patient_mismatch",
        )
    theirs = _field(pid, 7)[:8]
    if theirs != birth_date.replace("-", ""):
        shown = f"{theirs[:4]}-{theirs[4:6]}-{theirs[6:]}" if len(theirs) == 8 else (theirs or "none")
        return failed(
            f"Date of birth at the EHR ({shown}) differs from the client's; nothing was written.",
            alert="patient_mismatch",
        )
    return None


def _pid_has_id(msg, pid, patient_id: str, authority: str) -> bool:
    """Whether a PID-3 repetition carries `patient_id` (CX-1) and, when
    `authority` is given, that domain in CX-4 (HD-1 namespace or HD-2
    universal id)."""
    _, _, repetition, component, subcomponent = msg.separators
    for rep in _field(pid, 3).split(repetition):
        parts = rep.split(component)
        if msg.unescape(parts[0]) != patient_id:
            continue
        if not authority:
            return True
        hd = parts[3].split(subcomponent) if len(parts) > 3 else []
        if authority in {msg.unescape(p) for p in hd[:2] if p}:
            return True
    return False
