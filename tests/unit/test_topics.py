from __future__ import annotations

import pytest

from scorestream.errors import ConfigError
from scorestream.topics import FOREVER, REGISTRY, CleanupPolicy, Scope

STREAMS = [
    "transactions",
    "transactions.enriched",
    "predictions",
    "predictions.shadow",
    "decisions",
    "labels",
    "audit",
    "alerts",
    "model-events",
    "model-rejections",
]


def test_every_designed_stream_is_declared() -> None:
    names = {s.name for s in REGISTRY.streams}
    assert set(STREAMS) <= names


def test_tenant_prefix_and_no_global_streams() -> None:
    assert REGISTRY.topic("transactions", "acme") == "acme.transactions"
    assert REGISTRY.dlq_topic("predictions", "acme") == "acme.predictions.dlq"
    # issue 15: an ACL cannot restrict by key, so promotions are per tenant, like everything else
    assert REGISTRY.topic("model-events", "acme") == "acme.model-events"
    assert REGISTRY.topic("model-rejections", "acme") == "acme.model-rejections"
    assert REGISTRY.global_streams() == ()
    assert all(s.scope is Scope.TENANT for s in REGISTRY.streams)


def test_only_model_management_writes_promotions_and_workers_only_report() -> None:
    assert REGISTRY.get("model-events").producers == ("retrain",)
    assert REGISTRY.get("model-rejections").producers == ("worker",)
    assert "model-events" not in {s.name for s in REGISTRY.written_by("worker")}
    assert "retrain" in REGISTRY.get("model-rejections").consumers


def test_every_consumed_stream_has_a_dlq_written_by_its_consumers() -> None:
    for spec in REGISTRY.streams:
        if spec.is_dlq or spec.consumers in ((), ("operator",)):
            continue
        if not spec.has_dlq:  # a replicated table: its readers count bad records, never DLQ
            assert spec.cleanup_policy in (CleanupPolicy.COMPACT, CleanupPolicy.COMPACT_DELETE)
            assert f"{spec.name}.dlq" not in {s.name for s in REGISTRY.streams}
            continue
        dlq = REGISTRY.get(f"{spec.name}.dlq")
        assert dlq.is_dlq
        assert dlq.scope is spec.scope
        assert set(dlq.producers) == set(spec.consumers)


def test_retention_and_compaction() -> None:
    audit = REGISTRY.get("audit").topic_config()
    assert audit["retention.ms"] == str(FOREVER)
    assert audit["retention.bytes"] == "-1"
    events = REGISTRY.get("model-events")
    assert events.cleanup_policy is CleanupPolicy.COMPACT
    assert events.topic_config()["cleanup.policy"] == "compact"
    assert events.partitions == 1  # one total order of promotions
    assert REGISTRY.get("model-rejections").cleanup_policy is CleanupPolicy.COMPACT


@pytest.mark.parametrize("tenant", ["", "Acme", "acme_corp", "-acme", "a" * 40, "acme.x", None])
def test_invalid_tenants_are_refused(tenant: str | None) -> None:
    with pytest.raises(ConfigError, match="tenant"):
        REGISTRY.topic("transactions", tenant)


def test_topics_for_tenant_and_service_views() -> None:
    topics = REGISTRY.topics_for_tenant("acme")
    assert "acme.audit" in topics
    assert "acme.model-events" in topics
    assert all(t.startswith("acme.") for t in topics)
    assert {s.name for s in REGISTRY.read_by("worker")} == {
        "transactions.enriched",
        "model-events",
        "model-rejections",
    }
    assert "predictions" in {s.name for s in REGISTRY.written_by("worker")}
    with pytest.raises(ConfigError):
        REGISTRY.get("nope")
