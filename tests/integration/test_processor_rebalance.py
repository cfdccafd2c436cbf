"""The shared exactly-once loop while partitions move between two instances of a service.

A slow first instance holds a batch while a second one joins the group, so partitions are
revoked from the first while it works: the window in which a batch assembled over two
``consume()`` calls could keep a record of a revoked partition and commit it a second time
(docs/adr/0002-no-record-of-a-revoked-partition.md). Every input must come out exactly once, read
with ``read_committed``, and each partition's outputs keep their input order.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.cloudevents import Envelope, encode
from schemas.events import TransactionEvent
from scorestream.processor import Emit, Processor, ProcessorConfig, Result
from scorestream.serde import decode_message
from scorestream.settings import KafkaSettings
from tests.factories import transaction
from tests.kafka_helpers import read_messages

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
PER_PARTITION = 60


def _config(group: str, src: str, dlq: str, instance: str) -> ProcessorConfig:
    return ProcessorConfig(
        service="relay",
        tenant="t",
        group_id=group,
        instance_id=instance,
        inputs=(src,),
        accept=(TransactionEvent,),
        dlq_topics={src: dlq},  # a service starts only when its topics exist (none creates)
        max_batch=40,
        max_wait_ms=20,
        session_timeout_ms=6000,
    )


class Relay:
    """A processor in a thread whose handler copies each input to ``dst`` (slowly, if asked)."""

    def __init__(self, config: ProcessorConfig, dst: str, delay_s: float) -> None:
        self.dst, self.delay_s = dst, delay_s
        self.batches = 0
        self.processor = Processor(config, self.handle, kafka=KafkaSettings())
        self.thread = threading.Thread(
            target=self.processor.run, kwargs={"install_signals": False}, daemon=True
        )

    def handle(self, batch: list[Envelope[Any]]) -> Result:
        time.sleep(self.delay_s)  # holds the batch while the group rebalances
        self.batches += 1
        # to the input's partition number: each partition's order can be checked at the end
        return Result(
            emits=[
                Emit(self.dst, env.event, env.trace, partition=env.raw.partition if env.raw else 0)
                for env in batch
            ]
        )

    def stop(self) -> None:
        self.processor.stop()
        self.thread.join(30)


@pytest.fixture
def relays() -> Iterator[Callable[[ProcessorConfig, str, float], Relay]]:
    made: list[Relay] = []

    def make(config: ProcessorConfig, dst: str, delay_s: float) -> Relay:
        relay = Relay(config, dst, delay_s)
        made.append(relay)
        relay.thread.start()
        return relay

    yield make
    for relay in made:
        relay.stop()


def _committed_total(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


class Trickle(threading.Thread):
    """Publishes the input slowly, so a consumer's queue holds only a few records when a
    rebalance is served: the revocation then lands between the two consume() calls of a batch."""

    def __init__(self, bootstrap: str, topic: str, total: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.total, self.rate = bootstrap, topic, total, rate
        self.sent: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
            start = time.monotonic()
            for i in range(self.total):
                time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
                p = i % PARTITIONS
                tx = transaction(transaction_id=f"tx-{i:05d}", account_id=f"acc-{p}")
                m = encode(tx, source="tests")
                producer.produce(
                    self.topic, key=m.key, value=m.value, headers=m.headers, partition=p
                )
                producer.poll(0)
                self.sent[p].append(tx.transaction_id)
            assert producer.flush(30) == 0
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            self.error = exc


def test_partitions_moving_between_instances_lose_and_duplicate_nothing(
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    relays: Callable[[ProcessorConfig, str, float], Relay],
) -> None:
    src, dst = make_topic("relay-in", PARTITIONS), make_topic("relay-out", PARTITIONS)
    dlq = make_topic("relay-dlq", 1)
    group = f"relay-{uuid.uuid4().hex[:8]}"
    total = PER_PARTITION * PARTITIONS
    trickle = Trickle(kafka_bootstrap, src, total, rate=total / 12)  # ~12 s of input
    trickle.start()

    def wait_batches(relay: Relay, n: int) -> None:
        deadline = time.monotonic() + 60
        while relay.batches < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.batches >= n, "an instance never processed a batch"

    # three rebalances while slow instances hold batches: b joins, b leaves, c joins
    first = relays(_config(group, src, dlq, "relay-a"), dst, 0.3)
    wait_batches(first, 3)
    second = relays(_config(group, src, dlq, "relay-b"), dst, 0.3)
    wait_batches(second, 3)
    second.stop()
    third = relays(_config(group, src, dlq, "relay-c"), dst, 0.3)
    wait_batches(third, 3)
    trickle.join(120)
    assert trickle.error is None, trickle.error
    deadline = time.monotonic() + 120
    while _committed_total(kafka_bootstrap, group, src) < total:
        assert time.monotonic() < deadline, "the instances did not finish the input"
        time.sleep(0.5)

    out = read_messages(kafka_bootstrap, dst, total + 1, timeout=30)
    ids = [decode_message(m, accept=[TransactionEvent]).event.transaction_id for m in out]
    counts = Counter(ids)
    assert [t for t, n in counts.items() if n > 1] == []  # nothing twice
    assert set(ids) == {t for ts in trickle.sent.values() for t in ts}  # nothing lost
    by_partition: dict[int, list[str]] = {}
    for m, txid in zip(out, ids, strict=True):
        by_partition.setdefault(m.partition() or 0, []).append(txid)
    for p, txids in by_partition.items():  # a partition's records keep their order
        assert txids == trickle.sent[p], p
