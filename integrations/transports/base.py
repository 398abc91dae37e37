"""What every transport shares: the facts it returns (a Reply: status,
headers, body, whether bytes left), the URL rule (TLS off loopback), an HTTP
session with TLS 1.2 or newer, verified certificates and the egress policy
on every connection (integrations.egress), and telling a request that
never left from one that may have reached the EHR. Transports do I/O only;
what an answer means is decided by integrations.outcomes, the same for
every protocol."""

import ipaddress
import ssl
import threading
from urllib.parse import urlparse

import requests
from django.conf import settings

from integrations.egress import GuardedAdapter
from integrations.errors import ConnectionInvalid, EgressRefused, RedirectRefused
from integrations.outcomes import Outcome, Reply, failed, retry, retry_after_seconds, sent, unknown


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


# What a Session would add to every request (requests' default headers, with
# our own User-Agent): http_exchange goes to the adapter directly.
_EXCHANGE_HEADERS = {
    **requests.utils.default_headers(),
    "User-Agent": f"psyfi-review python-requests/{requests.__version__}",
}


def http_exchange(
    method: str, url: str, *, headers: dict, timeout: float, json: dict | None = None, params: dict | None = None
) -> requests.Response:
    """One request to an EHR over the thread's session's adapter (its
    keep-alive pools, TLS floor and egress policy), without what
    Session.request merges in around it: cookies, hooks, redirects, the
    environment. An EHR exchange uses none of them (redirects are refused,
    the environment is not read), and a cookie kept in a thread's session
    would go with the next practice's request to the same EHR host. That
    merging was half of requests' CPU per exchange, paid twice per delivery
    (bench/delivery.py). Raises requests.RequestException as Session.request
    does: the adapter maps urllib3's errors."""
    request = requests.Request(
        method, url, headers={**_EXCHANGE_HEADERS, **headers}, json=json, params=params
    ).prepare()
    return http_session().get_adapter(url).send(request, timeout=timeout, verify=True)


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


def reply_of(response: requests.Response) -> Reply:
    """The facts of an HTTP answer."""
    return Reply(status=response.status_code, headers=dict(response.headers), body=response.content)


def unanswered(exc: BaseException) -> Reply:
    """The facts of an exchange that got no answer. The one place that tells
    a request that cannot have reached the EHR (refused, not resolved,
    connect timeout: resending is safe) from one that may have."""
    return Reply(status=None, bytes_sent=not _before_sending(exc), error=type(exc).__name__)


def _before_sending(exc: BaseException) -> bool:
    if isinstance(exc, requests.ConnectTimeout | ConnectionRefusedError):
        return True
    if isinstance(exc, requests.ConnectionError):
        text = repr(exc)
        return "NewConnectionError" in text or "Connection refused" in text or "NameResolution" in text
    return False


__all__ = [
    "Outcome",
    "Reply",
    "connection_problem",
    "failed",
    "http_exchange",
    "http_session",
    "redirect_reason",
    "reply_of",
    "retry",
    "retry_after_seconds",
    "sent",
    "unanswered",
    "unknown",
    "url_check",
]
