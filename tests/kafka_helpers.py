"""Small helpers for tests that talk to the real broker."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message, Producer


def read_messages(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float = 30.0,
    *,
    isolation: str = "read_committed",
) -> list[Message]:
    """Read ``expected`` messages (or until ``timeout``) from the beginning of ``topic``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.5):
                err = msg.error()
                if err is not None:
                    raise AssertionError(f"consume error: {err}")
                out.append(msg)
    finally:
        consumer.close()
    return out


def produce_raw(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> None:
    """Produce raw (key, value, headers) records, bypassing every scorestream encoder."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=list(headers))
    assert producer.flush(30) == 0
