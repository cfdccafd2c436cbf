"""One transaction = one trace, fetched from a real Jaeger v2.

Jaeger (built with Go by ``.ci/jaeger.sh``) runs on loopback with in-memory storage; every
service of a fresh tenant runs as a real process exporting OTLP to it. One transaction goes
through the gateway's synchronous endpoint, and the test reads the trace back from Jaeger's
query API until each hop is there, with the right service and the right parent:

gateway ``POST`` (server) → gateway ``send transactions`` → enricher ``process`` → ``send`` →
worker ``process transactions.enriched`` → ``send predictions`` → decision ``process
predictions`` → ``send decisions`` → notifier ``process decisions`` → webhook ``POST`` (client),
and audit ``process decisions``.

The enricher reports its own spans (a ``process`` span per transaction, a ``send`` under it), so
the worker's span is a child of the enricher's send span.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scorestream.dev.supervisor import Supervisor
from scorestream.dev.up import dev_api_key, up
from tests.jaeger import Jaeger, start_jaeger
from tests.webhook_server import WebhookServer
from tests.worker_support import Tenant, free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLICY = """\
version: "tracing-e2e"
thresholds:
  review: 0.0   # every transaction is reviewed, so the notifier calls the webhook
  decline: 1.0
"""


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    j = start_jaeger(tmp_path_factory.mktemp("jaeger"))
    try:
        yield j
    finally:
        j.stop()


@pytest.fixture
def traced_stack(
    kafka_bootstrap: str, jaeger: Jaeger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Tenant, dict[str, int], WebhookServer]]:
    tenant = Tenant(f"tr{uuid.uuid4().hex[:9]}", tmp_path / "models")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    hook = WebhookServer()
    hook.start()
    monkeypatch.setenv("SCORESTREAM_MODELS_URL", str(tenant.repo_dir))
    monkeypatch.setenv("SCORESTREAM_TRACING_ENDPOINT", jaeger.otlp_endpoint)
    monkeypatch.setenv("SCORESTREAM_TRACING_SCHEDULE_DELAY_MS", "200")
    monkeypatch.setenv("SCORESTREAM_DECISION_POLICY_FILE", str(policy))
    monkeypatch.setenv("SCORESTREAM_NOTIFIER_WEBHOOK_URL", hook.url("/ok"))
    from scorestream.admin import ensure_tenant_topics  # noqa: PLC0415

    ensure_tenant_topics(tenant.name)
    tenant.publish_model("1")
    tenant.promote("1")
    supervisor: Supervisor = up(tenant.name, gateway_port=free_port())
    try:
        ports = supervisor.ports()
        for name, p in ports.items():
            wait_until(lambda p=p: http_get(p, "/readyz")[0] == 200, 120, f"{name} ready")
        yield tenant, ports, hook
    finally:
        supervisor.stop()
        hook.stop()


def _transaction(tenant: str) -> dict[str, Any]:
    return {
        "transaction_id": f"trace-{uuid.uuid4().hex[:8]}",
        "tenant_id": tenant,
        "account_id": "acc-trace-1",
        "merchant_id": "mer-1",
        "amount_minor": 4200,
        "currency": "EUR",
        "timestamp": "2026-11-24T12:00:00Z",
        "channel": "ecommerce",
        "country": "DE",
        "mcc": "5411",
    }


class Trace:
    """Jaeger's JSON for one trace, indexed: span id → span, with service names resolved."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.processes = {k: v["serviceName"] for k, v in data["processes"].items()}
        self.spans = {s["spanID"]: s for s in data["spans"]}

    def service(self, span: dict[str, Any]) -> str:
        return self.processes[span["processID"]]

    def find(self, service: str, name: str) -> list[dict[str, Any]]:
        return [
            s
            for s in self.spans.values()
            if s["operationName"] == name and self.service(s) == f"scorestream-{service}"
        ]

    def one(self, service: str, name: str) -> dict[str, Any]:
        found = self.find(service, name)
        assert len(found) == 1, (service, name, self.summary())
        return found[0]

    @staticmethod
    def parent(span: dict[str, Any]) -> str | None:
        refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
        return refs[0]["spanID"] if refs else None

    @staticmethod
    def tags(span: dict[str, Any]) -> dict[str, Any]:
        return {t["key"]: t["value"] for t in span.get("tags", [])}

    def summary(self) -> list[str]:
        return sorted(
            f"{self.service(s)}: {s['operationName']} <- {self.parent(s)} ({s['spanID']})"
            for s in self.spans.values()
        )


def _complete(t: Trace, tenant: str) -> bool:
    wanted = [
        ("gateway", f"send {tenant}.transactions"),
        ("enricher", f"process {tenant}.transactions"),
        ("enricher", f"send {tenant}.transactions.enriched"),
        ("worker", f"process {tenant}.transactions.enriched"),
        ("worker", f"send {tenant}.predictions"),
        ("decision", f"process {tenant}.predictions"),
        ("decision", f"send {tenant}.decisions"),
        ("notifier", f"process {tenant}.decisions"),
        ("notifier", "POST"),
        ("audit", f"process {tenant}.decisions"),
    ]
    return all(t.find(service, name) for service, name in wanted) and any(
        s["operationName"].startswith("POST /v1/") for s in t.spans.values()
    )


