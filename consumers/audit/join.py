"""The audit join, pure: the three parts of one transaction in, one :class:`AuditRecord` out.

No Kafka here. :class:`~consumers.audit.join_table.JoinTable` holds the joins of one input partition
(the three inputs are co-partitioned by ``account_id``, so every part of a transaction lands on the
same partition number). It is driven by :meth:`JoinTable.add` (a part arrived),
:meth:`JoinTable.expire` (joins past their timeout become ``incomplete`` records) and
:meth:`JoinTable.purge` (forget finished joins); every change is also returned as a
:class:`JoinState`, which the service writes to the compacted changelog in the same Kafka
transaction, and :meth:`JoinTable.load` rebuilds the table from that changelog after a restart or a
rebalance.

Time: a pending join times out in *event time*: when the partition's watermark passes the
``ce_time`` of its earliest part (when the enricher, worker or decision service produced it) plus
``timeout``. The watermark of a partition is the *smallest*, over the three inputs, of the latest
``ce_time`` consumed from that input — or of the wall clock for an input that is caught up
(nothing left to read). So joins still time out when traffic stops, and a restarted service
catching up on a backlog — where one topic may be read ahead of another — never declares a join
incomplete whose missing part is still unread. The transaction's own ``timestamp`` is never used
for this (simulated traffic carries old timestamps), and ``ce_time`` values ahead of the wall
clock are capped at it.

Finished joins stay as ``done`` markers with a digest of each part's body (:func:`part_digest`)
for ``retention``, so an identical copy of a part is a *duplicate* (ignored) and a different body
under the same transaction id (a reused id) a *conflict* (the service dead-letters it).

Revisions: the marker of an ``incomplete`` record keeps its parts for ``amend_window`` (event
time, from the first record). A missing part arriving within it reopens the join as an
amendment (``pending`` with the record's revision): complete, or at its own timeout, it writes
the next revision of the record, built from the same parts plus the late ones, so no two
revisions disagree on a field both have (see :class:`~schemas.events.AuditRecord`). A part
later than that is *late* (dead-lettered); once the marker is forgotten, a late prediction or
decision opens a join without its transaction part, which times out as :class:`Orphaned`
(dead-lettered too) rather than as a second record contradicting the first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from schemas.cloudevents import Envelope
from schemas.events import (
    AuditRecord,
    AuditStatus,
    Contract,
    DecisionEvent,
    EnrichedTransaction,
    PredictionEvent,
)
from schemas.types import Identifier, TenantId, UtcDatetime

PartName = Literal["transaction", "prediction", "decision"]
PARTS: tuple[PartName, ...] = ("transaction", "prediction", "decision")
PartEvent: TypeAlias = EnrichedTransaction | PredictionEvent | DecisionEvent

INGEST_TIME = "ingesttime"
"""Optional CloudEvents extension on the enriched event: the ``ce_time`` of the transaction as
published upstream (RFC 3339). When present, ``hop_ms["enrich"]`` is measured from it."""


class _Part(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    time: UtcDatetime
    """The part's ``ce_time``: when the hop that produced it published it."""
    trace: dict[str, str] = Field(default_factory=dict)
    extensions: dict[str, str] = Field(default_factory=dict)
    event_id: str | None = None
    """Its ``ce_id`` and ``ce_source``, and where it was read (``topic``, ``partition``,
    ``offset``): to dead-letter it later with a pointer to the original."""
    source: str | None = None
    origin: tuple[str, int, int] | None = None


class StoredTransaction(_Part):
    event: EnrichedTransaction


class StoredPrediction(_Part):
    event: PredictionEvent


class StoredDecision(_Part):
    event: DecisionEvent


