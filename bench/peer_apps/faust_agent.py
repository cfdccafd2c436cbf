"""A naive faust-streaming agent for the peer benchmark: one event at a time, as tutorials do.

Runs inside its own virtualenv (``~/.cache/scorestream/bench-venvs/faust``):
``faust -A faust_agent worker``.
For every enriched-transaction CloudEvent on ``BENCH_IN``: parse the JSON, build the feature row
in the model's feature order, one onnxruntime call for that single row (same session options as
the scorestream worker), a prediction JSON to ``BENCH_OUT``. Default processing guarantee
(at-least-once), no batching.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import faust
import numpy as np
import onnxruntime as ort

with open(os.environ["BENCH_IO"]) as f:
    IO = json.load(f)
FEATURES: list[str] = IO["features"]

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
SESSION = ort.InferenceSession(
    os.environ["BENCH_MODEL"], options, providers=["CPUExecutionProvider"]
)

app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=f"kafka://{os.environ['BENCH_BOOTSTRAP']}",
    value_serializer="raw",
    key_serializer="raw",
    consumer_auto_offset_reset="earliest",
    topic_disable_leader=True,
    web_enabled=False,
)
source = app.topic(os.environ["BENCH_IN"], value_serializer="raw", key_serializer="raw")
sink = app.topic(os.environ["BENCH_OUT"], value_serializer="raw", key_serializer="raw")


@app.agent(source)
async def score(stream):  # type: ignore[no-untyped-def]
    async for key, value in stream.items():
        event = json.loads(value)
        row = np.array([[event["features"][n] for n in FEATURES]], dtype=np.float32)
        out = SESSION.run([IO["output"]], {IO["input"]: row})[0]
        prediction = {
            "transaction_id": event["transaction"]["transaction_id"],
            "score": float(np.asarray(out, dtype=np.float64)[0, 1]),
            "predicted_at": datetime.now(UTC).isoformat(),
        }
        await sink.send(key=key, value=json.dumps(prediction).encode())
