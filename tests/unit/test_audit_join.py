"""The audit join, without Kafka: arrival orders, timeouts, duplicates, state round trips."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from consumers.audit.join import (
    INGEST_TIME,
    AddOutcome,
    Arrival,
    Finished,
    JoinState,
    Orphaned,
    part_digest,
    trace_id,
)
from consumers.audit.join_table import JoinTable, restore
from consumers.audit.service import JoinStateCodec
from producers.generator import generate_transactions
from schemas.cloudevents import Envelope, decode, encode
from schemas.errors import RawRecord
from schemas.events import AuditRecord, AuditStatus, latest_revisions
from tests.audit_support import POLICY, SHA, Parts, enrich, envelope, ms, parts_for, traceparent

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 12, 0, 30, tzinfo=UTC)
TIMEOUT = timedelta(seconds=5)


def _parts(n: int = 3) -> list[Parts]:
    txs = list(generate_transactions(n, tenant="acme", seed=3))
    return [parts_for(e, score=0.1 + 0.3 * i, at=T0) for i, e in enumerate(enrich(txs, at=T0))]


def _arrivals(parts: Parts, *, base: datetime = T0) -> dict[str, Arrival]:
    """The three parts, each produced 10 ms after the previous hop, with the same trace."""
    tp = traceparent(7)
    return {
        "transaction": Arrival.from_envelope(
            envelope(
                parts.enriched,
                base,
                trace=tp,
                extensions={INGEST_TIME: (base - ms(4)).isoformat().replace("+00:00", "Z")},
            )
        ),
        "prediction": Arrival.from_envelope(envelope(parts.prediction, base + ms(10), trace=tp)),
        "decision": Arrival.from_envelope(envelope(parts.decision, base + ms(25), trace=tp)),
    }


def _table(retention: timedelta = timedelta(seconds=60)) -> JoinTable:
    return JoinTable(timeout=TIMEOUT, retention=retention)


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["transaction", "prediction", "decision"]))
)
def test_complete_in_any_arrival_order(order: tuple[str, str, str]) -> None:
    parts = _parts(1)[0]
    arrivals = _arrivals(parts)
    table = _table()
    outcomes = [table.add(arrivals[name], now=NOW) for name in order]
    assert [o.outcome for o in outcomes[:2]] == [AddOutcome.OPENED, AddOutcome.JOINED]
    last = outcomes[2]
    assert last.outcome is AddOutcome.COMPLETED
    assert last.finished is not None
    record = last.finished.record
    assert record.status is AuditStatus.COMPLETE
    assert record.missing == ()
    tx = parts.enriched.transaction
    assert (record.transaction_id, record.account_id, record.tenant_id) == (
        tx.transaction_id,
        tx.account_id,
        "acme",
    )
    assert record.transaction == tx
    assert record.features == parts.enriched.features
    assert record.feature_spec_hash == parts.enriched.feature_spec_hash
    assert (record.model_name, record.model_version, record.model_sha256) == ("fraud-gbt", "1", SHA)
    assert record.score == parts.prediction.score
    assert record.outcome is parts.decision.outcome
    assert record.policy_version == POLICY
    assert record.trace_id == f"{7:032x}"
    assert record.hop_ms == pytest.approx({"enrich": 4.0, "score": 10.0, "decide": 15.0})
    assert record.recorded_at == NOW
    assert last.finished.event_time == tx.timestamp
    assert last.finished.traceparent == traceparent(7)
    # the join is now a small done marker, nothing pending
    assert last.state is not None
    assert last.state.status == "done"
    assert last.state.recorded == ("transaction", "prediction", "decision")
    assert table.pending == 0
    assert table.expire(now=NOW) == []


def test_incomplete_after_timeout_with_the_right_missing_parts() -> None:
    a, b = _parts(2)
    table = _table()
    arr_a, arr_b = _arrivals(a), _arrivals(b, base=T0 + ms(500))
    table.add(arr_a["transaction"], now=NOW)
    table.add(arr_a["prediction"], now=NOW)
    table.add(arr_b["decision"], now=NOW)
    # the clock is event time (ce_time): nothing is due until it passes opened_at + timeout
    table.advance(T0 + TIMEOUT - ms(1))
    assert table.expire(now=NOW) == []
    table.advance(T0 + TIMEOUT)
    first = table.expire(now=NOW)
    assert [f.record.transaction_id for f in first] == [a.transaction_id]
    rec = first[0].record
    assert rec.status is AuditStatus.INCOMPLETE
    assert rec.missing == ("decision",)
    assert rec.score == a.prediction.score
    assert rec.features == a.enriched.features
    assert rec.outcome is None
    assert rec.policy_version is None
    assert rec.hop_ms == pytest.approx({"enrich": 4.0, "score": 10.0})
    assert first[0].marker.recorded == ("transaction", "prediction")
    table.advance(T0 + ms(525) + TIMEOUT)
    # a join that never got its transaction (written before its prediction and decision, so
    # read already): no record that could contradict the transaction's own, the parts go to
    # the DLQ (the state is forgotten)
    (orphan,) = table.expire(now=NOW)
    assert isinstance(orphan, Orphaned)
    assert orphan.state.decision is not None
    assert orphan.state.decision.event == b.decision
    assert b.transaction_id not in table.states
    assert table.pending == 0
    # without an amend window, a missing part that arrives after the record went out is late,
    # never a second record
    late = table.add(arr_a["decision"], now=NOW)
    assert late.outcome is AddOutcome.LATE
    assert late.state is None
    assert late.finished is None
    assert table.add(arr_a["prediction"], now=NOW).outcome is AddOutcome.DUPLICATE


def test_duplicates_of_a_part_are_ignored() -> None:
    parts = _parts(1)[0]
    arrivals = _arrivals(parts)
    table = _table()
    table.add(arrivals["prediction"], now=NOW)
    again = table.add(arrivals["prediction"], now=NOW)
    assert again.outcome is AddOutcome.DUPLICATE
    assert again.state is None
    table.add(arrivals["transaction"], now=NOW)
    assert table.add(arrivals["transaction"], now=NOW).outcome is AddOutcome.DUPLICATE
    done = table.add(arrivals["decision"], now=NOW)
    assert done.outcome is AddOutcome.COMPLETED
    for name in ("transaction", "prediction", "decision"):
        dup = table.add(arrivals[name], now=NOW)
        assert dup.outcome is AddOutcome.DUPLICATE
        assert dup.finished is None


def test_state_record_round_trip_and_restore() -> None:
    a, b, c = _parts(3)
    table = _table()
    changelog: list[tuple[str, bytes | None]] = []

    def write(state: JoinState | None, txid: str) -> None:
        if state is None:
            changelog.append((txid, None))
        else:
            msg = encode(state, source="scorestream/audit")
            assert msg.key == txid.encode()
            stored = JoinStateCodec().encode(state)  # the changelog's codec
            assert json.loads(stored) == json.loads(state.model_dump_json())
            assert JoinStateCodec().decode(stored) == state
            changelog.append((txid, msg.value))

    for arrival in (_arrivals(a)["transaction"], _arrivals(a)["prediction"]):
        write(table.add(arrival, now=NOW).state, a.transaction_id)
    arr_b = _arrivals(b, base=T0 + ms(100))
    for arrival in arr_b.values():
        write(table.add(arrival, now=NOW).state, b.transaction_id)
    write(table.add(_arrivals(c)["decision"], now=NOW).state, c.transaction_id)

    # every state record survives JSON and the CloudEvents codec unchanged
    for txid, value in changelog:
        assert value is not None
        state = JoinState.model_validate_json(value)
        assert state == table.states[txid] or state.status == "pending"
        env = decode(
            RawRecord(
                key=txid.encode(),
                value=value,
                headers=list(encode(state, source="scorestream/audit").headers),
            ),
            accept=[JoinState],
        )
        assert env.event == state

    def rebuilt() -> JoinTable:
        entries: list[JoinState | str] = [
            JoinState.model_validate_json(v) if v is not None else k for k, v in changelog
        ]
        return restore(entries, _table(retention=timedelta(seconds=1)))

    restored = rebuilt()
    assert restored.states == table.states
    assert restored.clock is None  # re-established from what is read next, never restored
    # the restored table carries on: a completes, b is a done marker, c times out
    done = restored.add(_arrivals(a)["decision"], now=NOW)
    assert done.outcome is AddOutcome.COMPLETED
    assert restored.add(arr_b["prediction"], now=NOW).outcome is AddOutcome.DUPLICATE
    restored.advance(T0 + TIMEOUT + ms(30))
    expired = restored.expire(now=NOW)
    assert [type(f) for f in expired] == [Orphaned]  # c never got its transaction
    assert [f.state.transaction_id for f in expired if isinstance(f, Orphaned)] == [
        c.transaction_id
    ]
    changelog.append((c.transaction_id, None))  # the service writes its tombstone
    # done markers are forgotten after the retention: tombstones in the changelog
    restored.advance(T0 + TIMEOUT + timedelta(seconds=2))
    forgotten = restored.purge()
    assert sorted(forgotten) == sorted([a.transaction_id, b.transaction_id])
    assert len(restored) == 0
    changelog.extend((txid, None) for txid in forgotten)
    assert len(rebuilt()) == 0


def test_rollback_undoes_an_aborted_batch() -> None:
    a, b = _parts(2)
    table = _table()
    table.add(_arrivals(a)["transaction"], now=NOW)
    before = dict(table.states)
    clock = table.clock

    table.begin()
    assert table.add(_arrivals(a)["prediction"], now=NOW).outcome is AddOutcome.JOINED
    assert table.add(_arrivals(b)["decision"], now=NOW).outcome is AddOutcome.OPENED
    table.advance(T0 + TIMEOUT + ms(100))
    assert len(table.expire(now=NOW)) == 2
    table.rollback()
    assert table.states == before
    assert table.clock == clock

    # the batch is delivered again: the same outcomes, and the timeout still fires
    table.begin()
    assert table.add(_arrivals(a)["prediction"], now=NOW).outcome is AddOutcome.JOINED
    table.commit()
    table.advance(T0 + TIMEOUT + ms(100))
    assert [f.record.missing for f in table.expire(now=NOW)] == [("decision",)]


def test_the_watermark_is_the_slowest_input_and_idle_inputs_count_as_now() -> None:
    a, b = _parts(2)
    table = _table()
    arr_a = _arrivals(a)
    table.add(arr_a["transaction"], now=NOW)
    # an input that has unread records and delivered nothing yet holds the clock back
    assert table.watermark([], NOW) is None
    assert table.watermark(["prediction", "decision"], NOW) == T0
    # a topic read far ahead (a backlog after a restart) does not time out the others
    table.add(Arrival.from_envelope(envelope(b.decision, T0 + timedelta(seconds=20))), now=NOW)
    table.add(Arrival.from_envelope(envelope(b.prediction, T0 + timedelta(seconds=20))), now=NOW)
    table.advance_watermark([], NOW)
    assert table.clock == T0
    assert table.expire(now=NOW) == []
    # once the transactions input is caught up too, the wall clock rules
    table.advance_watermark(["transaction"], NOW)
    assert table.clock == T0 + timedelta(seconds=20)
    assert [f.record.transaction_id for f in table.expire(now=NOW)] == [a.transaction_id]
    # ce_time ahead of the wall clock is capped at it
    skewed = Arrival.from_envelope(envelope(b.enriched, NOW + timedelta(hours=1)))
    assert table.add(skewed, now=NOW).outcome is AddOutcome.COMPLETED
    assert table.seen["transaction"] == NOW
    assert table.watermark([], NOW) == T0 + timedelta(seconds=20)


def test_trace_id() -> None:
    assert trace_id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") == (
        "0af7651916cd43dd8448eb211c80319c"
    )
    for bad in (None, "", "garbage", "00-xyz-b7ad6b7169203331-01", f"00-{'0' * 32}-{'1' * 16}-01"):
        assert trace_id(bad) is None


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="timeout"):
        JoinTable(timeout=timedelta(0), retention=timedelta(0))


# -- revisions: a late part completes or amends the record, never contradicts it ----------------
WINDOW = timedelta(minutes=10)
LATER = T0 + timedelta(hours=1)
"""The wall clock of the revision tests: late parts come minutes after ``T0``."""
_REVISION_FIELDS = {"revision", "supersedes", "amends", "status", "missing", "recorded_at"}


def _amending_table() -> JoinTable:
    return JoinTable(timeout=TIMEOUT, retention=timedelta(seconds=60), amend_window=WINDOW)


def _agree(old: AuditRecord, new: AuditRecord) -> None:
    """Every field ``old`` has set, ``new`` has with the same value (hops may only be added)."""
    before = old.model_dump(exclude=_REVISION_FIELDS | {"hop_ms"})
    after = new.model_dump(exclude=_REVISION_FIELDS | {"hop_ms"})
    assert {k: v for k, v in before.items() if v is not None} == {
        k: after[k] for k, v in before.items() if v is not None
    }
    assert old.hop_ms.items() <= new.hop_ms.items()


def _expired(table: JoinTable) -> list[Finished]:
    out = table.expire(now=LATER)
    assert all(isinstance(f, Finished) for f in out)
    return [f for f in out if isinstance(f, Finished)]


def test_a_late_decision_writes_the_next_revision_within_the_amend_window() -> None:
    parts = _parts(1)[0]
    arrivals = _arrivals(parts)
    table = _amending_table()
    table.add(arrivals["transaction"], now=LATER)
    table.add(arrivals["prediction"], now=LATER)
    table.advance(T0 + TIMEOUT + ms(1))  # the decision service is down
    (first,) = _expired(table)
    rec1 = first.record
    assert (rec1.revision, rec1.supersedes, rec1.amends) == (1, None, ())
    assert (rec1.status, rec1.missing) == (AuditStatus.INCOMPLETE, ("decision",))
    marker = first.marker
    assert marker.amendable
    assert marker.revision == 1
    assert marker.prediction is not None  # the parts stay for the next revision
    assert marker.amend_until == T0 + TIMEOUT + ms(1) + WINDOW
    assert table.deadline(marker) == marker.amend_until  # kept past the retention
    # the decision service is back after 8 minutes: its decision completes the record
    late = Arrival.from_envelope(
        envelope(parts.decision, T0 + timedelta(minutes=8), trace=traceparent(7))
    )
    table.advance(T0 + timedelta(minutes=8))
    added = table.add(late, now=LATER)
    assert added.outcome is AddOutcome.COMPLETED
    assert added.finished is not None
    rec2 = added.finished.record
    assert (rec2.revision, rec2.supersedes, rec2.amends) == (2, 1, ("decision",))
    assert (rec2.status, rec2.missing) == (AuditStatus.COMPLETE, ())
    assert rec2.outcome is parts.decision.outcome
    _agree(rec1, rec2)
    assert added.finished.event_time == first.event_time  # same Kafka timestamp as revision 1
    # a complete record is final: its marker is small, further copies are duplicates
    assert added.state is not None
    assert added.state.status == "done"
    assert added.state.revision == 2
    assert (added.state.transaction, added.state.prediction, added.state.decision) == (
        None,
        None,
        None,
    )
    assert not added.state.amendable
    assert table.add(late, now=LATER).outcome is AddOutcome.DUPLICATE


def test_a_worker_outage_amends_once_both_parts_are_in_or_at_the_timeout() -> None:
    a, b = _parts(2)
    table = _amending_table()
    arr_a, arr_b = _arrivals(a), _arrivals(b)
    table.add(arr_a["transaction"], now=LATER)
    table.add(arr_b["transaction"], now=LATER)
    table.advance(T0 + TIMEOUT)
    recs = {f.record.transaction_id: f.record for f in _expired(table)}
    assert {r.missing for r in recs.values()} == {("prediction", "decision")}
    # the worker is back: a's prediction reopens the join, its decision completes it at once
    back = T0 + timedelta(minutes=3)
    pred_a = Arrival.from_envelope(envelope(a.prediction, back))
    assert table.add(pred_a, now=LATER).outcome is AddOutcome.AMENDING
    assert table.pending == 1
    done = table.add(Arrival.from_envelope(envelope(a.decision, back + ms(5))), now=LATER)
    assert done.finished is not None
    rec_a = done.finished.record
    assert (rec_a.revision, rec_a.amends, rec_a.status) == (
        2,
        ("prediction", "decision"),
        AuditStatus.COMPLETE,
    )
    _agree(recs[a.transaction_id], rec_a)
    # b's decision does not come in time: revision 2 at the amendment's timeout, then 3
    assert table.add(Arrival.from_envelope(envelope(b.prediction, back)), now=LATER).outcome is (
        AddOutcome.AMENDING
    )
    table.advance(back + TIMEOUT - ms(1))
    assert _expired(table) == []
    table.advance(back + TIMEOUT)
    (second,) = _expired(table)
    rec2 = second.record
    assert (rec2.revision, rec2.supersedes, rec2.amends, rec2.missing) == (
        2,
        1,
        ("prediction",),
        ("decision",),
    )
    _agree(recs[b.transaction_id], rec2)
    later = back + timedelta(minutes=1)
    table.advance(later)
    third = table.add(Arrival.from_envelope(envelope(b.decision, later)), now=LATER)
    assert third.finished is not None
    rec3 = third.finished.record
    assert (rec3.revision, rec3.supersedes, rec3.amends, rec3.status) == (
        3,
        2,
        ("decision",),
        AuditStatus.COMPLETE,
    )
    _agree(rec2, rec3)
    _agree(recs[b.transaction_id], rec3)
    assert latest_revisions([recs[b.transaction_id], rec2, rec3]) == [rec3]


def test_past_the_amend_window_a_late_part_is_dead_lettered_never_a_second_record() -> None:
    a, b = _parts(2)
    table = JoinTable(timeout=TIMEOUT, retention=timedelta(seconds=1), amend_window=WINDOW)
    for p in (a, b):
        table.add(_arrivals(p)["transaction"], now=LATER)
        table.add(_arrivals(p)["prediction"], now=LATER)
    table.advance(T0 + TIMEOUT)
    assert len(_expired(table)) == 2
    # a's decision comes after the window, while its marker is still there: late
    after = T0 + TIMEOUT + WINDOW + ms(1)
    late = table.add(Arrival.from_envelope(envelope(a.decision, after)), now=LATER)
    assert late.outcome is AddOutcome.LATE
    assert late.previous is not None
    assert late.previous.revision == 1
    # the markers go at the window's end; b's decision (the 11+ minute outage) then
    # opens a join without its transaction, which times out as an orphan: no record
    table.advance(after)
    assert sorted(table.purge()) == sorted([a.transaction_id, b.transaction_id])
    dec_b = Arrival.from_envelope(envelope(b.decision, after + ms(10)))
    assert table.add(dec_b, now=LATER).outcome is AddOutcome.OPENED
    table.advance(after + ms(10) + TIMEOUT)
    (orphan,) = table.expire(now=LATER)
    assert isinstance(orphan, Orphaned)
    assert orphan.state.decision is not None
    assert orphan.state.decision.event == b.decision
    assert len(table) == 0


def test_a_reused_transaction_id_is_a_conflict_and_copies_are_duplicates() -> None:
    a, other = _parts(2)
    tx = a.enriched.transaction
    reused_tx = other.enriched.transaction.model_copy(
        update={"transaction_id": tx.transaction_id, "account_id": tx.account_id}
    )
    reused = parts_for(
        other.enriched.model_copy(update={"transaction": reused_tx}), score=0.97, at=T0
    )
    table = _table()
    arr = _arrivals(a)
    table.add(arr["transaction"], now=LATER)
    # pending: a different transaction with the same id is a conflict, a copy a duplicate
    clash = Arrival.from_envelope(envelope(reused.enriched, T0 + ms(3)))
    assert table.add(clash, now=LATER).outcome is AddOutcome.CONFLICT
    # the same transaction enriched again (other features, other enriched_at): the same part
    again = a.enriched.model_copy(update={"enriched_at": T0 + ms(1)})
    assert table.add(Arrival.from_envelope(envelope(again, T0)), now=LATER).outcome is (
        AddOutcome.DUPLICATE
    )
    table.add(arr["prediction"], now=LATER)
    table.add(arr["decision"], now=LATER)
    # done: the reused id's prediction and decision are conflicts too, copies duplicates
    for part in (reused.prediction, reused.decision):
        got = table.add(Arrival.from_envelope(envelope(part, T0 + ms(40))), now=LATER)
        assert got.outcome is AddOutcome.CONFLICT
        assert got.previous is not None
        assert got.previous.revision == 1
    rescored = a.prediction.model_copy(update={"predicted_at": T0 + timedelta(seconds=1)})
    assert table.add(Arrival.from_envelope(envelope(rescored, T0)), now=LATER).outcome is (
        AddOutcome.DUPLICATE
    )
    assert table.add(clash, now=LATER).outcome is AddOutcome.CONFLICT
    # the same id under another account (same partition) is another transaction as well
    moved = a.decision.model_copy(update={"account_id": "acc-elsewhere"})
    assert table.add(Arrival.from_envelope(envelope(moved, T0)), now=LATER).outcome is (
        AddOutcome.CONFLICT
    )
    assert part_digest(a.enriched) != part_digest(reused.enriched)


def test_states_written_before_revisions_still_work() -> None:
    """Changelog records of the previous version (no digests, no revision) are read as before."""
    a, b = _parts(2)
    old_done = JoinState(
        transaction_id=a.transaction_id,
        tenant_id="acme",
        account_id=a.enriched.transaction.account_id,
        status="done",
        opened_at=T0,
        recorded=("transaction", "prediction"),
        done_at=T0 + TIMEOUT,
    )
    payload = old_done.model_dump(exclude={"revision", "digests", "amend_until", "amend_from"})
    table = restore([JoinState.model_validate_json(json.dumps(payload, default=str))], _table())
    arr = _arrivals(a)
    assert table.add(arr["prediction"], now=LATER).outcome is AddOutcome.DUPLICATE
    assert table.add(arr["decision"], now=LATER).outcome is AddOutcome.LATE
    # an old pending state: its parts are compared by their bodies
    arr_b = _arrivals(b)
    pending = table.add(arr_b["transaction"], now=LATER).state
    assert pending is not None
    legacy = pending.model_copy(update={"digests": {}})
    table.load(legacy)
    assert table.add(arr_b["transaction"], now=LATER).outcome is AddOutcome.DUPLICATE


def test_amendable_markers_survive_the_changelog() -> None:
    parts = _parts(1)[0]
    table = _amending_table()
    raw = RawRecord(key=b"k", value=b"v", topic="acme.predictions", partition=3, offset=42)
    env = envelope(parts.prediction, T0 + ms(10))
    env = Envelope(
        event=env.event,
        id=env.id,
        source=env.source,
        time=env.time,
        type=env.type,
        trace=env.trace,
        extensions=env.extensions,
        raw=raw,
    )
    table.add(_arrivals(parts)["transaction"], now=LATER)
    table.add(Arrival.from_envelope(env), now=LATER)
    table.advance(T0 + TIMEOUT)
    (first,) = _expired(table)
    marker = first.marker
    again = JoinState.model_validate_json(encode(marker, source="scorestream/audit").value or b"")
    assert again == marker
    assert again.prediction is not None
    assert again.prediction.origin == ("acme.predictions", 3, 42)
    assert again.prediction.event_id == env.id
    restored = restore([again], _amending_table())
    late = Arrival.from_envelope(envelope(parts.decision, T0 + timedelta(minutes=1)))
    assert restored.add(late, now=LATER).outcome is AddOutcome.COMPLETED


def test_latest_revisions() -> None:
    base = AuditRecord(
        transaction_id="t-1",
        tenant_id="acme",
        account_id="acc-1",
        status=AuditStatus.INCOMPLETE,
        missing=("decision",),
        recorded_at=NOW,
    )
    rev2 = base.model_copy(
        update={"revision": 2, "supersedes": 1, "status": AuditStatus.COMPLETE, "missing": ()}
    )
    other = base.model_copy(update={"transaction_id": "t-2"})
    same_id_other_account = base.model_copy(update={"account_id": "acc-2"})
    assert latest_revisions([base, other, rev2, same_id_other_account]) == [
        rev2,
        other,
        same_id_other_account,
    ]
    assert latest_revisions([rev2, base]) == [rev2]  # never back to an older revision
    # records written before revisions existed read as revision 1
    legacy = AuditRecord.model_validate_json(
        base.model_dump_json(exclude={"revision", "supersedes", "amends"})
    )
    assert (legacy.revision, legacy.supersedes, legacy.amends) == (1, None, ())
