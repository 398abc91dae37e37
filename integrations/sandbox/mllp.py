"""The HL7 sandbox: an MLLP receiver on loopback to try an HL7 connection
without an EHR (`manage.py integrations_mllp_sandbox`). It knows the
practice's synthetic clients only (invariant 11), reads them again for every
message, stores nothing, and simulates either patient check
(EHRConnection.hl7_patient_check):

* `pdq`: an EHR with an IHE PDQ supplier. A QBP^Q22 gets an RSP^K22 with a
  PID (PID-3 in the sandbox's assigning authority, PID-5, PID-7) per client
  with the id, or QAK NF; every MDM gets AA.
* `receiver`: an interface-engine channel that takes only MDM and refuses
  unknown patients. A QBP^Q22 gets AR; an MDM whose PID-3 id (in the
  sandbox's assigning authority), PID-5 family name and PID-7 date of birth
  match no client gets AE naming the patient (MSA-3, ERR at PID-3); else AA.
"""

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

import hl7

from integrations.builders.hl7 import hl7_authority

PDQ = "pdq"
RECEIVER = "receiver"
HOST = "127.0.0.1"  # never anything but loopback: it answers with client data


@dataclass(frozen=True)
class SandboxPatient:
    ehr_id: str
    family_name: str
    given_name: str
    birth_date: str  # YYYYMMDD


def sandbox_patients(practice_id: int) -> list[SandboxPatient]:
    from notes.models import Client

    clients = Client.objects.filter(practice_id=practice_id, synthetic=True).exclude(ehr_patient_id="")
    return [
        SandboxPatient(c.ehr_patient_id, c.family_name, c.given_name, c.date_of_birth.strftime("%Y%m%d"))
        for c in clients
    ]


def _escape(text: str) -> str:
    return text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("~", "\\R\\")


def _pid_ids(message: hl7.Message, field: str) -> list[tuple[str, set[str]]]:
    """(CX-1, {HD-1, HD-2} of CX-4) per repetition of a PID-3 text."""
    _, _, repetition, component, subcomponent = message.separators
    ids = []
    for rep in field.split(repetition):
        parts = rep.split(component)
        hd = parts[3].split(subcomponent) if len(parts) > 3 else []
        ids.append((message.unescape(parts[0]), {message.unescape(p) for p in hd[:2] if p}))
    return ids


def sandbox_mllp_answer(message: hl7.Message, *, check: str, authority: str, patients: list[SandboxPatient]) -> str:
    """The answer's ER7 text to one message (pure: no I/O)."""
    msh = message.segment("MSH")
    if str(msh[9]).startswith("QBP"):
        if check == RECEIVER:
            return str(message.create_ack("AR")).rstrip("\r") + "|Message type QBP^Q22 is not supported"
        return _pdq_answer(message, authority=authority, patients=patients)
    if check == RECEIVER:
        pid = message.segment("PID")
        ids = _pid_ids(message, str(pid[3]))
        domain = {authority} if authority else {"EHR"}
        family = message.unescape(str(pid[5]).split(message.separators[3])[0]).lower()
        birth_date = str(pid[7])[:8]
        known = any(
            p.family_name.lower() == family
            and p.birth_date == birth_date
            and any(pid_id == p.ehr_id and domains & domain for pid_id, domains in ids)
            for p in patients
        )
        if not known:
            shown = _escape(ids[0][0]) if ids else ""
            return "\r".join(
                [
                    str(message.create_ack("AE")).rstrip("\r")
                    + f"|Unknown patient {shown}: no patient with this id, name and date of birth",
                    "ERR||PID^1^3|204^Unknown key identifier^HL70357|E",
                ]
            )
    return str(message.create_ack("AA"))


def _pdq_answer(query: hl7.Message, *, authority: str, patients: list[SandboxPatient]) -> str:
    control = str(query.segment("MSH")[10])
    qpd = query.segment("QPD")
    tag = str(qpd[2])
    parameters = dict(p.split("^", 1) for p in str(qpd[3]).split("~") if "^" in p)
    patient_id = query.unescape(parameters.get("@PID.3.1", ""))
    header = f"MSH|^~\\&|PSYFI-SANDBOX||PSYFI||{str(query.segment('MSH')[7])}||RSP^K22^RSP_K21|R{control[:19]}|P|2.5.1"
    found = [p for p in patients if p.ehr_id == patient_id]
    status = "OK" if found else "NF"
    segments = [header, f"MSA|AA|{control}", f"QAK|{tag}|{status}|IHE PDQ Query|{len(found)}|{len(found)}|0", str(qpd)]
    for n, p in enumerate(found, start=1):
        segments.append(
            f"PID|{n}||{_escape(p.ehr_id)}^^^{hl7_authority(authority)}^MR||"
            f"{_escape(p.family_name)}^{_escape(p.given_name)}||{p.birth_date}"
        )
    return "\r".join(segments)


class SandboxMLLP:
    """The receiver in a thread of its own, on 127.0.0.1:`port` (0: any free
    port; `port` holds the one bound after start())."""

    def __init__(self, *, check: str, authority: str, port: int, patients: Callable[[], list[SandboxPatient]]) -> None:
        if check not in (PDQ, RECEIVER):
            raise ValueError(f"check must be {PDQ!r} or {RECEIVER!r}")
        self.check = check
        self.authority = authority
        self.port = port
        self.patients = patients
        self.answered = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._server = None

    async def _handle(self, reader, writer) -> None:
        try:
            while True:
                message = await reader.readmessage()
                # The ORM is synchronous: clients are read in a worker thread.
                patients = await asyncio.to_thread(self.patients)
                answer = sandbox_mllp_answer(message, check=self.check, authority=self.authority, patients=patients)
                writer.writemessage(hl7.parse(answer))
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> "SandboxMLLP":
        from hl7.mllp import start_hl7_server

        def run() -> None:
            asyncio.set_event_loop(self._loop)

            async def main() -> None:
                self._server = await start_hl7_server(self._handle, host=HOST, port=self.port, encoding="utf-8")
                self.port = self._server.sockets[0].getsockname()[1]
                self._started.set()
                await self._server.serve_forever()

            try:
                self._loop.run_until_complete(main())
            except asyncio.CancelledError:
                pass

        threading.Thread(target=run, daemon=True, name="hl7-sandbox").start()
        if not self._started.wait(10):
            raise OSError(f"The HL7 sandbox could not listen on {HOST}:{self.port}.")
        return self

    @property
    def url(self) -> str:
        return f"mllp://{HOST}:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
