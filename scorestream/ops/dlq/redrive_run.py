"""``scorestream dlq redrive`` (:mod:`scorestream.ops.dlq`): the selected dead letters re-published
in Kafka transactions that also commit, per reason, the DLQ positions they moved past."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scorestream.errors import ConfigError, KafkaClientError
from scorestream.kafka_config import transactional_producer_config
from scorestream.ops.dlq.clients import CLIENT_ID, _access, _consumer, _denied
from scorestream.ops.dlq.inspection import MAX_REASONS
from scorestream.ops.dlq.reading import Progress, _quiet, existing_topics, ranges, read
from scorestream.ops.dlq.redrive_plan import (
    Planned,
    RedriveReport,
    plan,
    redrive_group,
    transactional_id,
)
from scorestream.ops.dlq.selection import NothingMatchedError, Selection, describe
from scorestream.ops.dlq.views import DeadLetterView
from scorestream.reader import watermarks
from scorestream.settings import KafkaSettings

BATCH_BYTES = 16 * 1024 * 1024
"""A re-drive transaction holds at most this many bytes of records (and ``batch_records``)."""


class DlqSettings(BaseSettings):
    """``scorestream dlq`` settings. Env: ``SCORESTREAM_DLQ_*``; flags override."""

    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_DLQ_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    max_redrives: int = Field(3, ge=1, le=1000)
    """A dead letter whose ``dlq.redrive.count`` is this already is refused."""
    batch_records: int = Field(500, ge=1, le=100_000)
    """Records per re-drive transaction."""


class _Cursors:
    """Per reason, the committed positions of its group on the selected partitions."""

    def __init__(self, kafka: KafkaSettings, tenant: str, tps: list[tuple[str, int]]) -> None:
        self.kafka, self.tenant, self.tps = kafka, tenant, tps
        self.consumers: dict[str, Consumer] = {}
        self.positions: dict[str, dict[tuple[str, int], int]] = {}

    def of(self, reason: str) -> dict[tuple[str, int], int]:
        if reason not in self.positions:
            if len(self.positions) >= MAX_REASONS:
                raise ConfigError(
                    f"more than {MAX_REASONS} distinct reasons: re-drive them with --reason"
                )
            group = redrive_group(self.tenant, reason)
            consumer = _consumer(self.kafka, group)
            self.consumers[reason] = consumer
            try:
                got = consumer.committed([TopicPartition(t, p) for t, p in self.tps], timeout=30)
            except KafkaException as exc:
                if _denied(exc.args[0]):
                    raise _access(f"read the offsets of group {group}", exc.args[0]) from exc
                raise KafkaClientError(f"cannot read group {group}'s offsets: {exc}") from exc
            self.positions[reason] = {(tp.topic, tp.partition): tp.offset for tp in got}
        return self.positions[reason]

    def close(self) -> None:
        for consumer in self.consumers.values():
            consumer.close()


class _Batch:
    def __init__(self) -> None:
        self.records: list[Planned] = []
        self.bytes = 0
        self.upto: dict[str, dict[tuple[str, int], int]] = {}
        """reason → (topic, partition) → the position to commit."""

    def passed(self, reason: str, view: DeadLetterView) -> None:
        self.upto.setdefault(reason, {})[(view.topic, view.partition)] = view.offset + 1

    def add(self, out: Planned) -> None:
        self.records.append(out)
        self.bytes += len(out.value or b"") + len(out.key or b"")


def _fetch(consumer: Consumer, topic: str, partition: int, offset: int) -> Message | None:
    """The committed record at ``topic/partition@offset``, or None when it is gone."""
    try:
        low, high = watermarks(consumer, TopicPartition(topic, partition))
    except KafkaException as exc:
        if _denied(exc.args[0]):
            raise _access(f"read {topic}", exc.args[0]) from exc
        return None
    if not low <= offset < high:
        return None
    consumer.assign([TopicPartition(topic, partition, offset)])
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if _denied(err):
                        raise _access(f"read {topic}", err)
                    continue
                return msg if msg.offset() == offset else None
            [pos] = consumer.position([TopicPartition(topic, partition)])
            if pos.offset > offset:
                return None  # aborted or a control record
        return None
    finally:
        consumer.unassign()


def redrive(
    sel: Selection,
    *,
    kafka: KafkaSettings | None = None,
    settings: DlqSettings | None = None,
    dry_run: bool = False,
    progress: Progress = _quiet,
) -> RedriveReport:
    kafka = kafka or KafkaSettings()
    settings = settings or DlqSettings()
    report = RedriveReport(dry_run)
    reader = _consumer(kafka, f"{sel.tenant}.dlq-redrive")
    originals = _consumer(kafka, f"{sel.tenant}.dlq-redrive")
    cursors: _Cursors | None = None
    producer: Producer | None = None
    try:
        topics = existing_topics(reader, sel)
        spans = ranges(reader, topics, sel.since)
        if not dry_run:
            # fence any other run first (same transactional id): the positions read next are
            # then final (a run that committed before is seen, one still open is aborted)
            producer = _producer(kafka, sel.tenant)
        cursors = _Cursors(kafka, sel.tenant, sorted(spans))
        skipped = _skip_moved(spans, cursors, sel.reasons)
        report.skipped_offsets = sum(e - s for s, e in spans.values()) - sum(
            e - s for s, e in skipped.values()
        )
        spans = skipped
        batch = _Batch()

        def fetch(topic: str, partition: int, offset: int) -> DeadLetterView | None:
            msg = _fetch(originals, topic, partition, offset)
            return None if msg is None else DeadLetterView.of(msg)

        for view in read(reader, spans, progress=progress, label="redrive"):
            reason = view.reason
            if not sel.matches(reason):
                continue
            if view.offset < cursors.of(reason).get((view.topic, view.partition), -1):
                report.already += 1
                continue
            batch.passed(reason, view)
            out = plan(view, sel.tenant, settings.max_redrives, fetch, report)
            if out is not None:
                key = (view.topic, reason, out.topic)
                report.moved[key] = report.moved.get(key, 0) + 1
                if not dry_run:
                    batch.add(out)
            if producer is not None and (
                len(batch.records) >= settings.batch_records or batch.bytes >= BATCH_BYTES
            ):
                _commit(producer, batch, cursors, report)
                batch = _Batch()
        if producer is not None and batch.upto:
            _commit(producer, batch, cursors, report)
    finally:
        reader.close()
        originals.close()
        if cursors is not None:
            cursors.close()
        if producer is not None:
            producer.flush(10)
    if not report.matched and not report.skipped_offsets:
        raise NothingMatchedError(f"nothing matched: {describe(sel)}")
    return report


def _skip_moved(
    spans: dict[tuple[str, int], tuple[int, int]], cursors: _Cursors, reasons: frozenset[str]
) -> dict[tuple[str, int], tuple[int, int]]:
    """With a reason filter, start where the earliest of the selected reasons' groups is (with
    none, any reason can be new: read from the start)."""
    if not reasons:
        return spans
    out = {}
    for tp, (start, end) in spans.items():
        floor = min(max(cursors.of(r).get(tp, -1), start) for r in reasons)
        out[tp] = (min(floor, end), end)
    return out


def _producer(kafka: KafkaSettings, tenant: str) -> Producer:
    conf = transactional_producer_config(
        kafka, transactional_id=transactional_id(tenant), client_id=CLIENT_ID
    )
    producer = Producer(conf)
    try:
        producer.init_transactions(60)
    except KafkaException as exc:
        if _denied(exc.args[0]):
            raise _access(f"use transactional id {transactional_id(tenant)}", exc.args[0]) from exc
        raise KafkaClientError(f"cannot start a re-drive transaction: {exc}") from exc
    return producer


def _commit(producer: Producer, batch: _Batch, cursors: _Cursors, report: RedriveReport) -> None:
    """One transaction: the batch's records and, per reason, the positions it moved past."""
    delivery_errors: list[str] = []

    def on_delivery(err: KafkaError | None, _: Message) -> None:
        if err is not None:
            delivery_errors.append(str(err))

    try:
        producer.begin_transaction()
        for out in batch.records:
            while True:
                try:
                    producer.produce(
                        out.topic,
                        key=out.key,
                        value=out.value,
                        headers=list(out.headers),
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        for reason, upto in batch.upto.items():
            positions = cursors.of(reason)
            offsets = [
                TopicPartition(t, p, max(o, positions.get((t, p), -1)))
                for (t, p), o in upto.items()
            ]
            producer.send_offsets_to_transaction(
                offsets, cursors.consumers[reason].consumer_group_metadata(), 60
            )
        producer.commit_transaction(120)
    except KafkaException as exc:
        err: Any = exc.args[0]
        with contextlib.suppress(KafkaException):
            producer.abort_transaction(60)
        if _denied(err):
            raise _access("write the re-driven records and their positions", err) from exc
        raise KafkaClientError(
            f"re-drive transaction failed, nothing of its batch moved ({report.committed} "
            f"records re-driven by this run's earlier transactions): {exc}"
        ) from exc
    if delivery_errors:  # cannot happen after a successful commit; checked all the same
        raise KafkaClientError(f"re-drive delivery failed: {delivery_errors[0]}")
    report.transactions += 1
    report.committed += len(batch.records)
    for reason, upto in batch.upto.items():
        positions = cursors.positions[reason]
        for tp, o in upto.items():
            positions[tp] = max(o, positions.get(tp, -1))
