"""The feature engine by hand: transforms, account tiles, dedupe, merchant as-of evaluation, state
round trips, and the offline path equal to the incremental one over a simulated history.

Account windows are tiled: a window of ``w`` with hop ``h`` covers the tiles after the one
holding ``t - w`` up to the one holding ``t`` (between ``w - h`` and ``w`` back), the transaction
included. Merchant aggregates are as of a step-aligned ``as_of``: transactions in
``[as_of - w, as_of)``, frauds of those whose label was known before ``as_of``.
"""

from __future__ import annotations

import hashlib
import math
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
import yaml

from consumers.enricher import AccountCodec
from producers.simulator import SimulatorConfig, simulate
from schemas.events import Channel, LabelEvent, LabelSource, TransactionEvent
from scorestream.features import (
    ENGINE,
    MCC_BUCKET_NAMES,
    AccountState,
    Engine,
    MerchantState,
    compute_offline,
    id_hash,
    mcc_bucket,
    parse_spec,
    to_vector,
)
from scorestream.features.spec import DEFAULT_SPEC_PATH
from tests.factories import transaction

MIN = 60_000
HOUR = 60 * MIN
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
"""A Monday noon: aligned to every hop and step used here."""

SPEC = """
name: small
version: 1
account: {dedupe_horizon: 1d, dedupe_max_ids: 3}
merchant: {step: 1h, retain: 2h, dedupe_max_ids: 4}
features:
  - {name: amount, transform: amount}
  - {name: n_1h, entity: account, aggregate: count, window: 1h, hop: 15m}
  - {name: sum_1h, entity: account, aggregate: sum_amount, window: 1h, hop: 15m}
  - {name: mean_1h, entity: account, aggregate: mean_amount, window: 1h, hop: 15m}
  - {name: ratio_1h, entity: account, aggregate: amount_ratio, window: 1h, hop: 15m}
  - {name: n_30m, entity: account, aggregate: count, window: 30m, hop: 15m}
  - {name: n_1d, entity: account, aggregate: count, window: 1d, hop: 1h}
  - {name: ecom_mean_1d, entity: account, aggregate: mean_amount, window: 1d, hop: 1h,
     where: {channel: ecommerce}}
  - {name: m_count_2h, entity: merchant, aggregate: count, window: 2h}
  - {name: m_frauds_2h, entity: merchant, aggregate: fraud_count, window: 2h}
  - {name: m_rate_2h, entity: merchant, aggregate: fraud_rate, window: 2h}
  - {name: m_count_1h, entity: merchant, aggregate: count, window: 1h}
  - {name: m_frauds_1d, entity: merchant, aggregate: fraud_count, window: 1d}
"""


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(parse_spec(yaml.safe_load(SPEC)))


def tx(n: int | str, at: datetime, *, amount: int = 10_00, **kw: Any) -> TransactionEvent:
    fields: dict[str, Any] = {
        "transaction_id": f"tx-{n}",
        "timestamp": at,
        "account_id": "acc-1",
        "merchant_id": "mer-1",
        "amount_minor": amount,
    }
    return transaction(**(fields | kw))


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def run(engine: Engine, state: AccountState, *txs: TransactionEvent) -> list[dict[str, float]]:
    return [engine.account_values(state, t)[0] for t in txs]


# -- transforms ------------------------------------------------------------------------------------
def test_transforms_of_the_packaged_spec() -> None:
    saturday_night = datetime(2026, 11, 7, 23, 30, tzinfo=UTC)
    t = tx(1, saturday_night, amount=123_45, channel=Channel.ATM, mcc="6011", country="DE")
    f = ENGINE.transform_values(t)
    assert f["amount"] == 123.45
    assert f["log_amount"] == pytest.approx(math.log1p(123.45))
    assert f["hour"] == 23.5
    assert (f["is_night"], f["is_weekend"]) == (1.0, 1.0)
    assert f["channel_atm"] == 1.0
    assert f["channel_ecommerce"] == f["channel_card_present"] == 0.0
    assert MCC_BUCKET_NAMES[int(f["mcc_bucket"])] == "cash"
    assert f["cross_border"] == 1.0  # a French card in Germany (the factory's card_country)


