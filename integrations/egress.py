"""Outbound egress policy: where the worker may send PHI and secrets.

A practice admin types the EHR's address, so without a guard they could aim
the worker (with the note text and the connection's secret) at loopback
services, the cloud metadata endpoint or hosts on the internal network. Every
outbound connection (FHIR, REST, OAuth token, MLLP MDM and PDQ) therefore:

1. resolves the host once and refuses it if any address it resolves to is
   loopback, link-local, private, shared (CGNAT), multicast, reserved or
   otherwise not globally routable, unless `EHR_EGRESS_ALLOW` lists the host
   name or a CIDR block holding the address;
2. connects to the address that was checked, never to the name again: a
   second lookup could answer differently (DNS rebinding). TLS still sends
   SNI for the name and verifies the certificate against the name.

`address_refusal` is the pure policy; `egress_addresses` resolves and checks;
`GuardedAdapter` (requests) and `stream_open` (asyncio, MLLP) connect.
"""

import asyncio
import functools
import ipaddress
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from integrations.errors import EgressRefused

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused unless allowed. The first block that holds an address names the
# reason; anything else Python does not call globally routable is refused
# too ("not globally routable"), so a block missing here still fails closed.
REFUSED_BLOCKS: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(block), reason)
    for block, reason in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "reserved (documentation)"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved (benchmarking)"),
        ("198.51.100.0/24", "reserved (documentation)"),
        ("203.0.113.0/24", "reserved (documentation)"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/8", "reserved"),
        ("64:ff9b:1::/48", "private"),
        ("100::/64", "reserved (discard)"),
        ("2001::/23", "reserved"),
        ("2001:db8::/32", "reserved (documentation)"),
        ("fc00::/7", "private (unique local)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class EgressAllow:
    """What the operator allows beyond the public internet: exact host names
    (trusted whatever they resolve to) and address blocks."""

    names: frozenset[str]
    networks: tuple[Network, ...]

    def allows_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    def allows_address(self, address: Address) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def egress_allow_parse(entries: Iterable[str]) -> EgressAllow:
    """Raises ValueError naming the first entry that is neither a CIDR block
    (or a single address) nor a host name."""
    names, networks = set(), []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if not _is_host_name(entry):
            raise ValueError(f"{entry!r} is neither an address block (CIDR) nor a host name")
        names.add(entry.lower().rstrip("."))
    return EgressAllow(names=frozenset(names), networks=tuple(networks))


def egress_allow_setting(name: str, values: list[str]) -> list[str]:
    """For settings.py: the entries of `name`, or ImproperlyConfigured naming
    the variable and the bad entry (start-up stops)."""
    try:
        egress_allow_parse(values)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}.") from None
    return [value.strip() for value in values if value.strip()]


def _is_host_name(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    # A last label of digits is a mistyped address (10.0.0.300), not a name.
    return (
        bool(text)
        and len(text) <= 253
        and not labels[-1].isdigit()
        and all(
            0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii() and not label.startswith("-")
            for label in labels
        )
    )


@functools.lru_cache(maxsize=8)
def _allow_from(entries: tuple[str, ...]) -> EgressAllow:
    return egress_allow_parse(entries)


def egress_allow() -> EgressAllow:
    """The operator's allow-list, read from settings at every call (so
    override_settings and a reloaded configuration take effect at the next
    connect); parsed once per distinct value."""
    return _allow_from(tuple(getattr(settings, "EHR_EGRESS_ALLOW", ())))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a v6 address reaches: IPv4-mapped (what the kernel
    actually connects to), NAT64 (64:ff9b::/96) and 6to4 (2002::/16)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_refusal(address: str | Address, *, allow: EgressAllow) -> str | None:
    """None when the policy lets us connect to `address`; otherwise why not,
    as a category a person can read ("loopback", "private", ...). Pure: no
    I/O, no settings."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and address.ipv4_mapped is not None:
            # ::ffff:a.b.c.d is a.b.c.d on the wire: judge (and allow) it as such.
            return address_refusal(embedded, allow=allow)
        if embedded is not None and not allow.allows_address(address):
            inner = address_refusal(embedded, allow=allow)
            if inner is not None:
                return f"{inner} (embedded in an IPv6 address)"
            if address in NAT64:
                return None  # a translator's address for a public IPv4 one (::/8 below would call it reserved)
    if allow.allows_address(address):
        return None
    for block, reason in REFUSED_BLOCKS:
        if address.version == block.version and address in block:
            return reason
    if not address.is_global or address.is_multicast or address.is_reserved:
        return "not globally routable"
    return None


# ---------------------------------------------------------------- resolving and checking


def _system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        if sockaddr[0] not in seen:
            seen.append(sockaddr[0])
    return seen


# The one DNS lookup of a connection. A module attribute so a test can stand
# in for DNS (and prove that nothing looks the name up twice).
resolver: Callable[[str, int], list[str]] = _system_resolve


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def egress_addresses(host: str, port: int) -> list[str]:
    """The addresses to connect to for host:port, each one checked. Raises
    EgressRefused when the host, or any address it resolves to, is refused
    (a name that mixes public and internal answers is refused whole), and
    socket.gaierror when the name does not resolve."""
    allow = egress_allow()
    literal = _literal(host)
    addresses = [str(literal)] if literal is not None else resolver(host, port)
    if not addresses:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
    if literal is None and allow.allows_name(host):
        return addresses
    for address in addresses:
        reason = address_refusal(address, allow=allow)
        if reason is not None:
            where = address if literal is not None else f"{host} (it resolves to {address})"
            raise EgressRefused(
                f"The egress policy refuses {where}: the address is {reason}. "
                "Only EHR_EGRESS_ALLOW opens addresses beyond the public internet."
            )
    return addresses


def egress_check_url(url: str, *, field: str = "base_url") -> None:
    """The check at save: raises EgressRefused (a ConnectionInvalid with the
    form field) when the URL's host is refused. A name that does not resolve
    now is let through: nothing can reach it, and every connect checks again."""
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return
    try:
        port = parsed.port or {"https": 443, "http": 80}.get(parsed.scheme, 2575)
    except ValueError:
        return  # a malformed port: url_check or the connect reports it
    try:
        egress_addresses(host, port)
    except EgressRefused as exc:
        raise EgressRefused(exc.message, field=field) from None
    except (OSError, UnicodeError):
        return


# ---------------------------------------------------------------- requests (urllib3)


class _GuardedConnectionMixin:
    """Replaces urllib3's connect step: resolve once, check, connect to the
    checked address. `self.host` stays the name, so the Host header, SNI and
    the certificate's hostname check all use the name."""

    def _new_conn(self) -> socket.socket:
        try:
            addresses = egress_addresses(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        error: OSError | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:  # refused, unreachable, timed out: try the next address
                error = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if isinstance(error, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from error
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every new connection goes through the egress
    policy. `ssl_context` (optional) sets the TLS floor; certificates are
    verified as requests does."""

    def __init__(self, *args, ssl_context=None, **kwargs):
        self._ssl_context = ssl_context
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args, **kwargs):
        if self._ssl_context is not None:
            kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        # Through a proxy the proxy would pick the address: the policy could
        # not be kept, so none is used (the session does not read proxies
        # from the environment either).
        raise EgressRefused("Outbound EHR traffic does not go through proxies; the egress policy cannot be kept.")


# ---------------------------------------------------------------- asyncio streams (MLLP)


async def stream_open(opener, host: str, port: int, *, ssl=None, **kwargs):
    """Open a stream with `opener` (asyncio.open_connection's shape, e.g.
    hl7's open_hl7_connection) to a checked address of host:port. With TLS
    the handshake names `host` (SNI and certificate check), not the address.
    Raises EgressRefused, socket.gaierror or OSError."""
    loop = asyncio.get_running_loop()
    addresses = await loop.run_in_executor(None, egress_addresses, host, port)
    if ssl is not None:
        kwargs["ssl"] = ssl
        kwargs["server_hostname"] = host.strip("[]")
    error: OSError | None = None
    for address in addresses:
        try:
            return await opener(address, port, **kwargs)
        except OSError as exc:
            error = exc
    raise error  # type: ignore[misc]
