"""The feature engine: interprets a :class:`~scorestream.features.spec.FeatureSpec`.

One implementation for serving and training. The enricher keeps an :class:`AccountState` per
account in its keyed state store and a :class:`MerchantState` per merchant in the replicated
merchant table; :func:`scorestream.features.offline.compute_offline` replays history through the
very same classes, so the two paths cannot drift.

State is bounded per key: an account keeps, per tile group (hop + filter), at most
``window / hop`` tiles of ``[count, sum of amount_minor]`` and at most ``dedupe_max_ids``
recent transaction ids; a merchant keeps hourly (``step``) tiles of the longest window plus
``retain``, its confirmed frauds in that span and a ring of recent ids. Updates are O(1) (one
tile per group); sums are integers, so the result does not depend on the order of additions.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import orjson

from schemas.events import TransactionEvent
from scorestream.features.spec import (
    AccountFeature,
    FeatureSpec,
    MerchantFeature,
    TileGroup,
    TransformFeature,
)

_MCC_BUCKETS: tuple[tuple[str, Sequence[tuple[int, int]]], ...] = (
    ("grocery", ((5411, 5411), (5422, 5499))),
    ("restaurant", ((5811, 5814),)),
    ("travel", ((3000, 3999), (4111, 4131), (4511, 4511), (4722, 4722), (7011, 7012))),
    ("fuel", ((5541, 5542),)),
    ("cash", ((6010, 6012),)),
    ("electronics_digital", ((5732, 5734), (5815, 5818), (4814, 4816))),
    ("gambling", ((7995, 7995),)),
    ("retail", ((5300, 5399), (5600, 5699), (5900, 5999))),
)
MCC_BUCKET_NAMES = (*(name for name, _ in _MCC_BUCKETS), "other")
STATE_VERSION = 1
"""Merchant state format."""
ACCOUNT_STATE_VERSION = 2
"""Account state format: 2 names tile groups by hop and filter (1 listed them by position)."""


@lru_cache(maxsize=4096)
def mcc_bucket(mcc: str) -> int:
    """Index into :data:`MCC_BUCKET_NAMES`."""
    code = int(mcc)
    for i, (_, ranges) in enumerate(_MCC_BUCKETS):
        if any(lo <= code <= hi for lo, hi in ranges):
            return i
    return len(_MCC_BUCKETS)


def id_hash(transaction_id: str) -> int:
    """48 bits of BLAKE2b: what the dedupe rings keep instead of the id (JSON-safe integer)."""
    return int.from_bytes(hashlib.blake2b(transaction_id.encode(), digest_size=6).digest(), "big")


def transform(f: TransformFeature, tx: TransactionEvent) -> float:
    amount = tx.amount_minor / 100.0
    ts = tx.timestamp
    name = f.transform
    if name == "amount":
        return amount
    if name == "log1p_amount":
        return math.log1p(amount)
    if name == "hour_of_day":
        return ts.hour + ts.minute / 60.0
    if name == "is_night":
        hour = ts.hour + ts.minute / 60.0
        return 1.0 if (hour < 6.0 or hour >= 22.0) else 0.0
    if name == "is_weekend":
        return 1.0 if ts.weekday() >= 5 else 0.0
    if name == "channel_is":
        return 1.0 if tx.channel.value == f.value else 0.0
    if name == "mcc_bucket":
        return float(mcc_bucket(tx.mcc))
    if name == "cross_border":
        return 1.0 if tx.card_country and tx.card_country != tx.country else 0.0
    raise AssertionError(f"unknown transform {name}")  # the spec parser refuses it first


def _field(tx: TransactionEvent, name: str) -> str:
    if name == "channel":
        return tx.channel.value
    if name == "cross_border":
        return "true" if tx.card_country and tx.card_country != tx.country else "false"
    value = getattr(tx, name)
    return str(value).lower() if value is not None else ""


def _matches(group: TileGroup, tx: TransactionEvent) -> bool:
    return all(_field(tx, name) in values for name, values in group.where)


def _ints(raw: dict[str, Any], name: str, stride: int) -> list[int]:
    """A flat list of integers whose length is a multiple of ``stride`` (ValueError if not)."""
    values = raw.get(name)
    if not isinstance(values, list) or len(values) % stride:
        raise ValueError(f"{name!r}: not a list of {stride}-tuples")
    if any(type(v) is not int for v in values):
        raise ValueError(f"{name!r}: not integers")
    return values


def group_signature(group: TileGroup) -> str:
    """How an account state names a tile group: by hop and filter, never by position, so a spec
    that adds or reorders windows still reads the groups it shares with the old one."""
    where = ";".join(f"{k}={','.join(v)}" for k, v in group.where)
    return f"{group.hop_s}|{where}"


# -- account state ---------------------------------------------------------------------------------
class AccountState:
    """One account's tiles (per group: tile index → ``[count, sum_minor]``) and recent ids."""

    __slots__ = ("eids", "ids", "tiles")

    def __init__(self, groups: int) -> None:
        self.tiles: list[dict[int, list[int]]] = [{} for _ in range(groups)]
        self.ids: dict[int, int] = {}
        """Recent transaction id hashes → event time (s), oldest first."""
        self.eids: dict[int, int] = {}
        """Transaction id hash → the hash of the CloudEvents id it first came with (for the ids
        in ``ids`` whose event id is known): a record with both the same is a *copy*."""

    def to_bytes(self, signatures: Sequence[str]) -> bytes:
        """JSON: tile groups by :func:`group_signature` (``signatures`` in group order)."""
        groups: dict[str, list[int]] = {}
        for sig, tiles in zip(signatures, self.tiles, strict=True):
            flat: list[int] = []
            for idx, (count, total) in tiles.items():
                flat += (idx, count, total)
            groups[sig] = flat
        ids: list[int] = []
        for h, t in self.ids.items():
            ids += (h, t)
        out: dict[str, object] = {"v": ACCOUNT_STATE_VERSION, "g": groups, "i": ids}
        if self.eids:  # optional: a state without it reads as before
            eids: list[int] = []
            for h, e in self.eids.items():
                eids += (h, e)
            out["e"] = eids
        return orjson.dumps(out)

    @classmethod
    def from_bytes(cls, data: bytes, signatures: Sequence[str]) -> AccountState:
        """The state for a spec whose groups are ``signatures``: groups of the stored state the
        spec no longer has are dropped, new ones start empty. ValueError when malformed."""
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("v") != ACCOUNT_STATE_VERSION:
            raise ValueError(
                f"not an account state of version {ACCOUNT_STATE_VERSION} (found "
                f"{raw.get('v') if isinstance(raw, dict) else '?'}): reset the enricher's "
                "state (docs/operations.md) or run the version that wrote it"
            )
        stored = raw.get("g")
        if not isinstance(stored, dict):
            raise ValueError("'g': not a mapping of tile groups")
        state = cls(len(signatures))
        for g, sig in enumerate(signatures):
            if sig in stored:
                flat = _ints(stored, sig, 3)
                state.tiles[g] = {
                    flat[i]: [flat[i + 1], flat[i + 2]] for i in range(0, len(flat), 3)
                }
        ids = _ints(raw, "i", 2)
        state.ids = {ids[i]: ids[i + 1] for i in range(0, len(ids), 2)}
        if "e" in raw:
            eids = _ints(raw, "e", 2)
            state.eids = {eids[i]: eids[i + 1] for i in range(0, len(eids), 2)}
        return state


