"""The published contracts: CloudEvents type → model class, and their JSON Schema names."""

from __future__ import annotations

from schemas.events import (
    AuditRecord,
    Contract,
    DecisionEvent,
    EnrichedTransaction,
    LabelEvent,
    MerchantActivity,
    ModelPromoted,
    ModelPublished,
    ModelRejected,
    PredictionEvent,
    TransactionEvent,
)

CONTRACTS: tuple[type[Contract], ...] = (
    TransactionEvent,
    EnrichedTransaction,
    PredictionEvent,
    DecisionEvent,
    LabelEvent,
    ModelPublished,
    ModelPromoted,
    ModelRejected,
    AuditRecord,
    MerchantActivity,
)

BY_CE_TYPE: dict[str, type[Contract]] = {c.ce_type: c for c in CONTRACTS}

MODEL_EVENT_TYPES: tuple[type[Contract], ...] = (ModelPublished, ModelPromoted, ModelRejected)


def schema_file_name(contract: type[Contract]) -> str:
    """``scorestream.transaction.v1`` → ``scorestream.transaction.v1.schema.json``."""
    return f"{contract.ce_type}.schema.json"
