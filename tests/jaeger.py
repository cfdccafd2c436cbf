"""A real Jaeger v2 on loopback for the tracing tests: in-memory storage, OTLP/HTTP in, query out.

The binary comes from ``.ci/jaeger.sh`` (``JAEGER`` env, or built once with Go and cached in
``~/.cache/scorestream/bin``). Every port is a free one, so parallel runs and the other services
on the machine never collide; the collector's own metrics and the query service's self-tracing
are switched off for the same reason (they would bind :8888 and export to :4317).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info

extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    enable_tracing: false   # else it exports its own spans over OTLP/gRPC to :4317
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query_port}
    grpc:
      endpoint: 127.0.0.1:{query_grpc_port}

receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp_port}

processors:
  batch:
    timeout: 100ms

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jaeger_binary() -> str:
    """The path printed by ``.ci/jaeger.sh`` (builds Jaeger once when it is not cached)."""
    out = subprocess.run(
        [str(ROOT / ".ci" / "jaeger.sh")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f".ci/jaeger.sh failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


@dataclass
class Jaeger:
    proc: subprocess.Popen[bytes]
    otlp_port: int
    query_port: int
    log: Path

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.query_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace in Jaeger's query-API shape (``spans``, ``processes``), or None yet."""
        status, body = self.get(f"/api/traces/{trace_id}")
        if status != 200 or not body or not body.get("data"):
            return None
        data: dict[str, Any] = body["data"][0]
        return data

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def start_jaeger(workdir: Path, *, timeout_s: float = 120.0) -> Jaeger:
    """Start Jaeger v2 with in-memory storage; returns once its query API answers."""
    binary = jaeger_binary()
    otlp, query, grpc = free_port(), free_port(), free_port()
    config = workdir / "jaeger.yaml"
    config.write_text(CONFIG.format(otlp_port=otlp, query_port=query, query_grpc_port=grpc))
    log = workdir / "jaeger.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [binary, "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
    jaeger = Jaeger(proc, otlp, query, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jaeger exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            status, _ = jaeger.get("/api/services")
            if status == 200:
                return jaeger
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    jaeger.stop()
    raise RuntimeError(f"jaeger did not answer in {timeout_s}s: {log.read_text()[-3000:]}")
