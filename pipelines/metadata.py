"""``model.json``: everything a service needs to trust and serve one model version."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from schemas.types import ModelName, ModelVersion, Sha256Hex, UtcDatetime


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    shape: tuple[int | None, ...]
    """``None`` marks the dynamic batch dimension."""
    dtype: str


class TrainingWindow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start: UtcDatetime
    end: UtcDatetime
    label_cutoff: UtcDatetime
    """Labels that arrived after this instant were not used (the label delay is respected)."""


class ModelMetadata(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    name: ModelName
    version: ModelVersion
    sha256: Sha256Hex
    size_bytes: Annotated[int, Field(ge=1)]
    feature_spec_hash: Annotated[str, Field(min_length=8, max_length=64)]
    feature_names: tuple[str, ...]
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    score_output: str
    """Name of the output holding ``[N, 2]`` class probabilities; column 1 is P(fraud)."""
    metrics: dict[str, float] = Field(default_factory=dict)
    training_window: TrainingWindow | None = None
    parent_version: ModelVersion | None = None
    created_at: UtcDatetime
    framework: dict[str, str] = Field(default_factory=dict)
    score_reference: tuple[float, ...] = ()
    """Score deciles on the evaluation window (0.1 … 0.9), the drift monitor's PSI reference."""
