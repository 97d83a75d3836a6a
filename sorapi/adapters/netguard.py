"""Outbound-request safety (SSRF): which callback URLs we accept and which address we connect to.

A callback URL passes only when it is HTTPS, names its host unambiguously (no integer, octal or
hex IPv4 spellings), and every A/AAAA answer for that host is a public address. The caller then
connects to the address that was checked (`Target.ip`), never to a fresh lookup, so a DNS answer
that changes between check and connect (rebinding) cannot redirect the request.

The development switch (`SORAPI_WEBHOOK_ALLOW_HTTP`) additionally opens `http://` and loopback
addresses, and nothing else: private, link-local and metadata addresses stay closed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import structlog

log = structlog.get_logger()

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""(host, port) → every address the name resolves to, as strings."""

RESOLVE_TIMEOUT_S = 5.0
DEFAULT_PORTS = frozenset({443, 8443})
"""Ports a callback may name unless configured otherwise (`SORAPI_WEBHOOK_ALLOWED_PORTS`)."""
NAT64 = ipaddress.ip_network("64:ff9b::/96")
"""The well-known NAT64 prefix (RFC 6052): its last 32 bits are the IPv4 address it reaches."""
BLOCKED_V6 = {
    ipaddress.ip_network("fec0::/10"): "site-local addresses (fec0::/10) are not allowed",
    ipaddress.ip_network("64:ff9b:1::/48"): "local-use NAT64 addresses (64:ff9b:1::/48) are not allowed",
}
"""Deprecated site-local (which Python's `is_private` misses) and the local-use NAT64 prefix (RFC
8215), whose mapping the network operator defines: it may well translate to internal addresses."""
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_DNS_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


class Blocked(ValueError):
    """The URL or one of its addresses is not allowed; the message says why (safe to show users)."""


class Unresolvable(ValueError):
    """The host name does not resolve (now); a later attempt may succeed."""


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to `ip`, but speak to `host` (Host header, TLS SNI, cert)."""

    scheme: str
    host: str
    port: int
    path: str
    ip: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{host}{'' if self.port == default else f':{self.port}'}{self.path}"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    host: str
    port: int
    path: str
    literal_ip: IPAddress | None


def parse_callback_url(url: str, *, allow_http: bool = False) -> ParsedUrl:
    """Check the URL's shape (no DNS): scheme, no credentials, an unambiguous host, a sane port."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise Blocked(f"not a valid URL: {exc}") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise Blocked(
            "callback_url must use https://" if not allow_http else "callback_url must use https:// or http://"
        )
    if parts.username is not None or parts.password is not None:
        raise Blocked("callback_url must not contain credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Blocked("callback_url must name a host")
    if "%" in host:
        raise Blocked("IPv6 zone identifiers are not allowed")
    literal = _literal_ip(host)
    if literal is None:
        host = _dns_name(host)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default_port = 443 if parts.scheme == "https" else 80
    return ParsedUrl(
        scheme=parts.scheme,
        host=str(literal) if literal else host,
        port=port if port is not None else default_port,
        path=path,
        literal_ip=literal,
    )


def _literal_ip(host: str) -> IPAddress | None:
    """An IP literal in canonical form, or None for a DNS name; odd numeric spellings are refused.

    Browsers and libc read `2130706433`, `0x7f.1`, `0177.0.0.1` and `127.1` as 127.0.0.1; a name
    whose last label is numeric is therefore an IPv4 address in disguise and never a DNS name.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1].lower()):
        raise Blocked("IPv4 addresses must be written as four decimal octets (a.b.c.d)")
    return None


def _dns_name(host: str) -> str:
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise Blocked("the host name is not a valid domain name") from None
    if len(ascii_host) > 253 or not all(_DNS_LABEL.match(label) for label in ascii_host.split(".")):
        raise Blocked("the host name is not a valid domain name")
    return ascii_host


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4, Teredo or NAT64 address reaches (those route to it)."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why an address may not receive webhooks, or None when it is public (or allowed loopback)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "IPv4-mapped IPv6 addresses are not allowed"
        blocked = next((why for net, why in BLOCKED_V6.items() if ip in net), None)
        if blocked:
            return blocked
        inner = embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner, allow_loopback=allow_loopback)
            return f"it tunnels to {inner}: {problem}" if problem else None
    if ip.is_loopback:
        return None if allow_loopback else "loopback addresses are not allowed"
    if ip.is_unspecified:
        return "the unspecified address is not allowed"
    if ip.is_link_local:
        return "link-local addresses (including cloud metadata 169.254.169.254) are not allowed"
    if ip.is_multicast:
        return "multicast addresses are not allowed"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "carrier-grade NAT addresses (100.64.0.0/10) are not allowed"
    if ip.is_private:
        return "private addresses are not allowed"
    if ip.is_reserved or not ip.is_global:
        return "reserved or non-global addresses are not allowed"
    return None


async def system_resolve(host: str, port: int) -> list[str]:
    """Every A/AAAA answer from the system resolver."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError) as exc:
        raise Unresolvable(f"{host} does not resolve: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_url(
    url: str, *, allow_http: bool = False, ports: frozenset[int] = DEFAULT_PORTS, resolver: Resolver = system_resolve
) -> Target:
    """The checked target for a callback URL: an allowed port, every answer public, the first one pinned.

    Raises `Blocked` (never acceptable as it stands) or `Unresolvable` (DNS said nothing usable).
    The development switch (`allow_http`) lifts the port rule: local receivers listen anywhere.
    """
    parsed = parse_callback_url(url, allow_http=allow_http)
    if not allow_http and parsed.port not in ports:
        allowed = ", ".join(map(str, sorted(ports)))
        raise Blocked(f"port {parsed.port} is not allowed for callbacks (allowed: {allowed})")
    if parsed.literal_ip is not None:
        answers: list[IPAddress] = [parsed.literal_ip]
    else:
        raw = await resolver(parsed.host, parsed.port)
        if not raw:
            raise Unresolvable(f"{parsed.host} has no A/AAAA records")
        try:
            answers = [ipaddress.ip_address(a.split("%", 1)[0]) for a in raw]
        except ValueError as exc:
            raise Blocked(f"{parsed.host} resolved to something that is not an address: {exc}") from None
    for ip in answers:
        problem = address_problem(ip, allow_loopback=allow_http)
        if problem:
            # The address a name resolved to stays out of the message: from inside the network DNS may
            # answer with internal addresses, and the message reaches the customer (422, delivery log).
            shown = (
                f"{parsed.host} resolves to an address that is not allowed" if parsed.literal_ip is None else str(ip)
            )
            raise Blocked(f"{shown}: {problem}")
    return Target(scheme=parsed.scheme, host=parsed.host, port=parsed.port, path=parsed.path, ip=str(answers[0]))


def warn_if_open(allow_http: bool, process: str) -> None:
    """Say it loudly: the development switch lets webhooks reach http:// and this machine."""
    if allow_http:
        log.warning(
            "SORAPI_WEBHOOK_ALLOW_HTTP is ON: webhooks may use http:// and reach loopback "
            "addresses. Development only - never enable this in production.",
            component=process,
        )


def shape_problem(url: str, *, allow_http: bool = False) -> str | None:
    """Why a callback URL is refused without asking DNS (scheme, host spelling, literal address)."""
    try:
        parsed = parse_callback_url(url, allow_http=allow_http)
    except Blocked as exc:
        return str(exc)
    if parsed.literal_ip is not None:
        problem = address_problem(parsed.literal_ip, allow_loopback=allow_http)
        if problem:
            return f"{parsed.literal_ip}: {problem}"
    return None
