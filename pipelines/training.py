"""Training steps: build_dataset → train → evaluate → export_onnx → publish.

Plain functions on domain objects. ``scorestream train`` calls them in-process; the Kubeflow
pipeline (``pipelines/kfp_pipeline.py``) wraps each one in a component. Gradient-boosted trees
with LightGBM, converted to ONNX with onnxmltools (opset 15; exact to ~1e-7).
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from sklearn.metrics import average_precision_score, roc_auc_score

from pipelines.metadata import ModelMetadata, TensorSpec, TrainingWindow
from pipelines.onnx_exact import patch_thresholds
from pipelines.repository import sha256_hex
from schemas.events import LabelEvent, TransactionEvent
from scorestream.errors import ConfigError
from scorestream.features import FEATURE_SPEC, compute_offline

ONNX_OPSET = 15
INPUT_NAME = "features"
SCORE_OUTPUT = "probabilities"

Matrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    model_name: str = "fraud-gbt"
    train_days: int = 28
    delay_days: int = 7
    """Gap between training and test windows: labels of the last days are not known yet."""
    test_days: int = 7
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    seed: int = 7
    threads: int = 2


@dataclass(frozen=True, slots=True)
class Split:
    X: Matrix
    y: npt.NDArray[np.int8]
    account_ids: tuple[str, ...]
    timestamps: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class Dataset:
    train: Split
    test: Split
    window: TrainingWindow
    test_start: datetime
    test_end: datetime

    def describe(self) -> str:
        return (
            f"train {len(self.train.y):,} tx ({int(self.train.y.sum())} fraud labels known by "
            f"{self.window.label_cutoff:%Y-%m-%d}), test {len(self.test.y):,} tx "
            f"({int(self.test.y.sum())} fraud) from {self.test_start:%Y-%m-%d} to "
            f"{self.test_end:%Y-%m-%d}"
        )


def _midnight(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def build_dataset(
    transactions: Sequence[TransactionEvent],
    labels: Sequence[LabelEvent],
    config: TrainConfig = TrainConfig(),
    *,
    features: Matrix | None = None,
) -> Dataset:
    """Features for all history (windows need it), then a time split respecting label delay.

    Training rows are the ``train_days`` before the delay gap; their target is a fraud label that
    had *arrived* by the label cutoff (= start of the test window: when training would run).
    Test rows are the last ``test_days``; their target is the eventual ground truth.
    ``features`` (rows aligned with ``transactions``) are used as given when supplied — the
    features *as served*, read back from the audit log — instead of being recomputed.
    """
    if not transactions:
        raise ConfigError("no transactions to train on")
    if features is None:
        features = compute_offline(transactions, labels)
    elif features.shape != (len(transactions), len(FEATURE_SPEC)):
        raise ConfigError(f"feature matrix shape {features.shape} does not fit the spec")
    times = [t.timestamp for t in transactions]
    test_end = _midnight(max(times)) + timedelta(days=1)
    test_start = test_end - timedelta(days=config.test_days)
    train_end = test_start - timedelta(days=config.delay_days)
    train_start = train_end - timedelta(days=config.train_days)
    if train_start < _midnight(min(times)):
        span = (test_end - _midnight(min(times))).days
        needed = config.train_days + config.delay_days + config.test_days
        raise ConfigError(f"history covers {span} days; training needs at least {needed}")
    cutoff = test_start
    known_fraud = {
        lbl.transaction_id for lbl in labels if lbl.is_fraud and lbl.labelled_at <= cutoff
    }
    all_fraud = {lbl.transaction_id for lbl in labels if lbl.is_fraud}

    def split(lo: datetime, hi: datetime, frauds: set[str]) -> Split:
        idx = [i for i, t in enumerate(times) if lo <= t < hi]
        return Split(
            X=features[idx],
            y=np.array([transactions[i].transaction_id in frauds for i in idx], dtype=np.int8),
            account_ids=tuple(transactions[i].account_id for i in idx),
            timestamps=tuple(times[i] for i in idx),
        )

    train = split(train_start, train_end, known_fraud)
    test = split(test_start, test_end, all_fraud)
    if train.y.sum() == 0 or test.y.sum() == 0:
        raise ConfigError("no fraud in the training or test window: simulate more history")
    return Dataset(
        train=train,
        test=test,
        window=TrainingWindow(start=train_start, end=train_end, label_cutoff=cutoff),
        test_start=test_start,
        test_end=test_end,
    )


def train(dataset: Dataset, config: TrainConfig = TrainConfig()) -> lgb.LGBMClassifier:
    model = lgb.LGBMClassifier(
        n_estimators=config.n_estimators,
        learning_rate=config.learning_rate,
        num_leaves=config.num_leaves,
        min_child_samples=config.min_child_samples,
        subsample=config.subsample,
        subsample_freq=1,
        colsample_bytree=config.colsample_bytree,
        random_state=config.seed,
        n_jobs=config.threads,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    model.fit(dataset.train.X, dataset.train.y, feature_name=list(FEATURE_SPEC.names))
    return model


def card_precision_at_k(
    scores: Vector,
    y: npt.NDArray[np.int8],
    accounts: Sequence[str],
    days: Sequence[datetime],
    k: int,
) -> float:
    """The handbook's CP@k: per day, rank cards by their highest score, precision of the top k."""
    per_day: dict[datetime, dict[str, tuple[float, bool]]] = defaultdict(dict)
    for score, fraud, account, when in zip(scores, y, accounts, days, strict=True):
        day = _midnight(when)
        best, any_fraud = per_day[day].get(account, (0.0, False))
        per_day[day][account] = (max(best, float(score)), any_fraud or bool(fraud))
    precisions = []
    for cards in per_day.values():
        ranked = sorted(cards.values(), key=lambda c: c[0], reverse=True)[:k]
        precisions.append(sum(f for _, f in ranked) / k)
    return float(np.mean(precisions)) if precisions else 0.0