@pytest.mark.parametrize(
    ("hour", "minute", "night"),
    [(5, 59, 1.0), (6, 0, 0.0), (21, 59, 0.0), (22, 0, 1.0), (0, 0, 1.0), (12, 0, 0.0)],
)
def test_is_night_boundaries(hour: int, minute: int, night: float) -> None:
    at = datetime(2026, 11, 3, hour, minute, tzinfo=UTC)
    assert ENGINE.transform_values(tx(1, at))["is_night"] == night


def test_transforms_use_utc_whatever_offset_the_event_was_written_with() -> None:
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    assert plus_two.hour == 14
    assert ENGINE.transform_values(tx(1, plus_two))["hour"] == 12.0


def test_cross_border_needs_a_card_country_that_differs() -> None:
    same = tx(1, T0, country="DE", card_country="DE")
    unknown = tx(2, T0, country="DE", card_country=None)
    assert ENGINE.transform_values(same)["cross_border"] == 0.0
    assert ENGINE.transform_values(unknown)["cross_border"] == 0.0


@pytest.mark.parametrize(
    ("mcc", "bucket"),
    [
        ("5411", "grocery"),
        ("5499", "grocery"),
        ("5421", "other"),
        ("5812", "restaurant"),
        ("3000", "travel"),
        ("7012", "travel"),
        ("5542", "fuel"),
        ("6012", "cash"),
        ("5817", "electronics_digital"),
        ("7995", "gambling"),
        ("5999", "retail"),
        ("0001", "other"),
    ],
)
def test_mcc_buckets(mcc: str, bucket: str) -> None:
    assert MCC_BUCKET_NAMES[mcc_bucket(mcc)] == bucket


# -- account windows -------------------------------------------------------------------------------
def test_the_transaction_is_in_its_own_windows(engine: Engine) -> None:
    (f,) = run(engine, engine.new_account(), tx(1, T0, amount=25_00))
    assert (f["n_1h"], f["sum_1h"], f["mean_1h"], f["ratio_1h"], f["n_1d"]) == (1, 25, 25, 1, 1)


def test_window_edges_at_the_start_of_a_tile(engine: Engine) -> None:
    """At a tile's start the 1h window reaches back only 45 min (w - hop)."""
    state = engine.new_account()
    now = T0 + timedelta(hours=2)
    history = [
        tx("1h-ago", now - timedelta(hours=1)),
        tx("59m59s-ago", now - timedelta(minutes=59, seconds=59)),
        tx("45m-ago", now - timedelta(minutes=45)),
    ]
    run(engine, state, *history)
    (f,) = run(engine, state, tx("now", now))
    assert f["n_1h"] == 2  # 45 min ago and now
    assert f["n_30m"] == 1


def test_window_edges_at_the_end_of_a_tile(engine: Engine) -> None:
    """At a tile's last second the 1h window reaches back 1h minus a second (w)."""
    state = engine.new_account()
    now = T0 + timedelta(hours=2, minutes=14, seconds=59)
    history = [
        tx("1h-ago", now - timedelta(hours=1)),  # T0 + 1:14:59, in the tile of 1:00
        tx("59m59s-ago", now - timedelta(minutes=59, seconds=59)),  # T0 + 1:15:00
        tx("30m-ago", now - timedelta(minutes=30)),  # T0 + 1:44:59
    ]
    run(engine, state, *history)
    (f,) = run(engine, state, tx("now", now))
    assert f["n_1h"] == 3
    assert f["n_30m"] == 1  # 30 min ago (1:44:59) is in the tile of 1:30: out of 1:45-2:15


