"""Shared Prometheus metrics: one place for names, units and labels.

Names follow Prometheus conventions: ``scorestream_`` prefix, base units (seconds, bytes),
``_total`` for counters, low-cardinality labels only (service, tenant, model, version, outcome,
reason) — never ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

EVENTS_IN = Counter(
    "scorestream_events_in_total", "Records consumed from the input topic", ["service", "tenant"]
)
EVENTS_OUT = Counter(
    "scorestream_events_out_total",
    "Records produced to output topics",
    ["service", "tenant", "stream"],
)
DLQ = Counter(
    "scorestream_dlq_total",
    "Records sent to a dead-letter topic, by reason",
    ["service", "tenant", "reason"],
)
PREDICTIONS = Counter(
    "scorestream_predictions_total",
    "Predictions produced, by model version and alias",
    ["tenant", "model", "version", "alias"],
)
BATCH_SIZE = Histogram(
    "scorestream_batch_size", "Records per processed batch", ["service"], buckets=BATCH_BUCKETS
)
INFERENCE_SECONDS = Histogram(
    "scorestream_inference_seconds",
    "ONNX Runtime time per batch",
    ["tenant", "model", "alias"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "scorestream_batch_seconds",
    "Wall time to process and commit one batch",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
EVENT_TO_PREDICTION_SECONDS = Histogram(
    "scorestream_event_to_prediction_seconds",
    "From the enriched event's creation to its prediction being produced",
    ["tenant"],
    buckets=LATENCY_BUCKETS,
)
PHASE_SECONDS = Histogram(
    "scorestream_processor_phase_seconds",
    "Time per batch in each phase of the shared processor: wait (blocked for the first record), "
    "decode, handle, produce (begin + enqueue the outputs), send_offsets, commit (flush + end)",
    ["service", "phase"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
TRANSACTIONS = Counter(
    "scorestream_transactions_total",
    "Kafka transactions by outcome (committed, aborted)",
    ["service", "outcome"],
)
MODEL_INFO = Info("scorestream_model", "The model serving per alias")
MODEL_LOADED = Gauge(
    "scorestream_model_loaded",
    "1 when a model version serves this alias",
    ["tenant", "model", "version", "alias"],
)
MODEL_REJECTED = Counter(
    "scorestream_model_rejected_total", "Promotions this service refused", ["tenant", "model"]
)
MODEL_EVENTS_IGNORED = Counter(
    "scorestream_model_events_ignored_total",
    "Model events on the tenant's own topics that name another tenant (forged or misrouted), "
    "ignored",
    ["tenant", "service"],
)
CONSUMER_LAG = Gauge(
    "scorestream_consumer_lag_records",
    "High watermark minus position, per assigned partition",
    ["service", "topic", "partition"],
)
STATE_RESTORE_SECONDS = Histogram(
    "scorestream_state_restore_seconds",
    "Time to rebuild newly assigned partitions of a keyed state store (checkpoint + changelog)",
    ["store"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
STATE_RESTORED_RECORDS = Counter(
    "scorestream_state_restored_records_total",
    "Changelog records read to rebuild keyed state stores",
    ["store"],
)
READY = Gauge("scorestream_ready", "1 when the service reports ready", ["service"])


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """``histogram.observe(a)`` for every ``a``, in one pass: the same buckets, count and sum.

    ``Histogram.observe`` walks the buckets in Python for each value (a few µs); a worker
    observing every event's latency paid that per event. This bins a batch with numpy and adds
    each bucket's count once (``tests/unit/test_metrics_catalog.py`` checks the exposition equals
    observing one by one). ``histogram`` is a labelled child, e.g. ``H.labels("t")``."""
    if not amounts:
        return
    values = np.asarray(amounts, dtype=np.float64)
    bounds: list[float] = histogram._upper_bounds
    # the first bucket whose upper bound is >= the amount, as observe() picks it
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    histogram._sum.inc(float(values.sum()))
    buckets = histogram._buckets
    for i, n in enumerate(counts[: len(bounds)].tolist()):
        if n:
            buckets[i].inc(n)
