"""The monitor's pure logic: a bounded, rolling join of predictions with labels, and its stats.

No Kafka here. :class:`RollingJoin` keeps the predictions and labels of the last ``window_s``
seconds of *record time* (the Kafka record timestamp of each event, passed in by the caller),
joins them by ``transaction_id`` whichever arrives first, and answers, per model version and
alias, the labelled (score, truth) pairs and the live scores. :func:`classification_stats` turns
the pairs into precision / recall at the decision threshold and average precision;
:func:`psi` compares the live scores with the model's training reference deciles.

Memory is bounded twice: entries older than the window are evicted, and each store holds at
most ``max_predictions`` / ``max_labels`` entries (the oldest by record time go first). Both
follow record time, not arrival order: partitions are read unevenly (during a rebuild one may be
hours ahead of another), so each store keeps a heap of record times beside its dict.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

PSI_EPSILON = 1e-4
"""Floor of a bin's share in :func:`psi`: an empty bin costs a finite, large penalty."""


@dataclass(frozen=True, slots=True, order=True)
class Group:
    """What the monitor reports per: one model version serving as one alias."""

    model: str
    version: str
    alias: str


@dataclass(frozen=True, slots=True)
class Prediction:
    transaction_id: str
    group: Group
    score: float
    time: float
    """Record time, seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class Label:
    transaction_id: str
    is_fraud: bool
    time: float


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TimedStore(Generic[K, V]):
    """A dict whose entries leave oldest record time first (a heap with lazy deletion)."""

    def __init__(self) -> None:
        self._items: dict[K, tuple[int, V]] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        return None if item is None else item[1]

    def values(self) -> Iterator[V]:
        return (v for _, v in self._items.values())

    def put(self, key: K, value: V, time: float) -> V | None:
        """Insert or replace; returns the replaced value."""
        seq = next(self._seq)
        old = self._items.get(key)
        self._items[key] = (seq, value)
        heapq.heappush(self._heap, (time, seq, key))
        if len(self._heap) > 2 * len(self._items) + 64:  # replaced entries pile up: compact
            self._heap = [e for e in self._heap if self._current(e)]
            heapq.heapify(self._heap)
        return None if old is None else old[1]

    def oldest_time(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_oldest(self) -> V:
        self._drop_stale()
        _, _, key = heapq.heappop(self._heap)
        return self._items.pop(key)[1]

    def _current(self, entry: tuple[float, int, K]) -> bool:
        item = self._items.get(entry[2])
        return item is not None and item[0] == entry[1]

    def _drop_stale(self) -> None:
        while self._heap and not self._current(self._heap[0]):
            heapq.heappop(self._heap)


class RollingJoin:
    """Predictions ⋈ labels on ``transaction_id`` over a rolling window, bounded in memory.

    A transaction may have one prediction per alias (champion and challenger); a label joins
    every one of them. A later prediction for the same transaction and alias replaces the earlier
    one; a later label for the same transaction (a chargeback reversed) replaces the truth.
    """

    def __init__(
        self, *, window_s: float, max_predictions: int = 500_000, max_labels: int = 500_000
    ) -> None:
        if window_s <= 0 or max_predictions < 1 or max_labels < 1:
            raise ValueError("window_s, max_predictions and max_labels must be positive")
        self.window_s = window_s
        self.max_predictions = max_predictions
        self.max_labels = max_labels
        self._predictions: TimedStore[tuple[str, str], Prediction] = TimedStore()
        self._labels: TimedStore[str, Label] = TimedStore()
        self._aliases: dict[str, set[str]] = {}
        """transaction id → aliases with a prediction in the window (for labels arriving late)."""
        self._scores: dict[Group, dict[str, float]] = {}
        """group → transaction id → score: every live prediction (the PSI input)."""
        self._joined: dict[Group, dict[str, bool]] = {}
        """group → transaction id → is_fraud: predictions that have their label."""
        self.evicted_predictions = 0
        self.evicted_labels = 0

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def n_predictions(self) -> int:
        return len(self._predictions)

    @property
    def n_labels(self) -> int:
        return len(self._labels)

    def groups(self) -> list[Group]:
        return sorted(self._scores)

    # -- input -------------------------------------------------------------------------------------
    def add_prediction(self, prediction: Prediction) -> None:
        key = (prediction.transaction_id, prediction.group.alias)
        old = self._predictions.put(key, prediction, prediction.time)
        if old is not None:
            self._forget(old)
        self._aliases.setdefault(prediction.transaction_id, set()).add(prediction.group.alias)
        self._scores.setdefault(prediction.group, {})[prediction.transaction_id] = prediction.score
        label = self._labels.get(prediction.transaction_id)
        if label is not None:
            self._joined.setdefault(prediction.group, {})[prediction.transaction_id] = (
                label.is_fraud
            )
        while len(self._predictions) > self.max_predictions:
            self._evict_prediction()

    def add_label(self, label: Label) -> None:
        txn = label.transaction_id
        self._labels.put(txn, label, label.time)
        for alias in self._aliases.get(txn, ()):
            prediction = self._predictions.get((txn, alias))
            if prediction is not None:
                self._joined.setdefault(prediction.group, {})[txn] = label.is_fraud
        while len(self._labels) > self.max_labels:
            self._labels.pop_oldest()
            self.evicted_labels += 1

    def evict(self, now: float) -> None:
        """Drop predictions and labels whose record time is older than ``now - window_s``.

        A joined pair lives as long as its prediction: the label of a prediction still in the
        window stays joined even when the label itself (which arrived first) has expired.
        """
        cutoff = now - self.window_s
        while (oldest := self._predictions.oldest_time()) is not None and oldest < cutoff:
            self._evict_prediction()
        while (oldest := self._labels.oldest_time()) is not None and oldest < cutoff:
            self._labels.pop_oldest()
            self.evicted_labels += 1

    def _evict_prediction(self) -> None:
        prediction = self._predictions.pop_oldest()
        self._forget(prediction)
        self.evicted_predictions += 1

    def _forget(self, prediction: Prediction) -> None:
        txn, group = prediction.transaction_id, prediction.group
        aliases = self._aliases.get(txn)
        if aliases is not None:
            aliases.discard(group.alias)
            if not aliases:
                del self._aliases[txn]
        for table in (self._scores, self._joined):
            rows = table.get(group)
            if rows is not None:
                rows.pop(txn, None)
                if not rows:
                    del table[group]

    # -- output ------------------------------------------------------------------------------------
    def scores(self, group: Group) -> NDArray[np.float64]:
        rows = self._scores.get(group, {})
        return np.fromiter(rows.values(), dtype=np.float64, count=len(rows))

    def labelled(self, group: Group) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        """``(y_true, y_score)`` of the group's predictions that have a label."""
        joined = self._joined.get(group, {})
        scores = self._scores.get(group, {})
        y_true = np.fromiter(joined.values(), dtype=np.bool_, count=len(joined))
        y_score = np.fromiter((scores[t] for t in joined), dtype=np.float64, count=len(joined))
        return y_true, y_score

    def __iter__(self) -> Iterator[Prediction]:
        return self._predictions.values()


