"""Pure logic of the per-tenant model topics (issue 15 item 1): no Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.events import ModelAlias, ModelPromoted, ModelPublished, ModelRejected
from scorestream import metrics
from scorestream.errors import ConfigError, MissingTopicError
from scorestream.model_events import (
    ModelState,
    is_foreign,
    promotions_topic,
    publish_model_event,
    rejections_topic,
    topic_for,
)

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def promoted(tenant: str, version: str = "1") -> ModelPromoted:
    return ModelPromoted(
        tenant_id=tenant,
        model_name="fraud-gbt",
        model_version=version,
        alias=ModelAlias.CHAMPION,
        promoted_at=NOW,
    )


def rejected(tenant: str, version: str = "1") -> ModelRejected:
    return ModelRejected(
        tenant_id=tenant,
        model_name="fraud-gbt",
        model_version=version,
        reason="bad",
        service="worker",
        instance="w-0",
        rejected_at=NOW,
    )


def test_each_event_goes_to_its_tenants_topic() -> None:
    assert promotions_topic("acme") == "acme.model-events"
    assert rejections_topic("acme") == "acme.model-rejections"
    assert topic_for(promoted("acme"), "acme") == "acme.model-events"
    assert topic_for(rejected("acme"), "acme") == "acme.model-rejections"
    published = ModelPublished(
        model_name="fraud-gbt",
        model_version="1",
        sha256="0" * 64,
        uri="file:///m",
        feature_spec_hash="0123456789abcdef",
        published_at=NOW,
    )
    assert topic_for(published, "acme") == "acme.model-events"


def test_a_foreign_event_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ConfigError, match="'other'"):
        publish_model_event(promoted("other"), tenant="acme")
    with pytest.raises(ConfigError, match="'other'"):
        publish_model_event(rejected("other"), tenant="acme")


def test_state_ignores_and_counts_events_of_another_tenant() -> None:
    counter = metrics.MODEL_EVENTS_IGNORED.labels("acme", "gateway")
    before = counter._value.get()
    state = ModelState("acme", service="gateway")
    state.apply(promoted("acme", "1"))
    state.apply(promoted("evil", "666"))
    state.apply(promoted("acme", "666").model_copy(update={"tenant_id": "other"}))
    state.apply(rejected("evil"))
    assert state.serving("acme", "fraud-gbt", ModelAlias.CHAMPION) == promoted("acme", "1")
    assert state.serving("evil", "fraud-gbt", ModelAlias.CHAMPION) is None
    assert state.rejected == []
    assert state.foreign == 3
    assert counter._value.get() == before + 3
    assert not is_foreign(promoted("acme"), "acme", service="worker")


def test_rejections_kept_are_bounded() -> None:
    state = ModelState("acme", max_rejected=3)
    for v in range(10):
        state.apply(rejected("acme", str(v)))
    assert [r.model_version for r in state.rejected] == ["7", "8", "9"]


def test_a_missing_topic_names_the_provisioning_command() -> None:
    err = MissingTopicError(["acme.predictions", "acme.decisions"], "acme")
    assert err.topics == ["acme.decisions", "acme.predictions"]
    assert "scorestream topics create --tenant acme" in str(err)
    assert "KafkaTopic" in str(err)
    assert "--tenant acme" in str(MissingTopicError("acme.audit"))  # tenant from the prefix
