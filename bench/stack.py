"""A real scorestream deployment for one benchmark run: every service of a random tenant as
processes (``scorestream up``'s specs), the benchmark's model promoted, everything removed after.

The end-to-end benchmarks drive this stack from outside, exactly as clients would: HTTP to the
gateway, records to ``<tenant>.transactions``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

from bench.common import ROOT, rand
from scorestream.kafka_config import admin_config
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY, Scope


@dataclass
class Stack:
    tenant: str
    gateway_port: int
    ports: dict[str, int]
    model: dict[str, object]
    workdir: Path
    kafka: KafkaSettings
    services: tuple[str, ...] = ()
    """The services running (``scorestream up``'s names)."""
    pids: dict[str, int] = dataclasses.field(default_factory=dict)
    """Each service's process id (for its CPU time)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def topic(self, stream: str) -> str:
        return REGISTRY.topic(stream, self.tenant)


def wait_ready(ports: Mapping[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = dict(ports)
    while waiting and time.monotonic() < deadline:
        for name, port in list(waiting.items()):
            url = f"http://127.0.0.1:{port}/readyz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    waiting.pop(name)
        time.sleep(0.5)
    if waiting:
        raise TimeoutError(f"services not ready after {timeout:.0f}s: {sorted(waiting)}")


def delete_tenant(kafka: KafkaSettings, tenant: str) -> None:
    """Topics and consumer groups of ``tenant`` (every group is named ``<tenant>.<service>``)."""
    admin = AdminClient(admin_config(kafka, client_id="bench-cleanup"))
    with contextlib.suppress(Exception):
        listed = admin.list_consumer_groups(request_timeout=15).result(timeout=20)
        groups = [g.group_id for g in listed.valid if g.group_id.startswith(f"{tenant}.")]
        if groups:
            for fut in admin.delete_consumer_groups(groups, request_timeout=15).values():
                with contextlib.suppress(Exception):
                    fut.result(timeout=15)
    topics = [s.topic(tenant) for s in REGISTRY.streams if s.scope is Scope.TENANT]
    for fut in admin.delete_topics(topics, operation_timeout=30).values():
        with contextlib.suppress(Exception):
            fut.result(timeout=30)


@contextlib.contextmanager
def running_stack(
    *,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 180.0,
    progress: bool = True,
    services: Sequence[str] | None = None,
) -> Iterator[Stack]:
    """Start every service of a fresh tenant with ``env`` added (e.g. batching settings to
    compare), wait until all are ready, yield, then stop them and delete the tenant.
    ``services`` limits the stack to those (default: every service, as ``scorestream up``)."""
    from bench.data import MODEL_NAME, prepare_model  # noqa: PLC0415
    from pipelines import lifecycle  # noqa: PLC0415
    from pipelines.repository import ModelRepository  # noqa: PLC0415
    from scorestream.admin import ensure_tenant_topics  # noqa: PLC0415
    from scorestream.supervisor import Supervisor, free_port  # noqa: PLC0415
    from scorestream.up import service_specs  # noqa: PLC0415

    kafka = KafkaSettings()
    tenant = rand("e2e")
    workdir = Path(tempfile.mkdtemp(prefix="scorestream-bench-e2e-"))
    repo = ModelRepository(str(workdir / "models"))
    model = prepare_model(repo, retrain=False)
    supervisor = Supervisor(tenant, run_dir=workdir / "run")
    try:
        ensure_tenant_topics(tenant, kafka=kafka)
        lifecycle.promote(
            repo, tenant=tenant, name=MODEL_NAME, version=model["version"], kafka=kafka
        )
        extra = {"SCORESTREAM_MODELS_URL": str(repo.url), **(env or {})}
        port = free_port()
        specs = [
            dataclasses.replace(s, env=(*s.env, *extra.items()))
            for s in service_specs(tenant, gateway_port=port)
            if services is None or s.name in services
        ]
        supervisor.start(specs, progress=print if progress else (lambda _: None))
        ports = {s.name: s.health_port for s in specs if s.health_port}
        wait_ready(ports, ready_timeout_s)
        yield Stack(
            tenant,
            port,
            ports,
            model,
            workdir,
            kafka,
            tuple(s.name for s in specs),
            supervisor.pids(),
        )
    finally:
        supervisor.stop()
        keep = workdir / "run"
        logs = ROOT / "var" / "bench" / "logs" / tenant
        with contextlib.suppress(OSError):
            shutil.copytree(keep, logs, dirs_exist_ok=True)
        delete_tenant(kafka, tenant)
        shutil.rmtree(workdir, ignore_errors=True)
