"""Writing a batch's outputs: the handler's events, raw records and dead letters, and the
state stores' changelog records, handed to the producer in one tight loop (inside the batch's
transaction when the processor runs exactly once)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from schemas.cloudevents import Outgoing, encode_many, utc_time
from scorestream import tracing
from scorestream.dlq import DeadLetter, fits
from scorestream.processing import OutRecord, ProcessorConfig, Result
from scorestream.state import StateStore


class OutputWriter:
    """Produces what one batch writes. Exactly once, per-record delivery reports are not
    needed: in a transaction, a record the broker refuses fails ``commit_transaction`` (and the
    batch is replayed), so a Python callback per record would only cost time. At least once,
    :attr:`delivery_errors` collects the failed deliveries of the batch being flushed."""

    def __init__(
        self, config: ProcessorConfig, stores: Sequence[StateStore[Any]], *, delivery_reports: bool
    ) -> None:
        self.config = config
        self.stores = stores
        self.delivery_errors: list[str] = []
        self._on_delivery: Callable[[KafkaError | None, Message], None] | None = (
            self._dr if delivery_reports else None
        )

    def _produce(
        self,
        producer: Producer,
        consumer: Consumer,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[Any],
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        if timestamp_ms is not None:
            extra["timestamp"] = timestamp_ms
        if self._on_delivery is not None:
            extra["on_delivery"] = self._on_delivery
        try:
            producer.produce(topic, value=value, key=key, headers=headers, **extra)
        except BufferError:
            paused = consumer.assignment()
            consumer.pause(paused)  # stop fetching while the queue drains
            try:
                while True:
                    producer.poll(0.05)
                    try:
                        producer.produce(topic, value=value, key=key, headers=headers, **extra)
                        break
                    except BufferError:
                        continue
            finally:
                consumer.resume(paused)

    def _dr(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.delivery_errors.append(f"{msg.topic()}: {err.str()}")

    def write(
        self,
        producer: Producer,
        consumer: Consumer,
        result: Result,
        spans: tracing.BatchTrace | None,
    ) -> None:
        """Encode every output first, then hand them to the producer in one tight loop: the
        producer registers a transaction's partitions with the coordinator when the first
        record of a partition arrives and allows one registration request in flight, so
        partitions that trickle in while records are still being encoded cost a second
        registration round trip (on which ``send_offsets_to_transaction`` then waits)."""
        source = self.config.source
        when = utc_time()  # the batch's events are stamped (ce_time) once
        emits = result.emits
        if spans is None:
            items: list[Outgoing] = [(e.event, e.trace, e.extensions, e.value) for e in emits]
        else:  # a send span under the message each output derives from
            items = [
                (
                    e.event,
                    spans.sending(
                        e.topic,
                        e.trace,
                        key=e.event.partition_key().encode(),
                        partition=e.partition,
                    ),
                    e.extensions,
                    e.value,
                )
                for e in emits
            ]
        out: list[tuple[str, bytes | None, bytes | None, list[Any], int | None, int | None]] = [
            (e.topic, m.key, m.value, m.headers, e.partition, None)
            for e, m in zip(emits, encode_many(items, source=source, time=when), strict=True)
        ]
        service = self.config.service
        max_bytes = self.config.max_message_bytes
        records = self.divert_oversized(result)
        dead: dict[int, DeadLetter] = {}
        for dl in result.dead_letters:
            topic = self.dlq_topic(dl)
            if spans is not None:
                spans.dead_letter(dl.raw.headers, topic, dl.reason)
            copy = dl.record(service, max_bytes=max_bytes)
            dead[len(out)] = dl
            out.append((topic, copy.key, copy.value, copy.headers, None, None))
        for rec in records:
            if rec.fallback is not None:
                dead[len(out)] = rec.fallback
            out.append(
                (rec.topic, rec.key, rec.value, list(rec.headers), rec.partition, rec.timestamp_ms)
            )
        for store in self.stores:
            for ch in store.changelog_records():
                out.append((ch.topic, ch.key, ch.value, [], ch.partition, None))
        self._produce_all(producer, consumer, out, dead, result)

    def divert_oversized(self, result: Result) -> list[OutRecord]:
        """The raw outputs to produce; one too large for its topic, with a fallback, is replaced
        by that dead letter (added to ``result.dead_letters``)."""
        max_bytes = self.config.max_message_bytes
        records: list[OutRecord] = []
        for rec in result.records:
            if rec.fallback is not None and not fits(rec.key, rec.value, rec.headers, max_bytes):
                result.dead_letters.append(rec.fallback)
            else:
                records.append(rec)
        result.records = records
        return records

    def _produce_all(
        self,
        producer: Producer,
        consumer: Consumer,
        out: list[tuple[str, bytes | None, bytes | None, list[Any], int | None, int | None]],
        dead: dict[int, DeadLetter],
        result: Result,
    ) -> None:
        service = self.config.service
        max_bytes = self.config.max_message_bytes
        produce = self._produce
        # the common record (partitioned by key, no timestamp, no delivery callback) goes to
        # the client directly; a full queue and every other record take ``_produce``
        direct = producer.produce if self._on_delivery is None else None
        for i, record in enumerate(out):
            try:
                if direct is not None and record[4] is None and record[5] is None:
                    try:
                        direct(record[0], value=record[2], key=record[1], headers=record[3])
                    except BufferError:
                        produce(producer, consumer, *record)
                else:
                    produce(producer, consumer, *record)
            except KafkaException as exc:
                # a dead letter must never fail its batch: should the producer still find the
                # copy (or an output with a fallback) too large, write the pointer
                refused = dead.get(i)
                if refused is None or exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                    raise
                ptr = refused.pointer(service, max_bytes=max_bytes)
                produce(
                    producer, consumer, self.dlq_topic(refused), ptr.key, ptr.value, ptr.headers
                )
                if refused not in result.dead_letters:
                    result.dead_letters.append(refused)

    def dlq_topic(self, dl: DeadLetter) -> str:
        return self.config.dlq_topics.get(dl.raw.topic or "") or next(
            iter(self.config.dlq_topics.values())
        )
