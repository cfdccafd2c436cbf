"""How the shared processor assembles a batch: never with a record of a partition that a
rebalance callback revoked while the batch was being fetched (the exactly-once hole of the
first-record-then-drain scheme, docs/adr/0002-no-record-of-a-revoked-partition.md).

The consumer here is a stand-in that records calls and fires the rebalance callbacks the way
librdkafka does, from inside ``consume()``: the race cannot be timed on a real broker, so the
decision logic is pinned down here; tests/integration/test_processor_rebalance.py moves real
partitions between two instances."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import TopicPartition

from schemas.events import PredictionEvent
from scorestream.processor import Processor, ProcessorConfig, Result

TOPIC = "acme.predictions"


@dataclass
class Msg:
    _partition: int
    _offset: int

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:

        return (1, 1_764_000_000_000)  # TIMESTAMP_CREATE_TIME, a fixed time

    def error(self) -> None:
        return None


@dataclass
class FakeConsumer:
    batches: list[list[Msg]]
    during: dict[int, Callable[[], None]] = field(default_factory=dict)
    """call number (0-based) → what runs inside that consume() call (a rebalance callback)."""
    calls: list[tuple[int, float]] = field(default_factory=list)
    seeks: list[tuple[int, int]] = field(default_factory=list)
    committed_offset: int = 7

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        call = len(self.calls)
        self.calls.append((num_messages, timeout))
        if call in self.during:
            self.during.pop(call)()
        return self.batches.pop(0)[:num_messages] if self.batches else []

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition(p.topic, p.partition, self.committed_offset) for p in partitions]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.partition, tp.offset))


def processor(consumer: FakeConsumer, *, adaptive: bool = True) -> Processor:
    config = ProcessorConfig(
        service="decision",
        tenant="acme",
        group_id="acme.decision",
        instance_id="decision-0",
        inputs=(TOPIC,),
        accept=(PredictionEvent,),
        dlq_topics={TOPIC: f"{TOPIC}.dlq"},
        max_batch=100,
        max_wait_ms=20,
        adaptive_batching=adaptive,
    )
    p = Processor(config, lambda _batch: Result())
    p.consumer = consumer  # type: ignore[assignment]
    p.assigned = {(TOPIC, 0), (TOPIC, 1)}
    return p


def tps(*partitions: int) -> list[TopicPartition]:
    return [TopicPartition(TOPIC, n) for n in partitions]


def offsets(batch: list[Msg]) -> list[tuple[int, int]]:
    return [(m.partition(), m.offset()) for m in batch]


def test_first_record_then_what_is_already_fetched() -> None:
    fake = FakeConsumer([[Msg(0, 1)], [Msg(0, 2), Msg(1, 5)]])
    assert offsets(processor(fake)._next_batch(0.02)) == [(0, 1), (0, 2), (1, 5)]
    assert fake.calls == [(1, 0.02), (99, 0)]  # waits for the first record only


def test_an_idle_consumer_returns_nothing_after_the_wait() -> None:
    fake = FakeConsumer([])
    assert processor(fake)._next_batch(0.02) == []
    assert fake.calls == [(1, 0.02)]


def test_fixed_wait_batching_is_one_call() -> None:
    fake = FakeConsumer([[Msg(0, 1)]])
    processor(fake, adaptive=False)._next_batch(0.02)
    assert fake.calls == [(100, 0.02)]


def test_a_record_of_a_partition_revoked_by_the_drain_call_is_not_processed() -> None:
    """The duplicate of the chaos runs: the first call returns a record of partition 1, the
    second call's callback gives partition 1 to another instance."""
    fake = FakeConsumer([[Msg(1, 5)], [Msg(0, 1), Msg(0, 2)]])
    p = processor(fake)
    fake.during[1] = lambda: p._on_revoke(fake, tps(1))  # type: ignore[arg-type]
    assert offsets(p._next_batch(0.02)) == [(0, 1), (0, 2)]
    assert fake.seeks == []  # partition 1 is someone else's now: it reads from the commit
    assert p.assigned == {(TOPIC, 0)}


def test_a_partition_lost_and_reassigned_meanwhile_is_rewound_to_its_commit() -> None:
    fake = FakeConsumer([[Msg(0, 1)], [Msg(1, 9)]], committed_offset=7)
    p = processor(fake)

    def lost_then_back() -> None:
        p._on_lost(fake, tps(0, 1))  # type: ignore[arg-type]
        p._on_assign(fake, tps(0, 1))  # type: ignore[arg-type]

    fake.during[1] = lost_then_back
    assert p._next_batch(0.02) == []
    assert sorted(fake.seeks) == [(0, 7), (1, 7)]  # nothing of them is skipped


def test_a_revocation_in_an_earlier_batch_drops_nothing_later() -> None:
    fake = FakeConsumer([[Msg(0, 1)], [], [Msg(0, 2)], []])
    p = processor(fake)
    fake.during[0] = lambda: p._on_revoke(fake, tps(1))  # type: ignore[arg-type]
    assert offsets(p._next_batch(0.02)) == [(0, 1)]
    assert offsets(p._next_batch(0.02)) == [(0, 2)]
