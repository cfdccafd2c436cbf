"""MLServer custom runtime for the peer benchmark: the scorestream ONNX model with onnxruntime.

Runs inside MLServer's own virtualenv (``~/.cache/scorestream/bench-venvs/mlserver``). Same
session options as the scorestream worker (1 intra-op and 1 inter-op thread); input ``input`` is
a float32 matrix (rows x features, the V2 ``FP32`` tensor), output ``score`` is P(fraud) per
row — exactly what ``inference_worker.model.ServingModel.score`` computes.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxScorer(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        path = self.settings.parameters.uri  # absolute, written by bench/peers.py
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        with open(os.path.join(os.path.dirname(path), "io.json")) as f:
            io = json.load(f)
        self.input_name = io["input"]
        self.output_name = io["output"]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        X = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        out = self.session.run([self.output_name], {self.input_name: X})[0]
        score = np.asarray(out, dtype=np.float64)[:, 1]
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("score", score)],
        )
