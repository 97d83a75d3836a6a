"""`sorapi dev`: the whole embedded stack in one foreground process group.

Temporal dev server (UI included), SeaweedFS S3, PostgreSQL and Valkey (unless
SORAPI_DATABASE_URL / SORAPI_REDIS_URL name servers of the operator's), migrations, a seeded
dev account, then the orchestrator worker, the render workers (`dev_render_workers`), the codec server (the Temporal UI
decodes payloads through it) and the API as child processes, each given only the settings it needs
(sorapi.adapters.secret_policy.WITHHELD). Ctrl-C or SIGTERM stops every child; if any child dies, the stack
stops with it rather than limp on.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path

import msgspec
import structlog
from sqlalchemy.engine import make_url

from sorapi.adapters import secret_policy, storage
from sorapi.adapters.settings import ENV_PREFIX, Settings, get_settings
from sorapi.cli import servers
from sorapi.domain.catalog import get_catalog
from sorapi.store.accounts import create_account, issue_api_key, key_exists
from sorapi.store.engine import make_async_engine, make_sessionmaker
from sorapi.store.migrate import upgrade

log = structlog.get_logger()

DEV_ACCOUNT_ID = "acct_dev"


async def ensure_dev_account(settings: Settings, key_file: Path) -> str:
    """The dev account's Bearer key: SORAPI_DEV_API_KEY, else the one saved by a previous run, else new."""
    key = settings.dev_api_key or (key_file.read_text().strip() if key_file.exists() else "")
    engine = make_async_engine(settings.resolved_database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            from sorapi.store.models import Account

            if await session.get(Account, DEV_ACCOUNT_ID) is None:
                credits = get_catalog().plans["free"].starter_credits
                await create_account(
                    session,
                    name="Local developer",
                    plan="free",
                    credits=credits,
                    account_id=DEV_ACCOUNT_ID,
                    actor="sorapi dev",
                )
            if not key or not await key_exists(session, key):
                key = await issue_api_key(session, DEV_ACCOUNT_ID, key=key or None, scopes="generate,read,admin")
    finally:
        await engine.dispose()
    if not settings.dev_api_key:
        key_file.write_text(key)
        key_file.chmod(0o600)
    return key


def ensure_admin_token(settings: Settings, token_file: Path) -> Settings:
    """SORAPI_ADMIN_TOKEN, else the one saved by a previous run, else a new one saved for the next."""
    if settings.admin_token:
        return settings
    token = token_file.read_text().strip() if token_file.exists() else ""
    if not token:
        token = "adm_" + secrets.token_urlsafe(32)
        token_file.write_text(token)
        token_file.chmod(0o600)
    return msgspec.structs.replace(settings, admin_token=token)


def start_database(settings: Settings, data: Path, logs: Path) -> tuple[Settings, list[servers.ManagedProcess]]:
    """The embedded PostgreSQL and Valkey, for whichever of the two the settings leave unset."""
    started = []
    if not settings.database_url:
        port = settings.dev_postgres_port
        started.append(servers.start_postgres(data / "pg", port, log_path=logs / "postgres.log"))
        servers.create_database(servers.postgres_url(port), "sorapi")
        settings = msgspec.structs.replace(settings, database_url=servers.postgres_url(port, "sorapi"))
    if not settings.redis_url:
        port = settings.dev_valkey_port
        started.append(servers.start_valkey(data / "valkey", port, log_path=logs / "valkey.log"))
        settings = msgspec.structs.replace(settings, redis_url=f"redis://127.0.0.1:{port}/0")
    return settings, started


def _banner(settings: Settings, key: str, extra_renders: list[tuple[int, int]]) -> str:
    base = settings.resolved_public_base_url
    return f"""
SorAPI dev stack is up.
  API          {base}          (docs: {base}/docs)
  Render       {_render_line(settings, 1 + len(extra_renders))}
  Temporal UI  http://127.0.0.1:{settings.temporal_ui_port}   (payloads decoded by the codec server on :{settings.codec_port})
  S3           http://{settings.s3_endpoint}  bucket {settings.s3_bucket}
  PostgreSQL   {make_url(settings.database_url).render_as_string(hide_password=True)}
  Valkey       {settings.redis_url or "(off: rate limits kept in each API process)"}
  Data         {Path(settings.data_dir).resolve()}
  API key      {key}
  Admin token  {settings.admin_token}   (Bearer token of the /admin/... API)
{_metrics_lines(settings, extra_renders)}

Render a video (the seed's quickstart):
  export SORA2_API_KEY={key}
  curl -X POST "{base}/api/generate" \\
    -H "Authorization: Bearer $SORA2_API_KEY" \\
    -H "Content-Type: application/json" \\
    -d '{{"prompt": "A neon-lit city skyline at dusk with flying cars and dynamic lighting", "aspect_ratio": "vertical"}}'
Then poll (use the task_id it returned):
  curl -H "Authorization: Bearer $SORA2_API_KEY" "{base}/api/status?task_id=TASK_ID"

Ctrl-C stops everything.
""".rstrip()


def _render_line(settings: Settings, workers: int) -> str:
    what = f"weights from {settings.model_dir}" if settings.model_dir else "tiny dev models, random weights"
    return f"{workers} worker{'s' if workers > 1 else ''} on {settings.render_device} ({what})"


METRICS_PORTS = (
    "orchestrator_metrics_port",
    "orchestrator_sdk_metrics_port",
    "render_metrics_port",
    "render_sdk_metrics_port",
)


def free_metrics_ports(settings: Settings) -> Settings:
    """The workers' metrics ports, each moved to a free one if another process holds it.

    The holder may be a second dev stack or a test's; the move lets the stack start anyway, and the banner prints the
    ports in force.
    """
    taken = {}
    for field in METRICS_PORTS:
        port = getattr(settings, field)
        if port and not _bindable(settings.metrics_host, port):
            taken[field] = servers.free_port()
    return msgspec.structs.replace(settings, **taken) if taken else settings


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _extra_render_ports(settings: Settings) -> tuple[int, int]:
    """A second (third...) render worker's own metrics and SDK metrics ports.

    Free ones (0 where the first worker serves none).
    """
    return (
        servers.free_port() if settings.render_metrics_port else 0,
        servers.free_port() if settings.render_sdk_metrics_port else 0,
    )


def _render_env(ports: tuple[int, int]) -> dict[str, str]:
    metrics_port, sdk_port = ports
    return {
        ENV_PREFIX + "RENDER_METRICS_PORT": str(metrics_port),
        ENV_PREFIX + "RENDER_SDK_METRICS_PORT": str(sdk_port),
    }


def _wait_for_metrics(settings: Settings, children: list[servers.ManagedProcess], extra_ports: list[int]) -> None:
    """Print the banner once the workers serve their metrics (a render worker imports torch first).

    An endpoint that never comes up is logged, not fatal.
    """
    for port in [*(getattr(settings, field) for field in METRICS_PORTS), *extra_ports]:
        if not port:
            continue
        try:
            servers.wait_for_http(
                f"http://{_reachable(settings.metrics_host)}:{port}/metrics", [c.popen for c in children], 120
            )
        except TimeoutError as exc:
            log.warning("a worker serves no metrics", error=str(exc))


def _reachable(host: str) -> str:
    """Where this host reaches a server bound to `host` (every interface: loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def _metrics_lines(settings: Settings, extra_renders: list[tuple[int, int]]) -> str:
    """One `metrics:` URL per process: the API's takes the admin token, the workers' listen on metrics_host."""
    host = _reachable(settings.metrics_host)
    api = f"{settings.resolved_public_base_url}/metrics"
    lines = [f"  metrics: api           {api}   (Bearer: the admin token)"]
    workers = [
        (process, getattr(settings, f"{process}_metrics_port"), getattr(settings, f"{process}_sdk_metrics_port"))
        for process in ("orchestrator", "render")
    ]
    workers += [(f"render-{n}", own, sdk) for n, (own, sdk) in enumerate(extra_renders, 2)]
    for process, own, sdk in workers:
        if own:
            extra = f"   (Temporal SDK: http://{host}:{sdk}/metrics)" if sdk else ""
            lines.append(f"  metrics: {process:<13} http://{host}:{own}/metrics{extra}")
    return "\n".join(lines)


def run_dev(settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    data = Path(settings.data_dir).resolve()
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    procs: list[servers.ManagedProcess] = []
    servers.reserve_ports(*_configured_ports(settings))
    try:
        _, temporal_port = servers.host_port(settings.temporal_address)
        ui_origins = [f"http://{host}:{settings.temporal_ui_port}" for host in ("127.0.0.1", "localhost")]
        settings = msgspec.structs.replace(
            settings, codec_cors_origins=settings.codec_cors_origins or ",".join(ui_origins)
        )
        procs.append(
            servers.start_temporal(
                data / "temporal",
                temporal_port,
                settings.temporal_ui_port,
                log_path=logs / "temporal.log",
                codec_endpoint=f"http://{settings.codec_host}:{settings.codec_port}",
            )
        )
        _, s3_port = servers.host_port(settings.s3_endpoint)
        procs.append(
            servers.start_seaweedfs(
                data / "s3", s3_port, settings.s3_access_key, settings.s3_secret_key, log_path=logs / "seaweedfs.log"
            )
        )
        _ensure_bucket(settings)
        settings, started = start_database(settings, data, logs)
        procs += started
        upgrade(settings.resolved_database_url)
        key = asyncio.run(ensure_dev_account(settings, data / "dev-api-key"))
        settings = ensure_admin_token(settings, data / "admin-token")
        settings = free_metrics_ports(settings)
        env = {**os.environ, **_settings_env(msgspec.structs.replace(settings, dev_stack=True))}
        sorapi = [sys.executable, "-m", "sorapi"]
        extra_renders = [_extra_render_ports(settings) for _ in range(settings.dev_render_workers - 1)]
        processes = [
            ("orchestrator", secret_policy.ORCHESTRATOR, {}),
            ("render", secret_policy.RENDER, {}),
            *((f"render-{n}", secret_policy.RENDER, _render_env(ports)) for n, ports in enumerate(extra_renders, 2)),
            ("codec-server", secret_policy.CODEC, {}),
            ("api", secret_policy.API, {}),
        ]
        children = [
            servers.spawn(
                name, [*sorapi, *process.split()], log_path=None, env=secret_policy.scoped_env({**env, **own}, process)
            )
            for name, process, own in processes
        ]
        procs += children
        try:
            servers.wait_for_http(f"{settings.resolved_public_base_url}/readyz", [c.popen for c in children], 180)
        except RuntimeError:
            dead = next(c for c in children if not c.alive())
            raise RuntimeError(f"{dead.name} exited during start-up:\n{dead.log_tail()}") from None
        _wait_for_metrics(settings, children, [port for ports in extra_renders for port in ports])
        print(_banner(settings, key, extra_renders), file=sys.stderr, flush=True)
        while not stopping:
            exited = [p for p in procs if not p.alive()]
            if exited:
                log.error(
                    "a dev stack process exited; stopping the stack",
                    process=exited[0].name,
                    returncode=exited[0].popen.returncode,
                )
                return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        log.error("dev stack failed to start", error=str(exc))
        return 1
    finally:
        for proc in reversed(procs):
            proc.stop()
        log.info("dev stack stopped")


def _configured_ports(settings: Settings) -> list[int]:
    """Every port the settings give a server of this stack; internal ports are picked around them."""
    addresses = (settings.temporal_address, settings.s3_endpoint)
    named = ("api_port", "temporal_ui_port", "codec_port", "dev_postgres_port", "dev_valkey_port", *METRICS_PORTS)
    return [servers.host_port(a)[1] for a in addresses] + [getattr(settings, name) for name in named]


def _ensure_bucket(settings: Settings, timeout_s: float = 30.0) -> None:
    """SeaweedFS answers on its port slightly before S3 requests succeed; retry briefly."""
    client = storage.make_client(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            storage.ensure_bucket(client, settings.s3_bucket)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _settings_env(settings: Settings) -> dict[str, str]:
    """The resolved settings as environment, so every child sees exactly the same configuration."""
    env = {}
    for name in settings.__struct_fields__:
        value = getattr(settings, name)
        if value is None:
            continue  # unset optional setting: children fall back to the same default
        env[ENV_PREFIX + name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    env[ENV_PREFIX + "DATA_DIR"] = str(Path(settings.data_dir).resolve())
    env[ENV_PREFIX + "DATABASE_URL"] = settings.resolved_database_url
    return env
