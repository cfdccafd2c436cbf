"""``/livez``, ``/readyz`` and ``/metrics`` for every service, on a small background HTTP server.

Liveness says the process's main loop is making progress; readiness says the service can do its
job (connected, assigned, model loaded). Both are callables returning ``(ok, detail)``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

Check = Callable[[], tuple[bool, str]]


class HealthServer:
    def __init__(
        self,
        *,
        port: int,
        live: Check,
        ready: Check,
        host: str = "0.0.0.0",  # noqa: S104  (probes and Prometheus reach pods on their IP)
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(outer.registry), CONTENT_TYPE_LATEST)
                elif self.path in ("/livez", "/readyz"):
                    ok, detail = (outer.live if self.path == "/livez" else outer.ready)()
                    body = json.dumps({"status": "ok" if ok else "fail", "detail": detail})
                    self._send(200 if ok else 503, body.encode(), "application/json")
                else:
                    self._send(404, b'{"status":"not found"}', "application/json")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would drown the service's own logs

        self.live = live
        self.ready = ready
        self.registry = registry
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
