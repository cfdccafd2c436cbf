"""The model repository: immutable ``<name>/<version>/model.onnx`` + ``model.json``.

Backed by any fsspec filesystem: a local directory by default (``$SCORESTREAM_HOME/models``),
S3 with ``s3://bucket/prefix`` (s3fs; pass credentials and ``endpoint_url`` as storage
options). Versions never change once written; every load verifies the sha256, the ONNX graph
against the metadata and the feature-spec hash against the running code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import fsspec
import onnxruntime as ort
from pydantic import ValidationError

from pipelines.metadata import ModelMetadata
from scorestream.errors import (
    FeatureSpecMismatchError,
    ModelFormatError,
    ModelIntegrityError,
    ModelNotFoundError,
    VersionExistsError,
)
from scorestream.features import FEATURE_SPEC
from scorestream.settings import ModelRepoSettings

MODEL_FILE = "model.onnx"
META_FILE = "model.json"


@dataclass(frozen=True, slots=True)
class LoadedModel:
    metadata: ModelMetadata
    onnx_bytes: bytes
    uri: str


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_graph(onnx_bytes: bytes, meta: ModelMetadata) -> ort.InferenceSession:
    """Load the graph in ONNX Runtime and check its input/outputs against the metadata."""
    try:
        session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own untyped errors
        raise ModelFormatError(
            f"{meta.name}/{meta.version}: not a loadable ONNX model: {exc}"
        ) from exc
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != meta.input.name:
        names = [i.name for i in inputs]
        raise ModelFormatError(f"graph inputs {names} do not match metadata {meta.input.name!r}")
    width = inputs[0].shape[1] if len(inputs[0].shape) == 2 else None
    if width != len(meta.feature_names) or meta.input.shape[1] != len(meta.feature_names):
        raise ModelFormatError(
            f"graph input shape {inputs[0].shape} does not fit {len(meta.feature_names)} features"
        )
    outputs = {o.name for o in session.get_outputs()}
    wanted = {o.name for o in meta.outputs}
    if not wanted <= outputs or meta.score_output not in outputs:
        raise ModelFormatError(
            f"graph outputs {sorted(outputs)} do not match metadata {sorted(wanted)}"
        )
    return session


class ModelRepository:
    def __init__(
        self, url: str | None = None, storage_options: dict[str, Any] | None = None
    ) -> None:
        """``url``: a directory or fsspec URL; default ``$SCORESTREAM_HOME/models``."""
        self.url = (url or ModelRepoSettings().url).rstrip("/")
        fs, root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = root

    @classmethod
    def from_settings(cls, settings: ModelRepoSettings | None = None) -> ModelRepository:
        """The repository ``SCORESTREAM_MODELS_*`` names (S3 credentials included)."""
        s = settings or ModelRepoSettings()
        return cls(s.url, s.storage_options())

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def uri(self, name: str, version: str) -> str:
        return f"{self.url}/{name}/{version}/{MODEL_FILE}"

    # -- listing -----------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False))

    def versions(self, name: str) -> list[str]:
        base = self._path(name)
        if not self.fs.exists(base):
            return []
        found = []
        for p in self.fs.ls(base, detail=False):
            version = p.rstrip("/").rsplit("/", 1)[-1]
            if self.fs.exists(self._path(name, version, META_FILE)):
                found.append(version)
        return sorted(found, key=_version_key)

    def next_version(self, name: str) -> str:
        numeric = [int(v) for v in self.versions(name) if v.isdigit()]
        return str(max(numeric, default=0) + 1)

    # -- write -------------------------------------------------------------------------------
    def publish(self, onnx_bytes: bytes, metadata: ModelMetadata) -> str:
        """Store a new version. ``model.json`` is written last: its presence commits the version."""
        if sha256_hex(onnx_bytes) != metadata.sha256:
            raise ModelIntegrityError("metadata sha256 does not match the artifact being published")
        check_graph(onnx_bytes, metadata)
        meta_path = self._path(metadata.name, metadata.version, META_FILE)
        model_path = self._path(metadata.name, metadata.version, MODEL_FILE)
        if self.fs.exists(meta_path) or self.fs.exists(model_path):
            raise VersionExistsError(
                f"{metadata.name}/{metadata.version} already exists in {self.url}; versions are "
                "immutable, publish a new version instead"
            )
        self.fs.makedirs(self._path(metadata.name, metadata.version), exist_ok=True)
        with self.fs.open(model_path, "wb") as fh:
            fh.write(onnx_bytes)
        with self.fs.open(meta_path, "wb") as fh:
            fh.write(metadata.model_dump_json(indent=2).encode() + b"\n")
        return self.uri(metadata.name, metadata.version)

    # -- read --------------------------------------------------------------------------------
    def metadata(self, name: str, version: str) -> ModelMetadata:
        path = self._path(name, version, META_FILE)
        if not self.fs.exists(path):
            known = ", ".join(self.versions(name)) or "none"
            raise ModelNotFoundError(f"no model {name}/{version} in {self.url} (versions: {known})")
        try:
            with self.fs.open(path, "rb") as fh:
                meta = ModelMetadata.model_validate_json(fh.read())
        except ValidationError as exc:
            raise ModelFormatError(f"{name}/{version}: invalid {META_FILE}: {exc}") from exc
        if (meta.name, meta.version) != (name, version):
            raise ModelFormatError(
                f"{path} describes {meta.name}/{meta.version}, not {name}/{version}"
            )
        return meta

    def load(self, name: str, version: str, *, check_features: bool = True) -> LoadedModel:
        """Read and verify a version: sha256, graph vs metadata, feature spec vs this code."""
        meta = self.metadata(name, version)
        path = self._path(name, version, MODEL_FILE)
        if not self.fs.exists(path):
            raise ModelFormatError(f"{name}/{version}: {MODEL_FILE} is missing")
        with self.fs.open(path, "rb") as fh:
            data: bytes = fh.read()
        digest = sha256_hex(data)
        if digest != meta.sha256:
            raise ModelIntegrityError(
                f"{name}/{version}: sha256 {digest[:12]}… does not match model.json "
                f"{meta.sha256[:12]}… (corrupt or tampered artifact)"
            )
        if check_features and meta.feature_spec_hash != FEATURE_SPEC.hash:
            raise FeatureSpecMismatchError(
                f"{name}/{version} was trained on feature spec {meta.feature_spec_hash}, this code "
                f"computes {FEATURE_SPEC.hash}; retrain it"
            )
        check_graph(data, meta)
        return LoadedModel(meta, data, self.uri(name, version))


def _version_key(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if re.fullmatch(r"\d+", version) else (1, version)
