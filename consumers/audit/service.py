"""The audit service on the kernel's processor: the Kafka side of the join (see
:mod:`consumers.audit`), ``main``."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from confluent_kafka import TopicPartition
from prometheus_client import Counter, Gauge
from pydantic import Field, ValidationError
from pydantic_settings import SettingsConfigDict

from consumers.audit.join import (
    PARTS,
    AddOutcome,
    Arrival,
    Finished,
    JoinState,
    Orphaned,
    PartName,
)
from consumers.audit.join_table import JoinTable
from consumers.audit.replay import main as replay_main
from schemas.cloudevents import Envelope, encode
from schemas.errors import RawRecord
from schemas.events import (
    AuditRecord,
    Contract,
    DecisionEvent,
    EnrichedTransaction,
    PredictionEvent,
)
from schemas.fast import dump_json
from scorestream import metrics
from scorestream.dlq import DeadLetter
from scorestream.entrypoint import run_service
from scorestream.processor import (
    OutRecord,
    Processor,
    ProcessorConfig,
    Result,
    log_dead_letters,
)
from scorestream.settings import KafkaSettings, ProcessingSettings
from scorestream.state import StateStore
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
    "Parts consumed by the audit join, by part and outcome (joined, duplicate, late, amended, "
    "conflict; orphaned: joined, then dead-lettered without their transaction)",
    ["tenant", "part", "outcome"],
)
AUDIT_PENDING = Gauge(
    "scorestream_audit_pending_joins", "Joins waiting for a part, in memory", ["tenant"]
)
AUDIT_STATE_ENTRIES = Gauge(
    "scorestream_audit_state_entries", "Join states in memory (pending and done)", ["tenant"]
)


class AuditSettings(ProcessingSettings):
    """Env: ``SCORESTREAM_AUDIT_*`` (plus ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True, env_prefix="SCORESTREAM_AUDIT_", frozen=True, extra="ignore"
    )

    service: ClassVar[str] = "audit"

    max_wait_ms: int = Field(default=200, ge=1, le=10_000)
    """How long a poll waits for a full batch, in ms. This service is off the decision's path, so
    under light load it commits a transaction at most this often (each transaction costs the
    broker markers on every partition it touched; the services a request waits for get the
    CPU)."""
    adaptive_batching: bool = False
    """False here: wait up to max_wait_ms for a full batch (fewer, larger transactions). True
    takes what is already fetched as soon as the first record arrives."""
    max_batch: int = Field(default=2000, ge=1, le=10_000)
    """Most records handled and committed together as one batch (full batches under heavy
    load)."""

    join_timeout_s: float = Field(default=60.0, gt=0)
    """A join missing a part this long (event time, ``ce_time``) is recorded ``incomplete``."""
    done_retention_s: float = Field(default=600.0, ge=0)
    """How long a finished join is remembered to recognise duplicate and late parts and a
    reused transaction id."""
    amend_window_s: float = Field(default=3600.0, ge=0)
    """How long (event time, from its first record) an ``incomplete`` record can still be
    amended by a late part (a new revision); its parts are kept in the join state that long.
    After it, a late part goes to its input's DLQ (``late_for_audit``). 0: never amend."""
    restore_timeout_s: float = Field(default=90.0, gt=0)
    """Reading the changelog may wait for a dead instance's open transaction to time out."""


class JoinStateCodec:
    """Join states on the ``<tenant>.audit.state`` changelog: the contract's JSON."""

    def encode(self, value: JoinState) -> bytes:
        return dump_json(value)  # model_dump_json's fields and values, written by msgspec

    def decode(self, data: bytes) -> JoinState:
        try:
            return JoinState.model_validate_json(data)
        except ValidationError as exc:
            raise ValueError(str(exc)) from exc


