"""A real HTTP webhook receiver on loopback for tests: records every request exactly as received.

Each path answers from its own script (a list of (status, headers), one per request, the last one
repeating), so a test can make a receiver fail five times and then succeed, answer 429 with
Retry-After, 410, or redirect. `on_receive` runs inside the request (before answering), e.g. to
poll GET /api/status the moment a webhook arrives.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = list[tuple[int, dict[str, str]]]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    at: float
    extra: Any = None


@dataclass
class Receiver:
    scripts: dict[str, Script] = field(default_factory=dict)
    on_receive: Callable[[Received], Any] | None = None
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                got = Received(
                    path=self.path, headers={k.lower(): v for k, v in self.headers.items()}, body=body, at=time.time()
                )
                if receiver.on_receive is not None:
                    got.extra = receiver.on_receive(got)
                receiver.received.append(got)
                script = receiver.scripts.get(self.path.split("?")[0], [(200, {})])
                count = sum(1 for r in receiver.received if r.path.split("?")[0] == self.path.split("?")[0])
                code, headers = script[min(count, len(script)) - 1]
                self.send_response(code)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST  # a followed redirect would show up as a request, and must not

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path.split("?")[0] == path]

    async def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 120) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.received):
            if time.monotonic() > deadline:
                raise TimeoutError(f"receiver got {[(r.path, r.headers.get('webhook-id')) for r in self.received]}")
            await asyncio.sleep(0.1)
        return self.received

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