def test_mean_ratio_and_sum(engine: Engine) -> None:
    state = engine.new_account()
    a, b, c = run(
        engine,
        state,
        tx(1, T0, amount=10_00),
        tx(2, T0 + timedelta(minutes=10), amount=30_00),
        tx(3, T0 + timedelta(minutes=20), amount=80_00),
    )
    assert (a["mean_1h"], a["ratio_1h"]) == (10.0, 1.0)
    assert (b["sum_1h"], b["mean_1h"], b["ratio_1h"]) == (40.0, 20.0, 1.5)
    assert (c["sum_1h"], c["mean_1h"], c["ratio_1h"]) == (120.0, 40.0, 2.0)


def test_sums_are_exact_integers_whatever_the_order(engine: Engine) -> None:
    """0.10 + 0.20 in floats is 0.30000000000000004; in minor units it is 0.3."""
    amounts = [10, 20, 30, 1, 7, 99_99, 3]
    results = set()
    for seed in range(5):
        order = amounts[:]
        random.Random(seed).shuffle(order)
        state = engine.new_account()
        *_, last = run(
            engine,
            state,
            *(tx(i, T0 + timedelta(seconds=i), amount=a) for i, a in enumerate(order)),
        )
        results.add((last["sum_1h"], last["mean_1h"]))
    assert results == {(sum(amounts) / 100, (sum(amounts) / 100) / len(amounts))}
    state = engine.new_account()
    _, f = run(engine, state, tx(1, T0, amount=10), tx(2, T0, amount=20))
    assert f["sum_1h"] == 0.3


def test_filtered_window_excludes_other_channels_and_may_be_empty(engine: Engine) -> None:
    state = engine.new_account()
    shop, web, web2 = run(
        engine,
        state,
        tx(1, T0, amount=5_00, channel=Channel.CARD_PRESENT),
        tx(2, T0 + timedelta(minutes=1), amount=20_00, channel=Channel.ECOMMERCE),
        tx(3, T0 + timedelta(minutes=2), amount=40_00, channel=Channel.ECOMMERCE),
    )
    assert shop["ecom_mean_1d"] == 0.0, "no matching transaction: the mean is 0, not NaN"
    assert web["ecom_mean_1d"] == 20.0
    assert web2["ecom_mean_1d"] == 30.0
    assert web2["n_1d"] == 3


def test_old_tiles_fall_out_and_are_dropped(engine: Engine) -> None:
    state = engine.new_account()
    run(engine, state, *(tx(i, T0 + timedelta(minutes=15 * i)) for i in range(8)))
    (f,) = run(engine, state, tx("later", T0 + timedelta(days=2)))
    assert (f["n_1h"], f["n_1d"]) == (1, 1)
    hops = [g.hop_s for g in engine.groups]
    for tiles, group in zip(state.tiles, engine.groups, strict=True):
        assert len(tiles) <= group.retention_s // group.hop_s, hops


def test_out_of_order_events_count_by_event_time(engine: Engine) -> None:
    state = engine.new_account()
    first, late, after = run(
        engine,
        state,
        tx(1, T0 + timedelta(minutes=40)),
        tx(2, T0 + timedelta(minutes=5)),  # late: its windows end with its own tile
        tx(3, T0 + timedelta(minutes=50)),
    )
    assert first["n_1h"] == 1
    assert late["n_1h"] == 1, "a later transaction is not in an earlier one's window"
    assert after["n_1h"] == 3


def test_windows_after_a_shuffled_burst_equal_those_after_an_ordered_one(
    engine: Engine,
) -> None:
    """Tiles add up whatever the arrival order; only a late transaction's own windows depend on
    what had arrived before it."""
    txs = [tx(i, T0 + timedelta(minutes=7 * i), amount=100 + i) for i in range(12)]
    nxt = tx("next", T0 + timedelta(minutes=7 * 12), amount=500)
    in_order = engine.new_account()
    run(engine, in_order, *txs)
    expected = engine.account_values(in_order, nxt)
    for seed in range(5):
        shuffled = engine.new_account()
        mixed = txs[:]
        random.Random(seed).shuffle(mixed)
        run(engine, shuffled, *mixed)
        assert engine.account_values(shuffled, nxt) == expected


