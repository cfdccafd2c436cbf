"""The one feature module: training, the enricher and the worker all compute features here.

Features are computed by :class:`FeatureState`, an incremental state machine over two kinds of
events: transactions (which get features and then update the state) and labels (which update the
per-merchant fraud counts once they are *known*). Training replays history through the very same
class (:func:`compute_offline`), so served and trained features are identical by construction —
no train/serve skew. The ordered :data:`FEATURE_SPEC` and its hash go into every model's
metadata; a model trained against another spec is refused.

:class:`FeatureState` is composed of one :class:`AccountWindows` per account and one
:class:`MerchantWindows` per merchant, each JSON-serialisable: the live enricher keeps them in
separate keyed state stores (account stage keyed like the input, merchant stage after a
repartition by merchant) and calls the very same methods, so the arithmetic cannot drift.

Windows are event-time windows ``(t - w, t]`` and include the current transaction, as in the
"Reproducible Machine Learning for Credit Card Fraud Detection" handbook. Merchant (terminal)
risk only counts frauds whose label has arrived by the transaction's time (the label delay is
respected, never peeked at).
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from schemas.events import Channel, LabelEvent, TransactionEvent

FEATURE_LOGIC_VERSION = "2"
"""Bump when the meaning of a feature changes without its name changing."""

HOUR_S = 3600.0
DAY_S = 86400.0
ACCOUNT_WINDOWS_D = (1, 7, 30)
MERCHANT_WINDOWS_D = (1, 7, 30)
MAX_WINDOW_S = 30 * DAY_S

_CHANNELS = tuple(Channel)

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


def mcc_bucket(mcc: str) -> int:
    """Index into :data:`MCC_BUCKET_NAMES`."""
    code = int(mcc)
    for i, (_, ranges) in enumerate(_MCC_BUCKETS):
        if any(lo <= code <= hi for lo, hi in ranges):
            return i
    return len(_MCC_BUCKETS)


def _names() -> tuple[str, ...]:
    names = [
        "amount",
        "log_amount",
        "hour",
        "is_night",
        "is_weekend",
        *(f"channel_{c.value}" for c in _CHANNELS),
        "mcc_bucket",
        "cross_border",
        "acc_count_1h",
    ]
    for d in ACCOUNT_WINDOWS_D:
        names += [f"acc_count_{d}d", f"acc_mean_amount_{d}d"]
    names.append("acc_amount_ratio_30d")
    for d in MERCHANT_WINDOWS_D:
        names += [f"merchant_count_{d}d", f"merchant_frauds_{d}d"]
    names.append("merchant_risk_30d")
    return tuple(names)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    names: tuple[str, ...]
    dtype: str = "float32"
    logic_version: str = FEATURE_LOGIC_VERSION

    @property
    def hash(self) -> str:
        """Stable across processes and machines: sha256 of the ordered spec, 16 hex chars."""
        payload = json.dumps(
            {"names": self.names, "dtype": self.dtype, "logic": self.logic_version},
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.names)


FEATURE_SPEC = FeatureSpec(_names())
FEATURE_NAMES = FEATURE_SPEC.names


def _ts(when: datetime) -> float:
    return when.timestamp()


def stateless_features(tx: TransactionEvent) -> dict[str, float]:
    amount = tx.amount_minor / 100.0
    hour = tx.timestamp.hour + tx.timestamp.minute / 60.0
    out = {
        "amount": amount,
        "log_amount": math.log1p(amount),
        "hour": hour,
        "is_night": 1.0 if (hour < 6.0 or hour >= 22.0) else 0.0,
        "is_weekend": 1.0 if tx.timestamp.weekday() >= 5 else 0.0,
    }
    for c in _CHANNELS:
        out[f"channel_{c.value}"] = 1.0 if tx.channel is c else 0.0
    out["mcc_bucket"] = float(mcc_bucket(tx.mcc))
    out["cross_border"] = 1.0 if tx.card_country and tx.card_country != tx.country else 0.0
    return out


@dataclass(slots=True)
class _Series:
    """Timestamps (ascending) and amounts of one key within the largest window."""

    ts: list[float] = field(default_factory=list)
    amounts: list[float] = field(default_factory=list)

    def add(self, t: float, amount: float) -> None:
        if self.ts and t < self.ts[-1]:
            # late event for this key: keep the list sorted (rare; order is per key upstream)
            i = bisect_right(self.ts, t)
            self.ts.insert(i, t)
            self.amounts.insert(i, amount)
        else:
            self.ts.append(t)
            self.amounts.append(amount)

    def prune(self, now: float) -> None:
        cut = bisect_right(self.ts, now - MAX_WINDOW_S)
        if cut:
            del self.ts[:cut]
            del self.amounts[:cut]

    def known_in_window(self, now: float, seconds: float) -> int:
        """Entries with ``now - seconds < t <= now`` whose value (a known-at time) is <= now."""
        lo = bisect_right(self.ts, now - seconds)
        hi = bisect_right(self.ts, now)
        return sum(1 for known_at in self.amounts[lo:hi] if known_at <= now)

    def window(self, now: float, seconds: float) -> tuple[int, float]:
        """Count and sum of amounts with ``now - seconds < t <= now``."""
        lo = bisect_right(self.ts, now - seconds)
        hi = bisect_right(self.ts, now)
        return hi - lo, math.fsum(self.amounts[lo:hi])


@dataclass(slots=True)
class AccountWindows:
    """The per-account part of the state: one account's transactions within the largest window.

    Serialisable (:meth:`to_json` / :meth:`from_json`) so a stream processor can keep it in a
    keyed state store; the features equal the offline path's when the account's transactions
    are fed in event-time order.
    """

    series: _Series = field(default_factory=_Series)

    def observe(self, tx: TransactionEvent) -> None:
        """Add ``tx`` without computing its features (state rebuild)."""
        now = _ts(tx.timestamp)
        self.series.add(now, tx.amount_minor / 100.0)
        self.series.prune(now)

    def features(self, tx: TransactionEvent) -> dict[str, float]:
        """Account features of ``tx`` (windows include it); the state then includes ``tx``."""
        return self.features_at(_ts(tx.timestamp), tx.amount_minor / 100.0)

    def features_at(self, now: float, amount: float) -> dict[str, float]:
        """:meth:`features` of a transaction at epoch seconds ``now`` of ``amount``."""
        acc = self.series
        acc.add(now, amount)
        acc.prune(now)
        out = {"acc_count_1h": float(acc.window(now, HOUR_S)[0])}
        for d in ACCOUNT_WINDOWS_D:
            n, total = acc.window(now, d * DAY_S)
            out[f"acc_count_{d}d"] = float(n)
            out[f"acc_mean_amount_{d}d"] = total / n if n else 0.0
        mean30 = out["acc_mean_amount_30d"]
        out["acc_amount_ratio_30d"] = amount / mean30 if mean30 > 0 else 1.0
        return out

    def to_json(self) -> dict[str, list[float]]:
        return {"ts": self.series.ts, "amounts": self.series.amounts}

    @classmethod
    def from_json(cls, data: Mapping[str, Sequence[float]] | None) -> AccountWindows:
        if not data:
            return cls()
        return cls(_Series(list(data["ts"]), list(data["amounts"])))


@dataclass(slots=True)
class MerchantWindows:
    """The per-merchant part of the state: the merchant's transaction times and its confirmed
    frauds (transaction time, with the time the label became known in the amount slot).

    Serialisable like :class:`AccountWindows`; the features equal the offline path's when the
    merchant's transactions and labels are fed in the order the offline replay uses (labels
    before the first transaction at or after their ``labelled_at``).
    """

    counts: _Series = field(default_factory=_Series)
    frauds: _Series = field(default_factory=_Series)

    def observe_fraud(self, transaction_time: datetime, labelled_at: datetime) -> None:
        """Count a confirmed fraud for transactions at or after ``labelled_at`` (no dedupe:
        callers count each transaction once)."""
        self.observe_fraud_at(_ts(transaction_time), _ts(labelled_at))

    def observe_fraud_at(self, transaction_ts: float, labelled_ts: float) -> None:
        """:meth:`observe_fraud` with epoch seconds."""
        self.frauds.add(transaction_ts, labelled_ts)

    def observe(self, tx: TransactionEvent) -> None:
        """Add ``tx`` without computing its features (state rebuild)."""
        now = _ts(tx.timestamp)
        self.counts.add(now, 1.0)
        self.counts.prune(now)

    def features(self, tx: TransactionEvent) -> dict[str, float]:
        """Merchant features of ``tx`` (windows include it); the state then includes ``tx``."""
        return self.features_at(_ts(tx.timestamp))

    def features_at(self, now: float) -> dict[str, float]:
        """:meth:`features` of a transaction at epoch seconds ``now``."""
        mer = self.counts
        mer.add(now, 1.0)
        mer.prune(now)
        frauds = self.frauds
        frauds.prune(now)
        out: dict[str, float] = {}
        for d in MERCHANT_WINDOWS_D:
            out[f"merchant_count_{d}d"] = float(mer.window(now, d * DAY_S)[0])
            out[f"merchant_frauds_{d}d"] = float(frauds.known_in_window(now, d * DAY_S))
        count30 = out["merchant_count_30d"]
        out["merchant_risk_30d"] = out["merchant_frauds_30d"] / count30 if count30 else 0.0
        return out

    def to_json(self) -> dict[str, list[float]]:
        return {
            "ts": self.counts.ts,
            "fraud_ts": self.frauds.ts,
            "fraud_known_at": self.frauds.amounts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Sequence[float]] | None) -> MerchantWindows:
        if not data:
            return cls()
        ts = list(data["ts"])
        return cls(
            _Series(ts, [1.0] * len(ts)),
            _Series(list(data["fraud_ts"]), list(data["fraud_known_at"])),
        )


@dataclass(slots=True)
class FeatureState:
    """Per-account and per-merchant windows of every key. Feed it events in event-time order.

    Composed of :class:`AccountWindows` and :class:`MerchantWindows` per key — the parts a
    stream processor keeps in separate keyed stores (the enricher: account state keyed like the
    input, merchant state after a repartition by merchant).
    """

    accounts: dict[str, AccountWindows] = field(default_factory=dict)
    merchants: dict[str, MerchantWindows] = field(default_factory=dict)
    _labelled: set[str] = field(default_factory=set)

    def observe_label(self, label: LabelEvent) -> None:
        """Record a fraud label. It counts for transactions at or after its ``labelled_at``, in
        event time — so the result does not depend on when the label is *processed*, only on
        what was known at each transaction's timestamp."""
        if not label.is_fraud or label.transaction_id in self._labelled:
            return  # idempotent: a redelivered label is counted once
        self._labelled.add(label.transaction_id)
        merchant = self.merchants.setdefault(label.merchant_id, MerchantWindows())
        merchant.observe_fraud(label.transaction_time, label.labelled_at)

    def observe_transaction(self, tx: TransactionEvent) -> None:
        """Add ``tx`` to the windows without computing its features (state rebuild)."""
        self.accounts.setdefault(tx.account_id, AccountWindows()).observe(tx)
        self.merchants.setdefault(tx.merchant_id, MerchantWindows()).observe(tx)

    def features_for(self, tx: TransactionEvent) -> dict[str, float]:
        """Features of ``tx`` (windows include it), then the state includes ``tx``."""
        out = stateless_features(tx)
        out |= self.accounts.setdefault(tx.account_id, AccountWindows()).features(tx)
        out |= self.merchants.setdefault(tx.merchant_id, MerchantWindows()).features(tx)
        return out


