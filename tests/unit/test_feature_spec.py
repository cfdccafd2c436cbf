"""The feature spec: the packaged fraud.yaml, its hash, validation, and features added as data."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from schemas.events import Channel, TransactionEvent
from scorestream.errors import ConfigError
from scorestream.features import (
    ENGINE,
    FEATURE_NAMES,
    FEATURE_SPEC,
    Engine,
    FeatureSettings,
    compute_offline,
    feature_dicts,
    load_spec,
    parse_spec,
    to_vector,
)
from scorestream.features.spec import (
    DEFAULT_SPEC_PATH,
    AccountFeature,
    MerchantFeature,
    TileGroup,
    TransformFeature,
)
from tests.factories import transaction

DOCUMENTED_ORDER = (
    "amount",
    "log_amount",
    "hour",
    "is_night",
    "is_weekend",
    "channel_card_present",
    "channel_contactless",
    "channel_ecommerce",
    "channel_mobile_wallet",
    "channel_atm",
    "mcc_bucket",
    "cross_border",
    "acc_count_1h",
    "acc_count_1d",
    "acc_mean_amount_1d",
    "acc_count_7d",
    "acc_mean_amount_7d",
    "acc_count_30d",
    "acc_mean_amount_30d",
    "acc_amount_ratio_30d",
    "merchant_count_1d",
    "merchant_frauds_1d",
    "merchant_count_7d",
    "merchant_frauds_7d",
    "merchant_count_30d",
    "merchant_frauds_30d",
    "merchant_risk_30d",
)
PACKAGED_HASH = "0e8715915df00f30"
"""Every model trained on the packaged spec records this: a change here refuses them all, so it
must be deliberate (bump the spec's version and retrain)."""

H = 3600
D = 86400
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # a Monday; a whole hour, day-aligned tiles + 12h


def raw_spec() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_SPEC_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def tx(n: int, at: datetime, **kw: Any) -> TransactionEvent:
    fields: dict[str, Any] = {
        "transaction_id": f"tx-{n}",
        "timestamp": at,
        "account_id": "acc-1",
        "merchant_id": "mer-1",
        "amount_minor": 10_00,
    }
    return transaction(**(fields | kw))


# -- the packaged spec -----------------------------------------------------------------------------
def test_packaged_spec_has_27_features_in_the_documented_order() -> None:
    assert len(FEATURE_SPEC) == 27
    assert FEATURE_SPEC.names == DOCUMENTED_ORDER
    assert FEATURE_NAMES == DOCUMENTED_ORDER
    assert ENGINE.names == DOCUMENTED_ORDER
    assert (FEATURE_SPEC.name, FEATURE_SPEC.version, FEATURE_SPEC.dtype) == ("fraud", 3, "float32")
    assert FEATURE_SPEC.source == str(DEFAULT_SPEC_PATH)


def test_packaged_spec_settings() -> None:
    s = FEATURE_SPEC
    assert (s.dedupe_horizon_s, s.dedupe_max_ids) == (7 * D, 512)
    assert (s.merchant_step_s, s.merchant_lag_s, s.merchant_retain_s) == (H, 0, 7 * D)
    assert s.merchant_dedupe_max_ids == 256
    assert s.merchant_window_s == 30 * D


def test_packaged_spec_features_parse_as_declared() -> None:
    by_name = {f.name: f for f in FEATURE_SPEC.features}
    assert by_name["channel_atm"] == TransformFeature("channel_atm", "channel_is", "atm")
    assert by_name["log_amount"] == TransformFeature("log_amount", "log1p_amount")
    assert by_name["acc_count_1h"] == AccountFeature("acc_count_1h", "count", H, 300)
    assert by_name["acc_amount_ratio_30d"] == AccountFeature(
        "acc_amount_ratio_30d", "amount_ratio", 30 * D, D
    )
    risk = MerchantFeature("merchant_risk_30d", "fraud_rate", 30 * D)
    assert by_name["merchant_risk_30d"] == risk


def test_account_tile_groups_share_a_hop_and_keep_the_longest_window() -> None:
    assert FEATURE_SPEC.account_groups == (
        TileGroup(hop_s=300, where=(), retention_s=H),
        TileGroup(hop_s=H, where=(), retention_s=D),
        TileGroup(hop_s=D, where=(), retention_s=30 * D),
    )


def test_load_spec_defaults_to_the_packaged_file() -> None:
    assert load_spec() == FEATURE_SPEC
    assert load_spec(str(DEFAULT_SPEC_PATH)) == FEATURE_SPEC


def test_feature_settings_read_the_spec_path_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SCORESTREAM_FEATURES_SPEC", raising=False)
    assert FeatureSettings().spec is None
    monkeypatch.setenv("SCORESTREAM_FEATURES_SPEC", str(tmp_path / "mine.yaml"))
    assert FeatureSettings().spec == tmp_path / "mine.yaml"


def test_to_vector_is_in_spec_order_and_refuses_a_missing_feature() -> None:
    values = {name: float(i) for i, name in enumerate(reversed(DOCUMENTED_ORDER))}
    assert to_vector(values) == [values[n] for n in DOCUMENTED_ORDER]
    del values["merchant_risk_30d"]
    with pytest.raises(ValueError, match=rf"'merchant_risk_30d' is missing \(spec {PACKAGED_HASH}"):
        to_vector(values)


# -- the hash --------------------------------------------------------------------------------------
def test_packaged_hash_is_pinned() -> None:
    assert FEATURE_SPEC.hash == PACKAGED_HASH


def test_hash_ignores_comments_key_order_and_the_source(tmp_path: Path) -> None:
    def reorder(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reorder(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reorder(v) for v in value]  # list order is the tensor order: kept
        return value

    path = tmp_path / "reordered.yaml"
    path.write_text(
        "# a comment\n" + yaml.safe_dump(reorder(raw_spec()), sort_keys=False), encoding="utf-8"
    )
    spec = load_spec(path)
    assert spec.source == str(path)
    assert spec.hash == PACKAGED_HASH
    assert spec == FEATURE_SPEC, "source is not part of a spec's identity"


def test_hash_ignores_equivalent_spellings() -> None:
    data = raw_spec()
    data["features"][12]["window"] = "60m"  # acc_count_1h: 1h
    data["merchant"]["step"] = "3600s"
    data["account"]["dedupe_horizon"] = "168h"
    assert parse_spec(data).hash == PACKAGED_HASH


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _swap_features(data: dict[str, Any]) -> None:
    f = data["features"]
    f[0], f[1] = f[1], f[0]


def _add_feature(data: dict[str, Any]) -> None:
    data["features"].append({"name": "extra", "transform": "amount"})


def _add_where(data: dict[str, Any]) -> None:
    data["features"][12]["where"] = {"channel": "ecommerce"}


NUMBER_DECIDING = {
    "spec name": _set("name", "fraud2"),
    "spec version": _set("version", 4),
    "dedupe horizon": _set("account.dedupe_horizon", "6d"),
    "dedupe max ids": _set("account.dedupe_max_ids", 511),
    "merchant step": _set("merchant.step", "30m"),
    "merchant lag": _set("merchant.lag", "5m"),
    "merchant retain": _set("merchant.retain", "8d"),
    "merchant dedupe max ids": _set("merchant.dedupe_max_ids", 255),
    "feature name": _set("features.0.name", "amount_eur"),
    "feature order": _swap_features,
    "feature added": _add_feature,
    "transform": _set("features.0.transform", "log1p_amount"),
    "channel value": _set("features.5.value", "contactless"),
    "account aggregate": _set("features.12.aggregate", "sum_amount"),
    "account window": _set("features.12.window", "2h"),
    "account hop": _set("features.12.hop", "10m"),
    "account filter": _add_where,
    "merchant aggregate": _set("features.20.aggregate", "fraud_count"),
    "merchant window": _set("features.20.window", "2d"),
}


@pytest.mark.parametrize("mutate", NUMBER_DECIDING.values(), ids=NUMBER_DECIDING.keys())
def test_hash_changes_with_every_number_deciding_field(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    data = raw_spec()
    mutate(data)
    assert parse_spec(data).hash != PACKAGED_HASH


def test_hash_of_where_filters_is_canonical() -> None:
    def spec_with(where: dict[str, Any]) -> str:
        data = raw_spec()
        data["features"][12]["where"] = where
        return parse_spec(data).hash

    same = spec_with({"channel": ["ecommerce", "mobile_wallet"], "country": "DE"})
    assert spec_with({"country": ["de"], "channel": ["mobile_wallet", "ecommerce"]}) == same
    assert spec_with({"channel": ["ecommerce"], "country": "DE"}) != same


# -- validation ------------------------------------------------------------------------------------
def _with_feature(feature: dict[str, Any] | str) -> dict[str, Any]:
    """The packaged spec plus one feature (a mapping, or a YAML line as in fraud.yaml)."""
    data = raw_spec()
    data["features"].append(yaml.safe_load(feature) if isinstance(feature, str) else feature)
    return data


ACC = "name: bad_one, entity: account, aggregate: count"
INVALID_FEATURES = {
    "unknown transform": ("{name: bad_one, transform: sqrt_amount}", "sqrt_amount"),
    "bad duration": (f"{{{ACC}, window: 1w, hop: 1d}}", "1w"),
    "bad hop duration": (f"{{{ACC}, window: 1h, hop: 5}}", "hop"),
    "window not a multiple of hop": (f"{{{ACC}, window: 1h, hop: 7m}}", "whole number"),
    "window shorter than hop": (f"{{{ACC}, window: 5m, hop: 1h}}", "whole number"),
    "zero hop": (f"{{{ACC}, window: 1h, hop: 0s}}", "whole number"),
    "missing window": (f"{{{ACC}, hop: 5m}}", "window"),
    "merchant window not a multiple of step": (
        "{name: bad_one, entity: merchant, aggregate: count, window: 90m}",
        "merchant.step",
    ),
    "unknown account aggregate": (
        "{name: bad_one, entity: account, aggregate: max, window: 1h, hop: 5m}",
        "max",
    ),
    "unknown merchant aggregate": (
        "{name: bad_one, entity: merchant, aggregate: sum_amount, window: 1d}",
        "sum_amount",
    ),
    "unknown key": ("{name: bad_one, transform: amount, scale: 2}", "scale"),
    "key of another kind": (
        "{name: bad_one, entity: merchant, aggregate: count, window: 1d, hop: 1h}",
        "hop",
    ),
    "transform with an entity": (
        "{name: bad_one, transform: amount, entity: account}",
        "entity",
    ),
    "channel_is without value": ("{name: bad_one, transform: channel_is}", "value"),
    "value without channel_is": ("{name: bad_one, transform: amount, value: atm}", "value"),
    "bad where field": (
        f"{{{ACC}, window: 1h, hop: 5m, where: {{merchant_id: m-1}}}}",
        "merchant_id",
    ),
    "where not a mapping": (f"{{{ACC}, window: 1h, hop: 5m, where: [channel]}}", "where"),
    "no kind": ("{name: bad_one, entity: terminal}", "entity"),
}


@pytest.mark.parametrize(("feature", "detail"), INVALID_FEATURES.values(), ids=INVALID_FEATURES)
def test_invalid_feature_is_a_config_error_naming_it(feature: str, detail: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(_with_feature(feature))
    assert "'bad_one'" in str(info.value)
    assert detail in str(info.value)


def test_duplicate_names_are_refused_with_the_name() -> None:
    with pytest.raises(ConfigError, match=r"declared twice: \['acc_count_1h'\]"):
        parse_spec(_with_feature({"name": "acc_count_1h", "transform": "amount"}))


@pytest.mark.parametrize("name", ["Amount", "1st", "with-dash", "", "x" * 65])
def test_names_must_be_lower_snake_case(name: str) -> None:
    with pytest.raises(ConfigError, match=r"features\[27\]: name .* lower_snake_case"):
        parse_spec(_with_feature({"name": name, "transform": "amount"}))


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        ([], "a feature spec is a mapping"),
        ({"features": []}, "non-empty list"),
        ({"features": {"amount": "amount"}}, "non-empty list"),
        ({"features": ["amount"]}, r"features\[0\]: a mapping"),
        ({"dtype": "float64", "features": [{"name": "a", "transform": "amount"}]}, "float32"),
        ({"version": "three", "features": [{"name": "a", "transform": "amount"}]}, "version"),
        ({"merchant": {"step": "7m"}, "features": [{"name": "a", "transform": "amount"}]}, "day"),
        ({"merchant": {"lag": "-5m"}, "features": [{"name": "a", "transform": "amount"}]}, "lag"),
    ],
)
def test_invalid_spec_is_a_config_error(data: Any, detail: str) -> None:
    with pytest.raises(ConfigError, match=detail):
        parse_spec(data)


def test_load_spec_reports_a_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the feature spec"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spec(bad)


@pytest.mark.parametrize(
    "mutate",
    [
        _set("account.dedupe_max_ids", "many"),
        _set("merchant.dedupe_max_ids", "lots"),
        _set("merchant", 5),
        _set("account", ["dedupe_horizon", "7d"]),
    ],
    ids=["account-max-ids", "merchant-max-ids", "merchant-scalar", "account-list"],
)
def test_bad_section_values_are_config_errors(mutate: Callable[[dict[str, Any]], None]) -> None:
    data = raw_spec()
    mutate(data)
    with pytest.raises(ConfigError):
        parse_spec(data)


@pytest.mark.parametrize(
    "mutate",
    [_set("merchant.stpe", "15m"), _set("account.dedupe_max_id", 64), _set("acount", {})],
    ids=["merchant-typo", "account-typo", "top-level-typo"],
)
def test_unknown_section_keys_are_refused(mutate: Callable[[dict[str, Any]], None]) -> None:
    data = raw_spec()
    mutate(data)
    with pytest.raises(ConfigError):
        parse_spec(data)


@pytest.mark.parametrize("value", ["ecomerce", "ECOMMERCE"])
def test_channel_is_value_must_be_a_channel(value: str) -> None:
    with pytest.raises(ConfigError, match="bad_one"):
        parse_spec(_with_feature({"name": "bad_one", "transform": "channel_is", "value": value}))


# -- features added as data, end to end -----------------------------------------------------------
ADDED_FEATURES = """
- {name: acc_count_6h, entity: account, aggregate: count, window: 6h, hop: 15m}
- {name: acc_ecom_count_1d, entity: account, aggregate: count, window: 1d, hop: 1h,
   where: {channel: ecommerce}}
- {name: acc_remote_sum_1d, entity: account, aggregate: sum_amount, window: 1d, hop: 1h,
   where: {channel: [ecommerce, mobile_wallet]}}
- {name: merchant_count_2h, entity: merchant, aggregate: count, window: 2h}
"""


def extended_engine() -> Engine:
    """The packaged spec with features a user appended to fraud.yaml (no engine change)."""
    data = raw_spec()
    data["features"] += yaml.safe_load(ADDED_FEATURES)
    return Engine(parse_spec(data))


def test_user_added_features_get_their_own_tile_groups() -> None:
    engine = extended_engine()
    assert len(engine.names) == 31
    assert engine.names[:27] == DOCUMENTED_ORDER
    assert engine.spec.hash != PACKAGED_HASH
    assert TileGroup(900, (), 6 * H) in engine.groups
    assert TileGroup(H, (("channel", ("ecommerce",)),), D) in engine.groups
    assert TileGroup(H, (("channel", ("ecommerce", "mobile_wallet")),), D) in engine.groups
    assert len(engine.groups) == 6


def test_user_added_features_end_to_end() -> None:
    engine = extended_engine()
    e, c, w = Channel.ECOMMERCE, Channel.CARD_PRESENT, Channel.MOBILE_WALLET
    txs = [
        tx(1, T0, channel=e, amount_minor=1_00),
        tx(2, T0 + timedelta(hours=1), channel=c, amount_minor=2_00),
        tx(3, T0 + timedelta(hours=5, minutes=50), channel=w, amount_minor=4_00),
        tx(4, T0 + timedelta(hours=6), channel=e, amount_minor=8_00),  # tx 1 exactly 6h ago
        tx(5, T0 + timedelta(hours=6, minutes=10), channel=c, amount_minor=16_00),
        tx(6, T0 + timedelta(hours=6, minutes=15), channel=e, amount_minor=32_00),
        tx(7, T0 + timedelta(hours=6, minutes=20), channel=e, merchant_id="mer-2"),
    ]
    rows = compute_offline(txs, engine=engine)
    col = {name: rows[:, i].tolist() for i, name in enumerate(engine.names)}
    # 6h in 15-minute tiles: tx 1's tile leaves the window at T0 + 6h, tx 2's at T0 + 7h
    assert col["acc_count_6h"] == [1, 2, 3, 3, 4, 5, 6]
    assert col["acc_ecom_count_1d"] == [1, 1, 1, 2, 2, 3, 4]
    assert col["acc_remote_sum_1d"] == [1, 1, 5, 13, 13, 45, 55]
    # mer-1 in [as_of - 2h, as_of), as_of = the whole hour of the transaction: tx 1 (12:00)
    # for tx 2 (as of 13:00); tx 3 (17:50) for tx 4-6 (as of 18:00); mer-2 has no history
    assert col["merchant_count_2h"] == [0, 1, 0, 1, 1, 1, 0]
    # the packaged features are what the packaged engine computes
    packaged = compute_offline(txs)
    assert np.array_equal(rows[:, :27], packaged)
    dicts = feature_dicts(txs, engine=engine)
    assert list(dicts[3]) == list(engine.names)
    assert dicts[3]["acc_count_6h"] == 3.0


def test_a_filter_on_country_and_cross_border_is_case_insensitive() -> None:
    data = raw_spec()
    data["features"] = yaml.safe_load(
        """
        - {name: de_count, entity: account, aggregate: count, window: 1d, hop: 1h,
           where: {country: de}}
        - {name: abroad_count, entity: account, aggregate: count, window: 1d, hop: 1h,
           where: {cross_border: true}}
        - {name: grocery_count, entity: account, aggregate: count, window: 1d, hop: 1h,
           where: {mcc: [5411, 5499]}}
        """
    )
    engine = Engine(parse_spec(data))
    txs = [
        tx(1, T0, country="DE", card_country="DE", mcc="5411"),
        tx(2, T0 + timedelta(minutes=1), country="DE", card_country="FR", mcc="5812"),
        tx(3, T0 + timedelta(minutes=2), country="FR", card_country="FR", mcc="5499"),
        tx(4, T0 + timedelta(minutes=3), country="FR", card_country=None, mcc="5411"),
    ]
    rows = compute_offline(txs, engine=engine)
    assert rows.tolist() == [[1, 0, 1], [2, 1, 1], [2, 1, 2], [2, 1, 3]]