# -- dedupe ----------------------------------------------------------------------------------------
def test_a_republished_transaction_is_counted_once(engine: Engine) -> None:
    state = engine.new_account()
    original = tx(1, T0, amount=10_00)
    f1, d1 = engine.account_values(state, original)
    f2, d2 = engine.account_values(state, original)
    assert (d1, d2) == (False, True)
    assert f2 == f1, "the duplicate reads the windows without counting itself again"
    f3, d3 = engine.account_values(state, tx(2, T0 + timedelta(minutes=1)))
    assert (f3["n_1h"], d3) == (2, False)


def test_dedupe_forgets_ids_older_than_the_horizon(engine: Engine) -> None:
    state = engine.new_account()
    original = tx(1, T0)
    engine.account_values(state, original)
    engine.account_values(state, tx(2, T0 + timedelta(days=1)))  # horizon exactly at T0: kept
    assert engine.account_values(state, original)[1] is True
    engine.account_values(state, tx(3, T0 + timedelta(days=1, seconds=1)))
    assert engine.account_values(state, original)[1] is False, "forgotten, counted again"


def test_dedupe_keeps_the_newest_max_ids(engine: Engine) -> None:
    state = engine.new_account()
    txs = [tx(i, T0 + timedelta(minutes=i)) for i in range(4)]  # dedupe_max_ids: 3
    run(engine, state, *txs)
    assert len(state.ids) == 3
    assert engine.account_values(state, txs[1])[1] is True
    assert engine.account_values(state, txs[0])[1] is False, "the oldest id was dropped"


def test_the_dedupe_key_is_the_transaction_id_hash() -> None:
    assert id_hash("tx-1") == id_hash("tx-1") != id_hash("tx-2")
    assert 0 <= id_hash("tx-1") < 2**48
    assert id_hash("tx-1") == int.from_bytes(
        hashlib.blake2b(b"tx-1", digest_size=6).digest(), "big"
    )


# -- state round trips -----------------------------------------------------------------------------
def test_account_state_round_trip(engine: Engine) -> None:
    state = engine.new_account()
    run(engine, state, *(tx(i, T0 + timedelta(minutes=13 * i), amount=7 * i) for i in range(9)))
    copy = AccountState.from_bytes(state.to_bytes(engine.signatures), engine.signatures)
    assert copy.tiles == state.tiles
    assert copy.ids == state.ids
    assert list(copy.ids) == list(state.ids), "the ids keep their age order (oldest dropped)"
    nxt = tx("next", T0 + timedelta(hours=2))
    assert engine.account_values(copy, nxt) == engine.account_values(state, nxt)


def test_account_codec_is_the_state_round_trip_and_refuses_garbage(engine: Engine) -> None:
    codec = AccountCodec(engine)
    state = engine.new_account()
    run(engine, state, tx(1, T0))
    assert codec.decode(codec.encode(state)).tiles == state.tiles
    for bad in (
        b"",
        b"[]",
        b'{"v": 2, "g": [], "i": []}',
        b'{"v": 1, "g": [[1, 2]], "i": []}',
        b'{"v": 1, "g": [], "i": [1]}',
        b'{"v": 1, "i": []}',
        b'{"v": 1, "g": 5, "i": []}',
    ):
        with pytest.raises(ValueError):  # noqa: PT011  (the store turns it into a StateError)
            codec.decode(bad)


def test_state_of_another_version_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="version 2"):
        AccountState.from_bytes(b'{"v": 1, "g": [], "i": []}', engine.signatures)
    with pytest.raises(ValueError, match="version 1"):
        MerchantState.from_bytes(b'{"v": 0, "t": [], "f": [], "i": []}')


