"""Every service as a real process, each connected as its own least-privilege SCRAM principal.

The processes get only ``SCORESTREAM_KAFKA_*`` SASL settings for the broker's SCRAM listener (as a
Kubernetes Deployment gets them from its KafkaUser Secret); nothing runs as a super user except
the test's own model promotion and read-back. Transactions go in as the tenant's gateway
principal; every one must come out as exactly one prediction, decision and audit record.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers.simulate_cli import interleaved
from producers.simulator import SimulatorConfig, simulate
from schemas.events import AuditRecord, DecisionEvent, PredictionEvent
from scorestream.deploy import principals as security
from scorestream.dev.supervisor import ServiceSpec, Supervisor
from scorestream.dev.up import service_specs
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.topics import REGISTRY
from tests.kafka_helpers import read_messages
from tests.security.conftest import Provision, sasl_settings
from tests.worker_support import Tenant, free_port, http_get, wait_until

pytestmark = [pytest.mark.security, pytest.mark.e2e, pytest.mark.slow]

N_TRANSACTIONS = 300


@pytest.fixture
def sasl_stack(
    private_tenant: Provision,
    sasl_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Tenant, dict[str, security.ServicePrincipal], Supervisor]]:
    specs = service_specs("placeholder", gateway_port=free_port())
    name, principals = private_tenant([s.name for s in specs])
    tenant = Tenant(name, tmp_path / "models")
    monkeypatch.setenv("SCORESTREAM_MODELS_URL", str(tenant.repo_dir))
    monkeypatch.setenv("SCORESTREAM_AUDIT_JOIN_TIMEOUT_S", "600")
    tenant.publish_model("1")
    tenant.promote("1")  # the operator's action, as the super user
    specs = [
        _as_principal(s, name, principals[s.name].client_env(sasl_bootstrap))
        for s in service_specs(name, gateway_port=free_port())
    ]
    supervisor = Supervisor(name)
    supervisor.start(specs)
    try:
        for service, port in supervisor.ports().items():
            wait_until(
                lambda port=port: http_get(port, "/readyz")[0] == 200,
                120,
                f"{service} ready under its own principal",
            )
        yield tenant, principals, supervisor
    finally:
        supervisor.stop()


def _as_principal(spec: ServiceSpec, tenant: str, env: dict[str, str]) -> ServiceSpec:
    """``spec`` for ``tenant`` with the principal's Kafka settings added to its environment."""
    return dataclasses.replace(spec, env=(*spec.env, *env.items()))


def test_the_chain_runs_under_its_own_principals(
    kafka_bootstrap: str,
    sasl_bootstrap: str,
    sasl_stack: tuple[Tenant, dict[str, security.ServicePrincipal], Supervisor],
) -> None:
    tenant, principals, supervisor = sasl_stack
    gateway = principals["gateway"]
    settings = sasl_settings(sasl_bootstrap, gateway.username, gateway.password)
    producer = EventProducer(producer_config(settings), source="tests/security")
    sim = simulate(SimulatorConfig(seed=9, tenant="acme", n_customers=50, n_terminals=100, days=3))
    txs = [
        e.model_copy(update={"tenant_id": tenant.name, "transaction_id": f"sx-{uuid.uuid4().hex}"})
        for stream, e in interleaved(sim)
        if stream == "transactions"
    ][:N_TRANSACTIONS]
    for tx in txs:
        producer.send(REGISTRY.topic("transactions", tenant.name), tx)
    assert producer.flush(60) == len(txs)  # raises DeliveryError on any refusal
    ids = {t.transaction_id for t in txs}

    def one_each(stream: str, contract: type) -> Counter[str]:  # type: ignore[type-arg]
        topic = REGISTRY.topic(stream, tenant.name)
        msgs = read_messages(kafka_bootstrap, topic, len(ids), timeout=240)
        return Counter(decode_message(m, accept=[contract]).event.transaction_id for m in msgs)

    for stream, contract in (
        ("predictions", PredictionEvent),
        ("decisions", DecisionEvent),
        ("audit", AuditRecord),
    ):
        seen = one_each(stream, contract)
        assert set(seen) == ids, f"{stream}: {len(ids - set(seen))} missing"
        assert max(seen.values()) == 1, f"{stream}: duplicates"
    assert (
        read_messages(kafka_bootstrap, REGISTRY.topic("transactions.dlq", tenant.name), 1, 2) == []
    )
    for service in supervisor.ports():
        log = (supervisor.dir / f"{service}.log").read_text(errors="replace")
        assert "AUTHORIZATION_FAILED" not in log.upper().replace(" ", "_"), service
        assert principals[service].password not in log, f"{service} logged its password"
