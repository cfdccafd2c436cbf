"""Issue 15 item 1: no principal of tenant A can change what serves for tenant B.

The attack (adversarial review, 2026-12-04): every worker principal could write the one global
``model-events`` topic, and an ACL cannot restrict by key, so tenant A promoted its worst model
for tenant B (B's ``:score`` answered with it), forged ``ModelRejected`` for B and tombstoned B's
champion key. Here every principal of A tries each of the three against the topics B's own
services follow, on the SASL listener with the KafkaUsers' ACLs; the broker must refuse them all,
while the same writes by B's model-management principal (``<tenant>-retrain``) on B's own topics
go through, so the setup cannot pass vacuously.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from pipelines import lifecycle, training
from schemas.cloudevents import encode
from schemas.events import Contract, ModelAlias, ModelPromoted, ModelRejected
from scorestream.deploy import principals as security
from scorestream.deploy.k8s import generate as k8s
from scorestream.errors import MissingTopicError, TopicError
from scorestream.kafka_config import producer_config
from scorestream.model_events import publish_model_event, read_model_events
from scorestream.topics import REGISTRY
from tests.gateway_process import gateway_process
from tests.model_factory import tiny_model
from tests.security.conftest import Provision, sasl_settings
from tests.worker_support import (
    Tenant,
    enriched_events,
    free_port,
    http_get,
    new_tenant,
    publish_enriched,
    read_predictions,
    wait_until,
)

pytestmark = [pytest.mark.security, pytest.mark.integration]

WAIT_S = 60.0
TOPIC_DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED
MODEL = "fraud-gbt"
Record = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]


def promoted(tenant: str, version: str) -> ModelPromoted:
    return ModelPromoted(
        tenant_id=tenant,
        model_name=MODEL,
        model_version=version,
        alias=ModelAlias.CHAMPION,
        promoted_at=datetime.now(UTC),
        reason="tests/security",
    )


def rejected(tenant: str, version: str) -> ModelRejected:
    return ModelRejected(
        tenant_id=tenant,
        model_name=MODEL,
        model_version=version,
        reason="forged",
        service="worker",
        instance="attacker",
        rejected_at=datetime.now(UTC),
    )


def record(topic: str, event: Contract, *, tombstone: bool = False) -> Record:
    msg = encode(event, source="tests/attacker")
    headers = [(k, v) for k, v in msg.headers if isinstance(v, bytes)]
    return topic, msg.key, None if tombstone else msg.value, headers


def write_outcomes(
    p: security.ServicePrincipal, bootstrap: str, records: list[Record]
) -> list[int | None]:
    """The delivery error code of each record written as ``p`` (None: the broker took it)."""
    settings = sasl_settings(bootstrap, p.username, p.password)
    producer = Producer(producer_config(settings) | {"delivery.timeout.ms": 30_000})
    outcomes: dict[int, int | None] = {}
    for i, (topic, key, value, headers) in enumerate(records):
        producer.produce(
            topic,
            value=value,
            key=key,
            headers=headers,
            on_delivery=lambda err, _msg, i=i: outcomes.__setitem__(
                i, None if err is None else int(err.code())
            ),
        )
    producer.flush(WAIT_S)
    assert len(outcomes) == len(records), "missing delivery reports"
    return [outcomes[i] for i in range(len(records))]


def attacks_on(tenant_b: str) -> list[Record]:
    """Promote a bad version, forge a rejection, tombstone the champion key: all aimed at B."""
    promotions = REGISTRY.topic("model-events", tenant_b)
    rejections = REGISTRY.topic("model-rejections", tenant_b)
    return [
        record(promotions, promoted(tenant_b, "666")),
        record(promotions, promoted(tenant_b, "1"), tombstone=True),
        record(rejections, rejected(tenant_b, "1")),
    ]


def test_no_principal_of_a_can_promote_reject_or_tombstone_for_b(
    private_tenant: Provision, sasl_admin: AdminClient, sasl_bootstrap: str
) -> None:
    tenant_a, a = private_tenant(k8s.SERVICES)
    tenant_b, b = private_tenant(["retrain", "worker"])

    # control: B's model management promotes B's champion on B's own topic
    own = [record(REGISTRY.topic("model-events", tenant_b), promoted(tenant_b, "1"))]
    assert write_outcomes(b["retrain"], sasl_bootstrap, own) == [None]

    for service, p in a.items():
        outcomes = write_outcomes(p, sasl_bootstrap, attacks_on(tenant_b))
        assert outcomes == [TOPIC_DENIED] * 3, f"{tenant_a}-{service}: {outcomes}"

    # B still serves its own champion: nothing of A's reached B's promotion stream
    state = read_model_events(tenant_b, timeout=WAIT_S)
    serving = state.serving(tenant_b, MODEL, ModelAlias.CHAMPION)
    assert serving is not None
    assert serving.model_version == "1"
    assert state.rejected == []


def test_only_model_management_promotes_inside_a_tenant(
    private_tenant: Provision, sasl_bootstrap: str
) -> None:
    """A tenant's own services cannot promote either; the worker reports rejections on their own
    stream, which the promotion stream never sees."""
    tenant, p = private_tenant(k8s.SERVICES)
    promotions = REGISTRY.topic("model-events", tenant)
    rejections = REGISTRY.topic("model-rejections", tenant)
    promote = record(promotions, promoted(tenant, "2"))
    reject = record(rejections, rejected(tenant, "2"))
    for service, principal in p.items():
        expected: list[int | None] = [
            None if service == "retrain" else TOPIC_DENIED,
            None if service == "worker" else TOPIC_DENIED,
        ]
        assert write_outcomes(principal, sasl_bootstrap, [promote, reject]) == expected, service

    # the kernel's own publisher says who may write, instead of timing out on the refusal
    worker = sasl_settings(sasl_bootstrap, p["worker"].username, p["worker"].password)
    with pytest.raises(TopicError, match=f"only the tenant's model management \\({tenant}-retrain"):
        publish_model_event(promoted(tenant, "3"), tenant=tenant, kafka=worker)

    # model management reads both streams under its own principal (`scorestream models list`)
    retrain = sasl_settings(sasl_bootstrap, p["retrain"].username, p["retrain"].password)
    state = read_model_events(tenant, retrain, timeout=WAIT_S)
    serving = state.serving(tenant, MODEL, ModelAlias.CHAMPION)
    assert serving is not None
    assert serving.model_version == "2"
    assert [(r.model_version, r.instance) for r in state.rejected] == [("2", "attacker")]


def _metric(port: int, name: str, **labels: str) -> float | None:
    """One sample of the worker's /metrics with exactly these labels (None if absent)."""
    status, text = http_get(port, "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def _loaded(port: int, tenant: str, version: str) -> float | None:
    return _metric(
        port,
        "scorestream_model_loaded",
        tenant=tenant,
        model=MODEL,
        version=version,
        alias="champion",
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_a_forged_event_is_ignored_and_b_keeps_serving_its_champion(
    private_tenant: Provision,
    sasl_bootstrap: str,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """Real worker processes of A and B, each as its own principal. A's model management writes a
    promotion naming B (B's worst model) into A's own topic, and every principal of A aims it at
    B's: A's worker ignores and counts it, B's worker keeps serving — and scoring with — v1."""
    a_name, a = private_tenant(["worker", "retrain"])
    b_name, b = private_tenant(["worker", "retrain"])
    tenant_a, tenant_b = (
        Tenant(a_name, tmp_path / "a" / "models"),
        Tenant(b_name, tmp_path / "b" / "models"),
    )
    for t, p in ((tenant_a, a), (tenant_b, b)):
        management = sasl_settings(sasl_bootstrap, p["retrain"].username, p["retrain"].password)
        for version, seed in (("1", 0), ("2", 9)):
            data, meta = tiny_model(version, seed=seed, name=MODEL)
            lifecycle.publish(
                t.repo, training.TrainingResult(meta, data, 0.0), tenant=t.name, kafka=management
            )
        lifecycle.promote(t.repo, tenant=t.name, name=MODEL, version="1", kafka=management)

    ports = {t.name: free_port() for t in (tenant_a, tenant_b)}
    try:
        for t, p in ((tenant_a, a), (tenant_b, b)):
            t.start_worker(
                f"w-{t.name}",
                health_port=ports[t.name],
                **p["worker"].client_env(sasl_bootstrap),
            )
        for t in (tenant_a, tenant_b):
            wait_until(
                lambda t=t: http_get(ports[t.name], "/readyz")[0] == 200, 60, f"{t.name} ready"
            )

        # the forged promotion, in A's own topic (A's model management may write it)...
        forged = record(REGISTRY.topic("model-events", a_name), promoted(b_name, "2"))
        assert write_outcomes(a["retrain"], sasl_bootstrap, [forged]) == [None]
        # ...and aimed at B's topic by every principal of A: refused
        for service, p in a.items():
            assert write_outcomes(p, sasl_bootstrap, attacks_on(b_name)) == [TOPIC_DENIED] * 3, (
                service
            )

        port_a, port_b = ports[a_name], ports[b_name]
        wait_until(
            lambda: (
                _metric(
                    port_a,
                    "scorestream_model_events_ignored_total",
                    tenant=a_name,
                    service="worker",
                )
                == 1.0
            ),
            30,
            "A's worker ignores the event naming B",
        )
        assert _loaded(port_a, a_name, "1") == 1.0
        assert _loaded(port_a, b_name, "2") is None
        assert _loaded(port_b, b_name, "1") == 1.0
        assert _loaded(port_b, b_name, "2") in (None, 0.0)

        # B's traffic is scored by B's champion
        events = list(enriched_events(b_name, 20, seed=3))
        publish_enriched(tenant_b, events)
        preds = read_predictions(kafka_bootstrap, tenant_b, len(events), timeout=60)
        assert len(preds) == len(events)
        assert {p.model_version for _, p in preds} == {"1"}
        assert "ignored a ModelPromoted event for tenant" in tenant_a.worker_logs()
    finally:
        tenant_a.stop_all()
        tenant_b.stop_all()


def test_the_gateway_ignores_and_counts_an_event_naming_another_tenant(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The gateway follows its tenant's model-events for the V2 model metadata: a promotion there
    that names another tenant is ignored, logged and counted; the tenant's own one is served."""
    tenant = new_tenant(tmp_path)
    publish_model_event(promoted(tenant.name, "7"), tenant=tenant.name)
    forged = record(REGISTRY.topic("model-events", tenant.name), promoted("other", "666"))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})  # the super user
    producer.produce(forged[0], value=forged[2], key=forged[1], headers=forged[3])
    assert producer.flush(WAIT_S) == 0
    log = tmp_path / "gateway.log"
    with gateway_process(tenant.name, log, env={"SCORESTREAM_GATEWAY_AUTH_MODE": "disabled"}) as gw:

        def ignored() -> float | None:
            text = httpx.get(f"{gw.base}/metrics", timeout=5).text
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name == "scorestream_model_events_ignored_total" and s.labels == {
                        "tenant": tenant.name,
                        "service": "gateway",
                    }:
                        return float(s.value)
            return None

        wait_until(lambda: ignored() == 1.0, 30, "the gateway counts the foreign event")
        meta = httpx.get(f"{gw.base}/v2/models/{MODEL}", timeout=5).json()
        assert meta["versions"] == ["7"]
    assert "ignored a ModelPromoted event for tenant 'other'" in log.read_text()


def test_publishing_to_an_unprovisioned_tenant_names_the_provisioning_command(
    kafka_bootstrap: str,
) -> None:
    tenant = f"u{uuid.uuid4().hex[:10]}"
    with pytest.raises(MissingTopicError, match=f"scorestream topics create --tenant {tenant}"):
        publish_model_event(promoted(tenant, "1"), tenant=tenant)