def test_merchant_state_round_trip() -> None:
    state = MerchantState()
    for i in range(6):
        state.observe_transaction(ms(T0) + i * 17 * MIN, id_hash(f"tx-{i}"), HOUR, 256)
    state.observe_fraud(ms(T0), ms(T0) + 5 * HOUR, id_hash("tx-0"), HOUR)
    copy = MerchantState.from_bytes(state.to_bytes())
    assert (copy.tiles, copy.frauds, copy.ids) == (state.tiles, state.frauds, state.ids)
    assert list(copy.ids) == list(state.ids)


def test_account_state_survives_a_spec_that_adds_a_tile_group() -> None:
    data = yaml.safe_load(DEFAULT_SPEC_PATH.read_text(encoding="utf-8"))
    added = "{name: acc_count_2h, entity: account, aggregate: count, window: 2h, hop: 10m}"
    data["features"].insert(12, yaml.safe_load(added))  # before acc_count_1h: a new first group
    new = Engine(parse_spec(data))
    state = ENGINE.new_account()
    run(ENGINE, state, *(tx(i, T0 + timedelta(hours=3 * i)) for i in range(10)))
    stored = AccountCodec(ENGINE).encode(state)
    nxt = tx("next", T0 + timedelta(hours=30, minutes=3))
    expected, _ = ENGINE.account_values(AccountCodec(ENGINE).decode(stored), nxt)
    try:
        restored = AccountCodec(new).decode(stored)
    except ValueError:
        return  # refusing a state of another layout is fine
    got, _ = new.account_values(restored, nxt)
    assert {k: got[k] for k in expected} == expected


# -- merchants -------------------------------------------------------------------------------------
def merchant(engine: Engine, *txs: datetime, max_ids: int = 256) -> MerchantState:
    state = MerchantState()
    for i, at in enumerate(txs):
        state.observe_transaction(ms(at), id_hash(f"m-{i}"), engine.step_ms, max_ids)
    return state


def test_no_state_or_no_as_of_is_all_zero(engine: Engine) -> None:
    zeros = dict.fromkeys(
        ["m_count_2h", "m_frauds_2h", "m_rate_2h", "m_count_1h", "m_frauds_1d"], 0.0
    )
    assert engine.merchant_values(None, ms(T0)) == zeros
    assert engine.merchant_values(merchant(engine, T0), None) == zeros


def test_target_as_of_is_the_step_before_the_transaction(engine: Engine) -> None:
    assert engine.target_as_of_ms(ms(T0)) == ms(T0)
    assert engine.target_as_of_ms(ms(T0) + 59 * MIN) == ms(T0)
    assert engine.target_as_of_ms(ms(T0) - 1) == ms(T0) - HOUR


def test_target_as_of_subtracts_the_lag() -> None:
    data = yaml.safe_load(SPEC)
    data["merchant"]["lag"] = "10m"
    lagged = Engine(parse_spec(data))
    assert lagged.target_as_of_ms(ms(T0) + 9 * MIN) == ms(T0) - HOUR
    assert lagged.target_as_of_ms(ms(T0) + 10 * MIN) == ms(T0)


def test_merchant_windows_are_as_of_and_exclude_the_current_step(engine: Engine) -> None:
    as_of = T0 + timedelta(hours=3)
    state = merchant(
        engine,
        as_of - timedelta(hours=2, milliseconds=1),  # before the 2h window
        as_of - timedelta(hours=2),  # its first instant
        as_of - timedelta(minutes=30),
        as_of - timedelta(milliseconds=1),
        as_of,  # the current step: not yet in the table
        as_of + timedelta(minutes=59),
    )
    f = engine.merchant_values(state, ms(as_of))
    assert (f["m_count_2h"], f["m_count_1h"]) == (3, 2)


