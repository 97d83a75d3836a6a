"""Secrets at rest and in transit.

Versioned server keys, encrypted Temporal payloads, the codec server the Temporal UI and CLI decode them through, and
processes that hold only what they need.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from sorapi.adapters import secret_policy
from sorapi.adapters.converter import DATA_CONVERTER
from sorapi.adapters.keyring import Keyring
from sorapi.adapters.payload_codec import ENCODING, PURPOSE, EncryptionCodec, PayloadUnreadable
from sorapi.adapters.secretbox import SecretBox, SecretUnreadable
from sorapi.adapters.settings import Settings, settings_from_env
from sorapi.cli import servers
from sorapi.store.models import Account
from sorapi.store.reseal import reseal_secrets
from tests.stack import Api, Stack, make_account, own_sessions

OLD, NEW = "old-server-key-" + "a" * 32, "new-server-key-" + "b" * 32
PROMPT = "a lighthouse keeper's secret recipe for plum jam, filmed at dawn"
ROOT = Path(__file__).resolve().parent.parent


def test_a_rotated_secret_key_still_opens_what_the_old_one_sealed() -> None:
    sealed = SecretBox(OLD).seal("whsec_1", "acct_a")
    assert sealed.startswith("v2.") and "whsec_1" not in sealed
    rotated = SecretBox(NEW, [OLD])
    assert rotated.open(sealed, "acct_a") == "whsec_1"
    assert not rotated.is_current(sealed)
    moved = rotated.reseal(sealed, "acct_a")
    assert rotated.is_current(moved) and SecretBox(NEW).open(moved, "acct_a") == "whsec_1"
    with pytest.raises(SecretUnreadable, match="SORAPI_SECRET_KEY_PREVIOUS"):
        SecretBox(NEW).open(sealed, "acct_a")
    with pytest.raises(SecretUnreadable):
        rotated.open(sealed, "acct_b")  # the owner is bound in


def test_secrets_sealed_before_key_ids_still_open() -> None:
    """`v1.` values (no key id) from before versioned keys open with the current or a previous key."""
    aead = Keyring.build(OLD, [], b"sorapi secretbox v1").current
    nonce = secrets.token_bytes(12)
    legacy = "v1." + base64.urlsafe_b64encode(nonce + aead.encrypt(nonce, b"whsec_legacy", b"acct_a")).decode()
    assert SecretBox(NEW, [OLD]).open(legacy, "acct_a") == "whsec_legacy"
    assert SecretBox(NEW, [OLD]).reseal(legacy, "acct_a").startswith("v2.")


async def test_reseal_moves_every_stored_secret_to_the_new_key() -> None:
    async with own_sessions() as sessions:
        ids = [(await make_account(sessions))[0] for _ in range(3)]
        async with sessions.begin() as session:
            for account_id in ids[:2]:
                row = await session.get_one(Account, account_id)
                row.webhook_secret = SecretBox(OLD).seal(f"whsec_now_{account_id}", account_id)
                row.webhook_previous_secret = SecretBox(OLD).seal("whsec_before", account_id)
        async with sessions.begin() as session:
            assert await reseal_secrets(session, SecretBox(NEW, [OLD])) == 2
        async with sessions.begin() as session:
            assert await reseal_secrets(session, SecretBox(NEW, [OLD])) == 0, "a second run finds nothing to move"
            for account_id in ids[:2]:
                row = await session.get_one(Account, account_id)
                assert SecretBox(NEW).open(row.webhook_secret or "", account_id) == f"whsec_now_{account_id}"
                assert SecretBox(NEW).open(row.webhook_previous_secret or "", account_id) == "whsec_before"
        async with sessions.begin() as session:
            with pytest.raises(SecretUnreadable):  # the old key dropped too early: it says so, changes nothing
                row = await session.get_one(Account, ids[0])
                row.webhook_secret = SecretBox(OLD).seal("whsec_again", ids[0])
                await session.flush()
                await reseal_secrets(session, SecretBox(NEW))


async def test_payloads_are_encrypted_with_a_key_id_and_old_keys_still_decode() -> None:
    (plain,) = DATA_CONVERTER.payload_converter.to_payloads([{"prompt": PROMPT}])
    old = EncryptionCodec(Keyring.build(OLD, [], PURPOSE))
    (sealed,) = await old.encode([plain])
    assert sealed.metadata["encoding"] == ENCODING and PROMPT.encode() not in sealed.SerializeToString()
    rotated = EncryptionCodec(Keyring.build(NEW, [OLD], PURPOSE))
    assert await rotated.decode([sealed]) == [plain]
    assert await rotated.decode([plain]) == [plain], "histories from before encryption pass through"
    with pytest.raises(PayloadUnreadable, match="SORAPI_PAYLOAD_KEY_PREVIOUS"):
        await EncryptionCodec(Keyring.build(NEW, [], PURPOSE)).decode([sealed])
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(PayloadUnreadable):
        await rotated.decode([tampered])


async def test_prompts_never_reach_temporal_in_clear_and_operators_decode_them(stack: Stack, account: Api) -> None:
    task_id = (await account.generate({"prompt": PROMPT, "duration": 1, "resolution": "480x480"})).json()["task_id"]
    await account.wait(task_id)
    # The history as the server stores it (a client with no codec): no prompt anywhere in it.
    raw = await (await Client.connect(stack.temporal_address)).get_workflow_handle(task_id).fetch_history()
    assert PROMPT.encode() not in b"".join(event.SerializeToString() for event in raw.events)
    started = raw.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert started.metadata["encoding"] == ENCODING

    # The stack's processes decrypt it: the workflow input is the task again.
    (spec,) = await (await stack.temporal_client()).data_converter.decode([started])
    assert PROMPT in json.dumps(spec)

    # The codec server decodes it for the Temporal UI (CORS for the dev UI's origin) and the CLI.
    first = json.loads(json_format.MessageToJson(Payloads(payloads=[started])))
    ui_origin = f"http://127.0.0.1:{stack.env['SORAPI_TEMPORAL_UI_PORT']}"
    async with httpx.AsyncClient(base_url=stack.codec_url) as codec:
        preflight = await codec.options(
            "/decode",
            headers={
                "Origin": ui_origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert preflight.status_code in (200, 204) and preflight.headers["access-control-allow-origin"] == ui_origin
        decoded = await codec.post("/decode", json=first, headers={"Origin": ui_origin, "X-Namespace": "default"})
        assert decoded.status_code == 200, decoded.text
        assert decoded.headers["access-control-allow-origin"] == ui_origin
        data = base64.b64decode(decoded.json()["payloads"][0]["data"]).decode()
        assert PROMPT in data
        other = await codec.options(
            "/decode", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert other.headers.get("access-control-allow-origin") != "http://evil.example"
        assert (await codec.post("/decode", content=b"not json")).status_code == 400

    shown = await asyncio.to_thread(
        subprocess.run,
        [
            servers.venv_binary("temporal"),
            "workflow",
            "show",
            "--address",
            stack.temporal_address,
            "--workflow-id",
            task_id,
            "--output",
            "json",
            "--codec-endpoint",
            stack.codec_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    started_input = json.loads(shown.stdout)["events"][0]["workflowExecutionStartedEventAttributes"]["input"]
    payload = started_input["payloads"][0]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain", "decoded by the codec server"
    assert PROMPT in base64.b64decode(payload["data"]).decode(), "the Temporal CLI shows the prompt"

    # The dev Temporal UI is configured with the codec endpoint.
    ui = httpx.get(f"{ui_origin}/api/v1/settings", timeout=10).json()
    assert ui["Codec"]["Endpoint"] == stack.codec_url


def test_the_dev_stack_gives_each_process_only_what_it_needs(stack: Stack) -> None:
    """`sorapi dev` starts every child with the scoped environment: read it back from /proc."""
    environments = {}
    for pid in servers_tree(stack.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sorapi" in cmdline[1:3] or (len(cmdline) > 2 and cmdline[2] == b"sorapi"):
            process = " ".join(part.decode() for part in cmdline[3:5] if part and not part.startswith(b"-"))
            environments[process] = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    render, api = environments["worker render"], environments["api"]
    for variable in ("SORAPI_ADMIN_TOKEN", "SORAPI_DATABASE_URL", "SORAPI_SECRET_KEY", "SORAPI_REDIS_URL"):
        assert variable not in render, variable
        assert variable not in environments["codec-server"], variable
    assert "SORAPI_ADMIN_TOKEN" not in environments["worker orchestrator"]
    assert api["SORAPI_ADMIN_TOKEN"] and api["SORAPI_DATABASE_URL"]


def servers_tree(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def _certificate(name: str, issuer: tuple[Any, Any] | None, tmp: Path) -> tuple[Any, Any]:
    """A key and certificate for `name` (a CA when `issuer` is None), written to tmp/<name>.{pem,key}."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_key, issuer_cert = issuer or (key, None)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    (tmp / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return key, cert


