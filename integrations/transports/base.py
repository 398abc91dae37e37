"""What every transport shares: the outcome it returns, the URL rule (TLS off
loopback), an HTTP session with TLS 1.2 or newer, verified certificates and
the egress policy on every connection (integrations.egress), reading an
EHR's error answers, and refusing its redirects. Transports do I/O only; the
rules about what an outcome means for the delivery live in
integrations.services."""

import ipaddress
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlparse

import requests
from django.conf import settings

from integrations.egress import GuardedAdapter
from integrations.errors import ConnectionInvalid, EgressRefused, RedirectRefused


@dataclass(frozen=True)
class Outcome:
    """sent (ehr_id), retry (after N seconds, nothing written), failed (reason,
    permanent or not) or unknown (the EHR may have written it: reconcile)."""

    kind: str
    ehr_id: str = ""
    retry_after: float | None = None
    reason: str = ""
    permanent: bool = False
    http_status: int | None = None
    alert: str = ""

    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNKNOWN = "unknown"


def sent(ehr_id: str, *, http_status: int | None = None, reason: str = "") -> Outcome:
    return Outcome(Outcome.SENT, ehr_id=ehr_id, http_status=http_status, reason=reason)


def retry(reason: str, *, after: float | None = None, http_status: int | None = None, alert: str = "") -> Outcome:
    return Outcome(Outcome.RETRY, retry_after=after, reason=reason, http_status=http_status, alert=alert)


def failed(reason: str, *, permanent: bool = True, http_status: int | None = None, alert: str = "") -> Outcome:
    return Outcome(Outcome.FAILED, reason=reason, permanent=permanent, http_status=http_status, alert=alert)


def unknown(reason: str, *, after: float | None = None, http_status: int | None = None) -> Outcome:
    return Outcome(Outcome.UNKNOWN, reason=reason, retry_after=after, http_status=http_status)


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_check(url: str, *, schemes: tuple[str, ...] = ("https", "http"), field: str = "base_url") -> None:
    """Raises ConnectionInvalid for a URL we will not send PHI to: plain http
    (or plain MLLP) is refused unless the host is on loopback."""
    parsed = urlparse(url)
    if parsed.scheme not in schemes or not parsed.hostname:
        raise ConnectionInvalid(f"'{url}' is not a valid {' or '.join(schemes)} URL.", field=field)
    if parsed.scheme in ("http", "mllp") and not is_loopback(parsed.hostname):
        raise ConnectionInvalid(
            f"Plain {parsed.scheme} is refused for anything but loopback; use {parsed.scheme}s (TLS 1.2 or newer).",
            field=field,
        )


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


_local = threading.local()


def http_session() -> requests.Session:
    """One keep-alive session per thread (worker threads share nothing).
    Every new connection resolves once, is checked against the egress policy
    and goes to the checked address. The environment's proxies and .netrc are
    not read (trust_env off): through a proxy the policy could not be kept,
    and no credential but the connection's own may reach an EHR. A change of
    EHR_EGRESS_ALLOW drops the session, so kept-alive connections opened
    under the old policy are not reused."""
    policy = tuple(getattr(settings, "EHR_EGRESS_ALLOW", ()))
    session = getattr(_local, "session", None)
    if session is not None and getattr(_local, "policy", None) != policy:
        session.close()
        session = None
    if session is None:
        session = requests.Session()
        session.trust_env = False
        session.mount("https://", GuardedAdapter(pool_connections=4, pool_maxsize=8, ssl_context=_tls_context()))
        session.mount("http://", GuardedAdapter(pool_connections=4, pool_maxsize=8))
        session.verify = True
        _local.session, _local.policy = session, policy
    return session


def redirect_reason(response: requests.Response, *, who: str = "The EHR") -> str | None:
    """Why a 3xx answer is refused, or None for any other status. Redirects
    are never followed: a write, a token request or a secret would go to an
    address nobody configured (and that no egress check saw at save)."""
    if not 300 <= response.status_code < 400:
        return None
    location = (response.headers.get("Location") or "no Location")[:200]
    return (
        f"{who} answered a redirect ({response.status_code}) to {location}; redirects are not followed. "
        "Correct the connection's address if the EHR has moved."
    )


def redirect_outcome(response: requests.Response) -> Outcome | None:
    """A failed delivery for good (configuration alert) when the EHR
    answered a redirect; None otherwise."""
    reason = redirect_reason(response)
    if reason is None:
        return None
    return failed(reason, http_status=response.status_code, alert="configuration")


def connection_problem(exc: Exception) -> str:
    """What "test connection" tells the admin: not reachable, refused by the
    egress policy, TLS failed or HTTP n. Never an exception's class name or
    text: those tell a port scanner more than an admin needs (closed versus
    filtered versus not HTTP), and the answer goes into the audit log."""
    if isinstance(exc, EgressRefused):
        return "refused by the egress policy"
    if isinstance(exc, RedirectRefused):
        return f"HTTP {exc.http_status} (a redirect; redirects are not followed)"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS failed"
    response = getattr(exc, "response", None)
    if isinstance(exc, requests.HTTPError) and response is not None:
        return f"HTTP {response.status_code}"
    if isinstance(exc, ConnectionInvalid):
        return exc.message  # our own words (no signing key, bad address): safe and useful
    if isinstance(exc, ValueError):
        return "HTTP 200, but the answer is not a FHIR CapabilityStatement"
    return "not reachable"


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


def operation_outcome_message(response: requests.Response) -> tuple[str, set[str]]:
    """The EHR's own words from an OperationOutcome (diagnostics or details),
    and its issue codes. Falls back to the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    messages, codes = [], set()
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        for issue in body.get("issue") or []:
            if not isinstance(issue, dict):
                continue
            codes.add(str(issue.get("code", "")))
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if text:
                messages.append(str(text))
    message = "; ".join(messages) or f"HTTP {response.status_code} {response.reason or ''}".strip()
    return message[:1000], codes
