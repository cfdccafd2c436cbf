"""The join table of one input partition: :class:`JoinTable` (add, expire, purge, load, with an
undo log for aborted Kafka transactions) and :func:`restore`; the rules it applies are
:mod:`consumers.audit.join`'s."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime, timedelta

from consumers.audit.join import (
    PARTS,
    Added,
    AddOutcome,
    Arrival,
    Finished,
    JoinState,
    Orphaned,
    PartName,
    finish,
    known_digest,
    part_digest,
)

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
