"""The feature spec: features declared as data (a YAML file), validated and hashed.

A spec lists features in the order of the model's input tensor. Three kinds:

* ``transform``: a function of the transaction alone (:data:`TRANSFORMS`);
* ``entity: account``: an aggregate of the account's own transactions over a tiled window
  (``window``, ``hop``, optional ``where`` filter on transaction fields), including the
  transaction itself;
* ``entity: merchant``: an aggregate of the merchant's transactions and fraud labels as of the
  merchant table's ``as_of`` (windows ``[as_of - w, as_of)``, whole ``step``\\ s).

The spec's :attr:`FeatureSpec.hash` covers everything that changes a number (not comments or
key order), so a model records exactly what it was trained on.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from schemas.events import Channel
from scorestream.errors import ConfigError

ENGINE_VERSION = "3"
"""Bump when the engine's meaning of a declared feature changes (it is part of the hash)."""

TRANSFORMS = (
    "amount",
    "log1p_amount",
    "hour_of_day",
    "is_night",
    "is_weekend",
    "channel_is",
    "mcc_bucket",
    "cross_border",
)
ACCOUNT_AGGREGATES = ("count", "sum_amount", "mean_amount", "amount_ratio")
MERCHANT_AGGREGATES = ("count", "fraud_count", "fraud_rate")
CHANNELS = tuple(c.value for c in Channel)
WHERE_FIELDS = ("channel", "country", "currency", "mcc", "card_country", "cross_border")

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def duration_s(text: object, where: str) -> int:
    """``"5m"`` → 300. Whole seconds, minutes, hours or days."""
    m = _DURATION.match(str(text))
    if m is None:
        raise ConfigError(f"{where}: {text!r} is not a duration like 30s, 5m, 1h or 7d")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass(frozen=True, slots=True)
class TransformFeature:
    name: str
    transform: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class AccountFeature:
    name: str
    aggregate: str
    window_s: int
    hop_s: int
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class MerchantFeature:
    name: str
    aggregate: str
    window_s: int


Feature = TransformFeature | AccountFeature | MerchantFeature