class JoinState(Contract):
    """One join as kept in memory and on the ``<tenant>.audit.state`` changelog (key: its
    transaction id, partition: the input partition). ``pending`` joins hold the parts seen so
    far; ``done`` markers only remember which parts went into the record."""

    ce_type: ClassVar[str] = "scorestream.audit.state.v1"

    transaction_id: Identifier
    tenant_id: TenantId
    account_id: Identifier
    status: Literal["pending", "done"]
    opened_at: UtcDatetime
    """Event time of the earliest part: the timeout counts from here."""
    transaction: StoredTransaction | None = None
    prediction: StoredPrediction | None = None
    decision: StoredDecision | None = None
    recorded: tuple[PartName, ...] = ()
    """``done`` only: the parts the audit record was built from."""
    done_at: UtcDatetime | None = None
    """``done`` only: the event time at which the latest record was emitted."""
    revision: int = Field(default=0, ge=0)
    """Audit records written for this join so far (0 until the first one). A ``pending`` join
    with a revision is an amendment: a late part reopened an ``incomplete`` record."""
    digests: dict[PartName, str] = Field(default_factory=dict)
    """A digest of each part's body (:func:`part_digest`): an identical copy is a duplicate,
    a different one (a reused transaction id) a conflict."""
    amend_until: UtcDatetime | None = None
    """Set by the first ``incomplete`` record: until when (event time) a late part amends it."""
    amend_from: UtcDatetime | None = None
    """An amendment only: the late part's event time (its timeout counts from here)."""

    def partition_key(self) -> str:
        return self.transaction_id

    @property
    def present(self) -> tuple[PartName, ...]:
        if self.status == "done":
            return self.recorded
        return tuple(p for p in PARTS if getattr(self, p) is not None)

    @property
    def amendable(self) -> bool:
        """A done marker of an ``incomplete`` record that still holds its parts."""
        return self.status == "done" and bool(self.missing) and self.amend_until is not None

    @property
    def missing(self) -> tuple[PartName, ...]:
        present = self.present  # once: a property, not a field
        return tuple(p for p in PARTS if p not in present)


def part_digest(event: PartEvent) -> str:
    """What makes two copies of a part "the same": the body, less what a re-delivery of the
    same part may change (the enriched transaction's features and ``enriched_at``, the
    prediction's ``predicted_at`` and timings, the decision's ``decided_at``)."""
    if isinstance(event, EnrichedTransaction):
        body = event.transaction.model_dump_json()
    elif isinstance(event, PredictionEvent):
        body = event.model_dump_json(exclude={"predicted_at", "timings"})
    else:
        body = event.model_dump_json(exclude={"decided_at"})
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def transaction_id_of(event: PartEvent) -> str:
    """The transaction a part belongs to (an enriched transaction carries it inside)."""
    if isinstance(event, EnrichedTransaction):
        return event.transaction.transaction_id
    return event.transaction_id


@dataclass(frozen=True, slots=True)
class Arrival:
    """One part as consumed: the event and its CloudEvents attributes."""

    part: PartName
    event: PartEvent
    time: datetime
    trace: Mapping[str, str]
    extensions: Mapping[str, str]
    event_id: str | None = None
    source: str | None = None
    origin: tuple[str, int, int] | None = None

    @classmethod
    def from_envelope(cls, env: Envelope[PartEvent]) -> Arrival:
        event = env.event
        part: PartName
        if isinstance(event, EnrichedTransaction):
            part = "transaction"
        elif isinstance(event, PredictionEvent):
            part = "prediction"
        elif isinstance(event, DecisionEvent):
            part = "decision"
        else:  # pragma: no cover - the consumer only accepts the three contracts
            raise TypeError(f"not an audit part: {type(event).__name__}")
        raw = env.raw
        origin = None
        if raw is not None and raw.topic and raw.partition is not None and raw.offset is not None:
            origin = (raw.topic, raw.partition, raw.offset)
        return cls(part, event, env.time, env.trace, env.extensions, env.id, env.source, origin)

    @property
    def transaction_id(self) -> str:
        return transaction_id_of(self.event)

    @property
    def account_id(self) -> str:
        e = self.event
        return e.transaction.account_id if isinstance(e, EnrichedTransaction) else e.account_id

    @property
    def tenant_id(self) -> str:
        e = self.event
        return e.transaction.tenant_id if isinstance(e, EnrichedTransaction) else e.tenant_id

    def stored(self) -> StoredTransaction | StoredPrediction | StoredDecision:
        common = {
            "time": self.time,
            "trace": dict(self.trace),
            "extensions": dict(self.extensions),
            "event_id": self.event_id,
            "source": self.source,
            "origin": self.origin,
        }
        e = self.event
        if isinstance(e, EnrichedTransaction):
            return StoredTransaction(event=e, **common)  # type: ignore[arg-type]
        if isinstance(e, PredictionEvent):
            return StoredPrediction(event=e, **common)  # type: ignore[arg-type]
        return StoredDecision(event=e, **common)  # type: ignore[arg-type]


