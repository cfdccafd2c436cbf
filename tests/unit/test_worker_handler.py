"""The worker's pure batch logic, without Kafka: tensor, validation, shadow, model errors."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import onnxruntime as ort
import pytest

from inference_worker.handler import score_batch
from inference_worker.model import ServingModel, session_options
from schemas.cloudevents import Envelope
from schemas.events import EnrichedTransaction, ModelAlias
from scorestream.features import FEATURE_SPEC
from tests.model_factory import tiny_model
from tests.worker_support import enriched_events

T = datetime(2026, 11, 24, tzinfo=UTC)


def model(
    version: str = "1", alias: ModelAlias = ModelAlias.CHAMPION, seed: int = 0
) -> ServingModel:
    data, meta = tiny_model(version, seed=seed)
    return ServingModel(meta, alias, ort.InferenceSession(data, session_options(1)))


def envelopes(n: int, tenant: str = "acme") -> list[Envelope[EnrichedTransaction]]:
    return [
        Envelope(
            event=e, id=f"e{i}", source="t", time=T, type=e.ce_type, trace={"traceparent": "x"}
        )
        for i, e in enumerate(enriched_events(tenant, n))
    ]


class Counting(ServingModel):
    calls = 0

    def score(self, X: np.ndarray) -> np.ndarray:  # type: ignore[override]
        type(self).calls += 1
        return super().score(X)


def test_one_model_call_per_batch_and_events_carry_everything() -> None:
    base = model()
    counting = Counting(base.metadata, base.alias, base.session)
    batch = envelopes(64)
    out = score_batch(batch, tenant="acme", champion=counting, batch_start=T)
    assert Counting.calls == 1
    assert len(out.predictions) == 64
    assert not out.dead_letters
    expected = base.score(
        np.array([[e.event.features[n] for n in FEATURE_SPEC.names] for e in batch], np.float32)
    )
    for scored, want in zip(out.predictions, expected, strict=True):
        p = scored.prediction
        assert p.score == pytest.approx(float(want))
        assert p.model_sha256 == base.metadata.sha256
        assert p.timings.batch_size == 64
        assert p.event_time == scored.envelope.event.transaction.timestamp
        assert type(p).model_validate_json(p.model_dump_json()) == p  # a valid contract


def test_invalid_records_become_dead_letters_and_the_rest_is_scored() -> None:
    batch = envelopes(7)
    ev = [e.event for e in batch]
    bad_features = dict(ev[3].features)
    bad_features["amount"] = 1e39  # finite in float64, infinite in float32
    missing = {k: v for k, v in ev[4].features.items() if k != "hour"}
    nan = dict(ev[6].features) | {"hour": float("nan")}  # only a handler-built event can hold it
    batch[6] = replace(batch[6], event=ev[6].model_copy(update={"features": nan}))
    batch[1] = replace(batch[1], event=ev[1].model_copy(update={"feature_spec_hash": "0" * 16}))
    batch[2] = replace(
        batch[2],
        event=ev[2].model_copy(
            update={"transaction": ev[2].transaction.model_copy(update={"tenant_id": "other"})}
        ),
    )
    batch[3] = replace(batch[3], event=ev[3].model_copy(update={"features": bad_features}))
    batch[4] = replace(batch[4], event=ev[4].model_copy(update={"features": missing}))
    out = score_batch(batch, tenant="acme", champion=model())
    assert [s.prediction.transaction_id for s in out.predictions] == [
        ev[0].transaction.transaction_id,
        ev[5].transaction.transaction_id,
    ]
    # in batch order, whichever check refused them
    assert [d.reason for d in out.dead_letters] == [
        "feature_spec_mismatch",
        "unknown_tenant",
        "non_finite_features",
        "missing_feature",
        "non_finite_features",
    ]
    assert all(d.raw.value for d in out.dead_letters)


def test_challenger_scores_the_same_rows_in_shadow() -> None:
    out = score_batch(
        envelopes(20),
        tenant="acme",
        champion=model("1"),
        challenger=model("2", ModelAlias.CHALLENGER, seed=1),
    )
    assert len(out.shadow) == 20
    assert {s.prediction.alias for s in out.shadow} == {ModelAlias.CHALLENGER}
    assert [s.prediction.transaction_id for s in out.shadow] == [
        s.prediction.transaction_id for s in out.predictions
    ]


class Exploding(ServingModel):
    def score(self, X: np.ndarray) -> np.ndarray:  # type: ignore[override]
        if X.shape[0] > 1 or X[0, 0] > 50:
            raise RuntimeError("boom")
        return np.zeros(X.shape[0])


def test_a_failing_model_isolates_the_rows_it_cannot_score() -> None:
    base = model()
    batch = envelopes(30)
    out = score_batch(
        batch, tenant="acme", champion=Exploding(base.metadata, base.alias, base.session)
    )
    big = {e.event.transaction.transaction_id for e in batch if e.event.features["amount"] > 50}
    assert {d.reason for d in out.dead_letters} <= {"model_error"}
    assert len(out.predictions) + len(out.dead_letters) == 30
    assert {d.raw.key for d in out.dead_letters} == {
        e.event.transaction.account_id.encode()
        for e in batch
        if e.event.transaction.transaction_id in big
    }


def test_a_failing_challenger_never_affects_serving() -> None:
    base = model("2", ModelAlias.CHALLENGER)
    out = score_batch(
        envelopes(10),
        tenant="acme",
        champion=model(),
        challenger=Exploding(base.metadata, base.alias, base.session),
    )
    assert len(out.predictions) == 10
    assert out.shadow == []
