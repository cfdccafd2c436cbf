"""``scorestream up`` / ``down``: broker, topics and every service of a tenant as processes."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scorestream.errors import ScorestreamError
from scorestream.settings import home_origin
from scorestream.supervisor import ServiceSpec, Supervisor, exit_code, free_port

Progress = Callable[[str], None]

SERVICE_ORDER = (
    "merchant",
    "enricher",
    "worker",
    "decision",
    "notifier",
    "audit",
    "monitor",
    "gateway",
)


def service_specs(
    tenant: str, *, gateway_port: int = 8000, api_keys_file: Path | None = None
) -> list[ServiceSpec]:
    """One process per service; the gateway listens on ``gateway_port``, the others get a free
    health/metrics port each. The gateway checks API keys from ``api_keys_file``; without one it
    runs with ``SCORESTREAM_GATEWAY_AUTH_MODE=disabled`` (development stacks, benchmarks)."""
    specs = []
    for name in SERVICE_ORDER:
        if name not in _registered():
            continue  # not a service of this build (yet)
        if name == "gateway":
            args: tuple[str, ...] = ("gateway", "--tenant", tenant, "--port", str(gateway_port))
            auth = (
                ("SCORESTREAM_GATEWAY_API_KEYS_FILE", str(api_keys_file.resolve()))
                if api_keys_file is not None
                else ("SCORESTREAM_GATEWAY_AUTH_MODE", "disabled")
            )
            specs.append(ServiceSpec(name, args, health_port=gateway_port, env=(auth,)))
            continue
        port = free_port()
        args = (name, "--tenant", tenant, "--health-port", str(port))
        if name == "worker":
            args += ("--instance-id", f"{tenant}-worker-0")
        specs.append(ServiceSpec(name, args, health_port=port))
    return specs


def _registered() -> set[str]:
    from scorestream.cli import SERVICES  # noqa: PLC0415  (cli imports this module lazily)

    return set(SERVICES)


def up(tenant: str, *, gateway_port: int = 8000, progress: Progress = lambda _: None) -> Supervisor:
    from scorestream.admin import ensure_tenant_topics  # noqa: PLC0415
    from scorestream.broker import LocalBroker  # noqa: PLC0415

    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        state = LocalBroker().start(progress=progress)
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = state.bootstrap
    ensure_tenant_topics(tenant)
    progress(f"topics of tenant {tenant} ready")
    supervisor = Supervisor(tenant)
    keys_file = dev_api_key(tenant)[1]
    progress(f"gateway API key of {tenant}: {supervisor.dir / 'api-key'} (scorestream up)")
    specs = service_specs(tenant, gateway_port=gateway_port, api_keys_file=keys_file)
    supervisor.start(specs, progress=progress)
    return supervisor


def dev_api_key(tenant: str) -> tuple[str, Path]:
    """The development API key of ``tenant``'s gateway under ``up`` (created once, kept in the
    supervisor's directory) and the keys file the gateway reads."""
    from producers.gateway.auth import dev_key  # noqa: PLC0415

    return dev_key(Supervisor(tenant).dir, tenant)


def down(tenant: str, *, progress: Progress = lambda _: None) -> int:
    supervisor = Supervisor(tenant)
    if not supervisor.running():
        progress(
            f"no running services of tenant {tenant} in {supervisor.pid_file} ({home_origin()})"
        )
    return supervisor.stop(progress=progress)


LOG_TAIL_LINES = 20


class ServicesNotReadyError(ScorestreamError):
    """``up``: a service exited, or was not ready in time; the message names it, says why
    (its ``/readyz`` answer) and ends with the last lines of its log."""


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One service of a running stack: its process, its port and its ``/readyz`` answer."""

    name: str
    pid: int
    port: int | None
    ready: bool
    detail: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}" if self.port else "-"


def _probe(port: int | None) -> tuple[bool | None, str]:
    """``GET /readyz`` on the service's health port (the gateway's HTTP port for the gateway):
    ready, not ready (it answered why), or ``None`` (no answer yet: still starting)."""
    if not port:
        return None, "no health port"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status == 200, _detail(resp.read())
    except urllib.error.HTTPError as exc:
        return False, _detail(exc.read())
    except OSError as exc:
        return None, f"/readyz does not answer ({getattr(exc, 'reason', exc)})"


def _detail(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    detail = data.get("detail", data) if isinstance(data, dict) else data
    return detail if isinstance(detail, str) else json.dumps(detail)[:300]


def log_tail(supervisor: Supervisor, name: str, lines: int = LOG_TAIL_LINES) -> str:
    path = supervisor.dir / f"{name}.log"
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))  # bounded: the tail of a long log only
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(
    supervisor: Supervisor,
    *,
    timeout: float = 120.0,
    poll_s: float = 0.5,
    progress: Progress = lambda _: None,
) -> list[ServiceStatus]:
    """Wait until every service of ``supervisor`` answers ``/readyz`` with 200 (ready =
    connected, assigned, model loaded); the statuses in start order. A service that exits, or
    is not ready after ``timeout`` seconds, raises :class:`ServicesNotReadyError` naming it, with
    its last ``/readyz`` answer and the last lines of its log. The services keep running."""
    pids, ports = supervisor.pids(), supervisor.ports()
    detail: dict[str, str] = dict.fromkeys(pids, "not probed yet")
    answered: set[str] = set()  # up, and said why it is not ready
    ready: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        dead = supervisor.dead()
        for name in pids:
            if name in dead:
                code = exit_code(pids[name])
                how = f"with code {code}" if code is not None else ""
                raise ServicesNotReadyError(
                    f"{name} (pid {pids[name]}) exited {how} before it was ready; last lines of "
                    f"{supervisor.dir / (name + '.log')}:\n{log_tail(supervisor, name)}"
                )
            if name in ready:
                continue
            ok, detail[name] = _probe(ports.get(name))
            if ok is not None:
                answered.add(name)
            if ok:
                ready.add(name)
                port = ports.get(name)
                progress(f"ready    {name:10} http://127.0.0.1:{port}")
        if len(ready) == len(pids):
            return [ServiceStatus(n, pids[n], ports.get(n), True, detail[n]) for n in pids]
        if time.monotonic() >= deadline:
            # the one to blame first: a service that is up and says why it is not ready
            waiting = sorted((n for n in pids if n not in ready), key=lambda n: n not in answered)
            first = waiting[0]
            others = "".join(f"\n  {n}: {detail[n]}" for n in waiting[1:])
            raise ServicesNotReadyError(
                f"{first} not ready after {timeout:.0f}s: {detail[first]}"
                + (f"; also not ready:{others}" if others else "")
                + f"\nlast lines of {supervisor.dir / (first + '.log')}:\n"
                + log_tail(supervisor, first)
                + f"\nthe services keep running: 'scorestream down --tenant {supervisor.tenant}'"
                " stops them"
            )
        time.sleep(poll_s)


def describe(statuses: list[ServiceStatus]) -> str:
    """One line per service: pid, its base URL and what it serves there."""
    lines = [f"{'service':10} {'pid':>7}  {'URL':24} serves"]
    for s in statuses:
        what = (
            "HTTP API (/v1, /v2, /docs), /readyz, /livez, /metrics"
            if s.name == "gateway"
            else "/readyz, /livez, /metrics (health port)"
        )
        lines.append(f"{s.name:10} {s.pid:>7}  {s.base_url:24} {what}")
    return "\n".join(lines)