# -- classification stats --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClassificationStats:
    labelled: int
    positives: int
    precision: float | None
    """``None`` when nothing scored at or above the threshold (undefined)."""
    recall: float | None
    """``None`` when no labelled prediction is fraud (undefined)."""
    average_precision: float | None
    """``None`` when no labelled prediction is fraud (undefined)."""


def average_precision(y_true: ArrayLike, y_score: ArrayLike) -> float | None:
    """Average precision, Σ (Rₙ - Rₙ₋₁)·Pₙ over the distinct score thresholds (as sklearn).

    ``None`` when there is no positive (the area is undefined).
    """
    truth = np.asarray(y_true, dtype=np.float64)
    score = np.asarray(y_score, dtype=np.float64)
    if truth.shape != score.shape or truth.ndim != 1:
        raise ValueError("y_true and y_score must be 1-d arrays of the same length")
    if truth.size == 0 or truth.sum() == 0:
        return None
    order = np.argsort(score, kind="mergesort")[::-1]
    score, truth = score[order], truth[order]
    # the last index of each run of equal scores: one threshold per distinct score
    last = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    tps = np.cumsum(truth)[last]
    fps = (last + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def classification_stats(
    y_true: ArrayLike, y_score: ArrayLike, *, threshold: float
) -> ClassificationStats:
    """Precision and recall of ``score >= threshold``, and average precision."""
    truth = np.asarray(y_true, dtype=np.bool_)
    score = np.asarray(y_score, dtype=np.float64)
    flagged = score >= threshold
    tp = int(np.sum(flagged & truth))
    fp = int(np.sum(flagged & ~truth))
    positives = int(truth.sum())
    return ClassificationStats(
        labelled=int(truth.size),
        positives=positives,
        precision=tp / (tp + fp) if tp + fp else None,
        recall=tp / positives if positives else None,
        average_precision=average_precision(truth, score),
    )


# -- drift -----------------------------------------------------------------------------------------
def reference_bins(deciles: Sequence[float]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(upper_edges, expected_shares)`` of the bins the reference deciles define.

    Nine deciles (0.1 … 0.9) cut the score axis into ten right-closed bins holding 10 % each:
    ``(-inf, d1], (d1, d2], …, (d9, +inf)``. Equal deciles (a score mass at one value, e.g. many
    zeros) would make an empty bin that the reference itself never fills; such bins are merged
    into the bin holding that value, which keeps their expected share.
    """
    edges = [float(d) for d in deciles]
    if len(edges) != 9 or any(not math.isfinite(d) for d in edges):
        raise ValueError(f"expected 9 finite deciles (0.1 … 0.9), got {list(deciles)}")
    if any(b < a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"deciles must be non-decreasing, got {edges}")
    uppers: list[float] = []
    shares: list[float] = []
    for upper in [*edges, math.inf]:
        if uppers and uppers[-1] == upper:
            shares[-1] += 0.1
        else:
            uppers.append(upper)
            shares.append(0.1)
    return np.asarray(uppers), np.asarray(shares)


def psi(scores: ArrayLike, deciles: Sequence[float], *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of ``scores`` against the reference deciles.

    PSI = Σ (aᵢ - eᵢ)·ln(aᵢ/eᵢ) over the reference bins, with shares floored at ``epsilon``.
    Rules of thumb: < 0.1 stable, 0.1 to 0.25 moderate shift, > 0.25 significant shift.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise ValueError("PSI needs at least one score")
    uppers, expected = reference_bins(deciles)
    counts = np.bincount(np.searchsorted(uppers, values, side="left"), minlength=uppers.size)
    actual = np.maximum(counts / values.size, epsilon)
    expected = np.maximum(expected, epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))
