"""The suite's PostgreSQL and Valkey servers.

The servers named by `SORAPI_TEST_PG_URL` and `SORAPI_TEST_REDIS_URL`, else its own, started from the wheels on free
ports the first time a test needs one and stopped when the process exits. A laptop needs neither server installed.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

from sorapi.cli import servers


@functools.cache
def _scratch() -> Path:
    root = Path(tempfile.mkdtemp(prefix="sorapi-test-servers-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def _started(proc: servers.ManagedProcess) -> servers.ManagedProcess:
    atexit.register(proc.stop)  # registered after the scratch folder's removal, so it runs first
    return proc


@functools.cache
def pg_admin_url() -> str:
    """A PostgreSQL URL whose user may create and drop databases."""
    if url := os.environ.get("SORAPI_TEST_PG_URL"):
        return url
    port = servers.free_port()
    _started(
        servers.start_postgres(
            _scratch() / "pg", port, log_path=_scratch() / "postgres.log", settings=servers.POSTGRES_TUNED_FOR_TESTS
        )
    )
    return servers.postgres_url(port)


@functools.cache
def redis_url() -> str:
    """A Redis-protocol server for the shared rate-limit store."""
    if url := os.environ.get("SORAPI_TEST_REDIS_URL"):
        return url
    port = servers.free_port()
    _started(servers.start_valkey(_scratch() / "valkey", port, log_path=_scratch() / "valkey.log"))
    return f"redis://127.0.0.1:{port}/0"
