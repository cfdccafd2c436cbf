"""The model repository on a local directory: immutability, verification, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.repository import ModelRepository
from scorestream.errors import (
    FeatureSpecMismatchError,
    ModelFormatError,
    ModelIntegrityError,
    ModelNotFoundError,
    VersionExistsError,
)
from tests.model_factory import tiny_model


@pytest.fixture
def repo(tmp_path: Path) -> ModelRepository:
    return ModelRepository(str(tmp_path / "models"))


def test_publish_load_list(repo: ModelRepository) -> None:
    assert repo.names() == []
    assert repo.next_version("fraud-gbt") == "1"
    data, meta = tiny_model("1")
    uri = repo.publish(data, meta)
    assert uri.endswith("fraud-gbt/1/model.onnx")
    loaded = repo.load("fraud-gbt", "1")
    assert loaded.onnx_bytes == data
    assert loaded.metadata == meta
    repo.publish(*tiny_model("2", seed=1))
    repo.publish(*tiny_model("10", seed=2))
    assert repo.names() == ["fraud-gbt"]
    assert repo.versions("fraud-gbt") == ["1", "2", "10"]
    assert repo.next_version("fraud-gbt") == "11"


def test_versions_are_immutable(repo: ModelRepository) -> None:
    repo.publish(*tiny_model("1"))
    with pytest.raises(VersionExistsError, match="immutable"):
        repo.publish(*tiny_model("1", seed=3))
    assert repo.load("fraud-gbt", "1").onnx_bytes == tiny_model("1")[0]


def test_tampered_artifact_is_refused(repo: ModelRepository, tmp_path: Path) -> None:
    repo.publish(*tiny_model("1"))
    path = tmp_path / "models" / "fraud-gbt" / "1" / "model.onnx"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        repo.load("fraud-gbt", "1")


def test_corrupt_onnx_is_refused_at_publish(repo: ModelRepository) -> None:
    from pipelines.repository import sha256_hex  # noqa: PLC0415

    _, meta = tiny_model("1")
    garbage = b"definitely not onnx"
    with pytest.raises(ModelFormatError, match="ONNX"):
        repo.publish(garbage, meta.model_copy(update={"sha256": sha256_hex(garbage)}))
    assert repo.versions("fraud-gbt") == []
    with pytest.raises(ModelIntegrityError):
        repo.publish(garbage, meta)


def test_missing_or_invalid_metadata(repo: ModelRepository, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="fraud-gbt/7"):
        repo.load("fraud-gbt", "7")
    repo.publish(*tiny_model("1"))
    (tmp_path / "models" / "fraud-gbt" / "1" / "model.json").write_text('{"name": "fraud-gbt"}')
    with pytest.raises(ModelFormatError, match=r"invalid model\.json"):
        repo.load("fraud-gbt", "1")


def test_foreign_feature_spec_is_refused(repo: ModelRepository) -> None:
    data, meta = tiny_model("1")
    repo.publish(data, meta.model_copy(update={"feature_spec_hash": "ffffffffffffffff"}))
    with pytest.raises(FeatureSpecMismatchError, match="retrain"):
        repo.load("fraud-gbt", "1")
    assert repo.load("fraud-gbt", "1", check_features=False).metadata.version == "1"


def test_graph_must_match_metadata(repo: ModelRepository) -> None:
    from pipelines.metadata import TensorSpec  # noqa: PLC0415

    data, meta = tiny_model("1")
    wrong = meta.model_copy(
        update={"input": TensorSpec(name="x", shape=(None, 27), dtype="float32")}
    )
    with pytest.raises(ModelFormatError, match="inputs"):
        repo.publish(data, wrong)
