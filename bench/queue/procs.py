"""The stack's processes by role, found in /proc, so their CPU is measured and the render worker paused.

On a shared machine other engineers run stacks of their own: every process here is found below
this bench's own processes (the `sorapi dev` it started, the PostgreSQL the suite's helper started).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.api.cpu import tree_of

ROLES = {"orchestrator": ("worker", "orchestrator"), "render": ("worker", "render"), "api": ("sorapi", "api")}
"""Role → how its command line ends (`python -m sorapi worker render`...)."""


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def stack_processes(stack_pid: int) -> dict[str, int]:
    """The pids of the processes of the `sorapi dev` at `stack_pid`, by name.

    The names: orchestrator, render (render-2... for each further render worker), api and temporal of the stack;
    postgres: the postmaster this process started (its backends are its children: measure it with `tree_of`).
    """
    found: dict[str, int] = {}
    for pid in sorted(tree_of(stack_pid)):
        for role, tail in ROLES.items():
            if tuple(_cmdline(pid)[-2:]) == tail:
                taken = sum(1 for name in found if name == role or name.startswith(f"{role}-"))
                found[f"{role}-{taken + 1}" if taken else role] = pid
        if _comm(pid) == "temporal":
            found["temporal"] = pid
    for pid in tree_of(os.getpid()):
        if _comm(pid) == "postgres" and _parent(pid) == os.getpid():
            found["postgres"] = pid
    missing = {*ROLES, "temporal", "postgres"} - set(found)
    if missing:
        raise RuntimeError(f"stack processes not found: {sorted(missing)}")
    return found


def flag(pid: int, name: str) -> str:
    """The value of `name` on a process's command line (`--metrics-port 4321` → "4321")."""
    args = _cmdline(pid)
    return args[args.index(name) + 1]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def render_workers(processes: dict[str, int]) -> list[int]:
    """Every render worker of the stack."""
    return [pid for role, pid in processes.items() if role == "render" or role.startswith("render-")]


@contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    """SIGSTOP `pids` for the block (no render can run), SIGCONT after, whatever happens."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