async def _mtls_proxy(tmp: Path, upstream: str) -> tuple[asyncio.Server, int]:
    """A TLS front for the dev server that demands a client certificate signed by tmp/ca.pem."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp / "sorapi-test-ca.pem"))
    context.load_cert_chain(tmp / "temporal.internal.pem", tmp / "temporal.internal.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = servers.host_port(upstream)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    proxy = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    return proxy, proxy.sockets[0].getsockname()[1]


async def test_processes_reach_a_cluster_over_mtls(stack: Stack, tmp_path: Path) -> None:
    """The settings' CA, client certificate and server name reach a TLS-only, client-cert-only frontend.

    The frontend is a TLS proxy before the dev server; without the client certificate it refuses.
    """
    from sorapi.adapters.temporal import connect, tls_config

    ca = _certificate("sorapi-test-ca", None, tmp_path)
    _certificate("temporal.internal", ca, tmp_path)
    _certificate("sorapi-worker", ca, tmp_path)
    proxy, port = await _mtls_proxy(tmp_path, stack.temporal_address)
    secured = settings_from_env(
        {
            **stack.env_for(secret_policy.ORCHESTRATOR),
            "SORAPI_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
            "SORAPI_TEMPORAL_TLS_CA_PATH": str(tmp_path / "sorapi-test-ca.pem"),
            "SORAPI_TEMPORAL_TLS_CERT_PATH": str(tmp_path / "sorapi-worker.pem"),
            "SORAPI_TEMPORAL_TLS_KEY_PATH": str(tmp_path / "sorapi-worker.key"),
            "SORAPI_TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
        }
    )
    try:
        client = await connect(secured, wait_s=10)
        assert (await client.count_workflows()).count >= 0
        no_cert = msgspec_replace(secured, temporal_tls_cert_path="", temporal_tls_key_path="")
        with pytest.raises(RuntimeError):
            await connect(no_cert, wait_s=1)
    finally:
        proxy.close()

    assert tls_config(Settings()) is False, "a dev server is plain gRPC"
    assert tls_config(Settings(temporal_api_key="cloud-key")) is not False, "an API key implies TLS"
    with pytest.raises(ValueError, match="go together"):
        tls_config(Settings(temporal_tls_cert_path=str(tmp_path / "sorapi-worker.pem")))


def msgspec_replace(settings: Settings, **changes: Any) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)
