"""Issue #11, point 1: the outbound egress policy (integrations.egress).

A practice admin chooses where the worker sends signed notes and secrets.
Loopback, link-local, private, CGNAT, multicast and reserved addresses are
refused unless EHR_EGRESS_ALLOW lists them; the address that was checked is
the one dialled (no DNS rebinding); TLS still names the host; redirects are
never followed; "test connection" answers in four plain phrasings.

The EHRs here are real servers on loopback. The test profile allows loopback
(the demo default); a refusal is shown with override_settings, against a
server that is really listening, which then holds no connection at all.
"""

import asyncio
import datetime
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from audit.models import AuditEvent
from integrations import auth, egress
from integrations.egress import address_refusal, egress_addresses, egress_allow_parse, egress_allow_setting
from integrations.errors import EgressRefused, RedirectRefused
from integrations.models import Delivery, EHRConnection
from integrations.outcomes import status_outcome
from integrations.services import connection_create, connection_test, delivery_send
from integrations.transports import fhir as fhir_transport
from integrations.transports.base import http_session
from tests.factories import client_factory, note_factory, note_sign_now
from tests.integrations.support import FakeEHR, MLLPReceiver, fhir_connection, free_port

NOTHING = egress_allow_parse([])
LOOPBACK_V4 = egress_allow_parse(["127.0.0.0/8"])


# ---------------------------------------------------------------- loopback servers


