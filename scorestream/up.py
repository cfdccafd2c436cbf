"""``scorestream up`` / ``down``: broker, topics and every service of a tenant as processes."""

from __future__ import annotations

import os
from collections.abc import Callable

from scorestream.supervisor import ServiceSpec, Supervisor, free_port

Progress = Callable[[str], None]

SERVICE_ORDER = ("enricher", "worker", "decision", "notifier", "audit", "monitor", "gateway")


def service_specs(tenant: str, *, gateway_port: int = 8000) -> list[ServiceSpec]:
    """One process per service; the gateway listens on ``gateway_port``, the others get a free
    health/metrics port each."""
    specs = []
    for name in SERVICE_ORDER:
        if name not in _registered():
            continue  # not a service of this build (yet)
        if name == "gateway":
            args: tuple[str, ...] = ("gateway", "--tenant", tenant, "--port", str(gateway_port))
            specs.append(ServiceSpec(name, args, health_port=gateway_port))
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
    supervisor.start(service_specs(tenant, gateway_port=gateway_port), progress=progress)
    return supervisor


def down(tenant: str, *, progress: Progress = lambda _: None) -> int:
    return Supervisor(tenant).stop(progress=progress)