@dataclass(frozen=True, slots=True)
class TileGroup:
    """Account tiles of one hop and filter, shared by every window declared on them."""

    hop_s: int
    where: tuple[tuple[str, tuple[str, ...]], ...]
    retention_s: int
    """The longest window on these tiles: older tiles are dropped."""


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    version: int
    features: tuple[Feature, ...]
    dtype: Literal["float32"] = "float32"
    dedupe_horizon_s: int = 7 * 86400
    dedupe_max_ids: int = 512
    merchant_step_s: int = 3600
    merchant_lag_s: int = 0
    merchant_retain_s: int = 7 * 86400
    merchant_dedupe_max_ids: int = 256
    source: str = field(default="<inline>", compare=False)
    _hash: str = field(default="", compare=False, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def account_groups(self) -> tuple[TileGroup, ...]:
        groups: dict[tuple[int, Any], int] = {}
        for f in self.features:
            if isinstance(f, AccountFeature):
                key = (f.hop_s, f.where)
                groups[key] = max(groups.get(key, 0), f.window_s)
        return tuple(TileGroup(hop, where, ret) for (hop, where), ret in groups.items())

    @property
    def merchant_window_s(self) -> int:
        return max((f.window_s for f in self.features if isinstance(f, MerchantFeature)), default=0)

    def canonical(self) -> dict[str, Any]:
        """Everything that decides a number, in a stable form (what the hash covers)."""
        return {
            "engine": ENGINE_VERSION,
            "name": self.name,
            "version": self.version,
            "dtype": self.dtype,
            "account": [self.dedupe_horizon_s, self.dedupe_max_ids],
            "merchant": [
                self.merchant_step_s,
                self.merchant_lag_s,
                self.merchant_retain_s,
                self.merchant_dedupe_max_ids,
            ],
            "features": [_canonical(f) for f in self.features],
        }

    @property
    def hash(self) -> str:
        """sha256 of :meth:`canonical`, 16 hex characters; stable across machines (computed
        once: the enricher reads it for every event)."""
        cached: str = self._hash
        if not cached:
            payload = json.dumps(self.canonical(), separators=(",", ":"), sort_keys=True)
            cached = hashlib.sha256(payload.encode()).hexdigest()[:16]
            object.__setattr__(self, "_hash", cached)
        return cached


def _canonical(f: Feature) -> list[Any]:
    if isinstance(f, TransformFeature):
        return ["transform", f.name, f.transform, f.value]
    if isinstance(f, AccountFeature):
        return ["account", f.name, f.aggregate, f.window_s, f.hop_s, [list(w) for w in f.where]]
    return ["merchant", f.name, f.aggregate, f.window_s]


def _where(raw: object, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}.where: a mapping of field → value(s)")
    out = []
    for key, value in sorted(raw.items()):
        if key not in WHERE_FIELDS:
            raise ConfigError(f"{where}.where: {key!r} is not one of {list(WHERE_FIELDS)}")
        values = value if isinstance(value, list) else [value]
        texts = tuple(sorted(str(v).lower() for v in values))
        if not texts:
            raise ConfigError(f"{where}.where.{key}: at least one value")
        if key == "channel" and any(v not in CHANNELS for v in texts):
            raise ConfigError(f"{where}.where.channel: each one of {CHANNELS}")
        out.append((str(key), texts))
    return tuple(out)


def _transform(raw: dict[str, Any], name: str, where: str) -> TransformFeature:
    _only(raw, {"name", "transform", "value"}, where)
    transform = str(raw["transform"])
    if transform not in TRANSFORMS:
        raise ConfigError(f"{where}: transform {transform!r} is not one of {TRANSFORMS}")
    value = raw.get("value")
    if (transform == "channel_is") != (value is not None):
        raise ConfigError(f"{where}: 'value' goes with (and only with) channel_is")
    if value is not None and str(value) not in CHANNELS:
        raise ConfigError(f"{where}: channel {value!r} is not one of {CHANNELS}")
    return TransformFeature(name, transform, None if value is None else str(value))


def _account(raw: dict[str, Any], name: str, where: str) -> AccountFeature:
    _only(raw, {"name", "entity", "aggregate", "window", "hop", "where"}, where)
    aggregate = str(raw.get("aggregate", ""))
    if aggregate not in ACCOUNT_AGGREGATES:
        raise ConfigError(f"{where}: aggregate {aggregate!r} not in {ACCOUNT_AGGREGATES}")
    window = duration_s(raw.get("window"), f"{where}.window")
    hop = duration_s(raw.get("hop"), f"{where}.hop")
    if hop <= 0 or window % hop or window < hop:
        raise ConfigError(f"{where}: window must be a whole number (≥ 1) of hops")
    return AccountFeature(name, aggregate, window, hop, _where(raw.get("where"), where))


def _merchant(raw: dict[str, Any], name: str, where: str, step_s: int) -> MerchantFeature:
    _only(raw, {"name", "entity", "aggregate", "window"}, where)
    aggregate = str(raw.get("aggregate", ""))
    if aggregate not in MERCHANT_AGGREGATES:
        raise ConfigError(f"{where}: aggregate {aggregate!r} not in {MERCHANT_AGGREGATES}")
    window = duration_s(raw.get("window"), f"{where}.window")
    if window <= 0 or window % step_s:
        raise ConfigError(f"{where}: window must be a whole number of merchant.step")
    return MerchantFeature(name, aggregate, window)


def _only(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")


def _feature(raw: object, i: int, step_s: int) -> Feature:
    if not isinstance(raw, dict):
        raise ConfigError(f"features[{i}]: a mapping with a name")
    name = str(raw.get("name", ""))
    if not _NAME.match(name):
        raise ConfigError(f"features[{i}]: name {name!r} must be lower_snake_case")
    where = f"feature {name!r}"
    if "transform" in raw:
        return _transform(raw, name, where)
    entity = raw.get("entity")
    if entity == "account":
        return _account(raw, name, where)
    if entity == "merchant":
        return _merchant(raw, name, where, step_s)
    raise ConfigError(f"{where}: needs 'transform', or 'entity' (account or merchant)")


def _section(data: dict[str, Any], name: str, keys: set[str]) -> dict[str, Any]:
    section = data.get(name) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{name}: a mapping of {sorted(keys)}")
    _only(section, keys, name)
    return section


def _count(section: dict[str, Any], key: str, default: int, where: str) -> int:
    value = section.get(key, default)
    if type(value) is not int or value < 1:
        raise ConfigError(f"{where}.{key}: a whole number ≥ 1, not {value!r}")
    return value


def parse_spec(data: object, *, source: str = "<inline>") -> FeatureSpec:
    """A :class:`FeatureSpec` from the parsed YAML; :class:`ConfigError` names what is wrong."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a feature spec is a mapping")
    _only(data, {"name", "version", "dtype", "account", "merchant", "features"}, source)
    account = _section(data, "account", {"dedupe_horizon", "dedupe_max_ids"})
    merchant = _section(data, "merchant", {"step", "lag", "retain", "dedupe_max_ids"})
    step = duration_s(merchant.get("step", "1h"), "merchant.step")
    if step <= 0 or 86400 % step:
        raise ConfigError("merchant.step must divide a day (e.g. 5m, 15m, 1h)")
    raw_features = data.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise ConfigError(f"{source}: 'features' must be a non-empty list")
    features = tuple(_feature(raw, i, step) for i, raw in enumerate(raw_features))
    names = [f.name for f in features]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{source}: feature names declared twice: {dup}")
    if data.get("dtype", "float32") != "float32":
        raise ConfigError(f"{source}: dtype must be float32 (the model's input tensor)")
    version = data.get("version", 0)
    if type(version) is not int:
        raise ConfigError(f"{source}: version must be a whole number, not {version!r}")
    return FeatureSpec(
        name=str(data.get("name", "features")),
        version=version,
        features=features,
        dedupe_horizon_s=duration_s(account.get("dedupe_horizon", "7d"), "account.dedupe_horizon"),
        dedupe_max_ids=_count(account, "dedupe_max_ids", 512, "account"),
        merchant_step_s=step,
        merchant_lag_s=duration_s(merchant.get("lag", "0s"), "merchant.lag"),
        merchant_retain_s=duration_s(merchant.get("retain", "7d"), "merchant.retain"),
        merchant_dedupe_max_ids=_count(merchant, "dedupe_max_ids", 256, "merchant"),
        source=source,
    )


DEFAULT_SPEC_PATH = Path(__file__).with_name("fraud.yaml")


def load_spec(path: Path | str | None = None) -> FeatureSpec:
    """Read and validate a spec file (default: the packaged ``fraud.yaml``)."""
    p = Path(path) if path else DEFAULT_SPEC_PATH
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the feature spec {p}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"the feature spec {p} is not valid YAML: {exc}") from exc
    return parse_spec(data, source=str(p))