class Listener:
    """A TCP socket that listens and never accepts while the test runs. The
    kernel completes handshakes into the backlog by itself, so afterwards
    `connections()` tells whether anyone connected at all, and what they
    sent, with no waiting on threads."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.host, self.port = host, self.sock.getsockname()[1]

    def connections(self) -> list[bytes]:
        self.sock.setblocking(False)
        received = []
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return received
            conn.settimeout(1)
            try:
                received.append(conn.recv(65536))
            except OSError:
                received.append(b"")
            conn.close()

    def close(self) -> None:
        self.sock.close()


class HTTPStub:
    """An HTTP server on loopback answering every request with `answer`
    (status, headers) and counting what it was asked."""

    def __init__(
        self,
        status: int = 200,
        headers: dict | None = None,
        body: bytes = b"{}",
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ):
        stub = self
        self.requests: list[tuple[str, str, str]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stub.requests.append((self.command, self.path, self.headers.get("Host", "")))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

        self.server = ThreadingHTTPServer((host, 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.server.handle_error = lambda request, address: None  # an aborted handshake is expected here
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stubs():
    started = []

    def start(*args, **kwargs) -> HTTPStub:
        stub = HTTPStub(*args, **kwargs)
        started.append(stub)
        return stub

    yield start
    for stub in started:
        stub.stop()


@pytest.fixture
def listener():
    made = []

    def make(*args, **kwargs) -> Listener:
        made.append(Listener(*args, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def fake_ehr():
    ehr = FakeEHR().start()
    yield ehr
    ehr.stop()


@pytest.fixture(autouse=True)
def _fresh_tokens():
    auth.token_cache_clear()
    yield
    auth.token_cache_clear()


def signed_note(world):
    client = client_factory(world.practice, world.clinician)
    note = note_factory(practice=world.practice, clinician=world.clinician, client=client)
    return note_sign_now(note, world.clinician)


def send(note) -> Delivery:
    delivery = Delivery.objects.get(note=note)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    delivery_send(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


# ---------------------------------------------------------------- the pure policy


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "reserved"),
        ("2001:db8::1", "reserved"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 of 169.254.169.254
        ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
    ],
)
def test_the_policy_refuses_every_non_public_address_with_its_category(address, reason):
    refusal = address_refusal(address, allow=NOTHING)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_the_policy_lets_public_addresses_through(address):
    assert address_refusal(address, allow=NOTHING) is None


def test_an_allowed_block_opens_exactly_its_addresses():
    assert address_refusal("127.0.0.1", allow=LOOPBACK_V4) is None
    assert address_refusal("::ffff:127.0.0.1", allow=LOOPBACK_V4) is None  # the same address on the wire
    assert address_refusal("::1", allow=LOOPBACK_V4) == "loopback"
    assert address_refusal("0.0.0.0", allow=LOOPBACK_V4) is not None  # reaches loopback on Linux, but is not in it
    assert address_refusal("10.0.0.1", allow=LOOPBACK_V4) == "private"
    clinic = egress_allow_parse(["10.20.0.0/16"])
    assert address_refusal("10.20.3.4", allow=clinic) is None
    assert address_refusal("10.21.0.1", allow=clinic) == "private"


def test_the_allow_list_takes_host_names_and_blocks_and_refuses_anything_else():
    allow = egress_allow_parse(["ehr.clinic.lan", "LocalHost.", "10.0.0.0/8", "::1"])
    assert allow.allows_name("localhost") and allow.allows_name("EHR.clinic.lan.")
    assert not allow.allows_name("evil.clinic.lan")
    for bad in ["10.0.0.0/33", "10.0.0.300", "ehr clinic", "http://ehr.clinic.lan", "-bad-.example"]:
        with pytest.raises(ValueError, match="neither an address block"):
            egress_allow_parse([bad])
    with pytest.raises(ImproperlyConfigured, match="EHR_EGRESS_ALLOW"):
        egress_allow_setting("EHR_EGRESS_ALLOW", ["127.0.0.0/8", "10.0.0.0/33"])


def test_the_demo_allows_loopback_and_production_allows_nothing_private(settings):
    assert address_refusal("127.0.0.1", allow=egress_allow_parse(settings.EHR_EGRESS_ALLOW)) is None
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_SETTINGS_MODULE": "psyfi_review.settings_production",
        "SECRET_KEY": "x" * 60,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
        "ALLOWED_HOSTS": "notes.example.org",
        "PSYFI_CREDENTIALS_KEYS": Fernet.generate_key().decode(),
        "PSYFI_IDENTIFIER_SYSTEM": "https://notes.example.org/note-id",
    }
    read = "from django.conf import settings; print(repr(settings.EHR_EGRESS_ALLOW))"
    production = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True, check=False)
    assert production.stdout.strip() == "[]", production.stderr[-2000:]
    env["EHR_EGRESS_ALLOW"] = "10.20.0.0/16,ehr.clinic.lan,10.0.0.0/33"
    refused = subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "EHR_EGRESS_ALLOW: '10.0.0.0/33'" in refused.stderr


# ---------------------------------------------------------------- at connect


@override_settings(EHR_EGRESS_ALLOW=[])
def test_a_refused_address_is_never_connected_to(listener):
    target = listener()
    with pytest.raises(EgressRefused, match="loopback"):
        http_session().post(f"http://127.0.0.1:{target.port}/fhir/DocumentReference", json={"text": "PHI"}, timeout=2)
    assert target.connections() == []


@override_settings(EHR_EGRESS_ALLOW=[])
def test_a_name_is_resolved_and_refused_when_it_points_at_loopback(listener):
    target = listener()
    with pytest.raises(EgressRefused, match=r"localhost \(it resolves to .*loopback"):
        http_session().get(f"http://localhost:{target.port}/", timeout=2)
    assert target.connections() == []


def test_a_host_name_on_the_allow_list_is_trusted_whatever_it_resolves_to():
    with override_settings(EHR_EGRESS_ALLOW=["localhost"]):
        assert egress_addresses("localhost", 80)
        with pytest.raises(EgressRefused):
            egress_addresses("127.0.0.1", 80)  # the name is allowed, not the address


@pytest.mark.django_db
def test_a_delivery_to_a_refused_address_fails_for_good_and_the_ehr_receives_nothing(world, listener, settings):
    settings.PSYFI_DELIVERY_TIMEOUT = 2
    ehr = listener()
    fhir_connection(world.practice, f"http://127.0.0.1:{ehr.port}/fhir", auth_kind="bearer", secrets={"token": "t0k"})
    note = signed_note(world)
    settings.EHR_EGRESS_ALLOW = []
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert "egress policy" in delivery.last_error and "loopback" in delivery.last_error
    assert ehr.connections() == []  # neither the note nor the bearer token left


@pytest.mark.django_db
def test_an_hl7_delivery_to_a_refused_address_sends_neither_the_patient_query_nor_the_note(world, listener, settings):
    receiver = listener()
    connection_create(
        practice=world.practice,
        name="HL7",
        kind=EHRConnection.Kind.HL7,
        base_url=f"mllp://127.0.0.1:{receiver.port}",
        is_sandbox=True,
    )
    note = signed_note(world)
    settings.EHR_EGRESS_ALLOW = []
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED and "egress policy" in delivery.last_error
    assert receiver.connections() == []


@pytest.mark.django_db
def test_the_mdm_is_checked_on_its_own_after_an_allowed_patient_query(world, listener, settings):
    pdq = MLLPReceiver("AA").start()
    mdm = listener("127.0.0.2")
    try:
        connection_create(
            practice=world.practice,
            name="HL7",
            kind=EHRConnection.Kind.HL7,
            base_url=f"mllp://127.0.0.2:{mdm.port}",
            patient_query_url=pdq.url,
            is_sandbox=True,
        )
        note = signed_note(world)
        pdq.add_patient(note.client)
        settings.EHR_EGRESS_ALLOW = ["127.0.0.1/32"]
        delivery = send(note)
        assert len(pdq.queries) == 1  # the allowed PDQ supplier was asked
        assert delivery.state == Delivery.State.FAILED and "127.0.0.2" in delivery.last_error
        assert mdm.connections() == []
    finally:
        pdq.stop()


# ---------------------------------------------------------------- DNS rebinding


def test_the_checked_address_is_the_one_dialled(monkeypatch, stubs, listener):
    """A rebinding name answers an allowed address to the check and another
    one after. The name is looked up once per connection and the request
    lands on the address that was checked."""
    elsewhere = listener("127.0.0.2")
    allowed = stubs()
    lookups = []

    def rebinding_dns(host, port):
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["127.0.0.2"]

    monkeypatch.setattr(egress, "resolver", rebinding_dns)
    with override_settings(EHR_EGRESS_ALLOW=["127.0.0.1/32"]):
        response = http_session().get(f"http://ehr.rebind.test:{allowed.port}/metadata", timeout=5)
        assert response.status_code == 200
        assert lookups == ["ehr.rebind.test"]
        assert allowed.requests == [("GET", "/metadata", f"ehr.rebind.test:{allowed.port}")]
        # The next connection looks again; now the answer is refused.
        with pytest.raises(EgressRefused, match="127.0.0.2"):
            http_session().get(f"http://ehr.rebind.test:{elsewhere.port}/metadata", timeout=5)
    assert lookups == ["ehr.rebind.test", "ehr.rebind.test"]
    assert elsewhere.connections() == []


def test_a_name_with_one_refused_answer_among_public_ones_is_refused_whole(monkeypatch):
    monkeypatch.setattr(egress, "resolver", lambda host, port: ["93.184.215.14", "169.254.169.254"])
    with override_settings(EHR_EGRESS_ALLOW=[]), pytest.raises(EgressRefused, match="link-local"):
        egress_addresses("ehr.mixed.test", 443)


# ---------------------------------------------------------------- TLS names the host


def _certificate(tmp_path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def tls_ehr(tmp_path, stubs):
    """An HTTPS server on 127.0.0.1 whose certificate names ehr.egress.test;
    it records the SNI each handshake sent."""
    cert_path, key_path = _certificate(tmp_path, "ehr.egress.test")
    sni: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.sni_callback = lambda sock, name, ctx: sni.append(name)
    stub = stubs(tls=context)
    stub.sni, stub.ca = sni, str(cert_path)
    return stub


def test_tls_goes_to_the_checked_address_with_sni_and_certificate_check_on_the_name(monkeypatch, tls_ehr):
    lookups = []
    monkeypatch.setattr(egress, "resolver", lambda host, port: lookups.append(host) or ["127.0.0.1"])
    response = http_session().get(f"https://ehr.egress.test:{tls_ehr.port}/metadata", verify=tls_ehr.ca, timeout=5)
    assert response.status_code == 200
    assert tls_ehr.sni == ["ehr.egress.test"]
    assert lookups == ["ehr.egress.test"]
    # Same address, another name: the certificate does not match, and verification says so.
    with pytest.raises(requests.exceptions.SSLError):
        http_session().get(f"https://other.egress.test:{tls_ehr.port}/metadata", verify=tls_ehr.ca, timeout=5)


def test_mllp_over_tls_dials_the_checked_address_and_names_the_host(monkeypatch, tmp_path):
    cert_path, key_path = _certificate(tmp_path, "ehr.egress.test")
    sni: list[str] = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    server_context.sni_callback = lambda sock, name, ctx: sni.append(name)
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]

    def serve():
        for _ in range(2):
            conn, _ = listening.accept()
            try:
                with server_context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    lookups = []
    monkeypatch.setattr(egress, "resolver", lambda host, port: lookups.append(host) or ["127.0.0.1"])
    client_context = ssl.create_default_context(cafile=str(cert_path))

    async def exchange(host):
        reader, writer = await egress.stream_open(asyncio.open_connection, host, port, ssl=client_context)
        try:
            return await reader.read(5)
        finally:
            writer.close()

    try:
        assert asyncio.run(exchange("ehr.egress.test")) == b"hello"
        assert sni == ["ehr.egress.test"] and lookups == ["ehr.egress.test"]
        with pytest.raises(ssl.SSLCertVerificationError):
            asyncio.run(exchange("other.egress.test"))
    finally:
        listening.close()


# ---------------------------------------------------------------- redirects


@pytest.mark.django_db
def test_a_token_endpoint_redirect_to_plain_http_is_not_followed(world, stubs, fake_ehr):
    thief = stubs()
    token = stubs(307, {"Location": thief.url("/token")})
    connection = fhir_connection(
        world.practice,
        fake_ehr.base_url,
        auth_kind=EHRConnection.Auth.CLIENT_SECRET,
        client_id="psyfi",
        token_url=token.url("/token"),
        secrets={"client_secret": "s3cret"},
    )
    with pytest.raises(RedirectRefused, match=r"redirect \(307\) to http://127\.0\.0\.1:\d+/token"):
        auth.auth_headers(connection, timeout=5)
    assert len(token.requests) == 1
    assert thief.requests == []


@pytest.mark.django_db
def test_a_token_redirect_fails_the_delivery_for_good_with_the_reason(world, stubs, fake_ehr):
    thief = stubs()
    token = stubs(307, {"Location": thief.url("/token")})
    fhir_connection(
        world.practice,
        fake_ehr.base_url,
        auth_kind=EHRConnection.Auth.CLIENT_SECRET,
        client_id="psyfi",
        token_url=token.url("/token"),
        secrets={"client_secret": "s3cret"},
    )
    note = signed_note(world)
    fake_ehr.add_patient(note.client)
    delivery = send(note)
    assert delivery.state == Delivery.State.FAILED
    assert "redirect (307)" in delivery.last_error and "not followed" in delivery.last_error
    assert thief.requests == [] and fake_ehr.documents == []


def test_a_write_answered_with_a_redirect_is_a_failed_delivery_and_is_not_followed(stubs):
    elsewhere = stubs(201, {"Location": "/fhir/DocumentReference/1"})
    redirecting = stubs(307, {"Location": elsewhere.url("/fhir/DocumentReference")})
    target = fhir_transport.FhirTarget(
        base_url=redirecting.url("/fhir"), timeout=5, auth_headers=lambda force=False: {"Authorization": "Bearer t"}
    )
    reply = fhir_transport.resource_create(target, {"resourceType": "DocumentReference"}, if_none_exist=None)
    outcome = status_outcome(reply, write=True, resend_safe=False)
    assert reply.status == 307 and outcome.kind == outcome.FAILED and outcome.alert == "configuration"
    assert outcome.reason.startswith(f"The EHR answered a redirect (307) to {elsewhere.url('/fhir/DocumentReference')}")
    assert "redirects are not followed" in outcome.reason
    assert elsewhere.requests == []


# ---------------------------------------------------------------- at save


@pytest.mark.django_db
@override_settings(EHR_EGRESS_ALLOW=[])
@pytest.mark.parametrize(
    ("field", "url", "reason"),
    [
        ("base_url", "http://127.0.0.1:6379", "loopback"),
        ("base_url", "https://169.254.169.254/latest/meta-data/", "link-local"),
        ("base_url", "https://10.0.0.8/fhir", "private"),
        ("base_url", "https://[::ffff:127.0.0.1]:6379/", "loopback"),
        ("base_url", "https://localhost:6379/", "loopback"),
        ("token_url", "https://100.64.0.1/token", "CGNAT"),
    ],
)
def test_the_connection_form_refuses_an_internal_address_with_a_clear_error(world, login_as, field, url, reason):
    form = {
        "name": "Clinic EHR",
        "kind": "fhir",
        "base_url": "https://93.184.215.14/fhir",
        "is_sandbox": "on",
        "auth_kind": "client_secret" if field == "token_url" else "bearer",
        "client_id": "psyfi",
        "token_url": "",
        "username": "",
        "secret": "s3cret-token",
    }
    form[field] = url
    response = login_as(world.admin).post("/integrations/connections/", form)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors
    assert "egress policy" in errors[field][0] and reason in errors[field][0]
    assert not EHRConnection.objects.filter(practice=world.practice).exists()


@pytest.mark.django_db
@override_settings(EHR_EGRESS_ALLOW=[])
def test_the_service_refuses_an_internal_patient_query_address(world):
    with pytest.raises(EgressRefused) as refused:
        connection_create(
            practice=world.practice,
            name="HL7",
            kind=EHRConnection.Kind.HL7,
            base_url="mllps://93.184.215.14:2575",
            patient_query_url="mllps://192.168.0.10:3575",
            is_sandbox=True,
        )
    assert refused.value.field == "patient_query_url" and "private" in refused.value.message
    assert not EHRConnection.objects.filter(practice=world.practice).exists()


# ---------------------------------------------------------------- test connection


PLAIN = re.compile(
    r"^Could not read /metadata: (not reachable|refused by the egress policy|TLS failed|HTTP \d{3}\b.*)$"
)


def _tested(world, base_url: str) -> str:
    connection = fhir_connection(world.practice, base_url)
    summary = connection_test(connection=connection, actor=world.admin)
    error = summary["error"]
    assert PLAIN.match(error), error
    assert not re.search(r"Error|Exception|Refused|Timeout|Errno|\w+\.\w+\(", error), error
    logged = AuditEvent.objects.filter(action="connection.test").latest("pk")
    assert logged.after == {"error": error}
    return error


@pytest.mark.django_db
def test_test_connection_says_not_reachable_for_a_closed_port(world):
    assert _tested(world, f"http://127.0.0.1:{free_port()}/fhir") == "Could not read /metadata: not reachable"


@pytest.mark.django_db
def test_test_connection_says_refused_by_the_egress_policy(world, listener, settings):
    target = listener()
    connection = fhir_connection(world.practice, f"http://127.0.0.1:{target.port}/fhir")
    settings.EHR_EGRESS_ALLOW = []
    error = connection_test(connection=connection, actor=world.admin)["error"]
    assert error == "Could not read /metadata: refused by the egress policy"
    assert target.connections() == []


@pytest.mark.django_db
def test_test_connection_says_tls_failed(world, stubs):
    plain_http = stubs()
    assert _tested(world, f"https://127.0.0.1:{plain_http.port}/fhir") == "Could not read /metadata: TLS failed"


@pytest.mark.django_db
@pytest.mark.parametrize("status", [401, 404, 503])
def test_test_connection_says_the_http_status(world, stubs, status):
    ehr = stubs(status)
    assert _tested(world, ehr.url("/fhir")) == f"Could not read /metadata: HTTP {status}"


@pytest.mark.django_db
def test_test_connection_reports_a_redirect_by_its_status_and_does_not_follow_it(world, stubs):
    elsewhere = stubs()
    ehr = stubs(302, {"Location": elsewhere.url("/fhir/metadata")})
    error = _tested(world, ehr.url("/fhir"))
    assert error.startswith("Could not read /metadata: HTTP 302")
    assert elsewhere.requests == []


@pytest.mark.django_db
def test_test_connection_through_the_page_shows_the_plain_phrasing(world, login_as, settings):
    connection = fhir_connection(world.practice, f"http://127.0.0.1:{free_port()}/fhir")
    settings.EHR_EGRESS_ALLOW = []
    browser = login_as(world.admin)
    response = browser.post(f"/integrations/connections/{connection.pk}/test/", follow=True)
    page = response.content.decode()
    assert "refused by the egress policy" in page
    assert "EgressRefused" not in page and "ConnectionError" not in page


@pytest.mark.django_db
def test_an_operator_edit_in_django_admin_meets_the_policy_at_save(world):
    # The Django admin's connection form refuses a refused address with a
    # field error, as the practice admin's form does; a public one is kept.
    from integrations.admin import EHRConnectionAdminForm

    connection = fhir_connection(world.practice, "http://127.0.0.1:9/fhir")
    fields = {
        f: getattr(connection, f)
        for f in EHRConnectionAdminForm.base_fields
        if not isinstance(getattr(connection, f, None), (EHRConnection, type(None)))
    }
    fields["practice"] = world.practice.pk
    with override_settings(EHR_EGRESS_ALLOW=[]):
        form = EHRConnectionAdminForm(
            data={**fields, "base_url": "http://169.254.169.254/fhir", "token_url": "http://10.0.0.5/token"},
            instance=connection,
        )
        assert not form.is_valid()
        assert "link-local" in form.errors["base_url"][0]
        assert "private" in form.errors["token_url"][0]
        form = EHRConnectionAdminForm(data={**fields, "base_url": "https://93.184.215.14/fhir"}, instance=connection)
        assert form.is_valid(), form.errors
    connection.refresh_from_db()
    assert connection.base_url == "http://127.0.0.1:9/fhir"
