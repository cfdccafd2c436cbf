"""The audit join, pure: the three parts of one transaction in, one :class:`AuditRecord` out.

No Kafka here. :class:`JoinTable` holds the joins of one input partition (the three inputs are
co-partitioned by ``account_id``, so every part of a transaction lands on the same partition
number). It is driven by :meth:`JoinTable.add` (a part arrived), :meth:`JoinTable.expire` (joins
past their timeout become ``incomplete`` records) and :meth:`JoinTable.purge` (forget finished
joins); every change is also returned as a :class:`JoinState`, which the service writes to the
compacted changelog in the same Kafka transaction, and :meth:`JoinTable.load` rebuilds the table
from that changelog after a restart or a rebalance.

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
import heapq
from collections.abc import Iterable, Mapping
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


_ABSENT = object()


class JoinTable:
    """The joins of one partition, with an undo log so an aborted Kafka transaction can be
    rolled back in memory (:meth:`begin` / :meth:`commit` / :meth:`rollback`)."""

    def __init__(
        self,
        *,
        timeout: timedelta,
        retention: timedelta,
        amend_window: timedelta = timedelta(0),
    ) -> None:
        if timeout <= timedelta(0) or retention < timedelta(0) or amend_window < timedelta(0):
            raise ValueError("timeout must be > 0, retention and amend_window >= 0")
        self.timeout = timeout
        self.retention = retention
        self.amend_window = amend_window
        """How long (event time, from the first ``incomplete`` record) a late part still writes
        a new revision; 0: never (late parts are dead-lettered)."""
        self.states: dict[str, JoinState] = {}
        self.clock: datetime | None = None
        """The partition's watermark (see the module docstring); ``None`` until known."""
        self.seen: dict[PartName, datetime] = {}
        """Per input: the latest ``ce_time`` consumed (capped at the wall clock)."""
        self._deadlines: list[tuple[datetime, str]] = []
        self._forget: list[tuple[datetime, str]] = []
        self._undo: dict[str, object] | None = None
        self._undo_clock: datetime | None = None
        self._undo_seen: dict[PartName, datetime] = {}

    # -- bookkeeping -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.states)

    @property
    def pending(self) -> int:
        return sum(1 for s in self.states.values() if s.status == "pending")

    def deadline(self, state: JoinState) -> datetime:
        if state.status == "pending":
            return (state.amend_from or state.opened_at) + self.timeout
        forget = (state.done_at or state.opened_at) + self.retention
        if state.amendable and state.amend_until is not None:
            return max(forget, state.amend_until)
        return forget

    def _schedule(self, state: JoinState) -> None:
        heap = self._deadlines if state.status == "pending" else self._forget
        heapq.heappush(heap, (self.deadline(state), state.transaction_id))

    def _set(self, state: JoinState | None, txid: str) -> None:
        if self._undo is not None and txid not in self._undo:
            self._undo[txid] = self.states.get(txid, _ABSENT)
        if state is None:
            self.states.pop(txid, None)
        else:
            self.states[txid] = state
            self._schedule(state)

    def advance(self, when: datetime) -> None:
        """Move the partition clock forward (never back)."""
        if self.clock is None or when > self.clock:
            self.clock = when

    def watermark(self, idle: Iterable[PartName], now: datetime) -> datetime | None:
        """The smallest, over the inputs, of the latest ``ce_time`` read from it, or of ``now``
        for an input in ``idle`` (caught up). ``None`` while an input with unread records has
        not delivered anything yet."""
        caught_up = set(idle)
        marks: list[datetime] = []
        for part in PARTS:
            if part in caught_up:
                marks.append(now)
            elif part in self.seen:
                marks.append(self.seen[part])
            else:
                return None
        return min(marks)

    def advance_watermark(self, idle: Iterable[PartName], now: datetime) -> None:
        mark = self.watermark(idle, now)
        if mark is not None:
            self.advance(mark)

    def begin(self) -> None:
        if self._undo is not None:
            raise RuntimeError("a join unit is already open")
        self._undo = {}
        self._undo_clock = self.clock
        self._undo_seen = dict(self.seen)

    def commit(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        undo, self._undo = self._undo, None
        if undo is None:
            return
        self.clock = self._undo_clock
        self.seen = self._undo_seen
        for txid, old in undo.items():
            if old is _ABSENT:
                self.states.pop(txid, None)
            elif isinstance(old, JoinState):
                self.states[txid] = old
                self._schedule(old)  # its heap entry may have been popped by the aborted unit

    # -- restore -----------------------------------------------------------------------------------
    def load(self, state: JoinState) -> None:
        """Apply one changelog record (restore). The clock is not restored: the watermark is
        re-established from what is read next (a restored clock could run ahead of a backlog)."""
        self.states[state.transaction_id] = state
        self._schedule(state)

    def remove(self, transaction_id: str) -> None:
        """Apply a changelog tombstone (restore)."""
        self.states.pop(transaction_id, None)

    # -- the join ----------------------------------------------------------------------------------
    def add(self, arrival: Arrival, *, now: datetime) -> Added:
        """One part arrived. ``now`` (wall clock) stamps ``recorded_at`` and caps the part's
        ``ce_time``, so a producer whose clock runs ahead cannot time out every pending join.
        The clock itself moves with :meth:`advance_watermark`."""
        when = min(arrival.time, now)
        if arrival.part not in self.seen or when > self.seen[arrival.part]:
            self.seen[arrival.part] = when
        txid = arrival.transaction_id
        part = arrival.part
        current = self.states.get(txid)
        digest = part_digest(arrival.event)
        stored = arrival.stored()
        if current is None:
            state = JoinState(
                transaction_id=txid,
                tenant_id=arrival.tenant_id,
                account_id=arrival.account_id,
                status="pending",
                opened_at=arrival.time,
                digests={part: digest},
                **{part: stored},  # type: ignore[arg-type]
            )
            outcome = AddOutcome.OPENED
        else:
            if current.account_id != arrival.account_id:
                return Added(AddOutcome.CONFLICT, previous=current)
            known = known_digest(current, part)
            if known is not None:
                outcome = AddOutcome.DUPLICATE if known == digest else AddOutcome.CONFLICT
                return Added(outcome, previous=current)
            if current.status == "done":
                if part in current.recorded:  # a marker written before digests existed
                    return Added(AddOutcome.DUPLICATE, previous=current)
                if not self.can_amend(current, when):
                    return Added(AddOutcome.LATE, previous=current)
                state = current.model_copy(
                    update={
                        part: stored,
                        "status": "pending",
                        "amend_from": when,
                        "done_at": None,
                        "digests": {**current.digests, part: digest},
                    }
                )
                outcome = AddOutcome.AMENDING
            else:
                state = current.model_copy(
                    update={
                        part: stored,
                        "opened_at": min(current.opened_at, arrival.time),
                        "digests": {**current.digests, part: digest},
                    }
                )
                outcome = AddOutcome.JOINED
        if state.missing:
            self._set(state, txid)
            return Added(outcome, state=state)
        finished = finish(state, done_at=when, now=now, amend_window=self.amend_window)
        self._set(finished.marker, txid)
        return Added(AddOutcome.COMPLETED, state=finished.marker, finished=finished)

    def can_amend(self, marker: JoinState, when: datetime) -> bool:
        """Whether a late part produced at ``when`` (its ``ce_time``, capped at now) may still
        write a new revision of ``marker``'s record: both it and the partition clock are
        within the amend window (event time, like the join timeout)."""
        if not marker.amendable or marker.amend_until is None:
            return False
        latest = when if self.clock is None else max(when, self.clock)
        return latest <= marker.amend_until

    def next_due(self) -> datetime | None:
        """The earliest time at which :meth:`expire` or :meth:`purge` may have work (a hint:
        stale heap entries make it early, never late)."""
        heads = [h[0][0] for h in (self._deadlines, self._forget) if h]
        return min(heads) if heads else None

    def expire(self, *, now: datetime) -> list[Finished | Orphaned]:
        """Pending joins past their timeout, as ``incomplete`` records (and their done markers),
        or, when the transaction part never came, as :class:`Orphaned` (state forgotten)."""
        out: list[Finished | Orphaned] = []
        clock = self.clock
        if clock is None:
            return out
        while self._deadlines and self._deadlines[0][0] <= clock:
            _, txid = heapq.heappop(self._deadlines)
            state = self.states.get(txid)
            if state is None or state.status != "pending" or self.deadline(state) > clock:
                continue  # stale entry: completed, already expired, or rescheduled
            if state.transaction is None and state.revision == 0:
                # the watermark passed this join's timeout on the transactions input too, and
                # a transaction is always written before its prediction: it was read before
                self._set(None, txid)
                out.append(Orphaned(state))
                continue
            finished = finish(state, done_at=clock, now=now, amend_window=self.amend_window)
            self._set(finished.marker, txid)
            out.append(finished)
        return out

    def purge(self) -> list[str]:
        """Done markers older than ``retention``: forget them (the service writes tombstones)."""
        out: list[str] = []
        clock = self.clock
        if clock is None:
            return out
        while self._forget and self._forget[0][0] <= clock:
            _, txid = heapq.heappop(self._forget)
            state = self.states.get(txid)
            if state is None or state.status != "done" or self.deadline(state) > clock:
                continue
            self._set(None, txid)
            out.append(txid)
        return out


def restore(states: Iterable[JoinState | str], table: JoinTable) -> JoinTable:
    """Apply changelog entries in order: a state, or a transaction id meaning a tombstone."""
    for entry in states:
        if isinstance(entry, str):
            table.remove(entry)
        else:
            table.load(entry)
    return table
