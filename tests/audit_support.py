"""Helpers for audit tests: the three parts of a transaction, built with the contracts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.cloudevents import Envelope
from schemas.events import (
    DecisionEvent,
    EnrichedTransaction,
    ModelAlias,
    Outcome,
    PredictionEvent,
    PredictionTimings,
    TransactionEvent,
)
from scorestream.features import FEATURE_SPEC, feature_dicts

SHA = "5" * 64
POLICY = "policy-2026-11"


def traceparent(seed: int) -> str:
    return f"00-{seed:032x}-{seed + 1:016x}-01"


@dataclass(frozen=True, slots=True)
class Parts:
    enriched: EnrichedTransaction
    prediction: PredictionEvent
    decision: DecisionEvent

    @property
    def transaction_id(self) -> str:
        return self.enriched.transaction.transaction_id


def parts_for(
    enriched: EnrichedTransaction,
    score: float,
    *,
    model_version: str = "1",
    model_name: str = "fraud-gbt",
    sha256: str = SHA,
    at: datetime | None = None,
) -> Parts:
    tx = enriched.transaction
    now = at or datetime.now(UTC)
    prediction = PredictionEvent(
        transaction_id=tx.transaction_id,
        tenant_id=tx.tenant_id,
        account_id=tx.account_id,
        score=score,
        model_name=model_name,
        model_version=model_version,
        model_sha256=sha256,
        feature_spec_hash=enriched.feature_spec_hash,
        alias=ModelAlias.CHAMPION,
        event_time=tx.timestamp,
        predicted_at=now,
        timings=PredictionTimings(queue_ms=0.5, inference_ms=0.2, batch_size=8),
    )
    outcome = (
        Outcome.DECLINE if score >= 0.9 else Outcome.REVIEW if score >= 0.5 else Outcome.APPROVE
    )
    decision = DecisionEvent(
        transaction_id=tx.transaction_id,
        tenant_id=tx.tenant_id,
        account_id=tx.account_id,
        outcome=outcome,
        score=score,
        model_name=model_name,
        model_version=model_version,
        policy_version=POLICY,
        reasons=(f"score={score:.3f}",),
        event_time=tx.timestamp,
        decided_at=now,
    )
    return Parts(enriched, prediction, decision)


def enrich(txs: list[TransactionEvent], *, at: datetime | None = None) -> list[EnrichedTransaction]:
    when = at or datetime.now(UTC)
    return [
        EnrichedTransaction(
            transaction=tx,
            features=features,
            feature_spec_hash=FEATURE_SPEC.hash,
            enriched_at=when,
        )
        for tx, features in zip(txs, feature_dicts(txs), strict=True)
    ]


def envelope(
    event: EnrichedTransaction | PredictionEvent | DecisionEvent,
    time: datetime,
    *,
    trace: str | None = None,
    extensions: dict[str, str] | None = None,
) -> Envelope[EnrichedTransaction | PredictionEvent | DecisionEvent]:
    return Envelope(
        event=event,
        id=str(uuid.uuid4()),
        source="tests/audit",
        time=time,
        type=event.ce_type,
        trace={"traceparent": trace} if trace else {},
        extensions=extensions or {},
    )


def ms(n: float) -> timedelta:
    return timedelta(milliseconds=n)
