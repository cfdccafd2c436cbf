"""Training on simulated data: time split with label delay, ONNX parity, metrics, metadata."""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from pipelines import steps, training
from pipelines.repository import ModelRepository
from producers.simulator import Simulation, SimulatorConfig, simulate
from scorestream.errors import ConfigError
from scorestream.features import FEATURE_SPEC

CONFIG = training.TrainConfig(n_estimators=60, train_days=21, delay_days=7, test_days=7)


@functools.cache
def small_sim() -> Simulation:
    return simulate(
        SimulatorConfig(seed=3, tenant="acme", n_customers=600, n_terminals=1200, days=42)
    )


@functools.cache
def small_result() -> training.TrainingResult:
    sim = small_sim()
    return training.run(
        [t.event for t in sim.transactions], list(sim.labels), version="1", config=CONFIG
    )


def test_split_respects_the_label_delay() -> None:
    sim = small_sim()
    txs = [t.event for t in sim.transactions]
    ds = training.build_dataset(txs, list(sim.labels), CONFIG)
    assert max(ds.train.timestamps) < ds.window.end
    assert min(ds.test.timestamps) >= ds.test_start
    assert ds.test_start - ds.window.end == timedelta(days=CONFIG.delay_days)
    assert ds.window.label_cutoff == ds.test_start
    # a fraud in the training window whose label arrived after the cutoff is NOT a positive
    late = {
        lbl.transaction_id
        for lbl in sim.labels
        if lbl.is_fraud
        and lbl.labelled_at > ds.window.label_cutoff
        and ds.window.start <= lbl.transaction_time < ds.window.end
    }
    train_ids = [t.transaction_id for t in txs if ds.window.start <= t.timestamp < ds.window.end]
    positives = {tid for tid, y in zip(train_ids, ds.train.y, strict=True) if y}
    assert late, "the simulation should have some late labels in the training window"
    assert not (late & positives)
    assert ds.test.y.sum() == sum(
        1 for t in sim.transactions if t.is_fraud and t.event.timestamp >= ds.test_start
    )


def test_onnx_runtime_matches_lightgbm_on_held_out_rows() -> None:
    result = small_result()
    assert result.dataset is not None
    assert result.max_abs_diff <= 1e-5
    assert result.metadata.metrics["onnx_max_abs_diff"] <= 1e-5


def test_metrics_and_metadata() -> None:
    meta = small_result().metadata
    assert meta.feature_spec_hash == FEATURE_SPEC.hash
    assert meta.feature_names == FEATURE_SPEC.names
    assert meta.input.shape == (None, len(FEATURE_SPEC))
    assert meta.metrics["roc_auc"] > 0.8  # far better than chance on this data
    assert 0 < meta.metrics["average_precision"] <= 1
    assert 0 <= meta.metrics["card_precision_at_100"] <= 1
    assert len(meta.score_reference) == 9
    assert list(meta.score_reference) == sorted(meta.score_reference)
    assert meta.training_window is not None


def test_card_precision_at_k() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    day = datetime(2026, 11, 1, tzinfo=UTC)
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    y = np.array([1, 0, 1, 0], dtype=np.int8)
    accounts = ["a", "a", "b", "c"]  # card a: max 0.9 and fraud; b fraud; c legit
    cp = training.card_precision_at_k(scores, y, accounts, [day] * 4, k=2)
    assert cp == 1.0
    assert training.card_precision_at_k(scores, y, accounts, [day] * 4, k=3) == pytest.approx(2 / 3)


def test_file_based_steps_produce_a_publishable_model(tmp_path: Path) -> None:
    sim = small_sim()
    txs = [t.event for t in sim.transactions]
    steps.build_dataset_step(txs, list(sim.labels), tmp_path / "ds", CONFIG)
    steps.train_step(tmp_path / "ds", tmp_path / "model.txt", CONFIG)
    diff = steps.export_onnx_step(tmp_path / "model.txt", tmp_path / "model.onnx", tmp_path / "ds")
    assert diff <= 1e-5
    metrics = steps.evaluate_step(tmp_path / "model.onnx", tmp_path / "ds", tmp_path / "m.json")
    assert metrics["roc_auc"] > 0.8
    data = (tmp_path / "model.onnx").read_bytes()
    meta = training.make_metadata(
        data,
        metrics=metrics,
        window=None,
        version="1",
        config=CONFIG,
        parent_version=None,
        score_reference=(),
    )
    repo = ModelRepository(str(tmp_path / "repo"))
    repo.publish(data, meta)
    assert repo.load("fraud-gbt", "1").onnx_bytes == data


def test_too_little_history_is_a_clear_error() -> None:
    sim = simulate(SimulatorConfig(seed=1, tenant="acme", n_customers=50, n_terminals=100, days=10))
    with pytest.raises(ConfigError, match="history covers"):
        training.build_dataset([t.event for t in sim.transactions], list(sim.labels), CONFIG)