def test_frauds_count_once_known_before_as_of(engine: Engine) -> None:
    step = engine.step_ms
    as_of = ms(T0) + 2 * HOUR
    state = merchant(engine, *(T0 + timedelta(hours=1, minutes=i) for i in range(4)))
    tx_ms = ms(T0) + HOUR
    state.observe_fraud(tx_ms, as_of - 1, id_hash("m-0"), step)  # known just before
    state.observe_fraud(tx_ms, as_of, id_hash("m-1"), step)  # known at as_of: not yet
    state.observe_fraud(tx_ms, as_of + HOUR, id_hash("m-2"), step)
    state.observe_fraud(ms(T0) - HOUR, 0, id_hash("older"), step)  # outside the 2h window
    f = engine.merchant_values(state, as_of)
    assert (f["m_count_2h"], f["m_frauds_2h"], f["m_rate_2h"]) == (4, 1, 0.25)
    assert f["m_frauds_1d"] == 2, "the older fraud is in the 1d window"
    later = engine.merchant_values(state, as_of + HOUR)
    assert (later["m_count_2h"], later["m_frauds_2h"], later["m_rate_2h"]) == (4, 2, 0.5)
    gone = engine.merchant_values(state, as_of + 2 * HOUR)
    assert (gone["m_count_2h"], gone["m_frauds_2h"], gone["m_rate_2h"]) == (0, 0, 0)
    assert gone["m_frauds_1d"] == 4


