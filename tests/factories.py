"""Valid example events of every contract, shared by unit and integration tests."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.events import (
    AuditRecord,
    AuditStatus,
    Channel,
    Contract,
    DecisionEvent,
    EnrichedTransaction,
    LabelEvent,
    LabelSource,
    MerchantActivity,
    ModelAlias,
    ModelPromoted,
    ModelPublished,
    ModelRejected,
    Outcome,
    PredictionEvent,
    PredictionTimings,
    TransactionEvent,
)

T0 = datetime(2026, 11, 24, 12, 30, 15, 123000, tzinfo=UTC)
SHA = "a" * 64
SPEC = "0123456789abcdef"


def transaction(**overrides: object) -> TransactionEvent:
    fields: dict[str, object] = {
        "transaction_id": "tx-0001",
        "tenant_id": "acme",
        "account_id": "acc-42",
        "merchant_id": "mer-7",
        "amount_minor": 12_345,
        "currency": "EUR",
        "timestamp": T0,
        "channel": Channel.ECOMMERCE,
        "country": "DE",
        "mcc": "5411",
        "card_country": "FR",
    }
    fields.update(overrides)
    return TransactionEvent.model_validate(fields)


def transaction_json(**overrides: object) -> dict[str, object]:
    """A valid TransactionEvent as a JSON-ready dict (for building bad payloads)."""
    data: dict[str, object] = transaction().model_dump(mode="json")
    data.update(overrides)
    return data


def every_contract() -> list[Contract]:
    tx = transaction()
    features = {"amount": 123.45, "log_amount": 4.8158, "night": 0.0}
    return [
        tx,
        EnrichedTransaction(
            transaction=tx, features=features, feature_spec_hash=SPEC, enriched_at=T0
        ),
        PredictionEvent(
            transaction_id="tx-0001",
            tenant_id="acme",
            account_id="acc-42",
            score=0.031,
            model_name="fraud-gbt",
            model_version="3",
            model_sha256=SHA,
            feature_spec_hash=SPEC,
            alias=ModelAlias.CHAMPION,
            event_time=T0,
            predicted_at=T0,
            timings=PredictionTimings(queue_ms=1.5, inference_ms=0.4, batch_size=64),
        ),
        DecisionEvent(
            transaction_id="tx-0001",
            tenant_id="acme",
            account_id="acc-42",
            outcome=Outcome.REVIEW,
            score=0.62,
            model_name="fraud-gbt",
            model_version="3",
            policy_version="2026-11-01",
            reasons=("score>=0.5",),
            event_time=T0,
            decided_at=T0,
        ),
        LabelEvent(
            transaction_id="tx-0001",
            tenant_id="acme",
            account_id="acc-42",
            merchant_id="mer-7",
            is_fraud=True,
            source=LabelSource.CHARGEBACK,
            transaction_time=T0,
            labelled_at=T0,
        ),
        ModelPublished(
            model_name="fraud-gbt",
            model_version="3",
            sha256=SHA,
            uri="var/models/fraud-gbt/3/model.onnx",
            feature_spec_hash=SPEC,
            metrics={"average_precision": 0.71},
            published_at=T0,
        ),
        ModelPromoted(
            tenant_id="acme",
            model_name="fraud-gbt",
            model_version="3",
            alias=ModelAlias.CHAMPION,
            promoted_at=T0,
        ),
        ModelRejected(
            tenant_id="acme",
            model_name="fraud-gbt",
            model_version="4",
            reason="sha256 mismatch",
            service="worker",
            instance="worker-0",
            rejected_at=T0,
        ),
        AuditRecord(
            transaction_id="tx-0001",
            tenant_id="acme",
            account_id="acc-42",
            status=AuditStatus.COMPLETE,
            transaction=tx,
            features=features,
            feature_spec_hash=SPEC,
            model_name="fraud-gbt",
            model_version="3",
            model_sha256=SHA,
            score=0.62,
            outcome=Outcome.REVIEW,
            policy_version="2026-11-01",
            trace_id="0af7651916cd43dd8448eb211c80319c",
            hop_ms={"enrich": 1.2, "score": 3.4},
            recorded_at=T0,
            merchant_as_of=T0,
        ),
        MerchantActivity(
            kind="fraud",
            tenant_id="acme",
            merchant_id="mer-7",
            transaction_id="tx-0001",
            event_ms=1_790_000_000_000,
            known_ms=1_790_100_000_000,
        ),
    ]
