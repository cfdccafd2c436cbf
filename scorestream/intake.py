"""The consuming side of the processor: fetch the next batch (adaptive batching, never a
record of a partition revoked while it was fetched), set end-of-partition events aside, and
decode it (envelopes, dead letters, each partition's first and last offset)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from schemas.cloudevents import Envelope
from scorestream import metrics, tracing
from scorestream.codec import BatchDecoder
from scorestream.dlq import DeadLetter
from scorestream.processing import ProcessorConfig

log = logging.getLogger("scorestream.processor")


@dataclass(slots=True)
class Batch:
    """A consumed batch: the decoded events, the undecodable ones, and each input partition's
    first and last offset in it."""

    decoded: list[Envelope[Any]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    first: dict[tuple[str, int], int] = field(default_factory=dict)
    last: dict[tuple[str, int], int] = field(default_factory=dict)


class Intake:
    """Reads and decodes batches for one processor; its rebalance callbacks add what they
    revoke to :attr:`revoked` while a batch is fetched."""

    def __init__(
        self,
        config: ProcessorConfig,
        decoder: BatchDecoder,
        on_eof: Callable[[str, int], None] | None = None,
    ) -> None:
        self.config = config
        self.decoder = decoder
        self.on_eof = on_eof
        self.revoked: set[tuple[str, int]] = set()
        """Partitions revoked or lost by rebalance callbacks while the current batch is fetched."""

    def take_eofs(self, messages: Sequence[Message]) -> Sequence[Message]:
        """End-of-partition events (``enable.partition.eof``) go to ``on_eof``, not into the
        batch: "this input partition has nothing more to read right now"."""
        if not any(m.error() is not None for m in messages):
            return messages
        kept = []
        for msg in messages:
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                if self.on_eof is not None:
                    self.on_eof(msg.topic() or "", msg.partition() or 0)
                continue
            kept.append(msg)
        return kept

    def next_batch(
        self, consumer: Consumer, wait: float, assigned: set[tuple[str, int]]
    ) -> list[Message]:
        """The next batch; never a record of a partition revoked while it was being fetched.

        Adaptive batching: block up to ``max_wait`` for the first record only, then take what
        is already fetched without waiting (low load: no batching delay; under load the queue
        fills while a batch is processed, so batches grow to ``max_batch``).
        ``consume(max_batch, wait)`` instead holds every record back for the whole wait unless
        a full batch is queued (measured: ~20 ms per hop).

        Exactly-once needs care here: rebalance callbacks run inside ``consume()``. Within one
        call librdkafka drops from the batch it builds the records of a partition revoked
        during that call, but the record returned by the *first* call cannot be recalled when a
        callback of the *second* revokes its partition. Processing it anyway committed it twice
        (its new owner, or this consumer re-assigned, re-read it from the committed offset).
        So the callbacks record what they revoke while the batch is assembled, and those
        partitions' records are dropped (:meth:`_drop_revoked`;
        docs/adr/0002-no-record-of-a-revoked-partition.md)."""
        c = self.config
        self.revoked.clear()
        if c.adaptive_batching:
            messages = consumer.consume(num_messages=1, timeout=wait)
            if messages and c.max_batch > 1:
                messages += consumer.consume(num_messages=c.max_batch - 1, timeout=0)
        else:
            messages = consumer.consume(num_messages=c.max_batch, timeout=wait)
        if self.revoked and messages:
            messages = self._drop_revoked(consumer, messages, assigned)
        return messages

    def _drop_revoked(
        self, consumer: Consumer, messages: list[Message], assigned: set[tuple[str, int]]
    ) -> list[Message]:
        """Leave out the records of partitions revoked or lost while this batch was fetched:
        they are not ours to process (their owner reads them from the committed offset). A
        partition re-assigned to us meanwhile is rewound to its committed offset, so that
        nothing of it is skipped."""
        revoked = self.revoked
        kept = [m for m in messages if (m.topic() or "", m.partition() or 0) not in revoked]
        dropped = {(m.topic() or "", m.partition() or 0) for m in messages} & revoked
        log.warning(
            "dropped %d record(s) of %s: revoked while the batch was fetched",
            len(messages) - len(kept),
            sorted(f"{t}[{p}]" for t, p in dropped),
        )
        again = [TopicPartition(t, p) for t, p in sorted(dropped & assigned)]
        if again:
            for tp in consumer.committed(again, timeout=30):
                offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        return kept

    def decode(self, messages: Sequence[Message], spans: tracing.BatchTrace | None) -> Batch:
        batch = Batch()
        first, last = batch.first, batch.last
        for msg in messages:
            err = msg.error()
            if err is not None:
                raise KafkaException(err)
            tp = (msg.topic() or "", msg.partition() or 0)
            if tp not in first:
                first[tp] = msg.offset() or 0
            last[tp] = msg.offset() or 0
        batch.decoded, batch.dead, positions = self.decoder.decode(messages)
        if spans is not None:
            for env, i in zip(batch.decoded, positions, strict=True):
                msg = messages[i]
                spans.consumed(
                    env.trace,
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    message_id=env.id,
                )
        return batch


def update_lag(consumer: Consumer, assigned: set[tuple[str, int]], service: str) -> None:
    """The consumer-lag gauge of each assigned partition (from the cached high watermarks)."""
    try:
        positions = consumer.position([TopicPartition(t, p) for t, p in assigned])
    except KafkaException:
        return
    for tp in positions:
        _, high = consumer.get_watermark_offsets(tp, cached=True)
        if tp.offset >= 0 and high >= 0:
            metrics.CONSUMER_LAG.labels(service, tp.topic, str(tp.partition)).set(
                max(0, high - tp.offset)
            )
