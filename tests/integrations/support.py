"""Test support for delivery: a small FHIR R4 EHR on loopback (a real HTTP
server in a thread, with the faults the reliability tests need), an MLLP
receiver, and a real Celery worker process."""

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from django.conf import settings

from integrations.models import EHRConnection
from integrations.services import connection_create

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeEHR:
    """A FHIR EHR on 127.0.0.1. Declares conditional create or not (Epic does
    not), answers a share of requests with 503, can drop the connection right
    after a write committed, and can refuse every write with a 4xx
    OperationOutcome. Counts what it stores so tests can check "exactly one
    copy"."""

    def __init__(self, *, conditional_create: bool = True, port: int | None = None, keep_alive: bool = False):
        self.conditional_create = conditional_create
        # HTTP/1.1 with persistent connections, as real EHR endpoints speak
        # (bench/delivery.py). Off for the tests: a stopped server must refuse
        # at once, not keep answering on connections it already accepted.
        self.keep_alive = keep_alive
        self.rate_503 = 0.0
        self.retry_after = "1"
        self.fault_status = 503  # what the injected share of requests gets (503 or 429)
        self.drop_first_write_per_identifier = False
        self.post_delay = 0.0
        self.get_delay = 0.0  # a read's simulated EHR time (bench/delivery.py)
        self.reject_with: tuple[int, str] | None = None
        self.search_supported = True
        # Provenance: declared in /metadata only when supported; its own store
        # and its own share of 503s (a note stored, its Provenance refused).
        self.provenance_supported = False
        self.metadata_broken = False  # /metadata answers 503 (and nothing else does)
        self.provenance_rate_503 = 0.0
        self.provenances: list[dict] = []
        # When set, only these bearer tokens are accepted (401 otherwise).
        self.valid_tokens: set[str] | None = None
        self.patients: dict[str, dict] = {}
        self.documents: list[dict] = []
        self.posts = 0
        self.requests: list[tuple[str, str, dict]] = []
        self.tokens_issued = 0
        self.token_requests: list[dict] = []
        self._dropped: set[str] = set()
        self.lock = threading.Lock()
        self.port = port or free_port()
        self.server: ThreadingHTTPServer | None = None

    # -- lifecycle
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self) -> "FakeEHR":
        ehr = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer and no Nagle: otherwise every keep-alive
            # answer waits ~40 ms for a delayed ACK.
            wbufsize = 64 * 1024
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict | None = None, headers: dict | None = None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _outcome(self, status: int, code: str, text: str, headers: dict | None = None):
                self._send(
                    status,
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
                    },
                    headers,
                )

            def _maybe_503(self) -> bool:
                if ehr.rate_503 and random.random() < ehr.rate_503:
                    # fault_status: one status, or a list to pick from (a mix of 503s and 429s).
                    choices = ehr.fault_status if isinstance(ehr.fault_status, list | tuple) else [ehr.fault_status]
                    status = random.choice(choices)
                    code = "throttled" if status == 429 else "transient"
                    self._outcome(status, code, "busy", {"Retry-After": ehr.retry_after})
                    return True
                return False

            def _unauthorized(self) -> bool:
                if ehr.valid_tokens is None:
                    return False
                if self.headers.get("Authorization", "").removeprefix("Bearer ") in ehr.valid_tokens:
                    return False
                self._outcome(401, "login", "token expired")
                return True

            def do_GET(self):
                url = urlparse(self.path)
                with ehr.lock:
                    ehr.requests.append(("GET", url.path, dict(self.headers)))
                if self._unauthorized() or self._maybe_503():
                    return
                if ehr.get_delay:
                    time.sleep(ehr.get_delay)
                if url.path == "/fhir/metadata":
                    if ehr.metadata_broken:
                        return self._outcome(503, "transient", "metadata unavailable")
                    return self._send(
                        200,
                        {
                            "resourceType": "CapabilityStatement",
                            "status": "active",
                            "kind": "instance",
                            "fhirVersion": "4.0.1",
                            "rest": [
                                {
                                    "mode": "server",
                                    "resource": [
                                        {
                                            "type": "DocumentReference",
                                            "conditionalCreate": ehr.conditional_create,
                                            "interaction": [{"code": "create"}, {"code": "search-type"}],
                                        },
                                        {"type": "Patient", "interaction": [{"code": "read"}]},
                                    ]
                                    + (
                                        [{"type": "Provenance", "interaction": [{"code": "create"}]}]
                                        if ehr.provenance_supported
                                        else []
                                    ),
                                }
                            ],
                        },
                    )
                if url.path.startswith("/fhir/Patient/"):
                    pid = url.path.rsplit("/", 1)[1]
                    patient = ehr.patients.get(pid)
                    if patient is None:
                        return self._outcome(404, "not-found", f"No Patient/{pid}")
                    return self._send(200, patient)
                if url.path == "/fhir/Provenance":
                    target = parse_qs(url.query).get("target", [""])[0]
                    with ehr.lock:
                        found = [p for p in ehr.provenances if _provenance_target(p) == target]
                    return self._send(
                        200, {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": p} for p in found]}
                    )
                if url.path == "/fhir/DocumentReference":
                    if not ehr.search_supported:
                        return self._outcome(400, "not-supported", "search not supported")
                    query = parse_qs(url.query)
                    token = query.get("identifier", [""])[0]
                    system, _, value = token.rpartition("|")
                    with ehr.lock:
                        found = [d for d in ehr.documents if _ident(d) == (system, value)]
                    return self._send(
                        200, {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": d} for d in found]}
                    )
                return self._outcome(404, "not-found", url.path)

            def _provenance_post(self, resource: dict):
                if random.random() < ehr.provenance_rate_503:
                    return self._outcome(503, "transient", "Provenance store busy", {"Retry-After": "0"})
                target = _provenance_target(resource)
                condition = self.headers.get("If-None-Exist") or ""
                with ehr.lock:
                    ehr.posts += 1
                    existing = [p for p in ehr.provenances if _provenance_target(p) == target]
                    if condition == f"target={target}" and existing:
                        return self._send(200, existing[0])
                    resource["id"] = uuid.uuid4().hex[:12]
                    ehr.provenances.append(resource)
                return self._send(201, resource, {"Location": f"Provenance/{resource['id']}/_history/1"})

            def do_POST(self):
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with ehr.lock:
                    ehr.requests.append(("POST", url.path, dict(self.headers)))
                if url.path == "/token":
                    with ehr.lock:
                        ehr.tokens_issued += 1
                        ehr.token_requests.append({k: v[0] for k, v in parse_qs(raw.decode()).items()})
                    body = {"access_token": f"tok-{ehr.tokens_issued}", "token_type": "bearer", "expires_in": 300}
                    if ehr.valid_tokens is not None:
                        ehr.valid_tokens.add(body["access_token"])
                    data = json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if self._unauthorized() or self._maybe_503():
                    return
                if ehr.reject_with:
                    with ehr.lock:
                        ehr.posts += 1
                    return self._outcome(ehr.reject_with[0], "required", ehr.reject_with[1])
                resource = json.loads(raw)
                if url.path == "/fhir/Provenance":
                    return self._provenance_post(resource)
                ident = _ident(resource)
                condition = self.headers.get("If-None-Exist")
                with ehr.lock:
                    ehr.posts += 1
                    if condition and ehr.conditional_create:
                        token = condition.partition("=")[2]
                        system, _, value = token.rpartition("|")
                        existing = [d for d in ehr.documents if _ident(d) == (system, value)]
                        if existing:
                            self._send(200, existing[0])
                            return
                    resource["id"] = uuid.uuid4().hex[:12]
                    ehr.documents.append(resource)
                    drop = ehr.drop_first_write_per_identifier and ident not in ehr._dropped
                    if drop:
                        ehr._dropped.add(ident)
                if ehr.post_delay:
                    time.sleep(ehr.post_delay)
                if drop:
                    # The write committed; the answer never comes.
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self._send(201, resource, {"Location": f"DocumentReference/{resource['id']}/_history/1"})

        self.server = _QuietServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- helpers
    def add_patient(self, client, **overrides) -> None:
        patient = {
            "resourceType": "Patient",
            "id": client.ehr_patient_id,
            "identifier": [{"system": "urn:mrn", "value": client.ehr_patient_id}],
            "birthDate": client.date_of_birth.isoformat(),
        }
        patient.update(overrides)
        self.patients[client.ehr_patient_id] = patient

    def copies(self) -> dict[tuple[str, str], int]:
        counts: dict = {}
        with self.lock:
            for d in self.documents:
                counts[_ident(d)] = counts.get(_ident(d), 0) + 1
        return counts


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that went away (a killed worker) is part of the test


def _provenance_target(resource: dict) -> str:
    return ((resource.get("target") or [{}])[0]).get("reference", "")


def _ident(resource: dict) -> tuple[str, str]:
    for ident in resource.get("identifier") or []:
        return ident.get("system", ""), ident.get("value", "")
    return "", ""


def fhir_connection(practice, base_url: str, *, sandbox: bool = True, **kwargs) -> EHRConnection:
    return connection_create(
        practice=practice,
        name="Test EHR",
        kind=EHRConnection.Kind.FHIR,
        base_url=base_url,
        is_sandbox=sandbox,
        **kwargs,
    )


class MLLPReceiver:
    """An HL7 receiver on loopback. MDM messages are answered with `code` (AA,
    AE or AR, MSA-3 `text`) and kept in `received`. IHE PDQ queries (QBP^Q22)
    are kept in `queries` and answered from the patients added (add_patient):
    an RSP^K22 with one PID per patient record carrying the id (whatever
    domain the query names, as a supplier that does not filter by domain), or
    QAK NF for an unknown id. With `query_code` AE or AR the query is refused
    as by a receiver without PDQ.

    `mdm_only=True` is a typical interface-engine channel: it answers AR to a
    QBP^Q22 and is configured to refuse unknown patients. An MDM whose PID-3
    id (in `authority`, when set), PID-5 family name and PID-7 date of birth
    match no patient added is answered AE with MSA-3 naming the patient and
    an ERR located at PID-3; a match is answered with `code`. MDMs it took
    are in `filed`."""

    def __init__(self, code: str = "AA", text: str = "", *, mdm_only: bool = False, authority: str = ""):
        import hl7

        self.code = code
        self.text = text
        self.query_code = "AR" if mdm_only else "AA"
        self.mdm_only = mdm_only
        self.authority = authority
        # (id, authority, ISO date of birth, family name) per patient record.
        self.records: list[tuple[str, str, str, str]] = []
        self.received: list[str] = []
        self.filed: list[str] = []
        self.queries: list[str] = []
        self.port = free_port()
        self._hl7 = hl7
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()

    @property
    def url(self) -> str:
        return f"mllp://127.0.0.1:{self.port}"

    @property
    def patients(self) -> dict[str, str]:
        return {pid: birth_date for pid, _, birth_date, _ in self.records}

    def add_patient(
        self, client, *, birth_date: str | None = None, authority: str | None = None, family_name: str | None = None
    ) -> None:
        self.records.append(
            (
                client.ehr_patient_id,
                authority if authority is not None else (self.authority or "EHR"),
                birth_date or client.date_of_birth.isoformat(),
                family_name if family_name is not None else client.family_name,
            )
        )

    def _pdq_answer(self, query) -> str:
        if self.query_code != "AA":
            ack = str(query.create_ack(self.query_code)).rstrip("\r")
            return ack + "|Message type QBP^Q22 is not supported"  # MSA-3
        control = str(query.segment("MSH")[10])
        qpd = query.segment("QPD")
        tag = str(qpd[2])
        # QPD-3 repeats one parameter per repetition; @PID.3.1^<id> is the id.
        parameters = dict(p.split("^", 1) for p in str(qpd[3]).split("~"))
        escaped_id = parameters["@PID.3.1"]
        patient_id = query.unescape(escaped_id)
        header = f"MSH|^~\\&|EHR||PSYFI||20260101000000||RSP^K22^RSP_K21|R{control}|P|2.5.1"
        found = [r for r in self.records if r[0] == patient_id]
        if not found:
            segments = [header, f"MSA|AA|{control}", f"QAK|{tag}|NF|IHE PDQ Query|0|0|0", str(qpd)]
        else:
            segments = [
                header,
                f"MSA|AA|{control}",
                f"QAK|{tag}|OK|IHE PDQ Query|{len(found)}|{len(found)}|0",
                str(qpd),
            ]
            for n, (_, authority, birth_date, family) in enumerate(found, start=1):
                hd = f"&{authority}&ISO" if authority[:1].isdigit() else authority  # an OID goes in HD-2
                segments.append(
                    f"PID|{n}||{escaped_id}^^^{hd}^MR~OTHER-1^^^LAB^PI||{family}^Patient||"
                    f"{birth_date.replace('-', '')}|U"
                )
        return "\r".join(segments)

    def _mdm_answer(self, message) -> str:
        """Answer an MDM as a channel set to refuse unknown patients does."""
        pid = message.segment("PID")
        _, _, repetition, component, subcomponent = message.separators
        ids = []
        for rep in str(pid[3]).split(repetition):
            parts = rep.split(component)
            hd = parts[3].split(subcomponent) if len(parts) > 3 else []
            ids.append((message.unescape(parts[0]), {message.unescape(p) for p in hd[:2] if p}))
        family = message.unescape(str(pid[5]).split(component)[0]).lower()
        birth_date = str(pid[7])[:8]
        known = any(
            rbirth.replace("-", "") == birth_date
            and rfamily.lower() == family
            and (not self.authority or rauth == self.authority)
            and any(pid_id == rid and rauth in domains for pid_id, domains in ids)
            for rid, rauth, rbirth, rfamily in self.records
        )
        if known:
            self.filed.append(str(message))
            answer = str(message.create_ack(self.code))
            return answer.rstrip("\r") + f"|{self.text}" if self.text else answer
        shown = ids[0][0] if ids else ""
        ack = str(message.create_ack("AE")).rstrip("\r")
        return "\r".join(
            [
                ack + f"|Unknown patient {shown}: no patient with this id, name and date of birth",
                "ERR||PID^1^3|204^Unknown key identifier^HL70357|E",
            ]
        )

    async def _handle(self, reader, writer):
        try:
            while True:
                message = await reader.readmessage()
                if str(message.segment("MSH")[9]).startswith("QBP"):
                    self.queries.append(str(message))
                    answer = self._pdq_answer(message)
                elif self.mdm_only:
                    self.received.append(str(message))
                    answer = self._mdm_answer(message)
                else:
                    self.received.append(str(message))
                    self.filed.append(str(message))
                    answer = str(message.create_ack(self.code))
                    if self.text:
                        answer = answer.rstrip("\r") + f"|{self.text}"  # MSA is last: this is MSA-3
                writer.writemessage(self._hl7.parse(answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def start(self) -> "MLLPReceiver":
        from hl7.mllp import start_hl7_server

        def run():
            asyncio.set_event_loop(self._loop)

            async def main():
                self._server = await start_hl7_server(self._handle, host="127.0.0.1", port=self.port, encoding="utf-8")
                self._started.set()
                await self._server.serve_forever()

            try:
                self._loop.run_until_complete(main())
            except asyncio.CancelledError:
                pass

        threading.Thread(target=run, daemon=True).start()
        assert self._started.wait(5)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)


WORKER_ENV = {
    "PSYFI_DELIVERY_BACKOFF_BASE": "0.05",
    "PSYFI_DELIVERY_BACKOFF_CAP": "1",
    "PSYFI_DELIVERY_TIMEOUT": "3",
    "PSYFI_DELIVERY_ALERT_AFTER_ATTEMPTS": "2",
}


class Worker:
    """A real `celery worker` process on the test database and broker."""

    def __init__(self, log_dir: Path, extra_env: dict | None = None, *, concurrency: int = 4, pool: str = "threads"):
        self.concurrency = concurrency
        self.pool = pool
        db = settings.DATABASES["default"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
        env.update(WORKER_ENV)
        env["DJANGO_SETTINGS_MODULE"] = "psyfi_review.settings_test"
        env["DATABASE_URL"] = (
            f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
            f"/{db['NAME']}"
        )
        if db.get("PASSWORD"):
            env["DATABASE_URL"] = env["DATABASE_URL"].replace("@", f":{db['PASSWORD']}@", 1)
        env["REDIS_URL"] = settings.CELERY_BROKER_URL
        env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
        env.update(extra_env or {})
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> "Worker":
        self.starts += 1
        self.log = self.log_dir / f"worker-{self.starts}.log"
        self._fh = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(ROOT / ".venv/bin/celery"),
                "-A",
                "psyfi_review",
                "worker",
                f"--pool={self.pool}",
                f"--concurrency={self.concurrency}",
                "-Q",
                "celery",
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "ready." in self.log.read_text():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown, no acks."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._fh.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if not self._fh.closed:
            self._fh.close()


def wait_until(predicate, *, timeout: float, interval: float = 0.25, on_tick=None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if on_tick:
            on_tick()
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
