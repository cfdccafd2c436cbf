"""Model lifecycle events, per tenant, on two compacted topics.

* ``<tenant>.model-events``: ``ModelPublished`` and ``ModelPromoted``. The topic — not a file —
  is the source of truth for what serves: the latest ``ModelPromoted`` per
  ``(tenant, model, alias)`` key wins. Only the tenant's model-management principal
  (``<tenant>-retrain``: the retrain CronJob, ``scorestream train|retrain|models promote``)
  may write it.
* ``<tenant>.model-rejections``: ``ModelRejected``, written by the tenant's workers when a
  promoted version fails verification. A worker can report, never promote nor tombstone.

A Kafka ACL cannot restrict by key, so the tenant boundary is the topic: no principal of one
tenant can write another tenant's streams. Every reader also ignores (logs and counts, see
:func:`is_foreign`) an event whose ``tenant_id`` is not the topic's tenant, so even the
tenant's own model management cannot point another tenant's key at a model.
:func:`read_model_events` replays both topics up to their current end with a ``read_committed``
reader that joins no consumer group.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import Producer

from schemas.catalog import MODEL_EVENT_TYPES
from schemas.errors import DecodeError
from schemas.events import Contract, ModelAlias, ModelPromoted, ModelPublished, ModelRejected
from scorestream import metrics
from scorestream.admin import require_topics
from scorestream.errors import ConfigError, DeliveryError, MissingTopicError, TopicError
from scorestream.kafka_config import common_config, producer_config
from scorestream.replay import read_to_end
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY, validate_tenant

log = logging.getLogger("scorestream.model_events")

PROMOTIONS = "model-events"
REJECTIONS = "model-rejections"


def promotions_topic(tenant: str) -> str:
    """``<tenant>.model-events``: what serves, written only by the tenant's model management."""
    return REGISTRY.topic(PROMOTIONS, tenant)


def rejections_topic(tenant: str) -> str:
    """``<tenant>.model-rejections``: the tenant's workers' refusals."""
    return REGISTRY.topic(REJECTIONS, tenant)


def topic_for(event: ModelPublished | ModelPromoted | ModelRejected, tenant: str) -> str:
    return (
        rejections_topic(tenant) if isinstance(event, ModelRejected) else promotions_topic(tenant)
    )


def is_foreign(event: object, tenant: str, *, service: str, topic: str = "") -> bool:
    """True (logged and counted) when ``event`` names another tenant than ``tenant``: an event
    on a tenant's own topic that claims another tenant is forged or misrouted, never applied."""
    other = getattr(event, "tenant_id", None)
    if other is None or other == tenant:
        return False
    metrics.MODEL_EVENTS_IGNORED.labels(tenant, service).inc()
    log.warning(
        "ignored a %s event for tenant %r on tenant %r's %s",
        type(event).__name__,
        other,
        tenant,
        topic or "model topics",
    )
    return True


def publish_model_event(
    event: ModelPublished | ModelPromoted | ModelRejected,
    *,
    tenant: str,
    kafka: KafkaSettings | None = None,
    source: str = "scorestream/models",
) -> None:
    """Publish one lifecycle event of ``tenant`` and wait until the broker has it (acks=all).

    A promotion or rejection must name ``tenant`` itself; a foreign one is refused here (its
    readers would ignore it anyway)."""
    validate_tenant(tenant)
    other = getattr(event, "tenant_id", tenant)
    if other != tenant:
        raise ConfigError(f"a model event of tenant {other!r} cannot go to tenant {tenant!r}")
    config = producer_config(kafka or KafkaSettings())
    topic = topic_for(event, tenant)
    require_topics(
        Producer(config), [topic], tenant=tenant, denied=lambda t: _not_authorized(event, tenant, t)
    )
    try:
        with EventProducer(config, source=source) as producer:
            producer.send(topic, event)
    except DeliveryError as exc:
        if "authorization failed" in str(exc).lower():
            raise _not_authorized(event, tenant, topic) from exc
        raise


def require_promotions_topic(tenant: str, kafka: KafkaSettings | None = None) -> None:
    """Check, before any work, that ``tenant``'s promotions can be published (``train`` calls
    this before it spends half a minute training): MissingTopicError names the provisioning
    command."""
    validate_tenant(tenant)
    probe = Producer(producer_config(kafka or KafkaSettings()))
    topic = promotions_topic(tenant)
    require_topics(probe, [topic], tenant=tenant, denied=lambda t: _not_authorized(None, tenant, t))


def _not_authorized(event: Contract | None, tenant: str, topic: str) -> TopicError:
    who = (
        f"only the tenant's workers report rejections ({tenant}-worker)"
        if isinstance(event, ModelRejected)
        else f"only the tenant's model management ({tenant}-retrain) publishes and promotes"
    )
    return TopicError(f"not authorized to write {topic}: {who}")


@dataclass(slots=True)
class ModelState:
    """What a tenant's topics say, replayed in order; events naming another tenant are ignored
    (``foreign``)."""

    tenant: str
    service: str = "models"
    published: dict[tuple[str, str], ModelPublished] = field(default_factory=dict)
    promoted: dict[tuple[str, str, ModelAlias], ModelPromoted] = field(default_factory=dict)
    rejected: list[ModelRejected] = field(default_factory=list)
    invalid: int = 0
    foreign: int = 0
    max_rejected: int = 1000
    """The newest rejections kept (the topic is compacted per version; bounded here too)."""

    def apply(self, event: Contract, *, topic: str = "") -> None:
        if is_foreign(event, self.tenant, service=self.service, topic=topic):
            self.foreign += 1
            return
        if isinstance(event, ModelPublished):
            self.published[(event.model_name, event.model_version)] = event
        elif isinstance(event, ModelPromoted):
            self.promoted[(event.tenant_id, event.model_name, event.alias)] = event
        elif isinstance(event, ModelRejected):
            self.rejected.append(event)
            del self.rejected[: -self.max_rejected]

    def serving(self, tenant: str, model: str, alias: ModelAlias) -> ModelPromoted | None:
        return self.promoted.get((tenant, model, alias))


def read_model_events(
    tenant: str,
    kafka: KafkaSettings | None = None,
    timeout: float = 30.0,
    *,
    rejections: bool = True,
    group_id: str | None = None,
) -> ModelState:
    """Replay ``<tenant>.model-events`` (and ``<tenant>.model-rejections`` if ``rejections``)
    from the beginning to the current end.

    ``group_id`` (never joined, but librdkafka looks up its coordinator, which needs a group
    ACL) defaults to ``<tenant>.retrain.models``: model management's own group prefix."""
    validate_tenant(tenant)
    conf = common_config(kafka or KafkaSettings(), client_id="scorestream-model-events") | {
        "group.id": group_id or f"{tenant}.retrain.models",
        "isolation.level": "read_committed",
    }
    state = ModelState(tenant)
    topics = [promotions_topic(tenant)] + ([rejections_topic(tenant)] if rejections else [])
    for topic in topics:
        try:
            for msg in read_to_end(conf, topic, timeout=timeout):
                try:
                    state.apply(decode_message(msg, accept=MODEL_EVENT_TYPES).event, topic=topic)
                except DecodeError:
                    state.invalid += 1
        except MissingTopicError as exc:
            raise MissingTopicError(exc.topics, tenant) from None
    return state
