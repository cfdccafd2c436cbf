"""Event contracts: the payloads that travel on scorestream's topics.

Rules every contract follows:

* strict types on the wire (a JSON string is never coerced into a number), frozen objects;
* unknown fields are ignored so that a consumer of version ``vN`` keeps reading events written
  by a producer that added optional fields (schemas evolve additively, see ``schemas.compat``);
* money is integer minor units plus an ISO 4217 code; timestamps are timezone-aware UTC.

Each class states its CloudEvents ``ce_type`` and the key it is partitioned by.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from schemas.types import (
    AmountMinor,
    Country,
    Currency,
    EventTime,
    Identifier,
    Mcc,
    ModelName,
    ModelVersion,
    Probability,
    Sha256Hex,
    TenantId,
    UtcDatetime,
)


class Contract(BaseModel):
    """Base of every event payload."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    ce_type: ClassVar[str]
    """CloudEvents type, with the contract's major version (``scorestream.transaction.v1``)."""

    @abstractmethod
    def partition_key(self) -> str:
        """The Kafka key: events of one key keep their order."""

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Self:
        """An instance from values the caller guarantees valid and complete (every field, the
        defaults included), without validation: what ``model_construct`` does, minus its
        per-field Python loop (~5 µs per event on the worker's hot path). The dict becomes the
        instance's state: do not reuse it. ``tests/unit/test_contracts.py`` checks the result
        equals ``model_validate`` of the same values."""
        obj = cls.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(obj, "__dict__", values)
        setattr_(obj, "__pydantic_fields_set__", set(values))
        setattr_(obj, "__pydantic_extra__", None)
        setattr_(obj, "__pydantic_private__", None)
        return obj


class Channel(StrEnum):
    CARD_PRESENT = "card_present"
    CONTACTLESS = "contactless"
    ECOMMERCE = "ecommerce"
    MOBILE_WALLET = "mobile_wallet"
    ATM = "atm"


class TransactionEvent(Contract):
    """A payment as published by an upstream service. Key: ``account_id``."""

    ce_type: ClassVar[str] = "scorestream.transaction.v1"

    transaction_id: Identifier
    tenant_id: TenantId
    account_id: Identifier
    merchant_id: Identifier
    amount_minor: AmountMinor
    currency: Currency
    timestamp: EventTime
    channel: Channel
    country: Country
    mcc: Mcc
    card_country: Country | None = None
    """Issuing country of the card; differs from ``country`` for cross-border payments."""

    def partition_key(self) -> str:
        return self.account_id


FeatureValue = Annotated[float, Field(allow_inf_nan=False)]


class EnrichedTransaction(Contract):
    """A transaction with its served features. Key: ``account_id``."""

    ce_type: ClassVar[str] = "scorestream.transaction.enriched.v1"

    transaction: TransactionEvent
    features: dict[str, FeatureValue]
    """Feature name → value, in the order of the feature spec."""
    feature_spec_hash: Annotated[str, Field(min_length=8, max_length=64)]
    enriched_at: UtcDatetime
    merchant_as_of: UtcDatetime | None = None
    """The merchant features are as of this time (the merchant table's snapshot: every merchant
    transaction and fraud label before it); ``None``: no merchant table yet (zeros)."""

    def partition_key(self) -> str:
        return self.transaction.account_id


class WatermarkSource(BaseModel):
    """How far one input partition of the merchant stage has been read, in event time."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    time_ms: int
    """The largest event time (epoch ms) read from the partition so far (-1: none yet)."""
    idle: bool = False
    """Caught up with nothing left to read: it does not hold the watermark back."""


class MerchantActivity(Contract):
    """Internal to the merchant stage: a transaction or fraud label re-keyed by merchant, or a
    watermark (how far each input partition has been read). Key: ``merchant_id``."""

    ce_type: ClassVar[str] = "scorestream.merchant.activity.v1"

    kind: Literal["transaction", "fraud", "watermark"]
    tenant_id: TenantId
    merchant_id: Identifier | None = None
    transaction_id: Identifier | None = None
    event_ms: int | None = None
    """Transactions and frauds: the transaction's time (epoch ms)."""
    known_ms: int | None = None
    """Frauds: when the label became known (``labelled_at``, epoch ms)."""
    sources: dict[str, WatermarkSource] = Field(default_factory=dict)
    """Watermarks: ``<topic>/<partition>`` → progress."""

    def partition_key(self) -> str:
        return self.merchant_id or ""


