"""Partitions a processor manages itself: paused ones (:class:`Paused`) and, for a service that
reads every partition of its inputs, explicit assignment (:class:`ExplicitAssignment`).

Most services share their inputs' partitions through the consumer group (``subscribe``). A
service that needs all of them in one place — the monitor joins predictions with labels over a
rolling window — ``assign()``\\ s them instead, positioned by time: on start each partition is
read from the first record at or after :attr:`ExplicitAssignment.start_ms` (rebuilding the
service's in-memory state from Kafka), and partitions added later are read from their beginning
(they hold only newer records).

The group still keeps the committed offsets (as a mark, not as a read position): a partition
may be read from before its committed offset, and the records below it were processed by an
earlier run, so the processor does not write their dead letters again
(:meth:`Marks.written_before`). Such a service runs as one replica per group; it has no outputs
of its own beyond dead letters (an earlier run's outputs would be written again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    TopicPartition,
)

from scorestream.dlq import DeadLetter
from scorestream.errors import KafkaClientError, TopicError
from scorestream.reader import committed, offsets_for_times

log = logging.getLogger("scorestream.partitions")


@dataclass(frozen=True, slots=True)
class ExplicitAssignment:
    start_ms: Callable[[], int]
    """Where a partition present at start begins: its first record at or after this time (ms
    since the epoch), or its end when it has none."""
    refresh_s: float = 60.0
    """How often the inputs' partitions are listed again (added ones are read from the start)."""
    metadata_timeout_s: float = 15.0


@dataclass(slots=True)
class Marks:
    """Per partition, the group's committed offset when it was assigned: the records below it
    were processed (and dead-lettered) by an earlier run."""

    below: dict[tuple[str, int], int] = field(default_factory=dict)

    def written_before(self, dl: DeadLetter) -> bool:
        raw = dl.raw
        mark = self.below.get((raw.topic or "", raw.partition or 0))
        return mark is not None and raw.offset is not None and raw.offset < mark

    def keep(self, dead: Iterable[DeadLetter]) -> list[DeadLetter]:
        """The dead letters not written by an earlier run."""
        if not self.below:
            return list(dead)
        return [dl for dl in dead if not self.written_before(dl)]


def partitions_of(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    md = consumer.list_topics(topic, timeout=timeout)
    tmd = md.topics.get(topic)
    if tmd is None or tmd.error is not None or not tmd.partitions:
        raise TopicError(f"topic {topic} is missing ({tmd.error if tmd else 'no metadata'})")
    return sorted(tmd.partitions)


def assign_new(
    consumer: Consumer,
    inputs: Iterable[str],
    assigned: set[tuple[str, int]],
    how: ExplicitAssignment,
    marks: Marks,
    *,
    initial: bool,
) -> list[TopicPartition]:
    """Assign the inputs' partitions not in ``assigned`` (positioned as the module says), record
    their committed offsets in ``marks``; returns them (empty: nothing new)."""
    timeout = how.metadata_timeout_s
    new = [
        TopicPartition(topic, p)
        for topic in inputs
        for p in partitions_of(consumer, topic, timeout)
        if (topic, p) not in assigned
    ]
    if not new:
        return []
    if initial:
        since = how.start_ms()
        lookup = [TopicPartition(tp.topic, tp.partition, since) for tp in new]
        start = offsets_for_times(consumer, lookup, timeout=timeout)
    else:
        start = [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in new]
    for tp in start:
        if tp.error is not None:
            raise KafkaClientError(f"offsets_for_times {tp.topic}[{tp.partition}]: {tp.error}")
        if tp.offset < 0 and tp.offset != OFFSET_BEGINNING:
            tp.offset = OFFSET_END  # nothing at or after the start time yet
    for tp in committed(consumer, new, timeout=max(timeout, 30.0)):
        if tp.offset >= 0:
            marks.below[(tp.topic, tp.partition)] = tp.offset
    consumer.incremental_assign(start)
    log.info(
        "assigned %d partition(s) from %s",
        len(start),
        "the start time" if initial else "the beginning (new partitions)",
    )
    return start


class Paused:
    """Partitions not fetched until a wall-clock time (epoch s), e.g. a retry topic whose parked
    records are not due yet."""

    def __init__(self) -> None:
        self.until: dict[tuple[str, int], float] = {}

    def pause(self, consumer: Consumer, topic: str, until: Mapping[int, float]) -> None:
        if not until:
            return
        for p, at in until.items():
            key = (topic, p)
            self.until[key] = min(self.until.get(key, at), at)
        consumer.pause([TopicPartition(topic, p) for p in until])

    def resume_due(self, consumer: Consumer, assigned: set[tuple[str, int]]) -> None:
        """Resume those whose time has come (and that are still ours)."""
        if not self.until:
            return
        now = time.time()
        due = [key for key, at in self.until.items() if at <= now]
        for key in due:
            del self.until[key]
        owned = [TopicPartition(t, p) for t, p in due if (t, p) in assigned]
        if owned:
            consumer.resume(owned)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Revoked or lost: not ours to resume (if it comes back, it comes back unpaused)."""
        for tp in partitions:
            self.until.pop((tp.topic, tp.partition), None)
