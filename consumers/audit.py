"""The audit service: transaction + prediction + decision joined into one record, exactly once.

Inputs ``<tenant>.transactions.enriched`` (the transaction with its features as served),
``<tenant>.predictions`` and ``<tenant>.decisions``, all keyed by ``account_id`` with the same
partition count, so every part of a transaction arrives on the same partition number of each
topic. The consumer uses the ``range`` assignor, which gives one member the same partition
numbers of all three topics, and the join state of partition *p* is local to that member.

The join itself is :mod:`consumers.audit_join` (pure). This module adds the Kafka side:

* one :class:`AuditRecord` per transaction on ``<tenant>.audit`` (kept forever), keyed by
  ``account_id`` and with the **transaction's timestamp as the Kafka record timestamp** (capped
  at now), so ``offsets_for_times`` / ``kafka-get-offsets --time`` find audit records by when
  the payment happened;
* every change of the join state is written to the compacted changelog ``<tenant>.audit.state``
  (key = transaction id, partition = the input partition, a tombstone once a finished join is
  forgotten) **in the same Kafka transaction** as the audit records and the input offsets;
* when partitions are assigned, their state is rebuilt by reading the changelog partitions to
  their end (``read_committed``) before any input record of them is processed. A SIGKILL at any
  point therefore loses nothing and duplicates nothing: the state, the outputs and the offsets
  move together or not at all;
* pending joins whose earliest part is older than ``SCORESTREAM_AUDIT_JOIN_TIMEOUT_S`` become
  ``incomplete`` records listing what is ``missing``. The timeout is in event time (``ce_time``)
  against a per-partition watermark: the smallest, over the three inputs, of the latest
  ``ce_time`` read from it, an input with nothing left to read counting as the wall clock (see
  :mod:`consumers.audit_join`). Checked after every batch and between batches (a transaction
  of its own when something is due), so timeouts fire when traffic stops too;
* a duplicate part is ignored (counted); a part arriving after its transaction was recorded
  incomplete goes to its input's DLQ with reason ``late_for_audit`` — never a second record.

``python -m consumers.audit replay ...`` (``scorestream audit replay``) is
:mod:`consumers.audit_replay`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict

from consumers.audit_join import (
    PARTS,
    AddOutcome,
    Arrival,
    Finished,
    JoinState,
    JoinTable,
    PartName,
)
from schemas.cloudevents import Envelope, encode
from schemas.errors import RawRecord
from schemas.events import (
    AuditRecord,
    Contract,
    DecisionEvent,
    EnrichedTransaction,
    PredictionEvent,
)
from scorestream import metrics
from scorestream.dlq import DeadLetter
from scorestream.errors import KafkaClientError, ScorestreamError
from scorestream.kafka_config import consumer_config
from scorestream.processor import Processor, ProcessorConfig, Result
from scorestream.replay import watermarks
from scorestream.settings import KafkaSettings, ProcessingSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.audit")
SERVICE = "audit"
INPUTS = ("transactions.enriched", "predictions", "decisions")
TICK_S = 0.2

AUDIT_RECORDS = Counter(
    "scorestream_audit_records_total", "Committed audit records by status", ["tenant", "status"]
)
AUDIT_PARTS = Counter(
    "scorestream_audit_parts_total",
    "Parts consumed by the audit join, by part and outcome (joined, duplicate, late)",
    ["tenant", "part", "outcome"],
)
AUDIT_PENDING = Gauge(
    "scorestream_audit_pending_joins", "Joins waiting for a part, in memory", ["tenant"]
)
AUDIT_STATE_ENTRIES = Gauge(
    "scorestream_audit_state_entries", "Join states in memory (pending and done)", ["tenant"]
)
AUDIT_RESTORE_SECONDS = Histogram(
    "scorestream_audit_restore_seconds",
    "Time to rebuild the join state of newly assigned partitions from the changelog",
    ["tenant"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


class AuditStateError(KafkaClientError):
    """The join-state changelog cannot be read back (unreadable record, or too slow)."""


class AuditSettings(ProcessingSettings):
    """Env: ``SCORESTREAM_AUDIT_*`` (plus ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(env_prefix="SCORESTREAM_AUDIT_", frozen=True, extra="ignore")

    service: ClassVar[str] = "audit"

    join_timeout_s: float = Field(default=60.0, gt=0)
    """A join missing a part this long (event time, ``ce_time``) is recorded ``incomplete``."""
    done_retention_s: float = Field(default=600.0, ge=0)
    """How long a finished join is remembered to recognise duplicate and late parts."""
    restore_timeout_s: float = Field(default=90.0, gt=0)
    """Reading the changelog may wait for a dead instance's open transaction to time out."""


# -- what the processor produces for us ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record produced as is: explicit partition, timestamp, and ``value=None`` = tombstone."""

    topic: str
    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    partition: int | None = None
    timestamp_ms: int | None = None


@dataclass(slots=True)
class AuditResult(Result):
    records: list[OutRecord] = field(default_factory=list)


class _AuditProcessor(Processor):
    """The shared :class:`Processor` plus what a stateful join needs from it: a hook when
    partitions are assigned or lost, records with a timestamp or a null value, a transaction
    between batches (timeouts with no input), and an in-memory rollback when a batch aborts."""

    def __init__(self, service: Audit, config: ProcessorConfig, kafka: KafkaSettings) -> None:
        super().__init__(
            config,
            service.handle,
            kafka=kafka,
            before_batch=self._tick,
            ready=service.ready,
        )
        self.service = service

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.service.on_assigned(consumer, partitions)  # restore before anything is fetched
        super()._on_assign(consumer, partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        super()._on_lost(consumer, partitions)
        self.service.drop({p.partition for p in partitions})

    def process(self, messages: Any) -> bool:
        committed = super().process(messages)
        if not committed:
            self.service.rollback()
        return committed

    def _tick(self) -> None:
        if self.consumer is None or self.producer is None:
            return
        result = self.service.tick()
        if result is None:
            return
        if self._commit_transaction(result, [], {}):
            if result.on_commit is not None:
                result.on_commit()
        else:
            self.service.rollback()

    def _produce_result(self, result: Result) -> None:
        super()._produce_result(result)
        if isinstance(result, AuditResult):
            for rec in result.records:
                self._produce_record(rec)

    def _produce_record(self, rec: OutRecord) -> None:
        extra: dict[str, Any] = {"on_delivery": self._dr}
        if rec.partition is not None:
            extra["partition"] = rec.partition
        if rec.timestamp_ms is not None:
            extra["timestamp"] = rec.timestamp_ms
        headers: list[Any] = list(rec.headers)
        try:
            self._p().produce(rec.topic, value=rec.value, key=rec.key, headers=headers, **extra)
        except BufferError:
            paused = self._c().assignment()
            self._c().pause(paused)  # stop fetching while the queue drains
            try:
                while True:
                    self._p().poll(0.05)
                    try:
                        self._p().produce(
                            rec.topic, value=rec.value, key=rec.key, headers=headers, **extra
                        )
                        break
                    except BufferError:
                        continue
            finally:
                self._c().resume(paused)


def _dead(env: Envelope[Any], reason: str, error: str, message: str) -> DeadLetter:
    raw = env.raw
    if raw is None:  # built in-process rather than decoded
        event: Contract = env.event
        raw = RawRecord(key=event.partition_key().encode(), value=event.model_dump_json().encode())
    return DeadLetter(raw, reason, error, message)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@dataclass(slots=True)
class _Unit:
    """What one batch (or tick) changed, until its transaction commits."""

    records: list[AuditRecord] = field(default_factory=list)
    parts: dict[tuple[str, str], int] = field(default_factory=dict)
    state_writes: int = 0
    tombstones: int = 0


class Audit:
    def __init__(self, settings: AuditSettings, *, kafka: KafkaSettings | None = None) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        t = settings.tenant
        self.tenant = t
        self.inputs = tuple(REGISTRY.topic(name, t) for name in INPUTS)
        self.part_of: dict[str, PartName] = dict(zip(self.inputs, PARTS, strict=True))
        self.audit_topic = REGISTRY.topic("audit", t)
        self.state_topic = REGISTRY.topic("audit.state", t)
        self.timeout = timedelta(seconds=settings.join_timeout_s)
        self.retention = timedelta(seconds=settings.done_retention_s)
        self.tables: dict[int, JoinTable] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self._next_tick = 0.0
        config = ProcessorConfig.for_service(
            settings,
            service=SERVICE,
            inputs=self.inputs,
            accept=(EnrichedTransaction, PredictionEvent, DecisionEvent),
            dlq_topics={
                topic: REGISTRY.dlq_topic(name, t)
                for name, topic in zip(INPUTS, self.inputs, strict=True)
            },
            delivery="exactly_once",
            # co-partitioned join: the same partition numbers of every input on one member
            consumer_overrides={"partition.assignment.strategy": "range"},
        )
        self.processor = _AuditProcessor(self, config, self.kafka)

    # -- state: restore, drop, units -------------------------------------------------------------
    def new_table(self) -> JoinTable:
        return JoinTable(timeout=self.timeout, retention=self.retention)

    def on_assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Eager (range) protocol: ``partitions`` is the whole new assignment. Partitions kept
        from the previous generation keep their in-memory state (nobody else processed them in
        between); new ones are restored from the changelog."""
        numbers = {tp.partition for tp in partitions}
        self.drop(set(self.tables) - numbers)
        missing = sorted(numbers - set(self.tables))
        if missing:
            self.tables.update(self.restore(missing))
        committed = (
            consumer.committed(partitions, timeout=self.settings.restore_timeout_s)
            if partitions
            else []
        )
        self.committed = {(tp.topic, tp.partition): tp.offset for tp in committed}
        self._gauges()

    def drop(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self.tables.pop(p, None)
        self._gauges()

    def restore(self, partitions: list[int]) -> dict[int, JoinTable]:
        """Read changelog partitions from their beginning to their end (read_committed)."""
        started = time.perf_counter()
        tables = {p: self.new_table() for p in partitions}
        timeout = self.settings.restore_timeout_s
        conf = consumer_config(
            self.kafka,
            group_id=f"{self.settings.group_id}.restore",
            client_id=f"{self.settings.instance_id}-restore",
        )
        reader = Consumer(conf)
        records = 0
        try:
            ends: dict[int, int] = {}
            assignment: list[TopicPartition] = []
            for p in partitions:
                low, high = watermarks(reader, TopicPartition(self.state_topic, p), timeout=timeout)
                if high > low:
                    ends[p] = high
                    assignment.append(TopicPartition(self.state_topic, p, low))
            if assignment:
                reader.assign(assignment)
            deadline = time.monotonic() + timeout
            while ends:
                if time.monotonic() > deadline:
                    raise AuditStateError(
                        f"restoring {self.state_topic} partitions {sorted(ends)} took longer than "
                        f"{timeout}s (an open transaction of a dead instance times out after "
                        "transaction.timeout.ms)"
                    )
                for msg in reader.consume(num_messages=1000, timeout=0.5):
                    records += self._apply_changelog(msg, tables)
                for tp in reader.position([TopicPartition(self.state_topic, p) for p in ends]):
                    if tp.offset >= ends[tp.partition]:
                        ends.pop(tp.partition)
        finally:
            reader.close()
        seconds = time.perf_counter() - started
        AUDIT_RESTORE_SECONDS.labels(self.tenant).observe(seconds)
        log.info(
            "restored audit join state of partitions %s: %d changelog records, %d joins in %.2fs",
            partitions,
            records,
            sum(len(t) for t in tables.values()),
            seconds,
        )
        return tables

    def _apply_changelog(self, msg: Message, tables: dict[int, JoinTable]) -> int:
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return 0
            raise AuditStateError(f"reading {self.state_topic}: {err}")
        table = tables[msg.partition() or 0]
        key = (msg.key() or b"").decode()
        value = msg.value()
        if value is None:
            table.remove(key)
            return 1
        try:
            table.load(JoinState.model_validate_json(value))
        except ValidationError as exc:
            raise AuditStateError(
                f"unreadable join state {key!r} at {self.state_topic}[{msg.partition()}]"
                f"@{msg.offset()}: {exc}"
            ) from exc
        return 1

    def _begin(self) -> None:
        for table in self.tables.values():
            table.begin()

    def _commit(self) -> None:
        for table in self.tables.values():
            table.commit()

    def rollback(self) -> None:
        for table in self.tables.values():
            table.rollback()

    # -- handler -----------------------------------------------------------------------------------
    def handle(self, batch: list[Envelope[Any]]) -> Result:
        now = datetime.now(UTC)
        result = AuditResult()
        unit = _Unit()
        writes: dict[tuple[int, str], JoinState | None] = {}
        self._begin()
        for env in batch:
            arrival = Arrival.from_envelope(env)
            if arrival.tenant_id != self.tenant:
                result.dead_letters.append(
                    _dead(
                        env,
                        "unknown_tenant",
                        "TenantMismatch",
                        f"tenant {arrival.tenant_id!r} on a topic of tenant {self.tenant!r}",
                    )
                )
                continue
            p = env.raw.partition if env.raw is not None and env.raw.partition is not None else 0
            table = self.tables.get(p)
            if table is None:  # not expected: assignment restores first; be safe anyway
                table = self.restore([p])[p]
                table.begin()
                self.tables[p] = table
            added = table.add(arrival, now=now)
            outcome = {
                AddOutcome.DUPLICATE: "duplicate",
                AddOutcome.LATE: "late",
            }.get(added.outcome, "joined")
            key = (arrival.part, outcome)
            unit.parts[key] = unit.parts.get(key, 0) + 1
            if added.outcome is AddOutcome.LATE:
                prev = added.previous
                result.dead_letters.append(
                    _dead(
                        env,
                        "late_for_audit",
                        "LateAuditPart",
                        f"{arrival.part} of {arrival.transaction_id} arrived after its audit "
                        "record was written incomplete (it had "
                        f"{list(prev.recorded) if prev else []})",
                    )
                )
                continue
            if added.state is not None:
                writes[(p, arrival.transaction_id)] = added.state
            if added.finished is not None:
                self._emit_audit(result, unit, added.finished)
        self._collect_due(now, result, unit, writes)
        self._emit_writes(result, unit, writes)
        result.on_commit = lambda: self._committed(unit)
        return result

    def _emit_audit(self, result: AuditResult, unit: _Unit, finished: Finished) -> None:
        record = finished.record
        trace = {"traceparent": finished.traceparent} if finished.traceparent else None
        msg = encode(record, source=self.processor.config.source, trace=trace)
        # the transaction's time, so that offsets_for_times finds records by it; the broker
        # refuses timestamps more than log.message.timestamp.after.max.ms in the future
        ts = min(finished.event_time, record.recorded_at)
        result.records.append(
            OutRecord(self.audit_topic, msg.key, msg.value, list(msg.headers), None, _ms(ts))
        )
        unit.records.append(record)

    def _collect_due(
        self,
        now: datetime,
        result: AuditResult,
        unit: _Unit,
        writes: dict[tuple[int, str], JoinState | None],
    ) -> None:
        self._advance_clocks(now)
        for p, table in self.tables.items():
            for finished in table.expire(now=now):
                writes[(p, finished.marker.transaction_id)] = finished.marker
                self._emit_audit(result, unit, finished)
            for txid in table.purge():
                writes[(p, txid)] = None

    def _emit_writes(
        self, result: AuditResult, unit: _Unit, writes: dict[tuple[int, str], JoinState | None]
    ) -> None:
        source = self.processor.config.source
        for (p, txid), state in writes.items():
            if state is None:
                result.records.append(OutRecord(self.state_topic, txid.encode(), None, [], p))
                unit.tombstones += 1
            else:
                msg = encode(state, source=source)
                result.records.append(
                    OutRecord(self.state_topic, msg.key, msg.value, list(msg.headers), p)
                )
                unit.state_writes += 1

    def _committed(self, unit: _Unit) -> None:
        self._commit()
        t = self.tenant
        for record in unit.records:
            AUDIT_RECORDS.labels(t, record.status.value).inc()
        for (part, outcome), n in unit.parts.items():
            AUDIT_PARTS.labels(t, part, outcome).inc(n)
        if unit.records:
            metrics.EVENTS_OUT.labels(SERVICE, t, "audit").inc(len(unit.records))
        if unit.state_writes or unit.tombstones:
            metrics.EVENTS_OUT.labels(SERVICE, t, "audit.state").inc(
                unit.state_writes + unit.tombstones
            )
        self._gauges()

    def _gauges(self) -> None:
        AUDIT_PENDING.labels(self.tenant).set(sum(t.pending for t in self.tables.values()))
        AUDIT_STATE_ENTRIES.labels(self.tenant).set(sum(len(t) for t in self.tables.values()))

    # -- timeouts between batches ------------------------------------------------------------------
    def caught_up(self) -> set[tuple[str, int]]:
        """Input partitions with nothing left to read (position at the high watermark)."""
        consumer, assigned = self.processor.consumer, self.processor.assigned
        if consumer is None or not assigned:
            return set()
        out: set[tuple[str, int]] = set()
        for tp in consumer.position([TopicPartition(t, p) for t, p in assigned]):
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            pos = tp.offset
            if pos < 0:  # nothing consumed since the assignment: start from the committed offset
                pos = self.committed.get((tp.topic, tp.partition), -1)
            if pos < 0:
                pos = low
            if high >= 0 and pos >= 0 and pos >= high:
                out.add((tp.topic, tp.partition))
        return out

    def _advance_clocks(self, now: datetime) -> None:
        idle = self.caught_up()
        for p, table in self.tables.items():
            parts = [part for topic, part in self.part_of.items() if (topic, p) in idle]
            table.advance_watermark(parts, now)

    def tick(self) -> AuditResult | None:
        """Between batches: time out joins when no input arrives (idle inputs count as now)."""
        mono = time.monotonic()
        if mono < self._next_tick:
            return None
        self._next_tick = mono + TICK_S
        now = datetime.now(UTC)
        if not any((d := t.next_due()) is not None and d <= now for t in self.tables.values()):
            return None  # the watermark never passes the wall clock: nothing can be due
        self._begin()
        result = AuditResult()
        unit = _Unit()
        writes: dict[tuple[int, str], JoinState | None] = {}
        self._collect_due(now, result, unit, writes)
        if not writes:
            self._commit()  # nothing was due after all; the clocks may still move on
            return None
        self._emit_writes(result, unit, writes)
        result.on_commit = lambda: self._committed(unit)
        return result

    # -- health and lifecycle ----------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        pending = sum(t.pending for t in self.tables.values())
        return True, f"join state of {len(self.tables)} partition(s), {pending} pending"

    def stop(self, *_: Any) -> None:
        self.processor.stop()

    def run(self, *, install_signals: bool = True) -> int:
        return self.processor.run(install_signals=install_signals)


def main(argv: list[str] | None = None, *, on_ready: Callable[[Audit], None] | None = None) -> int:
    """Entry point of ``scorestream audit`` (and ``scorestream audit replay ...``)."""
    import argparse  # noqa: PLC0415

    from scorestream import tracing  # noqa: PLC0415
    from scorestream.logs import configure_logging  # noqa: PLC0415

    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["replay"]:
        from consumers.audit_replay import main as replay_main  # noqa: PLC0415

        return replay_main(args_in[1:])
    parser = argparse.ArgumentParser(
        prog="scorestream audit",
        description="Join transactions, predictions and decisions into audit records. "
        "Settings come from SCORESTREAM_AUDIT_* / SCORESTREAM_KAFKA_* env; flags override. "
        "'scorestream audit replay --help' re-scores recorded features.",
    )
    parser.add_argument("--tenant")
    parser.add_argument("--instance-id")
    parser.add_argument("--join-timeout-s", type=float)
    parser.add_argument("--max-batch", type=int)
    parser.add_argument("--max-wait-ms", type=int)
    parser.add_argument("--health-port", type=int)
    args = parser.parse_args(args_in)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = AuditSettings(**overrides)
    configure_logging(SERVICE, settings.tenant)
    tracing.setup(SERVICE, settings.tenant)
    try:
        service = Audit(settings)
    except ScorestreamError as exc:
        log.error("cannot start: %s", exc)
        return 2
    if on_ready is not None:
        on_ready(service)
    return service.run()


if __name__ == "__main__":
    sys.exit(main())
