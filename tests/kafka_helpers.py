"""Small helpers for tests that talk to the real broker."""

from __future__ import annotations

import os
import re
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from scorestream.dev.broker import LocalBroker
from scorestream.dev.broker.local import stable_free_ports
from scorestream.settings import BrokerSettings

RANDOM_TENANT = re.compile(r"^(?:changelog__|repartition__)?[a-z]{0,3}[0-9a-f]{8,}[.-]")
"""A topic of a test's random tenant (``t3f9a...``, Quix's internal ones included): named by
``uuid4().hex``; fixed names (``demo.*``) never match."""


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


class TestTopics:
    """Remembers the broker's topics when a session starts; :meth:`delete_new` deletes the ones
    created since whose name is a random test tenant's (a topic someone else created meanwhile
    has a fixed name and is kept). Best effort: a failure is reported, never raised."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        try:
            self.before: set[str] | None = self._topics()
        except KafkaException:
            self.before = None  # nothing known, nothing deleted

    def _topics(self) -> set[str]:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return set(admin.list_topics(timeout=30).topics)

    def delete_new(self, timeout: float = 60.0) -> int:
        if self.before is None or os.environ.get("SCORESTREAM_TEST_KEEP_TOPICS"):
            # SCORESTREAM_TEST_KEEP_TOPICS: several test sessions share one broker (another
            # session's tenants would look new to this one)
            return 0
        try:
            new = sorted(t for t in self._topics() - self.before if RANDOM_TENANT.match(t))
            if not new:
                return 0
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            futures = admin.delete_topics(new, operation_timeout=timeout, request_timeout=timeout)
            failed = []
            for topic, future in futures.items():
                try:
                    future.result(timeout)
                except KafkaException as exc:
                    failed.append(f"{topic}: {exc}")
        except KafkaException as exc:
            sys.stderr.write(f"test topics not deleted: {exc}\n")
            return 0
        sys.stderr.write(f"deleted {len(new) - len(failed)} topics of the tests' tenants\n")
        for line in failed[:5]:
            sys.stderr.write(f"  not deleted: {line}\n")
        return len(new) - len(failed)


def private_local_broker(home: Path) -> LocalBroker:
    """A second, small broker of one test's own (free ports, its own home): for tests that kill,
    freeze or restart a broker, which the session's shared one must never be."""
    plaintext, sasl, controller = stable_free_ports(3)  # not 0: a restart reuses them (CI once
    # found the controller's ephemeral port taken by a client's source port after a SIGKILL)
    return LocalBroker(
        BrokerSettings(
            home=home,
            plaintext_port=plaintext,
            sasl_port=sasl,
            controller_port=controller,
            heap="384m",
        )
    )