class ModelAlias(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


class PredictionTimings(BaseModel):
    """Milliseconds spent per step of scoring one batch, as seen by this event."""

    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    queue_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    inference_ms: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    batch_size: Annotated[int, Field(ge=1)]


class PredictionEvent(Contract):
    """A model score for one transaction. Key: ``account_id``."""

    ce_type: ClassVar[str] = "scorestream.prediction.v1"

    transaction_id: Identifier
    tenant_id: TenantId
    account_id: Identifier
    score: Probability
    model_name: ModelName
    model_version: ModelVersion
    model_sha256: Sha256Hex
    feature_spec_hash: Annotated[str, Field(min_length=8, max_length=64)]
    alias: ModelAlias = ModelAlias.CHAMPION
    event_time: UtcDatetime
    """The transaction's own timestamp, to measure event-to-prediction latency."""
    predicted_at: UtcDatetime
    timings: PredictionTimings

    def partition_key(self) -> str:
        return self.account_id


class Outcome(StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


class DecisionEvent(Contract):
    """What the tenant's policy decided for one transaction. Key: ``account_id``."""

    ce_type: ClassVar[str] = "scorestream.decision.v1"

    transaction_id: Identifier
    tenant_id: TenantId
    account_id: Identifier
    outcome: Outcome
    score: Probability
    model_name: ModelName
    model_version: ModelVersion
    policy_version: Annotated[str, Field(min_length=1, max_length=64)]
    reasons: tuple[str, ...] = ()
    event_time: UtcDatetime
    decided_at: UtcDatetime

    def partition_key(self) -> str:
        return self.account_id


class LabelSource(StrEnum):
    CHARGEBACK = "chargeback"
    CUSTOMER_CONFIRMED = "customer_confirmed"
    ANALYST = "analyst"


class LabelEvent(Contract):
    """Ground truth for a transaction, arriving later. Key: ``account_id``."""

    ce_type: ClassVar[str] = "scorestream.label.v1"

    transaction_id: Identifier
    tenant_id: TenantId
    account_id: Identifier
    merchant_id: Identifier
    is_fraud: bool
    source: LabelSource
    transaction_time: UtcDatetime
    labelled_at: UtcDatetime

    def partition_key(self) -> str:
        return self.account_id


class ModelPublished(Contract):
    """A new immutable model version exists in the repository. Key: ``<name>/<version>``."""

    ce_type: ClassVar[str] = "scorestream.model.published.v1"

    kind: Literal["published"] = "published"
    model_name: ModelName
    model_version: ModelVersion
    sha256: Sha256Hex
    uri: Annotated[str, Field(min_length=1)]
    feature_spec_hash: Annotated[str, Field(min_length=8, max_length=64)]
    metrics: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(default_factory=dict)
    published_at: UtcDatetime

    def partition_key(self) -> str:
        return f"{self.model_name}/{self.model_version}"


class ModelPromoted(Contract):
    """``version`` now serves as ``alias`` for ``tenant_id``. Key: ``<tenant>/<name>/<alias>``.

    The key makes the compacted ``model-events`` topic keep exactly the latest promotion per
    tenant, model and alias: that is the source of truth for what serves.
    """

    ce_type: ClassVar[str] = "scorestream.model.promoted.v1"

    kind: Literal["promoted"] = "promoted"
    tenant_id: TenantId
    model_name: ModelName
    model_version: ModelVersion
    alias: ModelAlias
    promoted_at: UtcDatetime
    reason: str = ""

    def partition_key(self) -> str:
        return f"{self.tenant_id}/{self.model_name}/{self.alias.value}"


class ModelRejected(Contract):
    """A service refused to load a promoted version. Key: ``<tenant>/<name>/<version>/rejected``."""

    ce_type: ClassVar[str] = "scorestream.model.rejected.v1"

    kind: Literal["rejected"] = "rejected"
    tenant_id: TenantId
    model_name: ModelName
    model_version: ModelVersion
    reason: Annotated[str, Field(min_length=1)]
    service: Annotated[str, Field(min_length=1)]
    instance: Annotated[str, Field(min_length=1)]
    rejected_at: UtcDatetime

    def partition_key(self) -> str:
        return f"{self.tenant_id}/{self.model_name}/{self.model_version}/rejected"


ModelEvent = Annotated[ModelPublished | ModelPromoted | ModelRejected, Field(discriminator="kind")]


class AuditStatus(StrEnum):
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"


AuditPart = Literal["transaction", "prediction", "decision"]


class AuditRecord(Contract):
    """Everything known about one transaction's journey, kept forever. Key: ``account_id``.

    The audit log is append-only with revisions: a record written ``incomplete`` (a part missing
    at the join timeout) is followed by a later revision of the same transaction's record when
    the missing part arrives late (``revision`` + 1, ``supersedes`` the previous one, ``amends``
    lists the parts it adds). Revisions of one transaction share the key, so they sit in one
    partition in revision order; the latest revision per ``(account_id, transaction_id)`` is the
    record (:func:`latest_revisions`). Two revisions never disagree on a field both have set:
    only the revision fields, ``status``, ``missing``, ``recorded_at`` and ``hop_ms`` (which
    gains the hops of the added parts) change between them.
    """

    ce_type: ClassVar[str] = "scorestream.audit.v1"

    transaction_id: Identifier
    tenant_id: TenantId
    account_id: Identifier
    status: AuditStatus
    missing: tuple[AuditPart, ...] = ()
    transaction: TransactionEvent | None = None
    features: dict[str, FeatureValue] | None = None
    feature_spec_hash: str | None = None
    model_name: ModelName | None = None
    model_version: ModelVersion | None = None
    model_sha256: Sha256Hex | None = None
    score: Probability | None = None
    outcome: Outcome | None = None
    policy_version: str | None = None
    trace_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None
    hop_ms: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    """Milliseconds per hop, e.g. ``{"enrich": 1.2, "score": 3.4, "decide": 0.7}``."""
    recorded_at: UtcDatetime
    merchant_as_of: UtcDatetime | None = None
    """The as-of of the served merchant features (see :class:`EnrichedTransaction`)."""
    revision: Annotated[int, Field(ge=1)] = 1
    """1 for the first record of a transaction, +1 for each later revision that amends it."""
    supersedes: Annotated[int, Field(ge=1)] | None = None
    """The revision this one replaces (``revision - 1``); ``None`` for the first."""
    amends: tuple[AuditPart, ...] = ()
    """The parts this revision adds to the one it supersedes (they arrived late)."""

    def partition_key(self) -> str:
        return self.account_id


def latest_revisions(records: Iterable[AuditRecord]) -> list[AuditRecord]:
    """The latest revision of each transaction's audit record, in order of first appearance.

    Records are grouped by ``(account_id, transaction_id)`` (the record's key and id); of each
    group the highest ``revision`` wins (on a tie, the later one in ``records``). Records
    written before revisions existed count as revision 1."""
    latest: dict[tuple[str, str], AuditRecord] = {}
    for record in records:
        key = (record.account_id, record.transaction_id)
        kept = latest.get(key)
        if kept is None or record.revision >= kept.revision:
            latest[key] = record
    return list(latest.values())
