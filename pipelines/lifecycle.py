"""Model lifecycle: train and publish, promote, retrain with a champion/challenger gate.

Every change of what serves is an event on the tenant's ``<tenant>.model-events``, which only the
tenant's model-management principal (``<tenant>-retrain``) may write; the repository only stores
immutable artifacts. Each operation validates everything *before* emitting its event, so a bad
artifact, an unknown version or a foreign feature spec never gets published or promoted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from pipelines import training
from pipelines.metadata import ModelMetadata
from pipelines.repository import LoadedModel, ModelRepository
from schemas.events import LabelEvent, ModelAlias, ModelPromoted, ModelPublished, TransactionEvent
from scorestream.errors import ModelNotFoundError
from scorestream.model_events import publish_model_event, read_model_events
from scorestream.settings import KafkaSettings, ModelRepoSettings
from scorestream.topics import validate_tenant

Progress = Callable[[str], None]


def open_repository(settings: ModelRepoSettings | None = None) -> ModelRepository:
    return ModelRepository.from_settings(settings)


def publish(
    repo: ModelRepository,
    result: training.TrainingResult,
    *,
    tenant: str,
    kafka: KafkaSettings | None = None,
) -> ModelPublished:
    """Store the artifact (immutable) and announce it on ``<tenant>.model-events``."""
    uri = repo.publish(result.onnx_bytes, result.metadata)
    repo.load(result.metadata.name, result.metadata.version)  # read back and verify
    meta = result.metadata
    event = ModelPublished(
        model_name=meta.name,
        model_version=meta.version,
        sha256=meta.sha256,
        uri=uri,
        feature_spec_hash=meta.feature_spec_hash,
        metrics={k: v for k, v in meta.metrics.items() if np.isfinite(v)},
        published_at=datetime.now(UTC),
    )
    publish_model_event(event, tenant=tenant, kafka=kafka, source="scorestream/models")
    return event


def promote(
    repo: ModelRepository,
    *,
    tenant: str,
    name: str,
    version: str,
    alias: ModelAlias = ModelAlias.CHAMPION,
    reason: str = "",
    kafka: KafkaSettings | None = None,
) -> ModelPromoted:
    """Verify the version fully (sha256, graph, feature spec), then emit ``ModelPromoted``."""
    validate_tenant(tenant)
    repo.load(name, version)
    event = ModelPromoted(
        tenant_id=tenant,
        model_name=name,
        model_version=version,
        alias=alias,
        promoted_at=datetime.now(UTC),
        reason=reason,
    )
    publish_model_event(event, tenant=tenant, kafka=kafka, source="scorestream/models")
    return event


def serving_version(
    tenant: str, name: str, alias: ModelAlias, kafka: KafkaSettings | None = None
) -> str | None:
    promoted = read_model_events(tenant, kafka, rejections=False).serving(tenant, name, alias)
    return promoted.model_version if promoted else None


@dataclass(frozen=True, slots=True)
class RetrainReport:
    tenant: str
    source: str
    candidate: ModelMetadata
    champion: ModelMetadata | None
    candidate_ap: float
    champion_ap: float | None
    margin: float
    decision: ModelAlias

    def render(self) -> str:
        lines = [
            f"retrain for tenant {self.tenant} (data: {self.source})",
            f"  candidate {self.candidate.name}/{self.candidate.version}: "
            f"AP {self.candidate_ap:.4f}, ROC AUC {self.candidate.metrics['roc_auc']:.4f}, "
            f"CP@100 {self.candidate.metrics['card_precision_at_100']:.3f}",
        ]
        if self.champion is not None and self.champion_ap is not None:
            lines.append(
                f"  champion  {self.champion.name}/{self.champion.version}: AP "
                f"{self.champion_ap:.4f} on the same newest labelled window"
            )
            lines.append(
                f"  gate: candidate must beat champion AP by {self.margin:+.4f} → "
                f"{'passed' if self.decision is ModelAlias.CHAMPION else 'not passed'}"
            )
        else:
            lines.append("  no champion serves this tenant yet → the candidate becomes champion")
        lines.append(
            f"  decision: {self.candidate.version} promoted as {self.decision.value}"
            + (" (shadow scoring only)" if self.decision is ModelAlias.CHALLENGER else "")
        )
        return "\n".join(lines)


def retrain(
    repo: ModelRepository,
    transactions: Sequence[TransactionEvent],
    labels: Sequence[LabelEvent],
    *,
    tenant: str,
    name: str,
    source: str,
    margin: float = 0.005,
    config: training.TrainConfig | None = None,
    features: training.Matrix | None = None,
    kafka: KafkaSettings | None = None,
    progress: Progress = lambda _: None,
) -> RetrainReport:
    """Train a candidate; promote it to champion only if it beats the champion's AP by ``margin``
    on the newest labelled window, else publish it as challenger (shadow)."""
    validate_tenant(tenant)
    cfg = config or training.TrainConfig(model_name=name)
    champion_version = serving_version(tenant, name, ModelAlias.CHAMPION, kafka)
    version = repo.next_version(name)
    progress(f"training candidate {name}/{version} on {len(transactions):,} transactions ...")
    result = training.run(
        transactions,
        labels,
        version=version,
        config=cfg,
        parent_version=champion_version,
        features=features,
    )
    candidate_ap = result.metadata.metrics["average_precision"]
    champion: LoadedModel | None = None
    champion_ap: float | None = None
    if champion_version is not None and result.dataset is not None:
        try:
            champion = repo.load(name, champion_version)
        except ModelNotFoundError:
            champion = None
        if champion is not None:
            scores = training.onnx_scores(champion.onnx_bytes, result.dataset.test.X)
            champion_ap = training.evaluate(scores, result.dataset.test)["average_precision"]
    publish(repo, result, tenant=tenant, kafka=kafka)
    wins = champion_ap is None or candidate_ap >= champion_ap + margin
    alias = ModelAlias.CHAMPION if wins else ModelAlias.CHALLENGER
    reason = (
        f"retrain: AP {candidate_ap:.4f} vs champion "
        f"{'none' if champion_ap is None else f'{champion_ap:.4f}'} (margin {margin})"
    )
    promote(
        repo, tenant=tenant, name=name, version=version, alias=alias, reason=reason, kafka=kafka
    )
    return RetrainReport(
        tenant=tenant,
        source=source,
        candidate=result.metadata,
        champion=champion.metadata if champion else None,
        candidate_ap=candidate_ap,
        champion_ap=champion_ap,
        margin=margin,
        decision=alias,
    )
