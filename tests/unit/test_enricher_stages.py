"""The enricher's pure stages: decode/DLQ decisions, the account and merchant stages over their
JSON state (as the Quix stores keep it), and the output record's bytes and headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np

from consumers.enricher_stages import (
    Outgoing,
    Record,
    account_stage,
    dead_letter,
    decode_input,
    enriched_output,
    merchant_stage,
    raw_record,
    reorder_stage,
    sampled,
    with_sequence,
)
from schemas import LabelEvent, LabelSource
from schemas.cloudevents import decode, encode
from schemas.events import EnrichedTransaction, TransactionEvent
from scorestream.dlq import DeadLetter
from scorestream.features import FEATURE_SPEC, compute_offline, to_vector
from tests.factories import transaction

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _raw(event: TransactionEvent | LabelEvent, *, key: bytes | None = None, **enc: object):  # type: ignore[no-untyped-def]
    m = encode(event, source="tests", **enc)  # type: ignore[arg-type]
    return raw_record(
        m.key if key is None else key, m.value, m.headers, topic="t.in", partition=2, offset=7
    )


def _label(tx: TransactionEvent, labelled_at: datetime, *, fraud: bool = True) -> LabelEvent:
    return LabelEvent(
        transaction_id=tx.transaction_id,
        tenant_id=tx.tenant_id,
        account_id=tx.account_id,
        merchant_id=tx.merchant_id,
        is_fraud=fraud,
        source=LabelSource.CHARGEBACK,
        transaction_time=tx.timestamp,
        labelled_at=labelled_at,
    )


def _roundtrip(value: object) -> object:
    """What a changelog-backed store or a repartition topic gives back: JSON."""
    return json.loads(json.dumps(value))


def _run(
    events: list[TransactionEvent | LabelEvent], tenant: str
) -> dict[str, EnrichedTransaction]:
    """The topology's order of operations with in-memory stores keyed like Quix's."""
    accounts: dict[str, object] = {}
    merchants: dict[str, dict[str, object]] = {}
    out: dict[str, EnrichedTransaction] = {}
    for event in events:
        rec = decode_input(_raw(event), tenant=tenant, accept=type(event))
        assert isinstance(rec, dict)
        if rec["kind"] == "tx":
            rec, accounts[rec["account"]] = account_stage(rec, accounts.get(rec["account"]))  # type: ignore[arg-type]
        rec = _roundtrip(rec)  # type: ignore[assignment]  # crosses the repartition topic
        m = merchants.setdefault(rec["merchant"], {})
        new, windows, labelled = merchant_stage(rec, m.get("windows"), m.get("labelled"))  # type: ignore[arg-type]
        if windows is not None:  # None: unchanged, not written
            m["windows"] = _roundtrip(windows)
        if labelled is not None:
            m["labelled"] = _roundtrip(labelled)
        if new is not None:
            msg = enriched_output(new)
            env = decode(
                raw_record(msg.key, msg.value, msg.headers, topic="o", partition=0, offset=0),
                [EnrichedTransaction],
            )
            out[env.event.transaction.transaction_id] = env.event
    return out


def test_stages_equal_the_offline_path() -> None:
    from producers.generator import generate_transactions  # noqa: PLC0415

    txs = list(generate_transactions(400, tenant="acme", seed=3, accounts=12, merchants=5))
    txs.sort(key=lambda t: t.timestamp)
    delay = (txs[-1].timestamp - txs[0].timestamp) / 40  # labels known a while later
    frauds = [_label(t, t.timestamp + delay) for t in txs[::17]]
    # labels published when they became known, transactions in event time
    timeline: list[tuple[datetime, TransactionEvent | LabelEvent]] = [
        (t.timestamp, t) for t in txs
    ] + [(lbl.labelled_at - timedelta(microseconds=1), lbl) for lbl in frauds]
    timeline.sort(key=lambda p: p[0])
    got = _run([e for _, e in timeline], "acme")
    offline = compute_offline(txs, frauds)
    live = np.array([to_vector(got[t.transaction_id].features) for t in txs], dtype=np.float32)
    assert np.array_equal(live, offline)
    assert live[:, FEATURE_SPEC.names.index("merchant_frauds_7d")].max() > 0


def test_a_redelivered_label_counts_once() -> None:
    tx0 = transaction(transaction_id="a", timestamp=T0, merchant_id="m", account_id="x")
    label = _label(tx0, T0 + timedelta(hours=1))
    rec = decode_input(_raw(label), tenant=tx0.tenant_id, accept=LabelEvent)
    assert isinstance(rec, dict)
    _, windows, seen = merchant_stage(rec, None, None)
    assert windows is not None
    assert windows["fraud_ts"] == [T0.timestamp()]
    assert seen == {"a": T0.timestamp()}
    assert merchant_stage(rec, windows, seen) == (None, None, None)  # counted once, no write
    not_fraud = decode_input(
        _raw(_label(tx0, T0, fraud=False)), tenant=tx0.tenant_id, accept=LabelEvent
    )
    assert merchant_stage(not_fraud, None, None) == (None, None, None)  # type: ignore[arg-type]


def test_labelled_ids_are_forgotten_beyond_the_largest_window() -> None:
    old = transaction(transaction_id="old", timestamp=T0, merchant_id="m")
    rec = decode_input(_raw(_label(old, T0)), tenant=old.tenant_id, accept=LabelEvent)
    _, windows, seen = merchant_stage(rec, None, None)  # type: ignore[arg-type]
    later = transaction(transaction_id="new", timestamp=T0 + timedelta(days=31), merchant_id="m")
    tx_rec = decode_input(_raw(later), tenant=later.tenant_id, accept=TransactionEvent)
    tx_rec, _ = account_stage(tx_rec, None)  # type: ignore[arg-type]
    out, windows, seen = merchant_stage(tx_rec, windows, seen)
    assert seen == {}
    assert windows["fraud_ts"] == []
    assert out is not None
    assert out["mer"]["merchant_frauds_30d"] == 0.0


def test_decode_refuses_with_reasons_and_keeps_the_raw_record() -> None:
    tx = transaction(tenant_id="acme", account_id="acc-1")
    garbage = raw_record(b"k", b"{", [("ce_type", b"x")], topic="t", partition=0, offset=1)
    bad = decode_input(garbage, tenant="acme", accept=TransactionEvent)
    assert isinstance(bad, DeadLetter)
    assert bad.reason == "missing_header"
    foreign = decode_input(_raw(tx), tenant="other", accept=TransactionEvent)
    assert isinstance(foreign, DeadLetter)
    assert foreign.reason == "unknown_tenant"
    mis_keyed = decode_input(_raw(tx, key=b"acc-2"), tenant="acme", accept=TransactionEvent)
    assert isinstance(mis_keyed, DeadLetter)
    assert mis_keyed.reason == "key_mismatch"
    wrong_type = decode_input(_raw(tx), tenant="acme", accept=LabelEvent)
    assert isinstance(wrong_type, DeadLetter)
    assert wrong_type.reason != "key_mismatch"
    out = dead_letter(mis_keyed, "enricher")
    assert (out.key, out.value) == (b"acc-2", mis_keyed.raw.value)
    headers = dict(out.headers)
    assert headers["dlq.reason"] == "key_mismatch"
    assert headers["dlq.source.offset"] == "7"
    assert headers["ce_type"] == b"scorestream.transaction.v1"  # original headers kept


def test_output_is_a_cloudevent_keyed_by_account_with_trace_and_ingest_time() -> None:
    tx = transaction(tenant_id="acme", account_id="acc-9")
    sent_at = datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC)
    trace = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "tracestate": "k=v"}
    raw = _raw(tx, time=sent_at, trace=trace, extensions={"replyto": "acme.replies"})
    rec = decode_input(raw, tenant="acme", accept=TransactionEvent)
    assert isinstance(rec, dict)
    rec, _ = account_stage(rec, None)
    merchant_rec, _, _ = merchant_stage(_roundtrip(rec), None, None)  # type: ignore[arg-type]
    assert merchant_rec is not None
    out = enriched_output(merchant_rec)
    assert isinstance(out, Outgoing)
    assert out.key == b"acc-9"
    env = decode(raw_record(out.key, out.value, out.headers, topic="o", partition=0, offset=0))
    assert env.source == "scorestream/enricher"
    assert env.trace == trace
    assert env.extensions == {"replyto": "acme.replies", "ingesttime": sent_at.isoformat()}
    event = env.event
    assert isinstance(event, EnrichedTransaction)
    assert event.transaction == tx
    assert list(event.features) == list(FEATURE_SPEC.names)
    assert event.feature_spec_hash == FEATURE_SPEC.hash


def test_stage_records_and_states_are_json() -> None:
    tx = transaction(tenant_id="acme", account_id="acc-1")
    rec: Record | DeadLetter = decode_input(_raw(tx), tenant="acme", accept=TransactionEvent)
    assert isinstance(rec, dict)
    rec, acc_state = account_stage(rec, None)
    assert _roundtrip(rec) == rec
    assert _roundtrip(acc_state) == acc_state
    out, mer_state, _ = merchant_stage(rec, None, None)
    assert _roundtrip(out) == out
    assert _roundtrip(mer_state) == mer_state


def _numbered(n: int) -> list[Record]:
    """n transactions of one account numbered by stage 1, as the account stage emits them."""
    out: list[Record] = []
    nxt: int | None = None
    for i in range(n):
        rec, nxt = with_sequence({"kind": "tx", "account": "a1", "i": i}, nxt)
        out.append(rec)
    assert nxt == n
    return out


def _reorder_all(records: list[Record]) -> tuple[list[Record], int | None, dict[str, Record]]:
    """Feed records through the reorder stage as the Quix store would hold its state."""
    expected: int | None = None
    pending: dict[str, Record] = {}
    emitted: list[Record] = []
    for rec in records:
        out, nxt, held = reorder_stage(rec, expected, pending or None)
        emitted += out
        expected = nxt if nxt is not None else expected
        pending = held if held is not None else pending
    return emitted, expected, pending


def test_reorder_stage_emits_out_of_order_input_in_seq_order_and_empties_its_buffer() -> None:
    records = _numbered(8)
    shuffled = [records[i] for i in (2, 0, 1, 5, 3, 7, 4, 6)]
    emitted, expected, pending = _reorder_all(shuffled)
    assert [r["i"] for r in emitted] == list(range(8))
    assert expected == 8
    assert pending == {}
    # held back until the gap closes: record 2 first, nothing out until 0 arrives
    out, nxt, held = reorder_stage(records[2], None, None)
    assert (out, nxt) == ([], None)
    assert held == {"2": records[2]}
    out, nxt, held = reorder_stage(records[0], None, held)
    assert [r["i"] for r in out] == [0]
    assert (nxt, held) == (1, None)  # pending unchanged: no store write


def test_reorder_stage_never_emits_a_seq_twice() -> None:
    records = _numbered(4)
    # a redelivered seq (already emitted, or already held) is dropped, never emitted again
    emitted, expected, pending = _reorder_all(
        [records[0], records[0], records[2], records[2], records[1], records[1], records[3]]
    )
    assert [r["i"] for r in emitted] == [0, 1, 2, 3]
    assert (expected, pending) == (4, {})


def test_reorder_stage_passes_unnumbered_records_through() -> None:
    # written before numbering existed and still in flight: no seq, no waiting
    out, nxt, held = reorder_stage({"kind": "tx", "account": "a1"}, 3, {"5": {"seq": 5}})
    assert out == [{"kind": "tx", "account": "a1"}]
    assert (nxt, held) == (None, None)


def test_dead_letters_get_no_sequence_number() -> None:
    """Stage 1 numbers only decoded transactions, so the reorder stage never waits for a
    number a dead letter took: a garbage record between two good ones leaves no gap."""
    tx = transaction(account_id="a1", timestamp=T0)
    bad = decode_input(
        raw_record(b"a1", b"{not json", [], topic="t.in", partition=0, offset=1),
        tenant=tx.tenant_id,
        accept=TransactionEvent,
    )
    assert isinstance(bad, DeadLetter)
    good = decode_input(_raw(tx), tenant=tx.tenant_id, accept=TransactionEvent)
    assert not isinstance(good, DeadLetter)
    first, nxt = with_sequence(good, None)
    second, nxt = with_sequence(good, nxt)
    assert (first["seq"], second["seq"], nxt) == (0, 1, 2)
    emitted, expected, pending = _reorder_all([second, first])
    assert [r["seq"] for r in emitted] == [0, 1]
    assert (expected, pending) == (2, {})


def test_sampled_skips_only_traces_whose_sampled_flag_is_off() -> None:
    tid, sid = "ab" * 16, "cd" * 8
    assert sampled({"traceparent": f"00-{tid}-{sid}-01"})
    assert not sampled({"traceparent": f"00-{tid}-{sid}-00"})
    assert sampled({})  # no context: a new trace, the sampler decides
    assert sampled(None)
