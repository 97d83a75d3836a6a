"""The steady load, and a probe of whether the API answers.

Each task is created as a careful client would: with an `idempotency_key`, retried with the same
key on a connection error, a 5xx or a 429 (the README's advice for 503s), so a create that was
cut off between the commit and the answer heals instead of duplicating.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

PAYLOAD: dict[str, Any] = {
    "prompt": "A neon-lit city skyline at dusk with flying cars and dynamic lighting",
    "duration": 1,
    "resolution": "480x480",
}
"""The dev model renders this in about a second on a CPU (at SORAPI_DEV_STEPS=1, a third of one)."""


@dataclass
class Submission:
    idempotency_key: str
    account_id: str
    first_at: float
    task_id: str | None = None
    accepted_at: float | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    """Each failed attempt: an HTTP status and error code, or the exception's class."""
    failed_at: list[float] = field(default_factory=list)
    refused: str | None = None
    """A 4xx other than 429: the API refused the task for good (none is expected)."""
    gave_up: bool = False


@dataclass
class Load:
    """`rate` creates per second, round-robin over `accounts`, each retried for up to `retry_for_s`."""

    http: httpx.AsyncClient
    accounts: list[tuple[str, str]]
    callback_url: Callable[[str], str]
    rate: float
    tag: str
    retry_for_s: float = 300.0
    submissions: list[Submission] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task[None]] = set()
        next_at = loop.time()
        n = 0
        while not stop.is_set():
            account_id, key = self.accounts[n % len(self.accounts)]
            sub = Submission(f"{self.tag}-{n}", account_id, time.time())
            self.submissions.append(sub)
            job = asyncio.create_task(self._submit(sub, key))
            running.add(job)
            job.add_done_callback(running.discard)
            n += 1
            next_at += 1 / self.rate
            await pause(stop, next_at - loop.time())
        if running:
            await asyncio.gather(*running)

    async def _submit(self, sub: Submission, key: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for_s
        body = {**PAYLOAD, "idempotency_key": sub.idempotency_key, "callback_url": self.callback_url(sub.account_id)}
        while True:
            sub.attempts += 1
            at = time.time()
            try:
                answer = await self.http.post(
                    "/api/generate", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
                )
            except httpx.HTTPError as exc:
                sub.errors.append(type(exc).__name__)
                sub.failed_at.append(at)
            else:
                if answer.status_code == 200:
                    sub.task_id, sub.accepted_at = str(answer.json()["task_id"]), time.time()
                    return
                sub.errors.append(f"{answer.status_code} {_code(answer)}")
                sub.failed_at.append(at)
                if answer.status_code < 500 and answer.status_code != 429:
                    sub.refused = sub.errors[-1]
                    return
            if loop.time() > deadline:
                sub.gave_up = True
                return
            await asyncio.sleep(1.0)

    def recovered_s(self, fault_start: float, fault_end: float) -> float:
        """Seconds from the fault's end until a create was accepted again (0 when none failed)."""
        if not any(at >= fault_start for s in self.submissions for at in s.failed_at):
            return 0.0
        accepted = [s.accepted_at for s in self.submissions if s.accepted_at and s.accepted_at >= fault_end]
        return round(min(accepted) - fault_end, 2) if accepted else float("inf")

    def failed_since(self, since: float) -> dict[str, int]:
        """Failed create attempts made at or after `since`, by kind."""
        kinds: dict[str, int] = {}
        for sub in self.submissions:
            for at, error in zip(sub.failed_at, sub.errors, strict=True):
                if at >= since:
                    kinds[error] = kinds.get(error, 0) + 1
        return kinds

    def summary(self) -> dict[str, Any]:
        subs = self.submissions
        waits = sorted(s.accepted_at - s.first_at for s in subs if s.accepted_at)
        retried = [s for s in subs if s.attempts > 1 and s.task_id]
        errors: dict[str, int] = {}
        for sub in subs:
            for error in sub.errors:
                errors[error] = errors.get(error, 0) + 1
        return {
            "submitted": len(subs),
            "accepted": sum(1 for s in subs if s.task_id),
            "accepted_after_retries": len(retried),
            "refused": [(s.idempotency_key, s.refused) for s in subs if s.refused],
            "gave_up": [s.idempotency_key for s in subs if s.gave_up],
            "failed_attempts": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
            "accepted_after_s": {
                "p50": round(waits[len(waits) // 2], 2) if waits else None,
                "max": round(waits[-1], 2) if waits else None,
            },
        }


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))


def _code(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"]["code"])
    except Exception:
        return "-"


@dataclass
class Probe:
    """`GET /api/tasks?limit=1` (authentication and a database read) every `every_s`: whether the API answered."""

    http: httpx.AsyncClient
    key: str
    every_s: float = 0.25
    samples: list[tuple[float, bool]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            at = time.time()
            try:
                answer = await self.http.get(
                    "/api/tasks", params={"limit": 1}, headers={"Authorization": f"Bearer {self.key}"}, timeout=2
                )
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            self.samples.append((at, ok))
            await pause(stop, self.every_s)

    def outage(self, since: float) -> tuple[float, float] | None:
        """(first failure, last failure) at or after `since`, or None when every answer was good."""
        failed = [at for at, ok in self.samples if at >= since and not ok]
        return (failed[0], failed[-1]) if failed else None

    def recovered_s(self, fault_start: float, fault_end: float) -> float:
        """Seconds from the fault's end until the API answered again (0 when it never stopped answering)."""
        if self.outage(fault_start) is None:
            return 0.0
        after = [at for at, ok in self.samples if at >= fault_end and ok]
        return round(after[0] - fault_end, 2) if after else float("inf")