# -- merchant state --------------------------------------------------------------------------------
class StepChangedError(ValueError):
    """A merchant state tiled with another ``step`` than the spec's (the tiles cannot be read)."""


class MerchantState:
    """One merchant's ``step`` tiles of transaction counts, its confirmed frauds (id hash →
    ``[tile of the transaction, labelled_at in ms]``) and a ring of recent transaction ids."""

    __slots__ = ("frauds", "ids", "tiles")

    def __init__(self) -> None:
        self.tiles: dict[int, int] = {}
        self.frauds: dict[int, list[int]] = {}
        self.ids: dict[int, None] = {}

    def observe_transaction(self, t_ms: int, h: int, step_ms: int, max_ids: int) -> bool:
        """Count a transaction once; False for a recently seen id (a re-publication)."""
        if h in self.ids:
            return False
        self.ids[h] = None
        if len(self.ids) > max_ids:
            del self.ids[next(iter(self.ids))]
        idx = t_ms // step_ms
        self.tiles[idx] = self.tiles.get(idx, 0) + 1
        return True

    def observe_fraud(self, tx_ms: int, known_ms: int, h: int, step_ms: int) -> bool:
        """A confirmed fraud of a transaction at ``tx_ms`` known from ``known_ms``; a repeated
        label keeps the earliest time it was known (order-independent). False: no change."""
        entry = self.frauds.get(h)
        if entry is None:
            self.frauds[h] = [tx_ms // step_ms, known_ms]
            return True
        if known_ms < entry[1]:
            entry[1] = known_ms
            return True
        return False

    def prune(self, horizon_idx: int) -> None:
        """Forget tiles and frauds of transactions before tile ``horizon_idx``."""
        for idx in [i for i in self.tiles if i < horizon_idx]:
            del self.tiles[idx]
        for h in [h for h, (idx, _) in self.frauds.items() if idx < horizon_idx]:
            del self.frauds[h]

    def to_bytes(self, step_ms: int | None = None) -> bytes:
        """JSON; with ``step_ms`` it records the tiling, which :meth:`from_bytes` checks."""
        tiles: list[int] = []
        for idx, count in sorted(self.tiles.items()):
            tiles += (idx, count)
        frauds: list[int] = []
        for h, (idx, known) in self.frauds.items():
            frauds += (h, idx, known)
        out: dict[str, Any] = {"v": STATE_VERSION, "t": tiles, "f": frauds, "i": list(self.ids)}
        if step_ms is not None:
            out["s"] = step_ms
        return orjson.dumps(out)

    @classmethod
    def from_bytes(cls, data: bytes, step_ms: int | None = None) -> MerchantState:
        """ValueError when malformed; :class:`StepChangedError` when tiled with another step."""
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("v") != STATE_VERSION:
            raise ValueError("not a merchant state of version 1")
        stored_step = raw.get("s")
        if step_ms is not None and stored_step is not None and stored_step != step_ms:
            raise StepChangedError(f"tiled by {stored_step} ms, the spec's step is {step_ms} ms")
        state = cls()
        t = _ints(raw, "t", 2)
        state.tiles = {t[i]: t[i + 1] for i in range(0, len(t), 2)}
        f = _ints(raw, "f", 3)
        state.frauds = {f[i]: [f[i + 1], f[i + 2]] for i in range(0, len(f), 3)}
        state.ids = dict.fromkeys(_ints(raw, "i", 1))
        return state


_COUNT, _SUM, _MEAN, _RATIO = range(4)


def _window_sums(items: Iterable[tuple[int, int]], a: int, windows: Sequence[int]) -> list[int]:
    """For each window of ``w`` steps, the sum of the values of tiles in ``[a - w, a)``."""
    sums = [0] * len(windows)
    for idx, value in items:  # one pass for every window
        if idx < a:
            age = a - idx
            for k, w in enumerate(windows):
                if age <= w:
                    sums[k] += value
    return sums


# -- the compiled spec -----------------------------------------------------------------------------
class Engine:
    """A spec compiled for evaluation: which tiles each feature reads, in spec order."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.names = spec.names
        self.groups = spec.account_groups
        self.signatures = tuple(group_signature(g) for g in self.groups)
        self._group_of = {(g.hop_s, g.where): i for i, g in enumerate(self.groups)}
        self._windows: list[list[int]] = [[] for _ in self.groups]
        """Per group: the distinct window lengths in tiles."""
        self.transforms: list[TransformFeature] = []
        self.account: list[tuple[AccountFeature, int, int]] = []
        """(feature, group, window in tiles)."""
        self.merchant: list[tuple[MerchantFeature, int]] = []
        """(feature, window in steps)."""
        for f in spec.features:
            if isinstance(f, TransformFeature):
                self.transforms.append(f)
            elif isinstance(f, AccountFeature):
                g = self._group_of[(f.hop_s, f.where)]
                tiles = f.window_s // f.hop_s
                if tiles not in self._windows[g]:
                    self._windows[g].append(tiles)
                self.account.append((f, g, tiles))
            else:
                self.merchant.append((f, f.window_s // spec.merchant_step_s))
        self._merchant_windows = sorted({w for _, w in self.merchant})
        """The distinct merchant windows, in steps."""
        self._observe_plan = [
            (g, grp.hop_s, grp if grp.where else None, grp.retention_s // grp.hop_s)
            for g, grp in enumerate(self.groups)
        ]
        self._read_plan = [
            (g, grp.hop_s, tuple(self._windows[g])) for g, grp in enumerate(self.groups)
        ]
        codes = {"count": _COUNT, "sum_amount": _SUM, "mean_amount": _MEAN, "amount_ratio": _RATIO}
        self._account_plan = [
            (f.name, codes[f.aggregate], g, self._windows[g].index(w)) for f, g, w in self.account
        ]
        self.step_ms = spec.merchant_step_s * 1000
        self.lag_ms = spec.merchant_lag_s * 1000
        self.merchant_horizon_steps = (
            spec.merchant_window_s + spec.merchant_retain_s
        ) // spec.merchant_step_s
        self._dedupe_s = spec.dedupe_horizon_s
        self._max_ids = spec.dedupe_max_ids
        self.merchant_max_ids = spec.merchant_dedupe_max_ids

    # -- transactions alone --------------------------------------------------------------------
    def transform_values(self, tx: TransactionEvent) -> dict[str, float]:
        """The transforms of ``tx`` (the same values as :func:`transform`, each input derived
        once: this runs for every event)."""
        amount = tx.amount_minor / 100.0
        ts = tx.timestamp
        hour = ts.hour + ts.minute / 60.0
        channel = tx.channel.value
        base = {
            "amount": amount,
            "log1p_amount": math.log1p(amount),
            "hour_of_day": hour,
            "is_night": 1.0 if (hour < 6.0 or hour >= 22.0) else 0.0,
            "is_weekend": 1.0 if ts.weekday() >= 5 else 0.0,
            "mcc_bucket": float(mcc_bucket(tx.mcc)),
            "cross_border": 1.0 if tx.card_country and tx.card_country != tx.country else 0.0,
        }
        out: dict[str, float] = {}
        for f in self.transforms:
            if f.transform == "channel_is":
                out[f.name] = 1.0 if channel == f.value else 0.0
            else:
                out[f.name] = base[f.transform]
        return out

    # -- accounts -------------------------------------------------------------------------------
    def new_account(self) -> AccountState:
        return AccountState(len(self.groups))

    def account_values(
        self,
        state: AccountState,
        tx: TransactionEvent,
        h: int | None = None,
        event_hash: int | None = None,
    ) -> tuple[dict[str, float], bool]:
        """The account features of ``tx`` with ``tx`` in its windows; the state then includes
        ``tx`` unless it is a re-publication of a recent one (same id: returned ``True``, the
        windows are read without counting it again)."""
        t = tx.timestamp.timestamp()
        h = id_hash(tx.transaction_id) if h is None else h
        duplicate = h in state.ids
        if not duplicate:
            self._observe(state, tx, t, h)
            if event_hash is not None:
                state.eids[h] = event_hash
        return self._account_read(state, tx, t), duplicate

    @staticmethod
    def is_copy(state: AccountState, tx: TransactionEvent, event_hash: int) -> bool:
        """Whether ``tx`` is a copy of a recent record: the same transaction id *and* the same
        CloudEvents id (a producer's retry that was written twice), not a re-publication."""
        return state.eids.get(id_hash(tx.transaction_id)) == event_hash

    def _observe(self, state: AccountState, tx: TransactionEvent, t: float, h: int) -> None:
        amount = tx.amount_minor
        all_tiles = state.tiles
        for g, hop, group, keep in self._observe_plan:
            if group is not None and not _matches(group, tx):
                continue
            tiles = all_tiles[g]
            idx = int(t // hop)
            tile = tiles.get(idx)
            if tile is not None:
                tile[0] += 1
                tile[1] += amount
                continue
            tiles[idx] = [1, amount]
            cut = idx - keep
            for old in [i for i in tiles if i <= cut]:
                del tiles[old]
        ids = state.ids
        now = int(t)
        ids[h] = now
        horizon = now - self._dedupe_s
        max_ids = self._max_ids
        eids = state.eids
        while ids and (len(ids) > max_ids or next(iter(ids.values())) < horizon):
            oldest = next(iter(ids))
            del ids[oldest]
            if eids:
                eids.pop(oldest, None)

    def _account_read(
        self, state: AccountState, tx: TransactionEvent, t: float
    ) -> dict[str, float]:
        sums = self._account_sums(state, t)
        amount_now = tx.amount_minor / 100.0
        out: dict[str, float] = {}
        for name, code, g, k in self._account_plan:
            n, total = sums[g][k]
            if code == _COUNT:
                out[name] = float(n)
            elif code == _SUM:
                out[name] = total / 100.0
            else:
                mean = (total / 100.0) / n if n else 0.0
                if code == _MEAN:
                    out[name] = mean
                else:
                    out[name] = amount_now / mean if mean > 0 else 1.0
        return out

    def _account_sums(self, state: AccountState, t: float) -> list[list[tuple[int, int]]]:
        """Per tile group, per window: (count, sum of amount_minor) of the tiles in it."""
        sums: list[list[tuple[int, int]]] = []
        all_tiles = state.tiles
        for g, hop, windows in self._read_plan:
            hi = int(t // hop)
            if len(windows) == 1:
                lo = hi - windows[0]
                n = total = 0
                for idx, (count, amount) in all_tiles[g].items():
                    if lo < idx <= hi:
                        n += count
                        total += amount
                sums.append([(n, total)])
                continue
            counts = [0] * len(windows)
            totals = [0] * len(windows)
            for idx, (count, amount) in all_tiles[g].items():  # one pass for every window
                age = hi - idx
                if age < 0:
                    continue
                for k, w in enumerate(windows):
                    if age < w:
                        counts[k] += count
                        totals[k] += amount
            sums.append(list(zip(counts, totals, strict=True)))
        return sums

    # -- merchants ------------------------------------------------------------------------------
    def target_as_of_ms(self, t_ms: int) -> int:
        """The as-of a transaction at ``t_ms`` asks for: ``floor((t - lag) / step) * step``."""
        return ((t_ms - self.lag_ms) // self.step_ms) * self.step_ms

    def merchant_values(
        self, state: MerchantState | None, as_of_ms: int | None
    ) -> dict[str, float]:
        """The merchant features as of ``as_of_ms`` (a multiple of ``step``): windows
        ``[as_of - w, as_of)`` of transaction tiles; frauds of transactions in the window whose
        label was known before ``as_of``. No state or no as-of: all zero."""
        if state is None or as_of_ms is None:
            return {f.name: 0.0 for f, _ in self.merchant}
        a = as_of_ms // self.step_ms
        windows = self._merchant_windows
        known = [(idx, 1) for idx, at in state.frauds.values() if at < as_of_ms]
        counts = dict(zip(windows, _window_sums(state.tiles.items(), a, windows), strict=True))
        frauds = dict(zip(windows, _window_sums(known, a, windows), strict=True))
        out: dict[str, float] = {}
        for f, w in self.merchant:
            agg = f.aggregate
            if agg == "count":
                out[f.name] = float(counts[w])
            elif agg == "fraud_count":
                out[f.name] = float(frauds[w])
            else:  # fraud_rate
                out[f.name] = frauds[w] / counts[w] if counts[w] else 0.0
        return out

    # -- assembly -------------------------------------------------------------------------------
    def assemble(self, *parts: dict[str, float]) -> dict[str, float]:
        """Feature name → value in spec order (what the enriched event carries)."""
        merged: dict[str, float] = {}
        for part in parts:
            merged |= part
        return {name: merged[name] for name in self.names}


def to_vector(features: dict[str, float] | Any, names: Sequence[str]) -> list[float]:
    """Values in ``names`` order; a missing feature is an error, not a silent zero."""
    try:
        return [features[name] for name in names]
    except KeyError as exc:
        raise ValueError(f"feature {exc.args[0]!r} is missing") from exc
