"""What an EHR's answer means for a delivery, the same for every protocol.

Transports do I/O only and return a Reply (the facts: status, headers, body,
whether bytes left). status_outcome turns the facts of any HTTP or MLLP
exchange into an Outcome; patient_match compares what the EHR holds for the
patient (PatientFacts, read from a FHIR Patient, a REST answer or an HL7
PID) with the client (invariant 5). Both are pure, so one table of tests
pins them for every protocol (tests/delivery/test_shape.py)."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import hl7


@dataclass(frozen=True)
class Outcome:
    """sent (ehr_id; `reconciled` when found at the EHR after a lost answer
    rather than written by this attempt), retry (after N seconds), failed
    (for good: dead-lettered, with an alert kind) or unknown (the EHR may
    have written it: reconcile before any resend). `bytes_sent`: the
    request may have reached the EHR."""

    kind: str
    ehr_id: str = ""
    retry_after: float | None = None
    reason: str = ""
    http_status: int | None = None
    alert: str = ""
    reconciled: bool = False
    bytes_sent: bool = False

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNKNOWN = "unknown"


def sent(ehr_id: str, *, http_status: int | None = None, reason: str = "", reconciled: bool = False) -> Outcome:
    return Outcome(
        Outcome.SENT, ehr_id=ehr_id, http_status=http_status, reason=reason, reconciled=reconciled, bytes_sent=True
    )


def retry(
    reason: str, *, after: float | None = None, http_status: int | None = None, alert: str = "", bytes_sent=False
) -> Outcome:
    return Outcome(
        Outcome.RETRY, retry_after=after, reason=reason, http_status=http_status, alert=alert, bytes_sent=bytes_sent
    )


def failed(reason: str, *, http_status: int | None = None, alert: str = "", bytes_sent: bool = False) -> Outcome:
    return Outcome(Outcome.FAILED, reason=reason, http_status=http_status, alert=alert, bytes_sent=bytes_sent)


def unknown(reason: str, *, after: float | None = None, http_status: int | None = None) -> Outcome:
    return Outcome(Outcome.UNKNOWN, reason=reason, retry_after=after, http_status=http_status, bytes_sent=True)


@dataclass(frozen=True)
class Reply:
    """The facts of one exchange. status None: no answer (error names why,
    by exception class); bytes_sent False: the request cannot have reached
    the EHR (refused, not resolved, connect timeout). An HL7 answer has no
    status; its text is the body."""

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    bytes_sent: bool = True
    error: str = ""

    def header(self, name: str) -> str:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return ""

    def json(self):
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# ---------------------------------------------------------------- status


# FHIR IssueTypes that say "try again later" (an OperationOutcome from any API).
RETRYABLE_ISSUES = {"transient", "throttled", "timeout", "lock-error"}


def status_outcome(
    reply: Reply, *, write: bool, resend_safe: bool, what: str = "the note", ehr_id: str = ""
) -> Outcome:
    """The outcome of an exchange, whichever protocol. `write`: the request
    may store something; `resend_safe`: the EHR deduplicates a resend
    (conditional create confirmed lately, an Idempotency-Key, HL7's MSH-10),
    so a lost answer is simply sent again instead of reconciled."""
    status = reply.status
    if status is None:
        return _unanswered(reply, write=write, resend_safe=resend_safe, what=what)
    if 200 <= status < 300:
        return sent(ehr_id, http_status=status)
    if 300 <= status < 400:
        location = (reply.header("Location") or "no Location")[:200]
        return failed(
            f"The EHR answered a redirect ({status}) to {location}; redirects are not followed. "
            "Correct the connection's address if the EHR has moved.",
            http_status=status,
            alert="configuration",
            bytes_sent=True,
        )
    message, codes = operation_outcome_message(reply)
    after = retry_after_seconds(reply.header("Retry-After"))
    if status == 429 or (codes & RETRYABLE_ISSUES and status < 500):
        return retry(f"EHR throttled: {message}", after=after, http_status=status, bytes_sent=True)
    if status >= 500:
        if write and not resend_safe:
            # The EHR may have committed before failing: search before resending.
            return unknown(f"EHR error after sending: {message}", after=after, http_status=status)
        return retry(
            f"EHR unavailable: {message}", after=after, http_status=status, alert="unreachable", bytes_sent=True
        )
    if status in (409, 412) or "duplicate" in codes:
        # The EHR may hold it already: reconcile (or resend under the same key).
        return unknown(f"EHR reported a conflict; reconciling: {message}", http_status=status)
    if status == 401:
        return failed(
            f"EHR refused our credentials: {message}", http_status=status, alert="configuration", bytes_sent=True
        )
    if status in (403, 404, 405):
        return failed(
            f"EHR configuration problem: {message}", http_status=status, alert="configuration", bytes_sent=True
        )
    return failed(f"EHR rejected {what}: {message}", http_status=status, bytes_sent=True)


def _unanswered(reply: Reply, *, write: bool, resend_safe: bool, what: str) -> Outcome:
    error = reply.error or "no answer"
    if not reply.bytes_sent:
        return retry(f"EHR unreachable ({what}): {error}", alert="unreachable")
    if not write:
        # A read wrote nothing, so asking again is always safe.
        return retry(f"No answer to {what} ({error}); asking again", alert="unreachable", bytes_sent=True)
    reason = f"No answer after sending ({error})"
    if resend_safe:
        return retry(f"{reason}; resending, the EHR deduplicates", bytes_sent=True)
    return unknown(f"{reason}; reconciling before any resend")


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as delta-seconds or an HTTP-date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def operation_outcome_message(reply: Reply) -> tuple[str, set[str]]:
    """The EHR's own words from an OperationOutcome (diagnostics or details),
    and its issue codes. Falls back to the status."""
    body = reply.json()
    messages, codes = [], set()
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        for issue in body.get("issue") or []:
            if not isinstance(issue, dict):
                continue
            codes.add(str(issue.get("code", "")))
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if text:
                messages.append(str(text))
    message = "; ".join(messages) or f"HTTP {reply.status}"
    return message[:1000], codes


# ---------------------------------------------------------------- patient


@dataclass(frozen=True)
class PatientRecord:
    """One record the EHR answered for the patient id: the ids it carries
    and its date of birth (ISO YYYY-MM-DD; None when the answer has none)."""

    ids: frozenset[str]
    birth_date: str | None


@dataclass(frozen=True)
class PatientFacts:
    """What the EHR holds under the patient id, whichever protocol. `where`
    names it in messages ("Patient/123", "patient 123 (url)");
    `identifier_at` and `birth_date_at` name where the answer keeps them."""

    records: tuple[PatientRecord, ...]
    where: str
    identifier_at: str = ""
    birth_date_at: str = "birthDate"


def patient_match(facts: PatientFacts, *, patient_id: str, birth_date: str) -> Outcome | None:
    """Invariant 5 for every protocol: None when exactly one record carries
    the patient id and the client's date of birth; otherwise a failure for
    good (nothing is written) with a patient_mismatch alert."""
    if not facts.records:
        return _mismatch(f"The EHR has no {facts.where}; check the client's EHR id. Nothing was written.")
    if len(facts.records) > 1:
        return _mismatch(f"The EHR has {len(facts.records)} patients with id {patient_id}; nothing was written.")
    record = facts.records[0]
    if not record.ids and facts.identifier_at:
        return _mismatch(
            f"The EHR's patient answer has no identifier at {facts.identifier_at} (has its schema changed?); "
            "nothing was written."
        )
    if patient_id not in record.ids:
        return _mismatch(f"Patient {patient_id} at the EHR is another record; nothing was written.")
    if record.birth_date is None:
        return _mismatch(
            f"The EHR's patient answer has no date of birth at {facts.birth_date_at} (has its schema changed?); "
            "nothing was written."
        )
    if record.birth_date != birth_date:
        return _mismatch(
            f"Date of birth at the EHR ({record.birth_date[:40] or 'none'}) differs from the client's; "
            "nothing was written."
        )
    return None


def _mismatch(reason: str) -> Outcome:
    return failed(reason, alert="patient_mismatch", bytes_sent=True)


# ---------------------------------------------------------------- FHIR and REST answers


def fhir_patient_check(reply: Reply, *, patient_id: str, birth_date: str) -> Outcome | None:
    """Invariant 5 from a FHIR Patient read: None when it is the client."""
    where = f"Patient/{patient_id}"
    if reply.status == 404:
        return patient_match(PatientFacts((), where), patient_id=patient_id, birth_date=birth_date)
    if reply.status != 200:
        return status_outcome(reply, write=False, resend_safe=True, what="the patient read")
    body = reply.json()
    if not isinstance(body, dict):
        return failed("The EHR answered the patient read with something that is not JSON.", alert="configuration")
    ids = frozenset()
    if body.get("resourceType") == "Patient":
        ids = frozenset({str(body.get("id", ""))}) | {
            str(i.get("value")) for i in body.get("identifier") or [] if isinstance(i, dict)
        }
    record = PatientRecord(ids, str(body["birthDate"]) if "birthDate" in body else None)
    return patient_match(PatientFacts((record,), where), patient_id=patient_id, birth_date=birth_date)


def rest_patient_check(reply: Reply, read, *, patient_id: str, birth_date: str) -> Outcome | None:
    """Invariant 5 from a REST API's patient answer, at the mapping's paths
    (`read`: integrations.builders.rest.PatientRead)."""
    from integrations.builders.rest import identifier_values, json_path_read

    where = f"patient {patient_id} ({read.url}, the mapping's rest.patient.url)"
    if reply.status == 404:
        return patient_match(PatientFacts((), where), patient_id=patient_id, birth_date=birth_date)
    if reply.status != 200:
        return status_outcome(reply, write=False, resend_safe=True, what="the patient read")
    body = reply.json()
    if body is None:
        return failed("The EHR answered the patient read with something that is not JSON.", alert="configuration")
    try:
        ids = frozenset(identifier_values(json_path_read(body, read.identifier_path)))
    except KeyError:
        ids = frozenset()
    try:
        found = json_path_read(body, read.birth_date_path)
        birth = str(found)
    except KeyError:
        birth = None
    facts = PatientFacts(
        (PatientRecord(ids, birth),), where, identifier_at=read.identifier_path, birth_date_at=read.birth_date_path
    )
    return patient_match(facts, patient_id=patient_id, birth_date=birth_date)


def fhir_resources(reply: Reply) -> list[dict] | Outcome:
    """A search's matching resources, or the outcome when it failed."""
    if reply.status != 200:
        return status_outcome(reply, write=False, resend_safe=True, what="the search")
    bundle = reply.json()
    if not isinstance(bundle, dict):
        return failed("The EHR's search answer is not JSON.", alert="configuration")
    return [e.get("resource") or {} for e in bundle.get("entry") or [] if isinstance(e, dict)]


def fhir_create_outcome(reply: Reply, resource_type: str, *, resend_safe: bool) -> Outcome:
    """A create's outcome, with the new resource's id when stored."""
    return status_outcome(reply, write=True, resend_safe=resend_safe, ehr_id=fhir_id_from(reply, resource_type))


def fhir_id_from(reply: Reply, resource_type: str) -> str:
    from urllib.parse import urlparse

    body = reply.json()
    if isinstance(body, dict) and body.get("resourceType") == resource_type and body.get("id"):
        return str(body["id"])
    location = reply.header("Location") or reply.header("Content-Location")
    parts = urlparse(location).path.strip("/").split("/")
    if resource_type in parts:
        index = parts.index(resource_type)
        if index + 1 < len(parts):
            return parts[index + 1]
    return ""


def rest_id_from(reply: Reply) -> str:
    body = reply.json()
    ehr_id = str(body.get("id", "")) if isinstance(body, dict) else ""
    return ehr_id or reply.header("Location")


# ---------------------------------------------------------------- HL7 answers


def mdm_ack_outcome(reply: Reply, *, control_id: str, patient_id: str = "") -> Outcome:
    """AA/CA: sent. AE/AR: failed for good with the receiver's text (MSA-3,
    else ERR-8); when the refusal names the patient (ack_names_patient) it is
    a patient mismatch. No answer: as any protocol (status_outcome; MSH-10
    and TXA-12 make a resend safe). An answer that cannot be read: resend."""
    if not reply.body:
        return status_outcome(reply, write=True, resend_safe=True, what="the HL7 message")
    try:
        ack = hl7.parse(reply.body.decode())
        msa = ack.segment("MSA")
    except (KeyError, hl7.ParseException, IndexError, UnicodeDecodeError):
        return retry("The HL7 acknowledgement could not be read; resending with the same ids", bytes_sent=True)
    code = str(msa[1])
    if str(msa[2]) != control_id:
        return retry(f"The acknowledgement is for another message ({msa[2]}); resending", bytes_sent=True)
    if code in ("AA", "CA"):
        return sent(control_id)
    text = str(msa[3]) if len(msa) > 3 else ""
    try:
        err = ack.segment("ERR")
        text = text or str(err[8] if len(err) > 8 else err)
    except KeyError:
        pass
    if ack_names_patient(ack, text=text, patient_id=patient_id):
        return _mismatch(
            f"HL7 receiver answered {code} about the patient: {text or 'no reason given'}. Nothing was written; "
            "check the client's EHR id, name and date of birth against the EHR."
        )
    return failed(f"HL7 receiver answered {code}: {text or 'no reason given'}", bytes_sent=True)


def pdq_check(
    reply: Reply, *, query_id: str, patient_id: str, birth_date: str, assigning_authority: str = ""
) -> Outcome | None:
    """Invariant 5 over HL7 `pdq`: None when the PDQ answer is the client."""
    if not reply.body:
        return status_outcome(reply, write=False, resend_safe=True, what="the HL7 patient query")
    return pdq_answer_check(
        reply.body.decode(errors="replace"),
        query_id=query_id,
        patient_id=patient_id,
        birth_date=birth_date,
        assigning_authority=assigning_authority,
    )


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
    if status == "NF":
        pids = []
    where = f"patient with id {patient_id}" + (
        f" in assigning authority {assigning_authority}" if assigning_authority else ""
    )
    records = []
    for pid in pids:
        ids = _pid_ids(msg, pid, assigning_authority)
        if assigning_authority and patient_id not in ids:
            continue  # another domain's record that happens to use the id
        theirs = _field(pid, 7)[:8]
        birth = f"{theirs[:4]}-{theirs[4:6]}-{theirs[6:]}" if len(theirs) == 8 else theirs
        records.append(PatientRecord(ids, birth))
    return patient_match(PatientFacts(tuple(records), where), patient_id=patient_id, birth_date=birth_date)


def _pid_ids(msg, pid, authority: str) -> frozenset[str]:
    """The ids (CX-1) in a PID's PID-3 repetitions; with `authority`, only
    those in that domain (CX-4: HD-1 namespace or HD-2 universal id)."""
    _, _, repetition, component, subcomponent = msg.separators
    ids = set()
    for rep in _field(pid, 3).split(repetition):
        parts = rep.split(component)
        if authority:
            hd = parts[3].split(subcomponent) if len(parts) > 3 else []
            if authority not in {msg.unescape(p) for p in hd[:2] if p}:
                continue
        ids.add(msg.unescape(parts[0]))
    return frozenset(ids)
