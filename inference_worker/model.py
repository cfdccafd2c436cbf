"""A model ready to serve: a verified ONNX Runtime session with explicit options."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from pipelines.metadata import ModelMetadata
from pipelines.repository import ModelRepository
from schemas.events import ModelAlias

Matrix = npt.NDArray[np.float32]


def session_options(intra_op_threads: int = 1) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True
    return options


@dataclass(frozen=True, slots=True)
class ServingModel:
    metadata: ModelMetadata
    alias: ModelAlias
    session: ort.InferenceSession

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    def score(self, X: Matrix) -> npt.NDArray[np.float64]:
        """P(fraud) per row: one ONNX Runtime call for the whole batch."""
        out = self.session.run([self.metadata.score_output], {self.metadata.input.name: X})[0]
        return np.asarray(out, dtype=np.float64)[:, 1]


def load_serving_model(
    repo: ModelRepository,
    name: str,
    version: str,
    alias: ModelAlias,
    *,
    intra_op_threads: int = 1,
) -> ServingModel:
    """Download, verify (sha256, graph, feature spec), build the session and warm it up."""
    loaded = repo.load(name, version)
    session = ort.InferenceSession(
        loaded.onnx_bytes, session_options(intra_op_threads), providers=["CPUExecutionProvider"]
    )
    model = ServingModel(loaded.metadata, alias, session)
    width = len(loaded.metadata.feature_names)
    for rows in (1, 64, 512):  # warm-up: allocate arenas, run every graph path once
        model.score(np.zeros((rows, width), dtype=np.float32))
    return model
