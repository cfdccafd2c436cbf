"""A real local HTTP server standing in for a tenant's webhook (http.server in a thread).

Behaviour by path: ``/ok`` → 200; ``/fail`` → 500; ``/hang`` → never answers (until the server
stops); ``/missing`` → 404; ``/flaky`` → 500 for the first ``flaky_failures`` requests of each
``Idempotency-Key``, then 200; ``/busy`` → 503 with ``Retry-After: 0``; any other path → 200,
unless the request's ``Idempotency-Key`` is in ``fail_keys`` (→ 500) or ``reject_keys`` (→ 404).
Every request is recorded. ``port`` binds a given port (e.g. one a service already calls while
the receiver is "down": connections are refused until the server starts).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class WebhookServer:
    def __init__(
        self,
        *,
        fail_keys: set[str] | None = None,
        flaky_failures: int = 2,
        reject_keys: set[str] | None = None,
        port: int = 0,
    ) -> None:
        self.fail_keys = set(fail_keys or ())
        self.reject_keys = set(reject_keys or ())
        self.flaky_failures = flaky_failures
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._per_key: Counter[str] = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                key = self.headers.get("Idempotency-Key", "")
                with outer._lock:
                    outer.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            json.loads(raw or b"{}"),
                            time.monotonic(),
                        )
                    )
                    outer._per_key[key] += 1
                    seen = outer._per_key[key]
                if self.path == "/hang":
                    outer._release.wait(30)
                    self.close_connection = True
                    return  # never answers
                if self.path == "/fail" or key in outer.fail_keys:
                    self._send(500)
                elif self.path == "/missing" or key in outer.reject_keys:
                    self._send(404)
                elif self.path == "/busy":
                    self._send(503, {"Retry-After": "0"})
                elif self.path == "/flaky" and seen <= outer.flaky_failures:
                    self._send(500)
                else:
                    self._send(200)

            def _send(self, code: int, headers: dict[str, str] | None = None) -> None:
                body = b'{"ok": true}' if code == 200 else b'{"ok": false}'
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def requests(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def keys(self, path: str | None = None) -> Counter[str]:
        return Counter(r.headers.get("idempotency-key", "") for r in self.requests(path))

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