def test_a_repeated_fraud_label_keeps_the_earliest_known_time(engine: Engine) -> None:
    step = engine.step_ms
    h = id_hash("tx-9")
    tx_ms = ms(T0)
    labels = [tx_ms + 5 * HOUR, tx_ms + 2 * HOUR, tx_ms + 9 * HOUR]
    results = {}
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
        state = MerchantState()
        changed = [state.observe_fraud(tx_ms, labels[i], h, step) for i in order]
        results[tuple(order)] = (state.frauds, changed)
    assert all(frauds == {h: [tx_ms // step, tx_ms + 2 * HOUR]} for frauds, _ in results.values())
    assert results[(0, 1, 2)][1] == [True, True, False]
    assert results[(1, 0, 2)][1] == [True, False, False]


def test_merchant_dedupe_counts_an_id_once_within_its_ring(engine: Engine) -> None:
    state = MerchantState()
    step = engine.step_ms
    assert state.observe_transaction(ms(T0), id_hash("a"), step, 2) is True
    assert state.observe_transaction(ms(T0), id_hash("a"), step, 2) is False
    state.observe_transaction(ms(T0), id_hash("b"), step, 2)
    state.observe_transaction(ms(T0), id_hash("c"), step, 2)  # "a" leaves the ring
    assert state.observe_transaction(ms(T0), id_hash("a"), step, 2) is True
    assert state.tiles == {ms(T0) // step: 4}


def test_prune_forgets_tiles_and_frauds_before_the_horizon(engine: Engine) -> None:
    step = engine.step_ms
    state = merchant(engine, T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    state.observe_fraud(ms(T0), ms(T0) + 10 * HOUR, id_hash("m-0"), step)
    state.observe_fraud(ms(T0) + HOUR, ms(T0) + 10 * HOUR, id_hash("m-1"), step)
    state.prune(ms(T0) // step + 1)
    assert sorted(state.tiles) == [ms(T0) // step + 1, ms(T0) // step + 2]
    assert set(state.frauds) == {id_hash("m-1")}


def test_merchant_horizon_covers_the_longest_window_plus_retain(engine: Engine) -> None:
    assert engine.merchant_horizon_steps == 26  # 1d window + 2h retain, in 1h steps
    assert ENGINE.merchant_horizon_steps == 37 * 24


# -- offline = incremental -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def history() -> tuple[list[TransactionEvent], list[LabelEvent]]:
    sim = simulate(SimulatorConfig(seed=3, tenant="feat", n_customers=40, n_terminals=80, days=21))
    txs = [t.event for t in sim.transactions]
    # re-publications (a retry through another gateway replica): same id, same event time
    txs += [t for t in txs[::97]]
    txs.sort(key=lambda t: t.timestamp)
    return txs, list(sim.labels)


def incremental(
    engine: Engine,
    txs: list[TransactionEvent],
    labels: list[LabelEvent],
    *,
    behind_ms: int = 0,
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """What the enricher and the merchant stage compute when events arrive in time order: the
    account state and the merchant table cross a serialisation after every change, the merchant
    stage prunes at each published clock, and the enricher reads the table as of the rule's
    as-of, or ``behind_ms`` earlier (a table whose clock lags)."""
    codec = AccountCodec(engine)
    accounts: dict[str, bytes] = {}
    table: dict[str, bytes] = {}
    events: list[tuple[datetime, int, int, TransactionEvent | LabelEvent]] = [
        (t.timestamp, 1, i, t) for i, t in enumerate(txs)
    ]
    events += [(lb.labelled_at, 0, i, lb) for i, lb in enumerate(labels) if lb.is_fraud]
    events.sort(key=lambda e: e[:3])
    rows: list[list[float]] = []
    for _, _, _, event in events:
        if isinstance(event, LabelEvent):
            m = MerchantState.from_bytes(table.get(event.merchant_id, MerchantState().to_bytes()))
            m.observe_fraud(
                ms(event.transaction_time),
                ms(event.labelled_at),
                id_hash(event.transaction_id),
                engine.step_ms,
            )
            table[event.merchant_id] = m.to_bytes()
            continue
        account = accounts.get(event.account_id)
        state = engine.new_account() if account is None else codec.decode(account)
        acc, duplicate = engine.account_values(state, event)
        if not duplicate:
            accounts[event.account_id] = codec.encode(state)
        as_of = engine.target_as_of_ms(ms(event.timestamp))
        stored = table.get(event.merchant_id)
        mer = engine.merchant_values(
            None if stored is None else MerchantState.from_bytes(stored), as_of - behind_ms
        )
        rows.append(
            to_vector(engine.assemble(engine.transform_values(event), acc, mer), engine.spec)
        )
        m = MerchantState() if stored is None else MerchantState.from_bytes(stored)
        m.observe_transaction(
            ms(event.timestamp),
            id_hash(event.transaction_id),
            engine.step_ms,
            engine.merchant_max_ids,
        )
        m.prune(as_of // engine.step_ms - engine.merchant_horizon_steps)
        table[event.merchant_id] = m.to_bytes()
    return np.array(rows, dtype=np.float32)


@pytest.mark.parametrize("which", ["packaged", "small"])
def test_offline_equals_incremental(
    history: tuple[list[TransactionEvent], list[LabelEvent]], engine: Engine, which: str
) -> None:
    eng = ENGINE if which == "packaged" else engine
    txs, labels = history
    expected = incremental(eng, txs, labels)
    X = compute_offline(txs, labels, engine=eng)
    assert X.dtype == np.float32
    assert X.shape == (len(txs), len(eng.names))
    assert np.isfinite(X).all()
    assert np.array_equal(X, expected)
    frauds = X[:, eng.names.index("m_frauds_1d" if which == "small" else "merchant_frauds_7d")]
    assert frauds.max() > 0, "labels took effect"


def test_offline_rows_follow_the_given_order(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    txs, labels = history
    txs = txs[:600]
    X = compute_offline(txs, labels)
    order = list(range(len(txs)))
    random.Random(5).shuffle(order)
    shuffled_labels = labels[::-1]
    Y = compute_offline([txs[i] for i in order], shuffled_labels)
    assert np.array_equal(Y, X[order])


def test_offline_with_the_rule_as_of_passed_explicitly(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    txs, labels = history
    txs = txs[:800]
    rule_ms = [ENGINE.target_as_of_ms(ms(t.timestamp)) for t in txs]
    rule_dt = [datetime.fromtimestamp(a / 1000, UTC) for a in rule_ms]
    X = compute_offline(txs, labels)
    assert np.array_equal(compute_offline(txs, labels, as_of=rule_ms), X)
    assert np.array_equal(compute_offline(txs, labels, as_of=rule_dt), X)


def test_offline_with_the_as_of_a_lagging_table_served(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    """The enricher read a table 6 hours behind: the offline path, given the served as-of,
    reproduces it (and the merchant stage's 7d retain kept every tile it needed)."""
    txs, labels = history
    stale = [ENGINE.target_as_of_ms(ms(t.timestamp)) - 6 * HOUR for t in txs]
    S = compute_offline(txs, labels, as_of=stale)
    assert np.array_equal(S, incremental(ENGINE, txs, labels, behind_ms=6 * HOUR))
    merchant_cols = [i for i, n in enumerate(ENGINE.names) if n.startswith("merchant_")]
    assert not np.array_equal(S[:, merchant_cols], compute_offline(txs, labels)[:, merchant_cols])


def test_offline_without_a_served_table_has_zero_merchant_features(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    txs, labels = history
    txs = txs[:800]
    names = ENGINE.names
    merchant_cols = [i for i, n in enumerate(names) if n.startswith("merchant_")]
    account_cols = [i for i in range(len(names)) if i not in merchant_cols]
    none: list[int | None] = [None] * len(txs)
    X = compute_offline(txs, labels)
    N = compute_offline(txs, labels, as_of=none)
    assert np.array_equal(N[:, account_cols], X[:, account_cols])
    assert not N[:, merchant_cols].any()
    assert X[:, merchant_cols].any()


def test_offline_refuses_as_of_of_another_length() -> None:
    with pytest.raises(ValueError, match="2 as-of values for 1 transactions"):
        compute_offline([tx(1, T0)], as_of=[None, None])


def test_offline_duplicates_are_counted_once(engine: Engine) -> None:
    original = tx(1, T0, amount=10_00)
    rows = compute_offline([original, tx(2, T0 + timedelta(minutes=1)), original], engine=engine)
    n_1h = engine.names.index("n_1h")
    assert rows[:, n_1h].tolist() == [1, 2, 1]  # the re-publication reads its own time's windows


def test_labels_of_legitimate_transactions_change_nothing(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    txs, labels = history
    txs = txs[:500]
    legit = [lb for lb in labels if not lb.is_fraud]
    assert legit
    assert np.array_equal(compute_offline(txs, legit), compute_offline(txs))


def fraud_label(t: TransactionEvent, known: datetime) -> LabelEvent:
    return LabelEvent(
        transaction_id=t.transaction_id,
        tenant_id=t.tenant_id,
        account_id=t.account_id,
        merchant_id=t.merchant_id,
        is_fraud=True,
        source=LabelSource.CHARGEBACK,
        transaction_time=t.timestamp,
        labelled_at=known,
    )


def test_offline_applies_a_label_only_from_the_step_after_it_is_known(engine: Engine) -> None:
    bad = tx(1, T0, account_id="acc-a")
    txs = [
        bad,
        tx(2, T0 + timedelta(minutes=70), account_id="acc-b"),  # as of 13:00
        tx(3, T0 + timedelta(minutes=130), account_id="acc-c"),  # as of 14:00
    ]
    label = fraud_label(bad, known=T0 + timedelta(minutes=60))  # 13:00 exactly
    rows = compute_offline(txs, [label, label], engine=engine)
    frauds = rows[:, engine.names.index("m_frauds_2h")].tolist()
    counts = rows[:, engine.names.index("m_count_2h")].tolist()
    assert frauds == [0, 0, 1]
    assert counts == [0, 1, 2]
