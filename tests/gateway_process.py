"""A real gateway process for the integration, overload and security tests (one copy of the
start / wait-ready / SIGTERM dance)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.worker_support import free_port, wait_until


@dataclass(frozen=True)
class GatewayProcess:
    base: str
    """``http://127.0.0.1:<port>``."""
    proc: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def gateway_process(
    tenant: str,
    log: Path,
    *args: str,
    env: Mapping[str, str | None] | None = None,
    clean_exit: bool = False,
) -> Iterator[GatewayProcess]:
    """``scorestream gateway --tenant <tenant> --port <free> <args>`` with this process's
    environment plus ``env`` (a ``None`` value removes the variable), ready on ``/readyz``; stopped
    with SIGTERM afterwards (``clean_exit``: it must then exit 0 within 20 s)."""
    port = free_port()
    environment = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "scorestream", "gateway"),
                *("--tenant", tenant, "--port", str(port)),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    gateway = GatewayProcess(f"http://127.0.0.1:{port}", proc, log)

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{gateway.base}/readyz", timeout=2).status_code == 200
        return False

    try:
        wait_until(ready, 60, "gateway /readyz")
        yield gateway
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20 if clean_exit else 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            if clean_exit:
                raise
        else:
            if clean_exit:
                assert code == 0, log.read_text()[-3000:]