def to_vector(features: Mapping[str, float], spec: FeatureSpec = FEATURE_SPEC) -> list[float]:
    """Values in spec order; a missing feature is an error, not a silent zero."""
    try:
        return [features[name] for name in spec.names]
    except KeyError as exc:
        raise ValueError(f"feature {exc.args[0]!r} of spec {spec.hash} is missing") from exc


def compute_offline(
    transactions: Iterable[TransactionEvent],
    labels: Iterable[LabelEvent] = (),
    *,
    state: FeatureState | None = None,
) -> npt.NDArray[np.float32]:
    """Feature matrix for ``transactions`` (in the given order of rows), replaying history.

    Transactions are replayed in event-time order; a fraud label counts for a transaction only
    if its ``labelled_at`` is at or before the transaction's timestamp — exactly what a live
    enricher that consumes both streams knows at that moment.
    """
    txs = list(transactions)
    order = sorted(range(len(txs)), key=lambda i: txs[i].timestamp)
    pending = sorted(labels, key=lambda label: label.labelled_at)
    st = state or FeatureState()
    rows = np.empty((len(txs), len(FEATURE_SPEC)), dtype=np.float32)
    j = 0
    for i in order:
        tx = txs[i]
        while j < len(pending) and pending[j].labelled_at <= tx.timestamp:
            st.observe_label(pending[j])
            j += 1
        rows[i] = to_vector(st.features_for(tx))
    return rows
