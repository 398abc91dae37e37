"""An EHR exchange (integrations.transports.base.http_exchange) goes to the
thread's session's adapter directly: the egress policy still holds on every
connection, and nothing an EHR sets (a cookie) is kept for the next request,
which may be another practice's to the same host."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from integrations.errors import EgressRefused
from integrations.transports import fhir as fhir_transport
from integrations.transports.base import http_exchange


class _CookieEHR:
    """A loopback FHIR server that sets a session cookie on every answer and
    records the headers of every request."""

    def __init__(self):
        self.seen: list[dict] = []
        ehr = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                ehr.seen.append(dict(self.headers))
                body = json.dumps({"resourceType": "Patient", "id": "p1", "birthDate": "1990-01-01"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Set-Cookie", "GATEWAYSESSION=practice-a; Path=/")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cookie_ehr():
    ehr = _CookieEHR()
    yield ehr
    ehr.stop()


def _target(base_url: str) -> fhir_transport.FhirTarget:
    return fhir_transport.FhirTarget(base_url=base_url, timeout=5, auth_headers=lambda force=False: {})


def test_a_cookie_an_ehr_sets_is_not_sent_with_the_next_request(cookie_ehr):
    first = fhir_transport.patient_read(_target(cookie_ehr.base_url), "p1")
    second = fhir_transport.patient_read(_target(cookie_ehr.base_url), "p1")
    assert first.status == second.status == 200
    assert "GATEWAYSESSION=practice-a" in first.headers["Set-Cookie"]
    assert len(cookie_ehr.seen) == 2
    assert all("Cookie" not in headers for headers in cookie_ehr.seen)
    # What a Session would have sent, and who is asking.
    assert cookie_ehr.seen[1]["Accept"] == "application/fhir+json"
    assert cookie_ehr.seen[1]["User-Agent"].startswith("psyfi-review ")


@override_settings(EHR_EGRESS_ALLOW=[])
def test_an_ehr_exchange_refuses_an_address_the_egress_policy_refuses(cookie_ehr):
    with pytest.raises(EgressRefused, match="loopback"):
        http_exchange("GET", f"{cookie_ehr.base_url}/Patient/p1", headers={}, timeout=2)
    assert cookie_ehr.seen == []
