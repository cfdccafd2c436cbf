"""The ``read_committed`` reads of ``scorestream dlq`` (:mod:`scorestream.ops.dlq`): which selected
topics exist, the offset range of each partition, the records of those ranges."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from scorestream.errors import ConfigError, KafkaClientError
from scorestream.ops.dlq.clients import _access, _denied
from scorestream.ops.dlq.selection import Selection
from scorestream.ops.dlq.views import DeadLetterView
from scorestream.reader import offsets_for_times, watermarks

Progress = Callable[[str], None]
PROGRESS_EVERY_S = 2.0
STALL_TIMEOUT_S = 120.0
"""A read that makes no progress for this long fails (an open transaction holds
``read_committed`` readers back for at most the writer's ``transaction.timeout.ms``, 60 s)."""


# -- reading -------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Throttle:
    progress: Progress
    total: int
    label: str
    read: int = 0
    last: float = field(default_factory=time.monotonic)

    def tick(self, n: int = 1) -> None:
        self.read += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self.progress(f"{self.label}: read {self.read} of at most {self.total} records")


def existing_topics(consumer: Consumer, sel: Selection) -> list[str]:
    """The selected DLQ topics that exist; unknown tenant / topic and ACL refusals are errors."""
    found: list[str] = []
    for topic in sel.topics:
        try:
            meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
        except KafkaException as exc:
            if _denied(exc.args[0]):
                raise _access(f"describe {topic}", exc.args[0]) from exc
            raise KafkaClientError(f"cannot describe {topic}: {exc}") from exc
        if meta is not None and meta.error is not None and _denied(meta.error):
            raise _access(f"describe {topic}", meta.error)
        if meta is not None and meta.error is None and meta.partitions:
            found.append(topic)
        elif sel.explicit:
            raise ConfigError(
                f"topic {topic} does not exist: unknown tenant {sel.tenant}, or its topics were "
                f"never created ('scorestream topics create --tenant {sel.tenant}')"
            )
    if not found:
        raise ConfigError(
            f"unknown tenant {sel.tenant}: none of its dead-letter topics ({sel.tenant}.*.dlq) "
            "exists on the cluster"
        )
    return found


def ranges(
    consumer: Consumer, topics: Sequence[str], since: datetime | None
) -> dict[tuple[str, int], tuple[int, int]]:
    """``(topic, partition) → [start, end)``: from the low watermark (or the first offset at or
    after ``since``) to the current high watermark."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    try:
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=30).topics[topic]
            for p in sorted(meta.partitions):
                low, high = watermarks(consumer, TopicPartition(topic, p))
                start = low
                if since is not None:
                    ms = int(since.timestamp() * 1000)
                    [tp] = offsets_for_times(consumer, [TopicPartition(topic, p, ms)])
                    start = high if tp.offset < 0 else max(low, tp.offset)
                out[(topic, p)] = (start, high)
    except KafkaException as exc:
        if _denied(exc.args[0]):
            raise _access(f"read {', '.join(topics)}", exc.args[0]) from exc
        raise KafkaClientError(f"cannot read the offsets of {', '.join(topics)}: {exc}") from exc
    return out


def read(
    consumer: Consumer,
    spans: dict[tuple[str, int], tuple[int, int]],
    *,
    progress: Progress,
    label: str,
) -> Iterator[DeadLetterView]:
    """The committed records of each ``[start, end)``, partition by partition in offset order."""
    pending = {tp: r for tp, r in spans.items() if r[1] > r[0]}
    if not pending:
        return
    throttle = _Throttle(progress, sum(e - s for s, e in pending.values()), label)
    consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in pending.items()])
    stalled = time.monotonic() + STALL_TIMEOUT_S
    try:
        while pending:
            if time.monotonic() > stalled:
                raise KafkaClientError(
                    f"reading {', '.join(sorted({t for t, _ in pending}))} made no progress for "
                    f"{STALL_TIMEOUT_S:.0f}s"
                )
            batch = consumer.consume(num_messages=500, timeout=0.5)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if _denied(err):
                        raise _access(f"read {msg.topic()}", err)
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaClientError(f"reading {msg.topic()}: {err}")
                key = (msg.topic() or "", msg.partition() or 0)
                if key in pending and (msg.offset() or 0) < pending[key][1]:
                    throttle.tick()
                    yield DeadLetterView.of(msg)
            if batch:
                stalled = time.monotonic() + STALL_TIMEOUT_S
            for tp in consumer.position([TopicPartition(t, p) for t, p in pending]):
                if tp.offset >= pending[(tp.topic, tp.partition)][1]:
                    pending.pop((tp.topic, tp.partition))
                    stalled = time.monotonic() + STALL_TIMEOUT_S
    finally:
        consumer.unassign()


def _quiet(_: str) -> None:
    pass


def stderr_progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
