"""The monitor's pure logic: rolling join, precision / recall / AP, PSI, gauges."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY
from sklearn.metrics import average_precision_score, precision_score, recall_score

from consumers.monitor import GaugePublisher, ReferenceCache
from consumers.monitor_stats import (
    Group,
    Label,
    Prediction,
    RollingJoin,
    average_precision,
    classification_stats,
    psi,
    reference_bins,
)
from pipelines.repository import ModelRepository
from pipelines.training import score_deciles
from tests.model_factory import tiny_model

CHAMP = Group("fraud-gbt", "1", "champion")
CHALL = Group("fraud-gbt", "2", "challenger")


def _data(seed: int, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.1
    # informative but noisy scores, rounded so that ties exist (AP must handle them as sklearn)
    s = np.clip(np.round(0.3 * y + rng.beta(2, 5, n), 2), 0, 1)
    return y, s


# -- classification stats --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stats_match_sklearn(seed: int) -> None:
    y, s = _data(seed)
    stats = classification_stats(y, s, threshold=0.5)
    assert stats.labelled == len(y)
    assert stats.positives == int(y.sum())
    assert stats.precision == pytest.approx(precision_score(y, s >= 0.5), abs=1e-12)
    assert stats.recall == pytest.approx(recall_score(y, s >= 0.5), abs=1e-12)
    assert stats.average_precision == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_average_precision_small_cases() -> None:
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(
        average_precision_score([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
    )
    assert average_precision([1, 1], [0.5, 0.5]) == 1.0
    assert average_precision([0, 1, 0], [0.2, 0.2, 0.2]) == pytest.approx(1 / 3)
    assert average_precision([0, 0], [0.1, 0.9]) is None  # no positive: undefined
    assert average_precision([], []) is None


def test_undefined_precision_and_recall_are_none() -> None:
    nothing_flagged = classification_stats([True, False], [0.1, 0.2], threshold=0.5)
    assert nothing_flagged.precision is None
    assert nothing_flagged.recall == 0.0
    no_fraud = classification_stats([False, False], [0.9, 0.2], threshold=0.5)
    assert no_fraud.precision == 0.0
    assert no_fraud.recall is None
    assert no_fraud.average_precision is None


# -- PSI -------------------------------------------------------------------------------------------
def test_psi_is_near_zero_for_the_reference_distribution() -> None:
    rng = np.random.default_rng(7)
    train = rng.beta(1.2, 8, 50_000)
    reference = score_deciles(train)
    live = rng.beta(1.2, 8, 20_000)  # same distribution, fresh sample
    assert psi(live, reference) < 0.01
    assert psi(train, reference) < 1e-3  # exactly 10 % per bin, up to ties


def test_psi_is_large_for_a_shifted_distribution() -> None:
    rng = np.random.default_rng(8)
    reference = score_deciles(rng.beta(1.2, 8, 50_000))
    mild = np.clip(rng.beta(1.2, 8, 20_000) * 1.3, 0, 1)
    shifted = rng.beta(4, 4, 20_000)  # centred on 0.5: a different regime
    assert 0.02 < psi(mild, reference) < psi(shifted, reference)
    assert psi(shifted, reference) > 1.0


def test_psi_formula_on_hand_made_bins() -> None:
    deciles = [0.1 * i for i in range(1, 10)]
    # all 10 bins evenly filled: PSI 0; everything in one bin: 0.9·... per formula
    even = np.array([0.05 + 0.1 * i for i in range(10)])
    assert psi(even, deciles) == pytest.approx(0.0, abs=1e-12)
    lumped = np.full(10, 0.05)
    eps = 1e-4
    expected = (1 - 0.1) * np.log(1 / 0.1) + 9 * (eps - 0.1) * np.log(eps / 0.1)
    assert psi(lumped, deciles) == pytest.approx(expected)


def test_equal_deciles_merge_their_bins() -> None:
    uppers, shares = reference_bins([0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert list(uppers) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, np.inf]
    assert shares[0] == pytest.approx(0.3)
    assert shares.sum() == pytest.approx(1.0)
    # a live sample with 30 % zeros matches such a reference
    live = np.r_[np.zeros(30), np.repeat([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.7], 10)]
    assert psi(live, [0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(0, abs=1e-12)


def test_bad_references_are_refused() -> None:
    with pytest.raises(ValueError, match="9 finite deciles"):
        reference_bins([0.1, 0.2])
    with pytest.raises(ValueError, match="non-decreasing"):
        reference_bins([0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])


# -- rolling join ----------------------------------------------------------------------------------
def test_label_after_prediction_joins() -> None:
    j = RollingJoin(window_s=100)
    j.add_prediction(Prediction("t1", CHAMP, 0.9, 10))
    j.add_prediction(Prediction("t2", CHAMP, 0.2, 11))
    assert j.labelled(CHAMP)[0].size == 0
    j.add_label(Label("t1", True, 20))
    y, s = j.labelled(CHAMP)
    assert list(y) == [True]
    assert list(s) == [0.9]


def test_label_before_prediction_joins_every_alias() -> None:
    j = RollingJoin(window_s=100)
    j.add_label(Label("t1", False, 5))
    j.add_prediction(Prediction("t1", CHAMP, 0.3, 10))
    j.add_prediction(Prediction("t1", CHALL, 0.7, 10))
    assert list(zip(*j.labelled(CHAMP), strict=True)) == [(False, 0.3)]
    assert list(zip(*j.labelled(CHALL), strict=True)) == [(False, 0.7)]
    j.add_label(Label("t1", True, 30))  # a corrected label replaces the truth
    assert list(j.labelled(CHAMP)[0]) == [True]
    assert list(j.labelled(CHALL)[0]) == [True]


def test_a_repeated_prediction_replaces_the_earlier_one() -> None:
    j = RollingJoin(window_s=100)
    j.add_prediction(Prediction("t1", CHAMP, 0.3, 10))
    j.add_label(Label("t1", True, 11))
    j.add_prediction(Prediction("t1", Group("fraud-gbt", "3", "champion"), 0.8, 12))
    assert j.n_predictions == 1
    assert j.groups() == [Group("fraud-gbt", "3", "champion")]
    assert list(j.scores(Group("fraud-gbt", "3", "champion"))) == [0.8]
    assert j.labelled(CHAMP)[0].size == 0


def test_old_entries_are_evicted_by_record_time() -> None:
    j = RollingJoin(window_s=100)
    for i in range(50):
        j.add_prediction(Prediction(f"t{i}", CHAMP, 0.5, float(i)))
        j.add_label(Label(f"t{i}", i % 2 == 0, float(i)))
    j.add_label(Label("early", True, 30))  # waits for a prediction that never comes
    j.evict(now=140.0)  # cutoff 40: t0..t39 and the waiting label go
    assert j.n_predictions == 10
    assert j.labelled(CHAMP)[0].size == 10
    assert j.n_labels == 10
    assert j.evicted_predictions == 40
    j.evict(now=1000.0)
    assert j.n_predictions == 0
    assert j.n_labels == 0
    assert j.groups() == []


def test_a_joined_pair_outlives_its_earlier_label() -> None:
    j = RollingJoin(window_s=100)
    j.add_label(Label("t1", True, 10))
    j.add_prediction(Prediction("t1", CHAMP, 0.9, 60))
    j.evict(now=150.0)  # the label (t=10) expired, the prediction (t=60) did not
    assert j.n_labels == 0
    assert list(j.labelled(CHAMP)[0]) == [True]


def test_memory_is_bounded_by_size() -> None:
    j = RollingJoin(window_s=1e9, max_predictions=1000, max_labels=500)
    for i in range(10_000):
        j.add_prediction(Prediction(f"t{i}", CHAMP if i % 2 else CHALL, 0.5, float(i)))
        j.add_label(Label(f"u{i}", True, float(i)))
    assert j.n_predictions == 1000
    assert j.n_labels == 500
    assert j.scores(CHAMP).size + j.scores(CHALL).size == 1000
    assert j.evicted_predictions == 9000
    assert j.evicted_labels == 9500
    assert min(p.time for p in j) == 9000.0  # the oldest went first


# -- gauges from the repository --------------------------------------------------------------------
def _gauge(name: str, group: Group, tenant: str = "tu") -> float | None:
    labels = {"tenant": tenant, "model": group.model, "version": group.version}
    return REGISTRY.get_sample_value(name, labels | {"alias": group.alias})


def test_gauges_per_version_and_psi_only_for_known_models(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = ModelRepository(str(tmp_path))
    data, meta = tiny_model("1")
    repo.publish(data, meta)
    publisher = GaugePublisher("tu", ReferenceCache(repo), threshold=0.5, psi_min_samples=10)
    j = RollingJoin(window_s=1e9)
    y, s = _data(3, 400)
    for i, (truth, score) in enumerate(zip(y, s, strict=True)):
        j.add_prediction(Prediction(f"t{i}", CHAMP, float(score), float(i)))
        j.add_prediction(Prediction(f"t{i}", CHALL, float(score), float(i)))
        if i % 4:
            j.add_label(Label(f"t{i}", bool(truth), float(i)))
    labelled = np.arange(400) % 4 != 0
    with caplog.at_level(logging.WARNING, "scorestream.monitor"):
        publisher.publish(j)
        publisher.publish(j)
    for group in (CHAMP, CHALL):
        assert _gauge("scorestream_monitor_labelled_predictions", group) == labelled.sum()
        assert _gauge("scorestream_monitor_predictions", group) == 400
        assert _gauge("scorestream_monitor_average_precision", group) == pytest.approx(
            average_precision_score(y[labelled], s[labelled]), abs=1e-12
        )
        assert _gauge("scorestream_monitor_precision", group) == pytest.approx(
            precision_score(y[labelled], s[labelled] >= 0.5), abs=1e-12
        )
    assert _gauge("scorestream_score_psi", CHAMP) == pytest.approx(psi(s, meta.score_reference))
    assert _gauge("scorestream_score_psi", CHALL) is None  # version 2 is not in the repository
    missing = [r for r in caplog.records if "no PSI for fraud-gbt/2" in r.getMessage()]
    assert len(missing) == 1  # logged once, not on every publish
    j.evict(now=2e9)  # the window empties: the series go away
    publisher.publish(j)
    assert _gauge("scorestream_monitor_labelled_predictions", CHAMP) is None
    assert _gauge("scorestream_score_psi", CHAMP) is None


def test_replacements_do_not_grow_the_store() -> None:
    j = RollingJoin(window_s=1e9)
    for i in range(5000):
        j.add_prediction(Prediction("same", CHAMP, i / 5000, float(i)))
        j.add_label(Label("same", bool(i % 2), float(i)))
    assert j.n_predictions == 1
    assert len(j._predictions._heap) < 200  # stale heap entries are compacted away
    assert len(j._labels._heap) < 200
    assert list(j.scores(CHAMP)) == [4999 / 5000]
