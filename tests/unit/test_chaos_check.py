"""The chaos run's invariants on hand-made records: the merchant stage's activity and table, the
DLQ expectation and the order check (no stage may reorder an account's records any more).

The CI-sized chaos run (tests/chaos) applies the same checks to what real processes wrote.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from confluent_kafka import Message

from consumers.enricher import CLOCK_KEY
from schemas.cloudevents import encode
from schemas.events import AuditRecord, AuditStatus, MerchantActivity
from scorestream.chaos import check as chaos_check
from scorestream.chaos.check import Inputs, StreamCheck, TableCheck, Verdict
from scorestream.features import ENGINE, MerchantState, id_hash

STEP = ENGINE.step_ms
T0 = 1_780_000_000_000 // STEP * STEP  # a step boundary


def _inputs() -> Inputs:
    inputs = Inputs()
    for i, (merchant, t) in enumerate(
        [("m1", T0), ("m1", T0 + 10), ("m1", T0 + STEP), ("m2", T0 + 5), ("m2", T0 + 2 * STEP)]
    ):
        txid = f"tx-{i}"
        inputs.order[txid] = (f"acct-{i % 2}", i)
        inputs.merchants[txid] = (merchant, t)
    inputs.frauds["tx-1"] = ("m1", T0 + 10)
    return inputs


def _state(inputs: Inputs, merchant: str, skip: str | None = None) -> MerchantState:
    state = MerchantState()
    for txid, (m, t) in inputs.merchants.items():
        if m == merchant and txid != skip:
            state.observe_transaction(t, id_hash(txid), STEP, ENGINE.merchant_max_ids)
    for txid, (m, t) in inputs.frauds.items():
        if m == merchant:
            state.observe_fraud(t, t + 1000, id_hash(txid), STEP)
    return state


def _record(partition: int, offset: int, key: str, value: bytes | None) -> Message:
    return Message(
        topic="t.merchant-features",
        partition=partition,
        offset=offset,
        key=key.encode(),
        value=value,
    )


def _table(
    inputs: Inputs, states: dict[str, MerchantState], clocks: dict[int, int]
) -> list[Message]:
    out = [_record(0, i, m, s.to_bytes()) for i, (m, s) in enumerate(states.items())]
    out += [_record(p, 100 + p, CLOCK_KEY, str(c).encode()) for p, c in clocks.items()]
    return out


def test_a_table_with_every_transaction_and_fraud_once_passes() -> None:
    inputs = _inputs()
    states = {m: _state(inputs, m) for m in ("m1", "m2")}
    table = chaos_check._merchant_table(_table(inputs, states, {0: T0, 1: T0}), inputs, 2)
    assert table == TableCheck(merchants=2, wrong=0, partitions=2, clocks=2)
    assert table.ok


def test_a_lost_transaction_a_missing_merchant_or_an_unclocked_partition_fails() -> None:
    inputs = _inputs()
    states = {"m1": _state(inputs, "m1", skip="tx-2")}
    table = chaos_check._merchant_table(_table(inputs, states, {0: T0}), inputs, 2)
    assert table.wrong == 2
    assert table.examples == {
        "m1": "2 transactions counted, 3 sent",
        "m2": "no snapshot in the table",
    }
    assert table.clocks == 1
    assert not table.ok


def test_a_later_snapshot_wins_and_a_lost_fraud_fails() -> None:
    inputs = _inputs()
    good = _state(inputs, "m1")
    without_fraud = _state(replace(inputs, frauds={}), "m1")
    messages = [_record(0, 0, "m1", good.to_bytes()), _record(0, 1, "m1", without_fraud.to_bytes())]
    messages += _table(inputs, {"m2": _state(inputs, "m2")}, {0: T0, 1: T0})
    table = chaos_check._merchant_table(messages, inputs, 2)
    assert table.examples == {"m1": "0 frauds counted, 1 labelled"}


def test_tiles_the_stage_pruned_behind_its_horizon_are_not_compared() -> None:
    inputs = _inputs()
    states = {m: _state(inputs, m) for m in ("m1", "m2")}
    clock = T0 + (ENGINE.merchant_horizon_steps + 1) * STEP  # the first tile is behind the horizon
    for state in states.values():
        state.prune(clock // STEP - ENGINE.merchant_horizon_steps)
    assert sum(states["m1"].tiles.values()) == 1
    table = chaos_check._merchant_table(_table(inputs, states, {0: clock, 1: clock}), inputs, 2)
    assert table.ok, table


def _activity(offset: int, kind: str, txid: str | None) -> Message:
    event = MerchantActivity.model_validate(
        {
            "kind": kind,
            "tenant_id": "t",
            "merchant_id": None if txid is None else "m1",
            "transaction_id": txid,
            "event_ms": None if txid is None else T0,
        }
    )
    msg = encode(event, source="tests")
    return Message(
        topic="t.merchant-activity",
        partition=0,
        offset=offset,
        key=b"m1",
        value=msg.value,
        headers=list(msg.headers),
    )


def test_merchant_activity_is_every_transaction_and_fraud_label_once() -> None:
    inputs = _inputs()
    messages = [_activity(i, "transaction", t) for i, t in enumerate(inputs.order)]
    messages += [_activity(50, "fraud", "tx-1"), _activity(51, "watermark", None)]
    check = chaos_check._check_activity(messages, inputs)
    assert (check.records, check.lost, check.duplicated, check.unexpected) == (6, 0, 0, 0)

    twice = chaos_check._check_activity([*messages, _activity(60, "transaction", "tx-3")], inputs)
    assert twice.duplicated == 1
    assert list(twice.duplicates) == ["transaction tx-3"]
    assert chaos_check._check_activity(messages[:-2], inputs).lost == 1  # the fraud label
    stranger = chaos_check._check_activity([*messages, _activity(61, "fraud", "tx-0")], inputs)
    assert stranger.unexpected == 1


def test_each_bad_record_is_expected_once_per_service_consuming_the_transactions() -> None:
    assert set(chaos_check.DLQ_SERVICES) == {"enricher", "merchant"}


def _verdict(**streams: StreamCheck) -> Verdict:
    return Verdict(
        streams=streams,
        dlq_records=0,
        dlq_expected=0,
        dlq_unexpected=[],
        dlq_missing=[],
        dlq_duplicated=[],
        dlq_without_reason=0,
        dlq_reasons={},
        incomplete_audit=0,
        versions={},
        merchant_table=TableCheck(merchants=1, wrong=0, partitions=6, clocks=6),
    )


def test_the_enricher_must_keep_each_accounts_order_now() -> None:
    """One hop on the account's own partition: no stage is allowed to reorder any more."""
    clean = StreamCheck(records=5, lost=0, duplicated=0, unexpected=0, reorderings=0, undecodable=0)
    verdict = _verdict(**{"transactions.enriched": replace(clean, reorderings=2), "audit": clean})
    assert verdict.reorderings == 2
    assert verdict.failures() == ["transactions.enriched: 2 reorderings"]
    assert _verdict(audit=clean).failures() == []
    unclocked = replace(
        _verdict(audit=clean), merchant_table=TableCheck(1, 0, partitions=6, clocks=5)
    )
    assert unclocked.failures() == ["merchant table: 5 of 6 partitions clocked"]


