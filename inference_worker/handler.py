"""The worker's pure logic: a batch of enriched transactions in, predictions and dead letters out.

No Kafka here: the loop decodes records, calls :func:`score_batch` and produces what it returns.
Unit tests drive it with plain objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import NamedTuple, cast

import numpy as np

from inference_worker.model import ServingModel
from schemas.cloudevents import Envelope
from schemas.events import EnrichedTransaction, PredictionEvent, PredictionTimings
from scorestream.dlq import DeadLetter

F32_MAX = float(np.finfo(np.float32).max)


class Scored(NamedTuple):
    """A prediction and the envelope it scores (a named tuple: one per event, built at a third
    of a frozen dataclass's cost)."""

    envelope: Envelope[EnrichedTransaction]
    prediction: PredictionEvent


@dataclass(slots=True)
class BatchOutput:
    predictions: list[Scored] = field(default_factory=list)
    shadow: list[Scored] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    inference_s: dict[str, float] = field(default_factory=dict)


def _row_getter(names: Sequence[str]) -> Callable[[Mapping[str, float]], Sequence[float]]:
    """The model's feature row of a decoded feature map, in its input order, in one C call
    (``KeyError`` naming the first missing feature)."""
    if len(names) == 1:
        only = names[0]
        return lambda features: (features[only],)
    return cast("Callable[[Mapping[str, float]], Sequence[float]]", itemgetter(*names))


def _rows(
    batch: list[Envelope[EnrichedTransaction]],
    tenant: str,
    model: ServingModel,
    out: BatchOutput,
) -> tuple[list[Envelope[EnrichedTransaction]], np.ndarray]:
    names = model.metadata.feature_names
    spec = model.metadata.feature_spec_hash
    take = _row_getter(names)
    accepted: list[Envelope[EnrichedTransaction]] = []
    rows: list[Sequence[float]] = []
    refused: list[tuple[int, DeadLetter]] = []  # (position in the batch, why)
    for i, env in enumerate(batch):
        event = env.event
        if (dead := DeadLetter.other_tenant(env, event.transaction.tenant_id, tenant)) is not None:
            refused.append((i, dead))
            continue
        if event.feature_spec_hash != spec:
            refused.append(
                (
                    i,
                    DeadLetter.for_envelope(
                        env,
                        "feature_spec_mismatch",
                        "FeatureSpecMismatch",
                        f"features computed with spec {event.feature_spec_hash}, model "
                        f"{model.name}/{model.version} needs {spec}",
                    ),
                )
            )
            continue
        try:
            row = take(event.features)
        except KeyError as exc:
            refused.append(
                (
                    i,
                    DeadLetter.for_envelope(
                        env, "missing_feature", "MissingFeature", f"feature {exc.args[0]!r} missing"
                    ),
                )
            )
            continue
        accepted.append(env)
        rows.append(row)
    X64 = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    # float32 range, one vectorised check per batch (NaN compares False, so it is caught too)
    in_range = np.asarray((np.abs(X64) <= F32_MAX).all(axis=1), dtype=np.bool_)
    if not in_range.all():
        positions = {id(env): i for i, env in enumerate(batch)}
        for j in np.flatnonzero(~in_range):
            env = accepted[j]
            refused.append(
                (
                    positions[id(env)],
                    DeadLetter.for_envelope(
                        env,
                        "non_finite_features",
                        "NonFiniteFeature",
                        "a feature is NaN, infinite or beyond float32 range",
                    ),
                )
            )
        accepted = [env for env, ok in zip(accepted, in_range.tolist(), strict=True) if ok]
        X64 = X64[in_range]
    out.dead_letters += [dl for _, dl in sorted(refused, key=lambda r: r[0])]
    return accepted, X64.astype(np.float32)


def _score(
    model: ServingModel,
    X: np.ndarray,
    accepted: list[Envelope[EnrichedTransaction]],
    out: BatchOutput,
) -> tuple[list[Envelope[EnrichedTransaction]], np.ndarray]:
    """One call per batch; if the model fails, isolate the offending rows one by one."""
    try:
        return accepted, model.score(X)
    except Exception:  # noqa: BLE001  (ORT raises untyped errors)
        kept: list[Envelope[EnrichedTransaction]] = []
        scores: list[float] = []
        for env, row in zip(accepted, X, strict=True):
            try:
                scores.append(float(model.score(row.reshape(1, -1))[0]))
                kept.append(env)
            except Exception as exc:  # noqa: BLE001
                out.dead_letters.append(
                    DeadLetter.for_envelope(env, "model_error", type(exc).__name__, str(exc))
                )
        return kept, np.array(scores, dtype=np.float64)


def _predictions(
    model: ServingModel,
    accepted: list[Envelope[EnrichedTransaction]],
    scores: np.ndarray,
    inference_s: float,
    batch_start: datetime,
) -> list[Scored]:
    """One prediction per accepted event, from the score array. The values shared by the batch
    (model, times, timings of one enricher batch) are computed once: events of one enricher
    batch share their ``enriched_at`` object (the codec parses a batch's stamps once)."""
    now = datetime.now(UTC)
    inference_ms = round(inference_s * 1000, 3)
    batch_size = len(accepted)
    timings_of: dict[datetime, PredictionTimings] = {}
    name, version, sha256, alias = model.name, model.version, model.metadata.sha256, model.alias
    trusted = PredictionEvent.trusted
    scored = []
    # a probability whatever the model returns: NaN → 0, beyond [0, 1] → the bound
    clipped = np.clip(np.nan_to_num(scores, nan=0.0), 0.0, 1.0).tolist()
    for env, score in zip(accepted, clipped, strict=True):
        event = env.event
        tx = event.transaction
        enriched_at = event.enriched_at
        timings = timings_of.get(enriched_at)
        if timings is None:
            queue_ms = max(0.0, (batch_start - enriched_at).total_seconds() * 1000)
            timings = PredictionTimings(
                queue_ms=round(queue_ms, 3), inference_ms=inference_ms, batch_size=batch_size
            )
            timings_of[enriched_at] = timings
        # every value is already valid (decoded contracts, the model's own metadata, a
        # clamped float): build without validating again
        prediction = trusted(
            {
                "transaction_id": tx.transaction_id,
                "tenant_id": tx.tenant_id,
                "account_id": tx.account_id,
                "score": score,
                "model_name": name,
                "model_version": version,
                "model_sha256": sha256,
                "feature_spec_hash": event.feature_spec_hash,
                "alias": alias,
                "event_time": tx.timestamp,
                "predicted_at": now,
                "timings": timings,
            }
        )
        scored.append(Scored(env, prediction))
    return scored


def score_batch(
    batch: list[Envelope[EnrichedTransaction]],
    *,
    tenant: str,
    champion: ServingModel,
    challenger: ServingModel | None = None,
    batch_start: datetime | None = None,
) -> BatchOutput:
    """Validate, build one float32 tensor, score it once per model, build the events."""
    start = batch_start or datetime.now(UTC)
    out = BatchOutput()
    accepted, X = _rows(batch, tenant, champion, out)
    if not accepted:
        return out
    t = time.perf_counter()
    kept, scores = _score(champion, X, accepted, out)
    out.inference_s["champion"] = time.perf_counter() - t
    out.predictions = _predictions(champion, kept, scores, out.inference_s["champion"], start)
    if challenger is not None and kept:
        same_spec = challenger.metadata.feature_spec_hash == champion.metadata.feature_spec_hash
        if same_spec:
            rows = X if len(kept) == len(accepted) else X[[accepted.index(e) for e in kept]]
            t = time.perf_counter()
            try:
                shadow_scores = challenger.score(rows)
            except Exception:  # noqa: BLE001  (a failing challenger never affects serving)
                shadow_scores = None
            out.inference_s["challenger"] = time.perf_counter() - t
            if shadow_scores is not None:
                out.shadow = _predictions(
                    challenger, kept, shadow_scores, out.inference_s["challenger"], start
                )
    return out
