"""`sorapi generate | status | list | cancel`: a small client of the public API (httpx only, no torch).

The base URL and key come from flags or `SORAPI_BASE_URL` / `SORA2_API_KEY`. `generate --wait`
shows a live progress line on stderr (queue position, then denoising steps), downloads the
result with `--out`, and exits non-zero with the task's error code when it fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import httpx

from sorapi.contracts import status
from sorapi.domain.speed import SPEEDS

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
FINISHED = status.TERMINAL
EXIT_TASK_FAILED = 1
EXIT_API_ERROR = 2


class ApiFailure(Exception):
    """An error answer from the API, carrying its stable code."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" + (f" (HTTP {status_code})" if status_code else ""))
        self.code = code


class Client:
    def __init__(self, base_url: str, api_key: str, timeout_s: float = 30.0) -> None:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # keep stderr for the progress line
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout_s, headers={"Authorization": f"Bearer {api_key}"}
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, waiting out 429s as `Retry-After` asks; other errors raise ApiFailure."""
        for _ in range(10):
            response = self.http.request(method, path, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("retry-after", "1")))
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise ApiFailure(response.status_code, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiFailure(response.status_code, "http_error", response.text[:200]) from None
        return response

    def generate(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/api/generate", json=payload).json()

    def status(self, task_id: str, expand: str | None = None) -> dict[str, Any]:
        params = {"task_id": task_id, **({"expand": expand} if expand else {})}
        return self.request("GET", "/api/status", params=params).json()

    def list(self, status: str | None, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        return self.request("GET", "/api/tasks", params=params).json()

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self.request("POST", f"/api/tasks/{task_id}/cancel").json()

    def download(self, task_id: str, variant: str, out: Path) -> int:
        """Follow the content redirect to the presigned URL (the key is not sent to the store)."""
        with self.http.stream(
            "GET", f"/api/tasks/{task_id}/content", params={"variant": variant}, follow_redirects=True
        ) as response:
            if response.status_code >= 400:
                response.read()
                error = response.json().get("error", {})
                raise ApiFailure(response.status_code, error.get("code", "http_error"), error.get("message", ""))
            written = 0
            with out.open("wb") as sink:
                for chunk in response.iter_bytes():
                    written += sink.write(chunk)
        return written


class ProgressLine:
    """One status line on stderr: redrawn in place on a terminal, one line per change otherwise."""

    WIDTH = 24

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = ""

    def show(self, body: dict[str, Any]) -> None:
        text = describe(body, self.WIDTH)
        if text == self.last:
            return
        self.last = text
        if self.tty:
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()


def describe(body: dict[str, Any], width: int = 24) -> str:
    """`[#####-------]  42% denoising step 12/30`, or the queue position while waiting."""
    progress = int(body.get("progress") or 0)
    filled = width * progress // 100
    bar = f"[{'#' * filled}{'-' * (width - filled)}] {progress:3d}%"
    live = body.get("live") or {}
    phase = live.get("phase") or body["status"]
    if phase == "denoising" and live.get("total_steps"):
        return f"{bar} denoising step {live['step']}/{live['total_steps']}"
    if body["status"] == "queued" and body.get("queue_position") is not None:
        return f"{bar} queued: position {body['queue_position']} for one of your plan's slots"
    if phase == "waiting" and live.get("render_queue_position") is not None:
        return f"{bar} waiting for a render worker: {live['render_queue_position']} task(s) ahead"
    return f"{bar} {phase}"


def wait(client: Client, task_id: str, progress: ProgressLine, poll_s: float) -> dict[str, Any]:
    try:
        while True:
            body = client.status(task_id)
            progress.show(body)
            if body["status"] in FINISHED:
                return body
            time.sleep(poll_s)
    finally:
        progress.close()


def _client(args: argparse.Namespace) -> Client:
    if not args.api_key:
        raise ApiFailure(0, "unauthorized", "no API key: pass --api-key or set SORA2_API_KEY")
    return Client(args.base_url, args.api_key)


def _print(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def cmd_generate(args: argparse.Namespace) -> int:
    client = _client(args)
    payload = {
        "prompt": args.prompt,
        "duration": args.duration,
        "resolution": args.resolution,
        "aspect_ratio": args.aspect_ratio,
        "model_version": args.model,
        "seed": args.seed,
        "guidance": args.guidance,
        "negative_prompt": args.negative_prompt,
        "callback_url": args.callback_url,
        "idempotency_key": args.idempotency_key,
        "speed": args.speed,
    }
    created = client.generate({k: v for k, v in payload.items() if v is not None})
    task_id = created["task_id"]
    sys.stderr.write(f"task {task_id} queued ({created['credits_reserved']} credits reserved)\n")
    if not (args.wait or args.out):
        _print(created)
        return 0
    done = wait(client, task_id, ProgressLine(sys.stderr), args.poll_interval)
    if done["status"] != "succeeded":
        sys.stderr.write(
            f"error: task {task_id} {done['status']}: {done.get('error_code')}: {done.get('error_message')}\n"
        )
        _print(done)
        return EXIT_TASK_FAILED
    if args.out:
        size = client.download(task_id, args.variant, Path(args.out))
        sys.stderr.write(f"saved {args.variant} to {args.out} ({size} bytes)\n")
    _print(done)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    _print(_client(args).status(args.task_id, "events" if args.events else None))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    page = _client(args).list(args.status, args.limit)
    if args.json:
        _print(page)
        return 0
    for task in page["data"]:
        prompt = task["prompt"] if len(task["prompt"]) <= 48 else task["prompt"][:47] + "…"
        sys.stdout.write(
            f"{task['task_id']}  {task['status']:<9}  {task['progress']:3d}%  {task['created_at'][:19]}  {prompt}\n"
        )
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    _print(_client(args).cancel(args.task_id))
    return 0


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        default=os.environ.get("SORAPI_BASE_URL", DEFAULT_BASE_URL),
        help="API base URL (env SORAPI_BASE_URL)",
    )
    parser.add_argument("--api-key", default=os.environ.get("SORA2_API_KEY"), help="API key (env SORA2_API_KEY)")


def add_client_commands(sub: Any) -> None:
    """Register the client subcommands on the `sorapi` parser's subparsers."""
    gen = sub.add_parser("generate", help="submit a prompt (and with --wait/--out, wait and download)")
    gen.add_argument("prompt")
    gen.add_argument("--duration", type=int, help="seconds (default 8)")
    gen.add_argument("--resolution", help="e.g. 1280x720 (default), 1920x1080, 720x1280")
    gen.add_argument("--aspect-ratio", help="horizontal, vertical or square")
    gen.add_argument("--model", help="model_version (default sora-2-latest)")
    gen.add_argument("--seed", type=int)
    gen.add_argument("--guidance", type=float)
    gen.add_argument("--negative-prompt")
    gen.add_argument("--speed", choices=SPEEDS, help="speed profile (default: the model's)")
    gen.add_argument("--callback-url")
    gen.add_argument("--idempotency-key")
    gen.add_argument("--wait", action="store_true", help="wait for the task, showing progress on stderr")
    gen.add_argument("--out", help="download the result here (implies --wait)")
    gen.add_argument("--variant", default="video", choices=["video", "webm", "thumbnail"])
    gen.add_argument("--poll-interval", type=float, default=1.0, help="seconds between status polls")
    gen.set_defaults(func=_guarded(cmd_generate))
    status = sub.add_parser("status", help="show a task")
    status.add_argument("task_id")
    status.add_argument("--events", action="store_true", help="include the task's history")
    status.set_defaults(func=_guarded(cmd_status))
    listing = sub.add_parser("list", help="list your tasks, newest first")
    listing.add_argument("--status", help="comma-separated statuses to keep")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_guarded(cmd_list))
    cancel = sub.add_parser("cancel", help="cancel a queued or running task")
    cancel.add_argument("task_id")
    cancel.set_defaults(func=_guarded(cmd_cancel))
    for parser in (gen, status, listing, cancel):
        _connection_flags(parser)


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """API errors print `error: code: message` on stderr and exit 2 instead of a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ApiFailure as exc:
            sys.stderr.write(f"error: {exc}\n")
            return EXIT_API_ERROR
        except httpx.HTTPError as exc:
            sys.stderr.write(f"error: cannot reach {args.base_url}: {exc}\n")
            return EXIT_API_ERROR

    return run
