"""File-based training steps: the bodies of the Kubeflow components, runnable anywhere.

Each step reads its inputs from paths and writes its outputs to paths, so the same function runs
inside a KFP container (paths are artifact mounts), under ``kfp.local`` and in-process in
``scorestream train``. The ML itself lives in :mod:`pipelines.training`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from pipelines import training
from pipelines.metadata import TrainingWindow
from schemas.events import LabelEvent, ModelAlias, ModelPublished, TransactionEvent
from scorestream.features import FEATURE_SPEC

DATASET_FILE = "dataset.npz"
WINDOW_FILE = "window.json"


def _save_split(prefix: str, split: training.Split) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_X": split.X,
        f"{prefix}_y": split.y,
        f"{prefix}_accounts": np.array(split.account_ids, dtype=str),
        f"{prefix}_ts": np.array([t.timestamp() for t in split.timestamps], dtype=np.float64),
    }


def _load_split(data: np.lib.npyio.NpzFile, prefix: str) -> training.Split:
    return training.Split(
        X=data[f"{prefix}_X"].astype(np.float32),
        y=data[f"{prefix}_y"].astype(np.int8),
        account_ids=tuple(str(a) for a in data[f"{prefix}_accounts"]),
        timestamps=tuple(datetime.fromtimestamp(float(t), UTC) for t in data[f"{prefix}_ts"]),
    )


def build_dataset_step(
    transactions: list[TransactionEvent],
    labels: list[LabelEvent],
    out_dir: Path,
    config: training.TrainConfig,
    features: training.Matrix | None = None,
) -> training.Dataset:
    dataset = training.build_dataset(transactions, labels, config, features=features)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = _save_split("train", dataset.train) | _save_split("test", dataset.test)
    np.savez_compressed(out_dir / DATASET_FILE, **arrays)
    (out_dir / WINDOW_FILE).write_text(
        json.dumps(
            {
                "window": dataset.window.model_dump(mode="json"),
                "test_start": dataset.test_start.isoformat(),
                "test_end": dataset.test_end.isoformat(),
                "feature_spec_hash": FEATURE_SPEC.hash,
                "summary": dataset.describe(),
            },
            indent=2,
        )
    )
    return dataset


def load_dataset(dataset_dir: Path) -> training.Dataset:
    meta = json.loads((dataset_dir / WINDOW_FILE).read_text())
    if meta["feature_spec_hash"] != FEATURE_SPEC.hash:
        raise ValueError(f"dataset {dataset_dir} was built with another feature spec")
    with np.load(dataset_dir / DATASET_FILE) as data:
        train = _load_split(data, "train")
        test = _load_split(data, "test")
    return training.Dataset(
        train=train,
        test=test,
        window=TrainingWindow.model_validate(meta["window"]),
        test_start=datetime.fromisoformat(meta["test_start"]),
        test_end=datetime.fromisoformat(meta["test_end"]),
    )


def train_step(dataset_dir: Path, model_file: Path, config: training.TrainConfig) -> None:
    model = training.train(load_dataset(dataset_dir), config)
    model.booster_.save_model(str(model_file))
    model_file.with_suffix(".config.json").write_text(json.dumps(asdict(config)))


def export_onnx_step(model_file: Path, onnx_file: Path, dataset_dir: Path) -> float:
    """Convert to ONNX and return the max |Δp| against LightGBM on the test rows."""
    model = lgb.Booster(model_file=str(model_file))
    onnx_bytes = training.export_onnx(model)
    onnx_file.write_bytes(onnx_bytes)
    X = load_dataset(dataset_dir).test.X
    return float(
        np.max(np.abs(training.onnx_scores(onnx_bytes, X) - training.native_scores(model, X)))
    )


def evaluate_step(onnx_file: Path, dataset_dir: Path, metrics_file: Path) -> dict[str, float]:
    dataset = load_dataset(dataset_dir)
    scores = training.onnx_scores(onnx_file.read_bytes(), dataset.test.X)
    metrics = training.evaluate(scores, dataset.test)
    metrics_file.write_text(
        json.dumps({"metrics": metrics, "score_reference": training.score_deciles(scores)})
    )
    return metrics


def publish_step(
    onnx_file: Path,
    dataset_dir: Path,
    metrics_file: Path,
    *,
    tenant: str,
    promote_if_first: bool,
    config: training.TrainConfig | None = None,
) -> ModelPublished:
    """Repository + ``ModelPublished``; promotes to champion if the tenant has none yet."""
    from pipelines import lifecycle  # noqa: PLC0415  (Kafka clients only when publishing)

    cfg = config or training.TrainConfig()
    repo = lifecycle.open_repository()
    onnx_bytes = onnx_file.read_bytes()
    evaluated = json.loads(metrics_file.read_text())
    window = TrainingWindow.model_validate(
        json.loads((dataset_dir / WINDOW_FILE).read_text())["window"]
    )
    champion = lifecycle.serving_version(tenant, cfg.model_name, ModelAlias.CHAMPION)
    metadata = training.make_metadata(
        onnx_bytes,
        metrics=evaluated["metrics"],
        window=window,
        version=repo.next_version(cfg.model_name),
        config=cfg,
        parent_version=champion,
        score_reference=tuple(evaluated["score_reference"]),
    )
    result = training.TrainingResult(metadata, onnx_bytes, float("nan"))
    event = lifecycle.publish(repo, result, tenant=tenant)
    if promote_if_first and champion is None:
        lifecycle.promote(
            repo,
            tenant=tenant,
            name=metadata.name,
            version=metadata.version,
            reason="first model for this tenant",
        )
    return event