def evaluate(scores: Vector, split: Split) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(split.y, scores)),
        "average_precision": float(average_precision_score(split.y, scores)),
        "card_precision_at_100": card_precision_at_k(
            scores, split.y, split.account_ids, split.timestamps, 100
        ),
        "n_test": float(len(split.y)),
        "fraud_rate_test": float(split.y.mean()),
    }


def export_onnx(model: lgb.LGBMClassifier | lgb.Booster) -> bytes:
    from onnxmltools import convert_lightgbm  # noqa: PLC0415  (heavy import, only here)
    from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: PLC0415

    booster = model if isinstance(model, lgb.Booster) else model.booster_
    onx = convert_lightgbm(
        booster,
        name="scorestream-fraud",
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURE_SPEC)]))],
        target_opset=ONNX_OPSET,
        zipmap=False,
    )
    patch_thresholds(onx, booster.dump_model())
    buf = io.BytesIO()
    buf.write(onx.SerializeToString())
    return buf.getvalue()


def onnx_scores(onnx_bytes: bytes, X: Matrix) -> Vector:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    probabilities = session.run([SCORE_OUTPUT], {INPUT_NAME: X})[0]
    return np.asarray(probabilities, dtype=np.float64)[:, 1]


def native_scores(model: lgb.LGBMClassifier | lgb.Booster, X: Matrix) -> Vector:
    """LightGBM's own probabilities (binary objective: ``predict`` returns P(fraud))."""
    booster = model if isinstance(model, lgb.Booster) else model.booster_
    return np.asarray(booster.predict(X), dtype=np.float64)


def score_deciles(scores: Vector) -> tuple[float, ...]:
    return tuple(float(q) for q in np.quantile(scores, np.linspace(0.1, 0.9, 9)))


@dataclass(frozen=True, slots=True)
class TrainingResult:
    metadata: ModelMetadata
    onnx_bytes: bytes
    max_abs_diff: float
    timings_s: dict[str, float] = field(default_factory=dict)
    dataset_summary: str = ""
    dataset: Dataset | None = None


def run(
    transactions: Sequence[TransactionEvent],
    labels: Sequence[LabelEvent],
    *,
    version: str,
    config: TrainConfig = TrainConfig(),
    parent_version: str | None = None,
    features: Matrix | None = None,
) -> TrainingResult:
    """All steps but publish: features, split, train, evaluate, export, parity check."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    dataset = build_dataset(transactions, labels, config, features=features)
    timings["build_dataset"] = time.perf_counter() - t
    t = time.perf_counter()
    model = train(dataset, config)
    timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    onnx_bytes = export_onnx(model)
    timings["export_onnx"] = time.perf_counter() - t
    t = time.perf_counter()
    scores = onnx_scores(onnx_bytes, dataset.test.X)
    diff = float(np.max(np.abs(scores - native_scores(model, dataset.test.X))))
    metrics = evaluate(scores, dataset.test) | {"onnx_max_abs_diff": diff}
    timings["evaluate"] = time.perf_counter() - t
    metadata = make_metadata(
        onnx_bytes,
        metrics=metrics,
        window=dataset.window,
        version=version,
        config=config,
        parent_version=parent_version,
        score_reference=score_deciles(scores),
    )
    return TrainingResult(metadata, onnx_bytes, diff, timings, dataset.describe(), dataset)


def make_metadata(
    onnx_bytes: bytes,
    *,
    metrics: dict[str, float],
    window: TrainingWindow | None,
    version: str,
    config: TrainConfig,
    parent_version: str | None,
    score_reference: tuple[float, ...],
) -> ModelMetadata:
    return ModelMetadata(
        name=config.model_name,
        version=version,
        sha256=sha256_hex(onnx_bytes),
        size_bytes=len(onnx_bytes),
        feature_spec_hash=FEATURE_SPEC.hash,
        feature_names=FEATURE_SPEC.names,
        input=TensorSpec(name=INPUT_NAME, shape=(None, len(FEATURE_SPEC)), dtype="float32"),
        outputs=(
            TensorSpec(name="label", shape=(None,), dtype="int64"),
            TensorSpec(name=SCORE_OUTPUT, shape=(None, 2), dtype="float32"),
        ),
        score_output=SCORE_OUTPUT,
        metrics=metrics,
        training_window=window,
        parent_version=parent_version,
        created_at=datetime.now(UTC),
        framework=_framework_versions(config),
        score_reference=score_reference,
    )


def _framework_versions(config: TrainConfig) -> dict[str, Any]:
    import onnxmltools  # noqa: PLC0415

    return {
        "lightgbm": lgb.__version__,
        "onnxmltools": onnxmltools.__version__,
        "onnxruntime": ort.__version__,
        "opset": str(ONNX_OPSET),
        "params": (
            f"n_estimators={config.n_estimators},learning_rate={config.learning_rate},"
            f"num_leaves={config.num_leaves},min_child_samples={config.min_child_samples}"
        ),
    }
