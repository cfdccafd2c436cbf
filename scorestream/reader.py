"""Read a topic from its beginning to its current end, without joining a consumer group."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from scorestream.errors import KafkaClientError, MissingTopicError
from scorestream.kafka_config import ClientConfig

_T = TypeVar("_T")
log = logging.getLogger("scorestream.reader")


def read_to_end(conf: ClientConfig, topic: str, *, timeout: float = 30.0) -> Iterator[Message]:
    """Yield every record of ``topic`` present now (all partitions), then stop.

    Uses ``assign`` (no group membership, nothing committed). With ``read_committed`` the reader
    may stop short of the high watermark (transaction markers, aborted records); the position,
    not the last record seen, decides when a partition is done.
    """
    consumer = Consumer(conf | {"enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = consumer.list_topics(topic, timeout=timeout)
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            raise MissingTopicError(topic)
        ends: dict[int, int] = {}
        assignment = []
        for p in meta.partitions:
            low, high = watermarks(consumer, TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
                assignment.append(TopicPartition(topic, p, low))
        if not assignment:
            return
        consumer.assign(assignment)
        deadline = time.monotonic() + timeout
        while ends:
            if time.monotonic() > deadline:
                raise KafkaClientError(f"reading {topic} to its end took longer than {timeout}s")
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    raise KafkaClientError(f"reading {topic}: {msg.error()}")
                yield msg
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                if tp.offset >= ends[tp.partition]:
                    ends.pop(tp.partition)
    finally:
        consumer.close()


_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TRANSPORT,
    KafkaError.REQUEST_TIMED_OUT,
}


# the group coordinator still being elected or loaded (a freshly started broker)
_COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
    }
)


def _leadership_settling(err: KafkaError) -> bool:
    return err.code() in _TRANSIENT


def _coordinator_settling(err: KafkaError) -> bool:
    return err.retriable() or err.code() in _COORDINATOR_NOT_READY


def _riding_transients(
    call: Callable[[float], _T],
    timeout: float,
    transient: Callable[[KafkaError], bool] = _leadership_settling,
) -> _T:
    """``call(per_try_timeout)`` retried while ``transient(error)`` holds (by default:
    leadership still settling on a new topic or after a broker restart, NOT_LEADER,
    LEADER_NOT_AVAILABLE, …) within ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return call(min(10.0, timeout))
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and transient(err)):
                raise
            if time.monotonic() + delay > deadline:
                raise
            log.debug("retrying after a transient error: %s", err)
            time.sleep(delay)
            delay = min(1.0, delay * 2)


def committed(
    consumer: Consumer, partitions: list[TopicPartition], *, timeout: float = 30.0
) -> list[TopicPartition]:
    """The group's committed offsets of ``partitions``, retried while the group coordinator is
    still being elected or loaded (NOT_COORDINATOR and friends on a freshly started broker)."""
    return _riding_transients(
        lambda t: consumer.committed(partitions, timeout=t), timeout, _coordinator_settling
    )


def watermarks(consumer: Consumer, tp: TopicPartition, *, timeout: float = 30.0) -> tuple[int, int]:
    """``get_watermark_offsets`` that rides out leadership still settling on a new topic."""

    def call(t: float) -> tuple[int, int]:
        low, high = consumer.get_watermark_offsets(tp, timeout=t)
        return int(low), int(high)

    return _riding_transients(call, timeout)


def offsets_for_times(
    consumer: Consumer, tps: list[TopicPartition], *, timeout: float = 30.0
) -> list[TopicPartition]:
    """``offsets_for_times`` that rides out leadership still settling on a new topic (a
    gateway starting right after ``scorestream topics create`` met NOT_LEADER_FOR_PARTITION)."""
    return _riding_transients(lambda t: consumer.offsets_for_times(tps, timeout=t), timeout)


def read_ranges(
    conf: ClientConfig,
    ranges: dict[tuple[str, int], tuple[int, int]],
    *,
    timeout: float = 300.0,
) -> Iterator[Message]:
    """Yield the records with ``start <= offset < end`` of each ``(topic, partition)``."""
    pending = {tp: r for tp, r in ranges.items() if r[1] > r[0]}
    if not pending:
        return
    consumer = Consumer(conf | {"enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in pending.items()])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise KafkaClientError(f"reading {sorted(pending)} took longer than {timeout}s")
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error():
                    continue
                key = (msg.topic() or "", msg.partition() or 0)
                if key in pending and (msg.offset() or 0) < pending[key][1]:
                    yield msg
            done = consumer.position([TopicPartition(t, p) for t, p in pending])
            for tp in done:
                if tp.offset >= pending[(tp.topic, tp.partition)][1]:
                    pending.pop((tp.topic, tp.partition))
    finally:
        consumer.close()


def time_window_ranges(
    conf: ClientConfig,
    topic: str,
    *,
    since_ms: int | None,
    until_ms: int | None,
    timeout: float = 30.0,
) -> dict[tuple[str, int], tuple[int, int]]:
    """The offset range ``[start, end)`` of each partition of ``topic`` whose record timestamps
    fall in ``[since_ms, until_ms)`` (``None``: the log's start / its current end).

    Kafka's own time index answers it (``offsets_for_times``): the start is the first offset
    with a timestamp ``>= since_ms``, the end the first with one ``>= until_ms``; a partition
    with no such record ends at its high watermark as of this call, so a reader of the ranges
    stops there even while producers keep writing. Feed the result to :func:`read_ranges`.
    """
    consumer = Consumer(conf | {"enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = consumer.list_topics(topic, timeout=timeout)
        meta = md.topics.get(topic)
        if meta is None or meta.error is not None:
            raise KafkaClientError(f"topic {topic} does not exist")
        parts = sorted(meta.partitions)
        bounds = {p: watermarks(consumer, TopicPartition(topic, p), timeout=timeout) for p in parts}

        def lookup(ts_ms: int | None, default: int) -> dict[int, int]:
            if ts_ms is None:
                return {p: (bounds[p][0] if default < 0 else bounds[p][1]) for p in parts}
            try:
                found = offsets_for_times(
                    consumer, [TopicPartition(topic, p, ts_ms) for p in parts], timeout=timeout
                )
            except KafkaException as exc:
                raise KafkaClientError(f"offsets for times on {topic}: {exc}") from exc
            # -1: no record at or after that time → the partition's end (as of now)
            return {
                tp.partition: tp.offset if tp.offset >= 0 else bounds[tp.partition][1]
                for tp in found
            }

        starts = lookup(since_ms, -1)
        ends = lookup(until_ms, +1)
        return {
            (topic, p): (starts[p], min(ends[p], bounds[p][1]))
            for p in parts
            if min(ends[p], bounds[p][1]) > starts[p]
        }
    finally:
        consumer.close()
