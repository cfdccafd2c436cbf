"""The audit join, without Kafka: arrival orders, timeouts, duplicates, state round trips."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from consumers.audit_join import (
    INGEST_TIME,
    AddOutcome,
    Arrival,
    JoinState,
    JoinTable,
    restore,
    trace_id,
)
from producers.generator import generate_transactions
from schemas.cloudevents import decode, encode
from schemas.errors import RawRecord
from schemas.events import AuditStatus
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
    second = table.expire(now=NOW)
    rec_b = second[0].record
    assert rec_b.missing == ("transaction", "prediction")
    assert rec_b.transaction is None
    assert rec_b.features is None
    assert rec_b.outcome is b.decision.outcome
    assert rec_b.model_version == "1"  # from the decision
    assert rec_b.score == b.decision.score
    assert second[0].event_time == b.enriched.transaction.timestamp  # decision.event_time
    assert table.pending == 0
    # a missing part that arrives after the record went out is late, never a second record
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
    assert [(f.record.transaction_id, f.record.missing) for f in expired] == [
        (c.transaction_id, ("transaction", "prediction"))
    ]
    # done markers are forgotten after the retention: tombstones in the changelog
    restored.advance(T0 + TIMEOUT + timedelta(seconds=2))
    forgotten = restored.purge()
    assert sorted(forgotten) == sorted([a.transaction_id, b.transaction_id, c.transaction_id])
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
