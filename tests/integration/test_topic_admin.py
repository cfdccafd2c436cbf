"""``scorestream topics create`` on the real broker: idempotent, configs as declared."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from scorestream.admin import Action, describe_topic_config, ensure_tenant_topics
from scorestream.topics import REGISTRY, Scope

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(admin: AdminClient) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    own = [s.topic(name) for s in REGISTRY.tenant_streams()]
    for future in admin.delete_topics(own, request_timeout=30).values():
        future.result(30)


def test_create_is_idempotent_and_configs_match(tenant: str, admin: AdminClient) -> None:
    first = ensure_tenant_topics(tenant)
    own = {s.topic(tenant) for s in REGISTRY.tenant_streams()}
    assert {r.topic for r in first if r.action is Action.CREATED} >= own
    second = ensure_tenant_topics(tenant)
    assert all(r.action is Action.UNCHANGED for r in second), second
    topics = admin.list_topics(timeout=10).topics
    for spec in REGISTRY.streams:
        name = spec.topic(tenant)
        assert name in topics
        if spec.scope is Scope.TENANT:
            assert len(topics[name].partitions) == spec.partitions
        conf = describe_topic_config(admin, name)
        for key, value in spec.topic_config().items():
            assert conf[key] == value, (name, key)
    assert describe_topic_config(admin, f"{tenant}.audit")["retention.ms"] == "-1"
    assert describe_topic_config(admin, f"{tenant}.model-events")["cleanup.policy"] == "compact"


def test_config_drift_is_repaired(tenant: str, admin: AdminClient) -> None:
    ensure_tenant_topics(tenant)
    topic = f"{tenant}.transactions"
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(30)
    deadline = time.monotonic() + 15  # config changes reach the broker's metadata asynchronously
    while describe_topic_config(admin, topic)["retention.ms"] != "1000":
        assert time.monotonic() < deadline, "the drift never became visible"
        time.sleep(0.1)
    results = {r.topic: r for r in ensure_tenant_topics(tenant)}
    assert results[topic].action is Action.UPDATED
    assert "retention.ms" in results[topic].detail
    expected = REGISTRY.get("transactions").topic_config()["retention.ms"]
    deadline = time.monotonic() + 15  # the repair reaches the metadata asynchronously too
    while describe_topic_config(admin, topic)["retention.ms"] != expected:
        assert time.monotonic() < deadline, "the repair never became visible"
        time.sleep(0.1)
