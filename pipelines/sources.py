"""Where training data comes from: the tenant's audit log joined with labels, or the simulator.

The audit log stores the features *exactly as served*; training on them (instead of recomputing)
removes any chance of train/serve skew. A fresh tenant has no audit history yet, so the simulator
provides it (``source="auto"`` falls back when the audit log is missing or too short).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.training import Matrix
from schemas.errors import DecodeError
from schemas.events import (
    AuditRecord,
    AuditStatus,
    LabelEvent,
    TransactionEvent,
    latest_revisions,
)
from scorestream.errors import ConfigError, KafkaClientError
from scorestream.features import FEATURE_SPEC, to_vector
from scorestream.kafka_config import common_config
from scorestream.replay import read_to_end
from scorestream.serde import decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

MIN_AUDIT_DAYS = 42


@dataclass(frozen=True, slots=True)
class TrainingData:
    transactions: list[TransactionEvent]
    labels: list[LabelEvent]
    features: Matrix | None
    source: str


def from_simulator(*, tenant: str, seed: int, days: int) -> TrainingData:
    from producers.simulator import SimulatorConfig, simulate  # noqa: PLC0415

    sim = simulate(SimulatorConfig(seed=seed, tenant=tenant, days=days))
    return TrainingData(
        transactions=[t.event for t in sim.transactions],
        labels=list(sim.labels),
        features=None,
        source=f"simulator(seed={seed}, days={days}, {len(sim.transactions):,} tx)",
    )


def from_audit(tenant: str, kafka: KafkaSettings | None = None) -> TrainingData:
    """Complete audit records with features of the current spec, plus every label. Of a
    transaction whose record has revisions (an ``incomplete`` record amended by a late part),
    only the latest revision counts: each transaction is read once."""
    conf = common_config(kafka or KafkaSettings(), client_id="scorestream-retrain") | {
        "group.id": f"{tenant}.retrain",  # assign() only; matches the retrain KafkaUser ACL
        "isolation.level": "read_committed",
    }
    transactions: list[TransactionEvent] = []
    rows: list[list[float]] = []
    records: list[AuditRecord] = []
    for msg in read_to_end(conf, REGISTRY.topic("audit", tenant)):
        try:
            records.append(decode_message(msg, accept=[AuditRecord]).event)
        except DecodeError:
            continue
    for record in latest_revisions(records):
        if (
            record.status is AuditStatus.COMPLETE
            and record.transaction is not None
            and record.features is not None
            and record.feature_spec_hash == FEATURE_SPEC.hash
        ):
            transactions.append(record.transaction)
            rows.append(to_vector(record.features))
    labels: list[LabelEvent] = []
    for msg in read_to_end(conf, REGISTRY.topic("labels", tenant)):
        try:
            labels.append(decode_message(msg, accept=[LabelEvent]).event)
        except DecodeError:
            continue
    features = np.array(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_SPEC))
    return TrainingData(
        transactions, labels, features, f"audit log of {tenant} ({len(transactions):,} records)"
    )


def _span_days(transactions: list[TransactionEvent]) -> float:
    if not transactions:
        return 0.0
    times = [t.timestamp for t in transactions]
    return (max(times) - min(times)).total_seconds() / 86400


def load_training_data(
    *, tenant: str, seed: int = 42, days: int = 60, source: str = "auto"
) -> TrainingData:
    if source not in ("auto", "audit", "simulator"):
        raise ConfigError(f"unknown training data source {source!r}: auto, audit or simulator")
    if source in ("auto", "audit"):
        try:
            audit = from_audit(tenant)
        except KafkaClientError:
            if source == "audit":
                raise
        else:
            if source == "audit" or _span_days(audit.transactions) >= MIN_AUDIT_DAYS:
                return audit
    return from_simulator(tenant=tenant, seed=seed, days=days)