_PART_OUTCOMES = {
    AddOutcome.DUPLICATE: "duplicate",
    AddOutcome.LATE: "late",
    AddOutcome.AMENDING: "amended",
    AddOutcome.CONFLICT: "conflict",
}


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
        self.amend_window = timedelta(seconds=settings.amend_window_s)
        self.tables: dict[int, JoinTable] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self._next_tick = 0.0
        config = ProcessorConfig.for_service(
            settings,
            service=SERVICE,
            inputs=self.inputs,
            accept=(EnrichedTransaction, PredictionEvent, DecisionEvent),
            # every part keyed by its account (the join is co-partitioned): checked on decode
            keyed=(EnrichedTransaction, PredictionEvent, DecisionEvent),
            dlq_topics={
                topic: REGISTRY.dlq_topic(name, t)
                for name, topic in zip(INPUTS, self.inputs, strict=True)
            },
            delivery="exactly_once",
            # co-partitioned join: the same partition numbers of every input on one member
            consumer_overrides={"partition.assignment.strategy": "range"},
        )
        self.joins: StateStore[JoinState] = StateStore(
            "joins",
            source=self.inputs[0],
            changelog=self.state_topic,
            codec=JoinStateCodec(),
            kafka=self.kafka,
            group_id=settings.group_id,
            restore_timeout_s=settings.restore_timeout_s,
            values_mutable=False,  # frozen JoinStates: an abort only drops the batch's writes
        )
        self.processor = Processor(
            config,
            self.handle,
            kafka=self.kafka,
            stores=(self.joins,),
            on_assigned=self.on_assigned,
            on_revoked=self.on_released,
            on_lost=self.on_released,
            tick=self.tick,
            ready=self.ready,
        )

    # -- state: tables from the store, units ----------------------------------------------------
    def new_table(self) -> JoinTable:
        return JoinTable(
            timeout=self.timeout, retention=self.retention, amend_window=self.amend_window
        )

    def on_assigned(self, partitions: list[TopicPartition]) -> None:
        """The processor restored the store's new partitions: build their join tables (their
        timeout and purge queues) from it."""
        self._sync_tables()
        consumer = self.processor.consumer
        if consumer is not None and partitions:
            committed = consumer.committed(partitions, timeout=self.settings.restore_timeout_s)
            self.committed |= {(tp.topic, tp.partition): tp.offset for tp in committed}
        self._gauges()

    def on_released(self, partitions: list[TopicPartition]) -> None:
        self._sync_tables()
        for tp in partitions:
            self.committed.pop((tp.topic, tp.partition), None)
        self._gauges()

    def _sync_tables(self) -> None:
        """One join table per store partition, loaded from the store's committed states."""
        owned = set(self.joins.partitions)
        for p in set(self.tables) - owned:
            del self.tables[p]
        for p in sorted(owned - set(self.tables)):
            table = self.new_table()
            for _, state in self.joins.partition(p).committed_items():
                table.load(state)
            self.tables[p] = table

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
        result = Result(on_abort=self.rollback)
        unit = _Unit()
        writes: dict[tuple[int, str], JoinState | None] = {}
        self._begin()
        for env in batch:
            arrival = Arrival.from_envelope(env)
            if (dead := DeadLetter.other_tenant(env, arrival.tenant_id, self.tenant)) is not None:
                result.dead_letters.append(dead)
                continue
            p = env.raw.partition if env.raw is not None and env.raw.partition is not None else 0
            table = self.tables[p]  # the store and the table were built on assignment
            added = table.add(arrival, now=now)
            outcome = _PART_OUTCOMES.get(added.outcome, "joined")
            key = (arrival.part, outcome)
            unit.parts[key] = unit.parts.get(key, 0) + 1
            prev = added.previous
            if added.outcome is AddOutcome.LATE and prev is not None:
                result.dead_letters.append(
                    DeadLetter.for_envelope(
                        env,
                        "late_for_audit",
                        "LateAuditPart",
                        f"{arrival.part} of {arrival.transaction_id} arrived after the amend "
                        f"window ({self.settings.amend_window_s:g} s) of its incomplete audit "
                        f"record (it had {list(prev.recorded)}); {self.pointer(prev)}",
                    )
                )
                continue
            if added.outcome is AddOutcome.CONFLICT and prev is not None:
                result.dead_letters.append(
                    DeadLetter.for_envelope(
                        env,
                        "transaction_id_reused",
                        "ConflictingAuditPart",
                        f"a different {arrival.part} (account {arrival.account_id!r}) for "
                        f"transaction {arrival.transaction_id}, which the audit already has "
                        f"(account {prev.account_id!r}): the transaction id was reused; "
                        f"{self.pointer(prev)}",
                    )
                )
                continue
            if added.state is not None:
                writes[(p, arrival.transaction_id)] = added.state
            if added.finished is not None:
                self._emit_audit(result, unit, added.finished)
        self._collect_due(now, result, unit, writes)
        self._emit_writes(unit, writes)
        result.on_commit = lambda: self._committed(unit)
        return result

    def _emit_audit(self, result: Result, unit: _Unit, finished: Finished) -> None:
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
        result: Result,
        unit: _Unit,
        writes: dict[tuple[int, str], JoinState | None],
    ) -> None:
        self._advance_clocks(now)
        for p, table in self.tables.items():
            for due in table.expire(now=now):
                if isinstance(due, Orphaned):
                    writes[(p, due.state.transaction_id)] = None
                    self._dead_orphan(result, unit, due.state)
                    continue
                writes[(p, due.marker.transaction_id)] = due.marker
                self._emit_audit(result, unit, due)
            for txid in table.purge():
                writes[(p, txid)] = None

    def pointer(self, state: JoinState) -> str:
        """Where the operator finds the audit record a dead-lettered part is about."""
        if state.revision == 0:
            return (
                f"its record is still pending on {self.audit_topic} "
                f"(key {state.account_id!r}, transaction_id {state.transaction_id!r})"
            )
        return (
            f"see {self.audit_topic} key {state.account_id!r} transaction_id "
            f"{state.transaction_id!r} revision {state.revision}"
        )

    def _dead_orphan(self, result: Result, unit: _Unit, state: JoinState) -> None:
        """The parts of a join that timed out without its transaction: each to its input's DLQ
        (the event as read, with its CloudEvents headers and original position)."""
        for part in PARTS:
            stored = getattr(state, part)
            if stored is None:
                continue
            event: Contract = stored.event
            msg = encode(
                event,
                source=stored.source or self.processor.config.source,
                event_id=stored.event_id,
                time=stored.time,
                trace=stored.trace,
                extensions=stored.extensions,
            )
            topic, partition, offset = stored.origin or (
                self.inputs[PARTS.index(part)],
                None,
                None,
            )
            raw = RawRecord(msg.key, msg.value, list(msg.headers), topic, partition, offset)
            result.dead_letters.append(
                DeadLetter(
                    raw,
                    "late_for_audit",
                    "LateAuditPart",
                    f"{part} of {state.transaction_id}: its transaction was not read within "
                    f"the join timeout ({self.settings.join_timeout_s:g} s), so it was audited "
                    f"more than the amend window ({self.settings.amend_window_s:g} s) ago or "
                    f"never reached the audit; look for {self.audit_topic} key "
                    f"{state.account_id!r} transaction_id {state.transaction_id!r}",
                )
            )
            key = (part, "orphaned")  # counted "joined" when it arrived
            unit.parts[key] = unit.parts.get(key, 0) + 1

    def _emit_writes(self, unit: _Unit, writes: dict[tuple[int, str], JoinState | None]) -> None:
        """The batch's join-state changes into the store (the processor writes them to the
        changelog in the batch's transaction)."""
        for (p, txid), state in writes.items():
            store = self.joins.partition(p)
            if state is None:
                store.delete(txid)
                unit.tombstones += 1
            else:
                store.put(txid, state)
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

    def tick(self) -> Result | None:
        """Between batches: time out joins when no input arrives (idle inputs count as now)."""
        mono = time.monotonic()
        if mono < self._next_tick:
            return None
        self._next_tick = mono + TICK_S
        now = datetime.now(UTC)
        if not any((d := t.next_due()) is not None and d <= now for t in self.tables.values()):
            return None  # the watermark never passes the wall clock: nothing can be due
        self._begin()
        result = Result(on_abort=self.rollback)
        unit = _Unit()
        writes: dict[tuple[int, str], JoinState | None] = {}
        self._collect_due(now, result, unit, writes)
        if not writes:
            self._commit()  # nothing was due after all; the clocks may still move on
            return None
        self._emit_writes(unit, writes)
        dead = list(result.dead_letters)

        def committed() -> None:
            self._committed(unit)
            # the processor logs and counts the dead letters of batches, not of ticks
            log_dead_letters(SERVICE, dead)
            for dl in dead:
                metrics.DLQ.labels(SERVICE, self.tenant, dl.reason).inc()

        result.on_commit = committed
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
    """Entry point of ``scorestream audit`` and of the container: every setting of
    :class:`AuditSettings` from ``SCORESTREAM_AUDIT_*`` or as a flag.
    ``scorestream audit replay ...`` re-scores recorded features (:mod:`consumers.audit.replay`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["replay"]:
        return replay_main(args[1:])
    return run_service(SERVICE, AuditSettings, Audit, args, on_ready=on_ready)
