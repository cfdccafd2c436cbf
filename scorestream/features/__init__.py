"""Features declared as data, one engine for serving and training.

* :mod:`scorestream.features.spec`: the spec file (``fraud.yaml`` by default, or
  ``SCORESTREAM_FEATURES_SPEC``), validated and hashed;
* :mod:`scorestream.features.engine`: tiles, account and merchant state, evaluation;
* :mod:`scorestream.features.offline`: the training path over historical events.

``FEATURE_SPEC`` (its ``names``, ``hash``, ``dtype``) is what models record and check.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scorestream.features.engine import (
    MCC_BUCKET_NAMES,
    AccountState,
    Engine,
    MerchantState,
    id_hash,
    mcc_bucket,
)
from scorestream.features.engine import to_vector as _to_vector
from scorestream.features.offline import compute_offline, feature_dicts
from scorestream.features.spec import FeatureSpec, load_spec, parse_spec


class FeatureSettings(BaseSettings):
    """Env: ``SCORESTREAM_FEATURES_*``."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_FEATURES_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    spec: Path | None = Field(
        default=None, description="a feature spec file; unset: the packaged fraud.yaml"
    )


FEATURE_SPEC: FeatureSpec = load_spec(FeatureSettings().spec)
FEATURE_NAMES = FEATURE_SPEC.names
ENGINE = Engine(FEATURE_SPEC)


def to_vector(features: dict[str, float], spec: FeatureSpec = FEATURE_SPEC) -> list[float]:
    """Values in spec order; a missing feature is an error, not a silent zero."""
    try:
        return _to_vector(features, spec.names)
    except ValueError as exc:
        raise ValueError(f"{exc} (spec {spec.hash})") from exc


__all__ = [
    "ENGINE",
    "FEATURE_NAMES",
    "FEATURE_SPEC",
    "MCC_BUCKET_NAMES",
    "AccountState",
    "Engine",
    "FeatureSettings",
    "FeatureSpec",
    "MerchantState",
    "compute_offline",
    "feature_dicts",
    "id_hash",
    "load_spec",
    "mcc_bucket",
    "parse_spec",
    "to_vector",
]
