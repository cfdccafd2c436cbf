"""The shared feature module: windows, label delay, spec hash, offline = online."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from schemas import Channel, LabelEvent, LabelSource
from scorestream.features import (
    FEATURE_NAMES,
    FEATURE_SPEC,
    MCC_BUCKET_NAMES,
    FeatureSpec,
    FeatureState,
    compute_offline,
    mcc_bucket,
    stateless_features,
    to_vector,
)
from tests.factories import transaction

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # a Monday, noon


def tx(
    i: int,
    *,
    at: datetime,
    account: str = "acc-1",
    merchant: str = "mer-1",
    amount: int = 10_00,
    **kw: object,
):  # type: ignore[no-untyped-def]
    return transaction(
        transaction_id=f"tx-{i}",
        timestamp=at,
        account_id=account,
        merchant_id=merchant,
        amount_minor=amount,
        **kw,
    )


def fraud_label(t, labelled_at: datetime) -> LabelEvent:  # type: ignore[no-untyped-def]
    return LabelEvent(
        transaction_id=t.transaction_id,
        tenant_id=t.tenant_id,
        account_id=t.account_id,
        merchant_id=t.merchant_id,
        is_fraud=True,
        source=LabelSource.CHARGEBACK,
        transaction_time=t.timestamp,
        labelled_at=labelled_at,
    )


def test_spec_is_ordered_and_hash_is_stable() -> None:
    assert FEATURE_NAMES[0] == "amount"
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert FEATURE_SPEC.hash == FeatureSpec(FEATURE_NAMES).hash
    assert FeatureSpec(tuple(reversed(FEATURE_NAMES))).hash != FEATURE_SPEC.hash
    assert FeatureSpec(FEATURE_NAMES, logic_version="other").hash != FEATURE_SPEC.hash


def test_stateless_features() -> None:
    f = stateless_features(
        tx(
            1,
            at=datetime(2026, 11, 7, 23, 30, tzinfo=UTC),
            amount=123_45,
            channel=Channel.ATM,
            mcc="6011",
            country="DE",
            card_country="FR",
        )
    )
    assert f["amount"] == 123.45
    assert f["log_amount"] == pytest.approx(np.log1p(123.45))
    assert f["is_night"] == 1.0
    assert f["is_weekend"] == 1.0  # a Saturday
    assert f["channel_atm"] == 1.0
    assert f["channel_ecommerce"] == 0.0
    assert f["cross_border"] == 1.0
    assert f["mcc_bucket"] == float(mcc_bucket("6011"))
    assert MCC_BUCKET_NAMES[mcc_bucket("0001")] == "other"
    assert MCC_BUCKET_NAMES[mcc_bucket("5411")] == "grocery"


def test_account_windows_include_the_current_transaction() -> None:
    state = FeatureState()
    first = state.features_for(tx(1, at=T0, amount=10_00))
    assert (first["acc_count_1d"], first["acc_mean_amount_1d"]) == (1.0, 10.0)
    second = state.features_for(tx(2, at=T0 + timedelta(hours=2), amount=30_00))
    assert second["acc_count_1h"] == 1.0
    assert second["acc_count_1d"] == 2.0
    assert second["acc_mean_amount_1d"] == 20.0
    later = state.features_for(tx(3, at=T0 + timedelta(days=3), amount=20_00))
    assert later["acc_count_1d"] == 1.0
    assert later["acc_count_7d"] == 3.0
    assert later["acc_mean_amount_7d"] == 20.0
    assert later["acc_amount_ratio_30d"] == 1.0
    much_later = state.features_for(tx(4, at=T0 + timedelta(days=40)))
    assert much_later["acc_count_30d"] == 1.0  # the old ones fell out of every window


def test_card_testing_burst_shows_in_the_hourly_count() -> None:
    state = FeatureState()
    counts = [
        state.features_for(tx(i, at=T0 + timedelta(minutes=i), amount=100))["acc_count_1h"]
        for i in range(10)
    ]
    assert counts == [float(i + 1) for i in range(10)]


def test_merchant_risk_respects_the_label_delay() -> None:
    state = FeatureState()
    bad = tx(1, at=T0, account="acc-a")
    state.features_for(bad)
    before = state.features_for(tx(2, at=T0 + timedelta(days=1), account="acc-b"))
    assert before["merchant_frauds_7d"] == 0.0  # fraud happened, but nobody knows yet
    state.observe_label(fraud_label(bad, labelled_at=T0 + timedelta(days=2)))
    state.observe_label(fraud_label(bad, labelled_at=T0 + timedelta(days=2)))  # redelivered
    after = state.features_for(tx(3, at=T0 + timedelta(days=3), account="acc-c"))
    assert after["merchant_frauds_1d"] == 0.0  # the fraud itself is 3 days old
    assert after["merchant_frauds_7d"] == 1.0
    assert after["merchant_count_7d"] == 3.0
    assert after["merchant_risk_30d"] == pytest.approx(1 / 3)


def test_offline_replay_applies_labels_only_once_known() -> None:
    bad = tx(1, at=T0, account="acc-a")
    txs = [
        bad,
        tx(2, at=T0 + timedelta(days=1), account="acc-b"),
        tx(3, at=T0 + timedelta(days=3), account="acc-c"),
    ]
    label = fraud_label(bad, labelled_at=T0 + timedelta(days=2))
    X = compute_offline(txs, [label])
    col = FEATURE_NAMES.index("merchant_frauds_7d")
    assert X[:, col].tolist() == [0.0, 0.0, 1.0]


def test_offline_equals_online_for_any_row_order() -> None:
    from producers.generator import generate_transactions  # noqa: PLC0415

    events = list(generate_transactions(500, tenant="acme", seed=5, accounts=15, merchants=6))
    online = FeatureState()
    expected = np.array([to_vector(online.features_for(e)) for e in events], dtype=np.float32)
    shuffled = list(reversed(events))
    X = compute_offline(shuffled)
    assert np.array_equal(X[::-1], expected)
    assert X.dtype == np.float32
    assert np.isfinite(X).all()


def test_to_vector_refuses_missing_features() -> None:
    with pytest.raises(ValueError, match="amount"):
        to_vector({})


def test_labels_count_by_event_time_whatever_the_processing_order() -> None:
    bad = tx(1, at=T0, account="acc-a")
    late_label = fraud_label(bad, labelled_at=T0 + timedelta(days=2))
    early = FeatureState()
    early.observe_label(late_label)  # processed before the transactions...
    early.features_for(bad)
    before = early.features_for(tx(2, at=T0 + timedelta(days=1), account="acc-b"))
    after = early.features_for(tx(3, at=T0 + timedelta(days=3), account="acc-c"))
    assert before["merchant_frauds_7d"] == 0.0  # ...but not known yet at day 1
    assert after["merchant_frauds_7d"] == 1.0


def test_per_key_parts_through_json_equal_the_feature_state() -> None:
    """The enricher keeps AccountWindows / MerchantWindows as JSON in separate keyed stores;
    round-tripping them after every event changes no feature bit."""
    import json  # noqa: PLC0415

    from producers.generator import generate_transactions  # noqa: PLC0415
    from scorestream.features import AccountWindows, MerchantWindows  # noqa: PLC0415

    events = list(generate_transactions(300, tenant="acme", seed=9, accounts=8, merchants=4))
    events.sort(key=lambda e: e.timestamp)
    frauds = {e.transaction_id for e in events[::13]}
    reference = FeatureState()
    accounts: dict[str, str] = {}
    merchants: dict[str, str] = {}
    counted = 0.0
    for e in events:
        expected = reference.features_for(e)
        counted += expected["merchant_frauds_30d"]
        acc = AccountWindows.from_json(json.loads(accounts.get(e.account_id, "null")))
        mer = MerchantWindows.from_json(json.loads(merchants.get(e.merchant_id, "null")))
        got = stateless_features(e) | acc.features(e) | mer.features(e)
        assert got == expected
        assert list(got) == list(expected)
        if e.transaction_id in frauds:
            label = fraud_label(e, labelled_at=e.timestamp + timedelta(seconds=20))
            reference.observe_label(label)
            mer.observe_fraud(label.transaction_time, label.labelled_at)
        accounts[e.account_id] = json.dumps(acc.to_json())
        merchants[e.merchant_id] = json.dumps(mer.to_json())
    assert counted > 0, "the labels took effect"