def test_an_amended_audit_record_counts_once_by_its_latest_revision() -> None:
    inputs = _inputs()
    now = datetime(2026, 12, 5, tzinfo=UTC)

    def rec(txid: str, revision: int = 1) -> AuditRecord:
        return AuditRecord(
            transaction_id=txid,
            tenant_id="acme",
            account_id=inputs.order[txid][0],
            status=AuditStatus.COMPLETE if revision > 1 else AuditStatus.INCOMPLETE,
            missing=() if revision > 1 else ("decision",),
            recorded_at=now,
            revision=revision,
            supersedes=revision - 1 or None,
        )

    reads = [chaos_check.Read(0, i, f"e{i}", rec(t)) for i, t in enumerate(inputs.order)]
    reads.append(chaos_check.Read(0, 99, "e99", rec("tx-2", revision=2)))
    latest = chaos_check.latest_audit(reads)
    assert [r.offset for r in latest] == [0, 1, 3, 4, 99]
    order = {t: i for i, t in enumerate(inputs.order)}
    check = chaos_check._check_stream(latest, 0, inputs, order)
    assert (check.lost, check.duplicated) == (0, 0)
    # without the filter the revision would count as a duplicate
    assert chaos_check._check_stream(reads, 0, inputs, order).duplicated == 1
