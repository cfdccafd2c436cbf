"""A fatal producer error in a transaction: the batch's outcome may be unknown, so the
processor resumes from the group's committed offsets (past the batch if it did commit), never
from the batch's first offsets; a service with keyed state exits instead (its supervisor
restarts it, and the restart rebuilds state and positions from Kafka, where they agree)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from schemas.events import PredictionEvent
from scorestream.errors import KafkaClientError
from scorestream.processor import Processor, ProcessorConfig, Result
from scorestream.settings import KafkaSettings
from scorestream.state import StateStore
from tests.unit.test_processor_batching import FakeConsumer

TOPIC = "acme.predictions"


def fatal(code: int = KafkaError.INVALID_TXN_STATE) -> KafkaException:
    return KafkaException(KafkaError(code, "Failed to end transaction", fatal=True))


class FakeProducer:
    def __init__(self, *, commit: KafkaException | None = None, abort: Any = None) -> None:
        self.commit_error = commit
        self.abort_error = abort
        self.calls: list[str] = []

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(self, *_: Any, **__: Any) -> None:
        self.calls.append("produce")

    def send_offsets_to_transaction(self, *_: Any) -> None:
        self.calls.append("send_offsets")

    def commit_transaction(self, *_: Any) -> None:
        self.calls.append("commit")
        if self.commit_error is not None:
            raise self.commit_error

    def abort_transaction(self, *_: Any) -> None:
        self.calls.append("abort")
        if self.abort_error is not None:
            raise self.abort_error


class Consumer(FakeConsumer):
    def consumer_group_metadata(self) -> object:
        return object()


def processor(producer: FakeProducer, *, stores: tuple[Any, ...] = ()) -> tuple[Processor, Any]:
    config = ProcessorConfig(
        service="decision",
        tenant="acme",
        group_id="acme.decision",
        instance_id="decision-0",
        inputs=(TOPIC,),
        accept=(PredictionEvent,),
        dlq_topics={TOPIC: f"{TOPIC}.dlq"},
    )
    p = Processor(config, lambda _batch: Result(), stores=stores)
    consumer = Consumer(batches=[], committed_offset=42)
    p.consumer = consumer  # type: ignore[assignment]
    p.producer = producer  # type: ignore[assignment]
    p.assigned = {(TOPIC, 0), (TOPIC, 1)}
    made: list[FakeProducer] = []

    def make() -> FakeProducer:
        made.append(FakeProducer())
        return made[-1]

    p._make_producer = make  # type: ignore[method-assign, assignment]
    return p, (consumer, made)


OFFSETS = [TopicPartition(TOPIC, 0, 11), TopicPartition(TOPIC, 1, 21)]
FIRST = {(TOPIC, 0): 5, (TOPIC, 1): 15}


@pytest.mark.parametrize(
    "producer",
    [
        FakeProducer(commit=fatal()),
        FakeProducer(
            commit=KafkaException(KafkaError(KafkaError._TIMED_OUT, txn_requires_abort=True)),
            abort=fatal(),
        ),
    ],
    ids=["fatal-commit", "fatal-abort"],
)
def test_a_fatal_error_resumes_from_the_committed_offsets(producer: FakeProducer) -> None:
    p, (consumer, made) = processor(producer)
    assert p._commit_transaction(Result(), OFFSETS, FIRST) is False
    assert len(made) == 1, "a new producer fences the old one"
    assert sorted(consumer.seeks) == [(0, 42), (1, 42)], "the committed offsets, not the first"


class Codec:
    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, data: bytes) -> bytes:
        return data


def test_a_fatal_error_with_keyed_state_ends_the_process() -> None:
    store: StateStore[bytes] = StateStore(
        "s",
        source=TOPIC,
        changelog=f"{TOPIC}.state",
        codec=Codec(),
        kafka=KafkaSettings(),
        group_id="acme.decision",
    )
    p, (consumer, made) = processor(FakeProducer(commit=fatal()), stores=(store,))
    with pytest.raises(KafkaClientError, match="fatal producer error"):
        p._commit_transaction(Result(), OFFSETS, FIRST)
    assert not made
    assert not consumer.seeks