class AddOutcome(StrEnum):
    OPENED = "opened"
    JOINED = "joined"
    COMPLETED = "completed"
    DUPLICATE = "duplicate"
    LATE = "late"
    """Missing from an ``incomplete`` record whose amend window has passed: dead-lettered."""
    AMENDING = "amending"
    """Missing from an ``incomplete`` record: reopens it to write a revision."""
    CONFLICT = "conflict"
    """A different body for a part the join already has (the transaction id was reused):
    dead-lettered, never merged into the record and never dropped silently."""


@dataclass(frozen=True, slots=True)
class Finished:
    """A join's audit record, with what producing it needs."""

    record: AuditRecord
    marker: JoinState
    """The done marker that replaces the join's state."""
    event_time: datetime
    """The transaction's timestamp (the audit record's Kafka timestamp)."""
    traceparent: str | None
    """The W3C context of the transaction's first part, to continue its trace."""


@dataclass(frozen=True, slots=True)
class Orphaned:
    """A join that timed out without its transaction part: the transaction was audited before
    its state was forgotten (a part later than the amend window) or never reached the audit.
    Its parts go to their DLQs as ``late_for_audit``; no record, so none contradicts another."""

    state: JoinState


@dataclass(frozen=True, slots=True)
class Added:
    outcome: AddOutcome
    state: JoinState | None = None
    """The join's new state (to write to the changelog); ``None`` when nothing changed."""
    finished: Finished | None = None
    """The complete audit record, when this part completed the join."""
    previous: JoinState | None = None
    """For ``late``, ``duplicate`` and ``conflict``: the state the part ran into."""


def _ms(later: datetime, earlier: datetime) -> float:
    """Milliseconds between two ``ce_time`` values; clocks of different hosts may disagree by a
    little, and a hop never takes negative time."""
    return max(0.0, (later - earlier).total_seconds() * 1000)


_HEX = frozenset("0123456789abcdef")


def trace_id(traceparent: str | None) -> str | None:
    """The 32-hex trace id of a W3C ``traceparent`` (``00-<trace-id>-<span-id>-<flags>``)."""
    if not traceparent:
        return None
    fields = traceparent.strip().split("-")
    if len(fields) < 4 or len(fields[1]) != 32:
        return None
    tid = fields[1].lower()
    if not _HEX.issuperset(tid) or tid == "0" * 32:
        return None
    return tid


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.astimezone(UTC) if when.tzinfo is not None else None


def transaction_time(state: JoinState) -> datetime:
    """The transaction's own timestamp, from whichever part carries it."""
    if state.transaction is not None:
        return state.transaction.event.transaction.timestamp
    if state.prediction is not None:
        return state.prediction.event.event_time
    if state.decision is not None:
        return state.decision.event.event_time
    return state.opened_at


def hop_ms(state: JoinState) -> dict[str, float]:
    tx, pr, de = state.transaction, state.prediction, state.decision
    hops: dict[str, float] = {}
    if tx is not None:
        ingest = _parse_time(tx.extensions.get(INGEST_TIME))
        if ingest is not None:
            hops["enrich"] = _ms(tx.time, ingest)
    if tx is not None and pr is not None:
        hops["score"] = _ms(pr.time, tx.time)
    if pr is not None and de is not None:
        hops["decide"] = _ms(de.time, pr.time)
    return hops


