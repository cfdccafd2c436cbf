"""Model lifecycle events on the compacted, global ``model-events`` topic.

The topic — not a file — is the source of truth for what serves: the latest ``ModelPromoted``
per ``(tenant, model, alias)`` key wins. :func:`read_model_events` replays the topic up to its
current end with a ``read_committed`` reader that joins no consumer group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.catalog import MODEL_EVENT_TYPES
from schemas.errors import DecodeError
from schemas.events import Contract, ModelAlias, ModelPromoted, ModelPublished, ModelRejected
from scorestream.kafka_config import common_config, producer_config
from scorestream.replay import read_to_end
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

TOPIC = REGISTRY.topic("model-events")


def publish_model_event(
    event: ModelPublished | ModelPromoted | ModelRejected,
    *,
    kafka: KafkaSettings | None = None,
    source: str = "scorestream/models",
) -> None:
    """Publish one lifecycle event and wait until the broker has it (acks=all)."""
    with EventProducer(producer_config(kafka or KafkaSettings()), source=source) as producer:
        producer.send(TOPIC, event)


@dataclass(slots=True)
class ModelState:
    """What the topic says, replayed in order."""

    published: dict[tuple[str, str], ModelPublished] = field(default_factory=dict)
    promoted: dict[tuple[str, str, ModelAlias], ModelPromoted] = field(default_factory=dict)
    rejected: list[ModelRejected] = field(default_factory=list)
    invalid: int = 0

    def apply(self, event: Contract) -> None:
        if isinstance(event, ModelPublished):
            self.published[(event.model_name, event.model_version)] = event
        elif isinstance(event, ModelPromoted):
            self.promoted[(event.tenant_id, event.model_name, event.alias)] = event
        elif isinstance(event, ModelRejected):
            self.rejected.append(event)

    def serving(self, tenant: str, model: str, alias: ModelAlias) -> ModelPromoted | None:
        return self.promoted.get((tenant, model, alias))


def read_model_events(kafka: KafkaSettings | None = None, timeout: float = 30.0) -> ModelState:
    """Replay ``model-events`` from the beginning to the current end."""
    conf = common_config(kafka or KafkaSettings(), client_id="scorestream-model-events") | {
        "group.id": "scorestream-model-events-reader",  # required by librdkafka; never joined
        "isolation.level": "read_committed",
    }
    state = ModelState()
    for msg in read_to_end(conf, TOPIC, timeout=timeout):
        try:
            state.apply(decode_message(msg, accept=MODEL_EVENT_TYPES).event)
        except DecodeError:
            state.invalid += 1
    return state
