"""``scorestream up`` / ``down``: broker, topics and every service of a tenant as processes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from scorestream.settings import home_origin
from scorestream.supervisor import ServiceSpec, Supervisor, free_port

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
    from producers.gateway_auth import dev_key  # noqa: PLC0415

    return dev_key(Supervisor(tenant).dir, tenant)


def down(tenant: str, *, progress: Progress = lambda _: None) -> int:
    supervisor = Supervisor(tenant)
    if not supervisor.running():
        progress(
            f"no running services of tenant {tenant} in {supervisor.pid_file} ({home_origin()})"
        )
    return supervisor.stop(progress=progress)
