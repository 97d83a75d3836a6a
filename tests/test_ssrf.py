"""SSRF safety of webhook destinations.

The address matrix, pinned connections (no DNS rebinding), TLS to a pinned address still verified for the name,
redirects never followed, 422 at creation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sorapi.adapters import netguard, outbound
from sorapi.cli import servers
from tests.stack import Api
from tests.webhook_receiver import Receiver


def resolver(table: dict[str, list[str]]) -> netguard.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise netguard.Unresolvable(f"{host} does not resolve")
        return table[host]

    return resolve


DNS = resolver(
    {
        "hooks.example.com": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
        "rebind.example.com": ["127.0.0.1"],
        "private.example.com": ["10.1.2.3"],
        "mixed.example.com": ["93.184.216.34", "192.168.0.10"],
        "metadata.example.com": ["169.254.169.254"],
        "mapped.example.com": ["::ffff:127.0.0.1"],
    }
)

BLOCKED = [
    ("plain http", "http://hooks.example.com/hook"),
    ("ftp", "ftp://hooks.example.com/hook"),
    ("no host", "https:///hook"),
    ("credentials", "https://user:pw@hooks.example.com/hook"),
    ("loopback literal", "https://127.0.0.1/hook"),
    ("loopback elsewhere in 127/8", "https://127.8.9.10/hook"),
    ("name resolving to 127.0.0.1", "https://rebind.example.com/hook"),
    ("IPv6 loopback", "https://[::1]/hook"),
    ("IPv4-mapped IPv6 loopback", "https://[::ffff:127.0.0.1]/hook"),
    ("IPv4-mapped IPv6 public", "https://[::ffff:93.184.216.34]/hook"),
    ("name resolving to mapped IPv6", "https://mapped.example.com/hook"),
    ("10/8", "https://10.0.0.1/hook"),
    ("172.16/12 low", "https://172.16.0.1/hook"),
    ("172.16/12 high", "https://172.31.255.254/hook"),
    ("192.168/16", "https://192.168.1.1/hook"),
    ("name resolving to 10/8", "https://private.example.com/hook"),
    ("one private answer among public ones", "https://mixed.example.com/hook"),
    ("cloud metadata", "https://169.254.169.254/latest/meta-data/"),
    ("name resolving to metadata", "https://metadata.example.com/hook"),
    ("link-local", "https://169.254.1.1/hook"),
    ("IPv6 link-local", "https://[fe80::1]/hook"),
    ("IPv6 unique local", "https://[fd00:ec2::254]/hook"),
    ("CGNAT 100.64/10", "https://100.64.0.1/hook"),
    ("CGNAT top", "https://100.127.255.254/hook"),
    ("unspecified", "https://0.0.0.0/hook"),
    ("IPv6 unspecified", "https://[::]/hook"),
    ("multicast", "https://224.0.0.1/hook"),
    ("global multicast", "https://233.252.0.1/hook"),
    ("IPv6 multicast", "https://[ff02::1]/hook"),
    ("broadcast", "https://255.255.255.255/hook"),
    ("reserved 240/4", "https://240.0.0.1/hook"),
    ("NAT64 to loopback", "https://[64:ff9b::7f00:1]/hook"),
    ("local-use NAT64, even to a public address", "https://[64:ff9b:1::5db8:d822]/hook"),
    ("IPv6 site-local", "https://[fec0::1]/hook"),
    ("port outside the allowed list", "https://hooks.example.com:8080/hook"),
    ("ssh port", "https://hooks.example.com:22/hook"),
    ("6to4 to private", "https://[2002:a00:1::1]/hook"),
    ("integer IPv4", "http://2130706433/hook"),
    ("integer IPv4 over https", "https://2130706433/hook"),
    ("hex IPv4", "https://0x7f.1/hook"),
    ("hex integer IPv4", "https://0x7f000001/hook"),
    ("octal IPv4", "https://0177.0.0.1/hook"),
    ("short IPv4", "https://127.1/hook"),
    ("leading-zero octet", "https://127.000.000.001/hook"),
    ("zone id", "https://[fe80::1%25eth0]/hook"),
]


@pytest.mark.parametrize(("case", "url"), BLOCKED, ids=[c for c, _ in BLOCKED])
async def test_blocked(case: str, url: str) -> None:
    with pytest.raises(netguard.Blocked):
        await netguard.check_url(url, resolver=DNS)


async def test_localhost_resolving_to_loopback_is_blocked_with_the_system_resolver() -> None:
    with pytest.raises(netguard.Blocked, match="loopback") as refused:
        await netguard.check_url("https://localhost/hook")
    assert "127.0.0.1" not in str(refused.value), "what a name resolves to inside the network is not told"


@pytest.mark.parametrize(
    ("url", "ip"),
    [
        ("https://hooks.example.com/a?b=1", "93.184.216.34"),
        ("https://hooks.example.com:8443/a", "93.184.216.34"),
        ("https://8.8.8.8/hook", "8.8.8.8"),
        ("https://[2606:4700::1111]/hook", "2606:4700::1111"),
    ],
)
async def test_public_destinations_pass_and_pin_the_checked_address(url: str, ip: str) -> None:
    target = await netguard.check_url(url, resolver=DNS)
    assert target.ip == ip
    assert target.url == url


@pytest.mark.parametrize(
    ("url", "ports", "allowed"),
    [
        ("https://hooks.example.com:9443/hook", frozenset({443, 9443}), True),
        ("https://hooks.example.com/hook", frozenset({9443}), False),
        ("https://hooks.example.com:8443/hook", frozenset({443}), False),
    ],
)
async def test_callback_ports_are_the_configured_ones(url: str, ports: frozenset[int], allowed: bool) -> None:
    if allowed:
        assert (await netguard.check_url(url, ports=ports, resolver=DNS)).port == 9443
    else:
        with pytest.raises(netguard.Blocked, match="not allowed for callbacks"):
            await netguard.check_url(url, ports=ports, resolver=DNS)


def test_the_port_setting_defaults_to_443_and_8443_and_refuses_garbage() -> None:
    from sorapi.adapters.settings import settings_from_env

    assert settings_from_env({}).callback_ports == netguard.DEFAULT_PORTS == {443, 8443}
    assert settings_from_env({"SORAPI_WEBHOOK_ALLOWED_PORTS": "443, 9443"}).callback_ports == {443, 9443}
    with pytest.raises(ValueError):
        settings_from_env({"SORAPI_WEBHOOK_ALLOWED_PORTS": "443,99999"})


async def test_unresolvable_names_are_reported_as_such() -> None:
    with pytest.raises(netguard.Unresolvable):
        await netguard.check_url("https://nowhere.example.com/hook", resolver=DNS)


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://127.0.0.1:8080/hook", True),
        ("http://localhost:8080/hook", True),
        ("https://[::1]/hook", True),
        ("http://10.0.0.1/hook", False),
        ("http://169.254.169.254/", False),
        ("http://2130706433/hook", False),
    ],
)
async def test_the_development_switch_opens_http_and_loopback_only(url: str, allowed: bool) -> None:
    if allowed:
        assert await netguard.check_url(url, allow_http=True)
    else:
        with pytest.raises(netguard.Blocked):
            await netguard.check_url(url, allow_http=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


async def test_the_connection_goes_to_the_checked_address_not_a_fresh_lookup(receiver: Receiver) -> None:
    """`pinned.example.com` exists only in the checked answer (system DNS knows nothing of it).

    The request still arrives, addressed to the name, so nothing resolved it again.
    """
    dns = resolver({"pinned.example.com": ["127.0.0.1"]})
    target = await netguard.check_url(f"http://pinned.example.com:{receiver.port}/hook", allow_http=True, resolver=dns)
    result = await outbound.post(target, b"{}", {"Content-Type": "application/json"})
    assert result.status_code == 200, result.error
    assert receiver.received[0].headers["host"] == f"pinned.example.com:{receiver.port}"


async def test_a_request_that_cannot_be_sent_is_a_failed_attempt_not_an_exception(receiver: Receiver) -> None:
    """A non-ASCII header value (httpcore raises TypeError) must be recorded, not crash the activity."""
    target = await netguard.check_url(receiver.url("/hook"), allow_http=True)
    result = await outbound.post(target, b"{}", {"X-Env": "caf\u00e9"})
    assert result.status_code is None and result.error == "the request could not be sent"
    assert (result.detail or "").startswith("TypeError"), "the detail is kept for the logs"
    assert receiver.received == []


async def test_refused_and_silent_receivers_read_alike_in_the_delivery_log() -> None:
    """The customer sees one phrase for a closed port, a filtered one and an unreachable host.

    The delivery log thus cannot map which ports answer; the exception stays in `detail` for the logs.
    """
    closed = await netguard.check_url(f"http://127.0.0.1:{servers.free_port()}/hook", allow_http=True)
    refused = await outbound.post(closed, b"{}", {}, timeout_s=1)

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    silent_server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent_server.sockets[0].getsockname()[1]
    try:
        silent = await outbound.post(
            await netguard.check_url(f"http://127.0.0.1:{port}/hook", allow_http=True), b"{}", {}, timeout_s=1
        )
    finally:
        silent_server.close()
    assert refused.error == silent.error and refused.error is not None and "refused" not in refused.error.lower()
    assert "Connect" in (refused.detail or "") and refused.detail != silent.detail


async def test_the_pinned_backend_refuses_any_other_host() -> None:
    backend = outbound.PinnedBackend("hooks.example.com", "127.0.0.1")
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("evil.example.com", 443)


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.scripts["/hook"] = [(302, {"Location": receiver.url("/elsewhere")})]
    target = await netguard.check_url(receiver.url("/hook"), allow_http=True)
    result = await outbound.post(target, b"{}", {})
    assert result.status_code == 302
    assert receiver.at("/elsewhere") == []
    from sorapi.activities.webhooks import _classify

    outcome = _classify(result, final=False)
    assert outcome.outcome == "retry" and "redirects are not followed" in (outcome.error or "")


def _tls_material(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A private CA and a server certificate for `name`: (server context, client context trusting the CA)."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


async def test_https_to_a_pinned_address_sends_sni_and_verifies_the_certificate_for_the_name(tmp_path: Path) -> None:
    server_ctx, client_ctx = _tls_material(tmp_path, "hooks.pinned.test")
    sni: list[str] = []
    server_ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,misc]
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    dns = resolver({"hooks.pinned.test": ["127.0.0.1"], "other.pinned.test": ["127.0.0.1"]})
    try:
        good = await netguard.check_url(f"https://hooks.pinned.test:{port}/hook", allow_http=True, resolver=dns)
        result = await outbound.post(good, b"{}", {}, ssl_context=client_ctx)
        assert result.status_code == 204, result.error
        assert sni == ["hooks.pinned.test"]
        assert f"Host: hooks.pinned.test:{port}".encode() in requests[0]

        wrong = await netguard.check_url(f"https://other.pinned.test:{port}/hook", allow_http=True, resolver=dns)
        refused = await outbound.post(wrong, b"{}", {}, ssl_context=client_ctx)
        assert refused.status_code is None and "certificate" in (refused.error or "").lower()
    finally:
        server.close()
        await server.wait_closed()


CREATE_TIME = [
    "https://localhost/hook",
    "https://127.0.0.1/hook",
    "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://10.0.0.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/hook",
    "https://2130706433/hook",
    "https://0x7f.1/hook",
    "http://example.com/hook",
    "https://example.com:8080/hook",
]


@pytest.mark.parametrize("url", CREATE_TIME)
async def test_task_creation_refuses_unsafe_callbacks_with_422(account: Api, url: str) -> None:
    response = await account.generate({"prompt": "a red kite", "callback_url": url})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == ["callback_url"]
