"""Messaging semantic-convention attributes (:mod:`scorestream.tracing`)."""

from __future__ import annotations

# messaging semantic conventions (opentelemetry-semantic-conventions 0.66b2, incubating names)
SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
OFFSET = "messaging.kafka.offset"
KEY = "messaging.kafka.message.key"
GROUP = "messaging.consumer.group.name"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
MESSAGE_ID = "messaging.message.id"
BATCH_COUNT = "messaging.batch.message_count"
TENANT = "scorestream.tenant"


def kafka_attributes(
    topic: str | None,
    *,
    operation: str,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | str | None = None,
    group: str | None = None,
    message_id: str | None = None,
) -> dict[str, str | int]:
    """Messaging semantic-convention attributes of one Kafka message."""
    attrs: dict[str, str | int] = {
        SYSTEM: "kafka",
        OPERATION_TYPE: operation,
        OPERATION_NAME: operation,
    }
    if topic:
        attrs[DESTINATION] = topic
    if partition is not None and partition >= 0:
        attrs[PARTITION] = str(partition)
    if offset is not None and offset >= 0:
        attrs[OFFSET] = offset
    if key:
        attrs[KEY] = key if isinstance(key, str) else key.decode("utf-8", errors="replace")
    if group:
        attrs[GROUP] = group
    if message_id:
        attrs[MESSAGE_ID] = message_id
    return attrs  # the tenant is on the resource of every span, not repeated here
