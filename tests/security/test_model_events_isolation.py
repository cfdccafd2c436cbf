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

from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

from schemas.cloudevents import encode
from schemas.events import Contract, ModelAlias, ModelPromoted, ModelRejected
from scorestream import k8s, security
from scorestream.kafka_config import producer_config
from scorestream.model_events import read_model_events
from scorestream.topics import REGISTRY
from tests.security.conftest import Provision, sasl_settings

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
