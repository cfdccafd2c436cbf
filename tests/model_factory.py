"""Tiny but real models for tests: LightGBM on random data, exported to ONNX like production."""

from __future__ import annotations

import functools

import lightgbm as lgb
import numpy as np

from pipelines import training
from pipelines.metadata import ModelMetadata
from scorestream.features import FEATURE_SPEC


@functools.cache
def tiny_onnx(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, len(FEATURE_SPEC))).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=600) > 1.2).astype(np.int8)
    model = lgb.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1, random_state=seed)
    model.fit(X, y)
    return training.export_onnx(model)


def tiny_model(
    version: str = "1", seed: int = 0, name: str = "fraud-gbt"
) -> tuple[bytes, ModelMetadata]:
    data = tiny_onnx(seed)
    meta = training.make_metadata(
        data,
        metrics={"average_precision": 0.5 + seed / 100},
        window=None,
        version=version,
        config=training.TrainConfig(model_name=name),
        parent_version=None,
        score_reference=tuple(np.linspace(0.01, 0.2, 9)),
    )
    return data, meta