def test_one_transaction_is_one_trace_in_jaeger_with_every_hop_a_child_of_the_previous(
    jaeger: Jaeger, traced_stack: tuple[Tenant, dict[str, int], WebhookServer]
) -> None:
    tenant, ports, hook = traced_stack
    name = tenant.name
    r = httpx.post(
        f"http://127.0.0.1:{ports['gateway']}/v1/transactions:score",
        json=_transaction(name),
        headers={"Authorization": f"Bearer {dev_api_key(name)[0]}"},  # the key ``up`` made
        timeout=30,
    )
    assert r.status_code == 200, r.text
    trace_id = r.json()["trace_id"]
    assert r.json()["decision"] == "review"

    found: Trace | None = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        data = jaeger.trace(trace_id)
        if data is not None:
            found = Trace(data)
            if _complete(found, name):
                break
        time.sleep(1.0)
    assert found is not None, f"trace {trace_id} never reached Jaeger"
    t = found
    assert _complete(t, name), t.summary()

    server = next(
        s for s in t.spans.values() if s["operationName"] == "POST /v1/transactions:score"
    )
    assert t.service(server) == "scorestream-gateway"
    assert t.parent(server) is None  # the client sent no traceparent: the gateway starts it
    assert t.tags(server)["span.kind"] == "server"
    gw_send = t.one("gateway", f"send {name}.transactions")
    assert t.parent(gw_send) == server["spanID"]
    assert t.tags(gw_send)["span.kind"] == "producer"

    # enricher: process (child of the gateway's send) → send; the worker's span under that send
    e_process = t.one("enricher", f"process {name}.transactions")
    assert t.parent(e_process) == gw_send["spanID"]
    e_tags = t.tags(e_process)
    assert e_tags["messaging.system"] == "kafka"
    assert e_tags["messaging.destination.name"] == f"{name}.transactions"
    assert e_tags["messaging.consumer.group.name"] == f"{name}.enricher"
    assert "messaging.kafka.offset" in e_tags
    assert "messaging.destination.partition.id" in e_tags
    assert e_tags["span.kind"] == "consumer"
    e_send = t.one("enricher", f"send {name}.transactions.enriched")
    assert t.parent(e_send) == e_process["spanID"]
    w_process = t.one("worker", f"process {name}.transactions.enriched")
    assert t.parent(w_process) == e_send["spanID"]
    tags = t.tags(w_process)
    assert tags["messaging.system"] == "kafka"
    assert tags["messaging.destination.name"] == f"{name}.transactions.enriched"
    assert tags["messaging.consumer.group.name"] == f"{name}.worker"
    assert tags["messaging.operation.type"] == "process"
    assert "messaging.kafka.offset" in tags
    assert "messaging.destination.partition.id" in tags
    assert tags["span.kind"] == "consumer"

    w_send = t.one("worker", f"send {name}.predictions")
    assert t.parent(w_send) == w_process["spanID"]
    d_process = t.one("decision", f"process {name}.predictions")
    assert t.parent(d_process) == w_send["spanID"]
    d_sends = t.find("decision", f"send {name}.decisions")
    assert len(d_sends) == 1
    assert t.parent(d_sends[0]) == d_process["spanID"]
    # the reply to the gateway's partition is a second send under the same process span
    d_reply = t.one("decision", f"send {name}.replies")
    assert t.parent(d_reply) == d_process["spanID"]

    n_process = t.one("notifier", f"process {name}.decisions")
    assert t.parent(n_process) == d_sends[0]["spanID"]
    client = t.one("notifier", "POST")
    assert t.parent(client) == n_process["spanID"]
    assert t.tags(client)["span.kind"] == "client"
    assert t.tags(client)["http.response.status_code"] == 200
    # the webhook request carried the client span's context
    tx_id = r.json()["transaction_id"]
    got = [h for h in hook.requests("/ok") if h.body.get("transaction_id") == tx_id]
    assert got
    version, tid, sid, flags = got[0].headers["traceparent"].split("-")
    assert (version, tid, sid) == ("00", trace_id, client["spanID"])
    assert int(flags, 16) & 1  # sampled (0x02, W3C level 2's random-id flag, may be set too)

    a_process = t.one("audit", f"process {name}.decisions")
    assert t.parent(a_process) == d_sends[0]["spanID"]
    # audit also joined the prediction: its span is a child of the worker's send
    a_pred = t.one("audit", f"process {name}.predictions")
    assert t.parent(a_pred) == w_send["spanID"]

    # the services are listed under their own names
    _, services = jaeger.get("/api/services")
    assert {"scorestream-gateway", "scorestream-worker", "scorestream-decision"} <= set(
        services["data"]
    )
