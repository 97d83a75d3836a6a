"""Typed settings, read once from `SORAPI_*` environment variables.

Every process (API, orchestrator, render worker, `sorapi dev`) builds the same `Settings`; a
field's environment name is `SORAPI_` + its upper-cased name. Defaults are the embedded dev stack.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import msgspec

ENV_PREFIX = "SORAPI_"


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    data_dir: str = ".sorapi"
    """Everything a dev run writes (SQLite file, Temporal DB, S3 data, renders) lives here."""

    database_url: str = ""
    """SQLAlchemy URL. Empty means `sqlite:///<data_dir>/sorapi.db`; PostgreSQL as `postgresql://...`."""

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str = ""
    """Base URL clients use to reach the API (for links); empty means http://api_host:api_port."""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    orchestration_queue: str = "sorapi-orchestration"
    render_queue: str = "sorapi-render"

    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = "sorapi-dev"
    s3_secret_key: str = "sorapi-dev-secret"
    s3_bucket: str = "sorapi"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_public_endpoint: str = ""
    """Host[:port] that clients use for presigned URLs, when it differs from `s3_endpoint`."""
    presign_ttl_s: int = 3600

    render_device: str = "cpu"
    render_dir: str = ""
    """Scratch space for frames and encoded files on the render host (empty: <data_dir>/renders)."""
    model_dir: str = ""
    """Directory holding real diffusers weights; empty selects the tiny random-weight dev models."""

    starter_credits: int = 500
    """Credits granted to a new Free account (the seed's STARTER_CREDITS)."""

    webhook_allow_http: bool = False
    """Development only: accept http:// and loopback callback URLs (logged loudly when on)."""

    dev_api_key: str = ""
    log_level: str = "info"
    log_json: bool = True

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{Path(self.data_dir).resolve() / 'sorapi.db'}"

    @property
    def resolved_render_dir(self) -> Path:
        return Path(self.render_dir or Path(self.data_dir) / "renders").resolve()

    @property
    def resolved_public_base_url(self) -> str:
        return self.public_base_url or f"http://{self.api_host}:{self.api_port}"


def settings_from_env(env: dict[str, str] | None = None) -> Settings:
    """Build settings from `SORAPI_*` variables; unknown variables are ignored, bad values raise."""
    env = os.environ if env is None else env
    raw = {
        name: env[ENV_PREFIX + name.upper()]
        for name in Settings.__struct_fields__
        if ENV_PREFIX + name.upper() in env
    }
    return msgspec.convert(raw, Settings, strict=False)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return settings_from_env()