def build_record(state: JoinState, *, now: datetime) -> AuditRecord:
    """The audit record of a pending join: ``complete`` when all three parts are there. For an
    amendment (``state.revision`` > 0) the next revision, built from the parts of the one it
    supersedes plus the late ones: every field the previous revision had keeps its value."""
    tx, pr, de = state.transaction, state.prediction, state.decision
    missing = state.missing
    enriched = tx.event if tx is not None else None
    prediction = pr.event if pr is not None else None
    decision = de.event if de is not None else None
    tid = next(
        (
            t
            for t in (trace_id(s.trace.get("traceparent")) for s in (tx, pr, de) if s is not None)
            if t is not None
        ),
        None,
    )
    score = prediction.score if prediction else decision.score if decision else None
    return AuditRecord(
        transaction_id=state.transaction_id,
        tenant_id=state.tenant_id,
        account_id=state.account_id,
        status=AuditStatus.INCOMPLETE if missing else AuditStatus.COMPLETE,
        missing=missing,
        transaction=enriched.transaction if enriched else None,
        features=dict(enriched.features) if enriched else None,
        feature_spec_hash=(
            enriched.feature_spec_hash
            if enriched
            else prediction.feature_spec_hash
            if prediction
            else None
        ),
        model_name=prediction.model_name
        if prediction
        else decision.model_name
        if decision
        else None,
        model_version=(
            prediction.model_version if prediction else decision.model_version if decision else None
        ),
        model_sha256=prediction.model_sha256 if prediction else None,
        score=score,
        outcome=decision.outcome if decision else None,
        policy_version=decision.policy_version if decision else None,
        trace_id=tid,
        hop_ms=hop_ms(state),
        recorded_at=now,
        merchant_as_of=enriched.merchant_as_of if enriched else None,
        revision=state.revision + 1,
        supersedes=state.revision or None,
        amends=tuple(p for p in state.present if p not in state.recorded) if state.revision else (),
    )


def traceparent(state: JoinState) -> str | None:
    for part in (state.transaction, state.prediction, state.decision):
        if part is not None and trace_id(part.trace.get("traceparent")) is not None:
            return part.trace["traceparent"]
    return None


def finish(
    state: JoinState, *, done_at: datetime, now: datetime, amend_window: timedelta
) -> Finished:
    return Finished(
        record=build_record(state, now=now),
        marker=done_marker(state, done_at=done_at, amend_window=amend_window),
        event_time=transaction_time(state),
        traceparent=traceparent(state),
    )


def done_marker(state: JoinState, *, done_at: datetime, amend_window: timedelta) -> JoinState:
    """What remains of a join once its record is out: which parts it had, when, their digests
    and its revision. The marker of an ``incomplete`` record also keeps its parts until the
    amend window (counted from the first record) ends, so a late part can write the next
    revision; a ``complete`` record's marker is small."""
    incomplete = bool(state.missing)
    amend_until = state.amend_until
    if incomplete and amend_until is None and amend_window > timedelta(0):
        amend_until = done_at + amend_window
    keep = incomplete and amend_until is not None
    return JoinState(
        transaction_id=state.transaction_id,
        tenant_id=state.tenant_id,
        account_id=state.account_id,
        status="done",
        opened_at=state.opened_at,
        transaction=state.transaction if keep else None,
        prediction=state.prediction if keep else None,
        decision=state.decision if keep else None,
        recorded=state.present,
        done_at=done_at,
        revision=state.revision + 1,
        digests=dict(state.digests),
        amend_until=amend_until,
    )


def known_digest(state: JoinState, part: PartName) -> str | None:
    """The digest of ``part`` as the join knows it (states written before digests existed:
    from the stored part, when there is one)."""
    digest = state.digests.get(part)
    if digest is None:
        stored = getattr(state, part)
        if stored is not None:
            digest = part_digest(stored.event)
    return digest
