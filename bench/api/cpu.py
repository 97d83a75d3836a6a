"""Where the CPU went during a phase: the machine as a whole and each process of interest (Linux /proc)."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def process_ticks(pid: int) -> int:
    """User + system jiffies of one process and its reaped children."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(x) for x in parts[11:15])


def pids_of(prefix: str) -> set[int]:
    """Processes whose command name starts with `prefix` (PostgreSQL: one backend per connection)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith(prefix):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def tree_of(root: int) -> set[int]:
    """`root` and every process below it: a server and what it forks (PostgreSQL's backends)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        found.add(pid := todo.pop())
        todo += children.get(pid, [])
    return found


def command_ticks(prefix: str) -> int:
    """All processes whose command name starts with `prefix`, together."""
    return sum(process_ticks(pid) for pid in pids_of(prefix))


class CpuMeter:
    """Snapshot at `start()`, percentages of one core (machine: of all cores) at `stop()`."""

    def __init__(
        self,
        pids: dict[str, int],
        commands: tuple[str, ...] = ("postgres", "temporal"),
        trees: dict[str, int] | None = None,
    ) -> None:
        """`commands` count every process on the machine by name; `trees` count one root's whole tree.

        A tree (`tree_of`) keeps a shared machine's other servers of the same name out.
        """
        self.pids, self.commands, self.trees = pids, commands, trees or {}

    def _snapshot(self) -> dict[str, int]:
        busy, total = machine_busy_ticks()
        return {
            "machine_busy": busy,
            "machine_total": total,
            **{prefix: command_ticks(prefix) for prefix in self.commands},
            **{name: process_ticks(pid) for name, pid in self.pids.items()},
            **{name: sum(map(process_ticks, tree_of(root))) for name, root in self.trees.items()},
        }

    def start(self) -> None:
        self._before = self._snapshot()

    def stop(self, seconds: float) -> dict[str, float]:
        after = self._snapshot()
        delta = {name: after[name] - self._before[name] for name in after}
        usage = {
            f"{name}_cpu_pct": round(100 * delta[name] / TICKS / seconds, 1)
            for name in delta
            if not name.startswith("machine")
        }
        usage["machine_cpu_pct"] = round(100 * delta["machine_busy"] / max(1, delta["machine_total"]), 1)
        return usage


class CpuReserved:
    """Give `pids` CPU 0 to themselves and move every other thread on the machine to the other CPUs.

    On a small machine, a tier that sets the pace (the HTTP load generator, or the Temporal server
    in the start_workflow phases) otherwise shares cores with the rest of the stack, and each slows
    the other in ways that depend on scheduling, not on cost: the result measures the mix. Giving
    the tier a core of its own, as it would have on hosts of its own, leaves the rest the others.
    A measured phase and its ceiling always get the same split. Previous affinities come back on exit.
    """

    def __init__(self, pids: set[int]) -> None:
        cpus = sorted(os.sched_getaffinity(0))
        self.usable = len(cpus) >= 2 and bool(pids)
        self.pids, self.reserved, self.others = pids, {cpus[0]}, set(cpus[1:])
        self._saved: dict[int, set[int]] = {}

    def __enter__(self) -> CpuReserved:
        if not self.usable:
            return self
        alone = {int(t.name) for pid in self.pids for t in Path(f"/proc/{pid}/task").glob("[0-9]*")}
        for task in Path("/proc").glob("[0-9]*/task/[0-9]*"):
            tid = int(task.name)
            try:
                before = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, self.reserved if tid in alone else (before - self.reserved) or before)
                self._saved[tid] = before
            except OSError:
                continue  # gone, or a kernel thread bound to its CPU
        return self

    def __exit__(self, *_exc: object) -> None:
        for tid, before in self._saved.items():
            try:
                os.sched_setaffinity(tid, before)
            except OSError:
                continue
        self._saved.clear()
