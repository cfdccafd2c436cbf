"""The topic registry: the one declaration of every stream of scorestream, as data.

Everything that needs a topic name, partition count, retention or an ACL reads it from here: the
services, ``scorestream topics create``, and (in a later issue) the generated Strimzi
``KafkaTopic`` and ``KafkaUser`` manifests. Per-tenant streams are named ``<tenant>.<stream>``;
a global stream (scope ``GLOBAL``, none at present: ``model-events`` became per-tenant so that no
tenant can write another's promotions) would carry no prefix. Every consumed stream has a
``.dlq`` companion written by its consumers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from scorestream.errors import ConfigError

DAY_MS = 24 * 60 * 60 * 1000
FOREVER = -1

MAX_MESSAGE_BYTES = 1_048_588
"""The largest record batch a topic accepts (``max.message.bytes``, the broker's default), set
explicitly on every topic and used as the producers' ``message.max.bytes``: a record the broker
accepted on an input can be larger than what a dead letter that copies it may be, so "does it
fit" is decided by the producer before producing (:meth:`scorestream.dlq.DeadLetter.record`)."""

TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


class Scope(StrEnum):
    TENANT = "tenant"
    GLOBAL = "global"


class CleanupPolicy(StrEnum):
    DELETE = "delete"
    COMPACT = "compact"
    COMPACT_DELETE = "compact,delete"
    """Latest value per key, and nothing older than ``retention_ms``."""


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One logical stream. ``name`` is the suffix after the tenant prefix."""

    name: str
    description: str
    partitions: int
    retention_ms: int
    cleanup_policy: CleanupPolicy = CleanupPolicy.DELETE
    scope: Scope = Scope.TENANT
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    contracts: tuple[str, ...] = ()
    """CloudEvents types carried on the stream."""
    extra_config: tuple[tuple[str, str], ...] = ()
    is_dlq: bool = False
    has_dlq: bool = True
    """False for a replicated table: its readers follow it outside any transaction, so a bad
    record is counted and skipped, never dead-lettered."""
    max_message_bytes: int = MAX_MESSAGE_BYTES
    """``max.message.bytes``; no stream may exceed :data:`MAX_MESSAGE_BYTES` (the producers'
    limit)."""

    def topic(self, tenant: str | None = None) -> str:
        if self.scope is Scope.GLOBAL:
            return self.name
        return f"{validate_tenant(tenant)}.{self.name}"

    def topic_config(self, *, min_insync_replicas: int = 1) -> dict[str, str]:
        conf = {
            "cleanup.policy": self.cleanup_policy.value,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(min_insync_replicas),
            "max.message.bytes": str(self.max_message_bytes),
        }
        if self.retention_ms == FOREVER:
            conf["retention.bytes"] = "-1"
        conf.update(dict(self.extra_config))
        return conf


_CHANGELOG = (
    ("min.compaction.lag.ms", "0"),
    ("segment.ms", str(60 * 60 * 1000)),  # compaction runs on closed segments: roll hourly
    ("min.cleanable.dirty.ratio", "0.2"),
)
"""Compacted state topics are read whole on restore: keep the uncompacted tail short."""


def validate_tenant(tenant: str | None) -> str:
    if tenant is None or not TENANT_RE.match(tenant):
        raise ConfigError(
            f"invalid tenant id {tenant!r}: use 1-31 lower-case letters, digits or '-', "
            "starting with a letter or digit (it becomes a topic prefix)"
        )
    return tenant


def _dlq(spec: StreamSpec) -> StreamSpec:
    return StreamSpec(
        name=f"{spec.name}.dlq",
        description=f"records of {spec.name} that its consumers could not process, with reasons",
        partitions=1,
        retention_ms=30 * DAY_MS,
        scope=spec.scope,
        producers=spec.consumers,
        consumers=("operator",),
        is_dlq=True,
    )


_BASE: tuple[StreamSpec, ...] = (
    StreamSpec(
        name="transactions",
        description="transaction events published by upstream services and the gateway (key "
        "account_id, partitioner murmur2 as Java's); kept 35 days, the longest feature window",
        partitions=6,
        retention_ms=35 * DAY_MS,
        producers=("gateway", "simulator", "publisher", "enricher"),
        consumers=("enricher", "merchant"),
        contracts=("scorestream.transaction.v1",),
    ),
    StreamSpec(
        name="transactions.enriched",
        description="transactions with their served features",
        partitions=6,
        retention_ms=7 * DAY_MS,
        producers=("enricher",),
        consumers=("worker", "audit"),
        contracts=("scorestream.transaction.enriched.v1",),
    ),
    StreamSpec(
        name="predictions",
        description="champion model scores",
        partitions=6,
        retention_ms=7 * DAY_MS,
        producers=("worker",),
        consumers=("decision", "audit", "monitor"),
        contracts=("scorestream.prediction.v1",),
    ),
    StreamSpec(
        name="predictions.shadow",
        description="challenger model scores; never used for decisions",
        partitions=6,
        retention_ms=7 * DAY_MS,
        producers=("worker",),
        consumers=("monitor",),
        contracts=("scorestream.prediction.v1",),
    ),
    StreamSpec(
        name="decisions",
        description="approve / review / decline per transaction",
        partitions=6,
        retention_ms=7 * DAY_MS,
        producers=("decision",),
        consumers=("notifier", "audit", "gateway"),
        contracts=("scorestream.decision.v1",),
    ),
    StreamSpec(
        name="labels",
        description="fraud ground truth (chargebacks, confirmations), arriving late",
        partitions=3,
        retention_ms=90 * DAY_MS,
        producers=("labels-feed", "simulator"),
        consumers=("merchant", "monitor", "retrain"),
        contracts=("scorestream.label.v1",),
    ),
    StreamSpec(
        name="audit",
        description="one record per transaction: features, model, score, decision; kept forever",
        partitions=6,
        retention_ms=FOREVER,
        producers=("audit",),
        consumers=("retrain", "operator"),
        contracts=("scorestream.audit.v1",),
    ),
    StreamSpec(
        name="audit.state",
        description="the audit join's pending state (changelog, written in its transactions)",
        partitions=6,
        retention_ms=FOREVER,
        cleanup_policy=CleanupPolicy.COMPACT,
        producers=("audit",),
        consumers=("operator",),
        contracts=(),
        extra_config=(("min.compaction.lag.ms", "0"), ("segment.ms", str(DAY_MS))),
    ),
    StreamSpec(
        name="enricher.state",
        description="the enricher's account windows (changelog of its keyed state store, written "
        "in its transactions); partitioned like transactions",
        partitions=6,
        retention_ms=FOREVER,
        cleanup_policy=CleanupPolicy.COMPACT,
        producers=("enricher",),
        consumers=("operator",),
        extra_config=_CHANGELOG,
    ),
    StreamSpec(
        name="merchant-activity",
        description="transactions and fraud labels re-keyed by merchant, with watermarks "
        "(internal to the merchant stage)",
        partitions=6,
        retention_ms=7 * DAY_MS,
        producers=("merchant",),
        consumers=("merchant",),
        contracts=("scorestream.merchant.activity.v1",),
    ),
    StreamSpec(
        name="merchant.state",
        description="the merchant stage's merchant tiles and input watermarks (changelog of its "
        "keyed state store); partitioned like merchant-activity",
        partitions=6,
        retention_ms=FOREVER,
        cleanup_policy=CleanupPolicy.COMPACT,
        producers=("merchant",),
        consumers=("operator",),
        extra_config=_CHANGELOG,
    ),
    StreamSpec(
        name="merchant-features",
        description="the merchant table: each merchant's latest aggregates and, per partition, "
        "the time up to which they are complete; every enricher reads all of it",
        partitions=6,
        retention_ms=FOREVER,
        cleanup_policy=CleanupPolicy.COMPACT,
        producers=("merchant",),
        consumers=("enricher",),
        extra_config=_CHANGELOG,
        has_dlq=False,
    ),
    StreamSpec(
        name="replies",
        description="decisions routed back to the gateway replica that asked (request-reply)",
        partitions=6,
        retention_ms=60 * 60 * 1000,
        producers=("decision",),
        consumers=("gateway",),
        contracts=("scorestream.decision.v1",),
    ),
    StreamSpec(
        name="gateway.idempotency",
        description="the gateway's Idempotency-Keys and transaction ids: who owns each, the "
        "outcome and the answer to replay (every replica follows all of it; compacted, and "
        "deleted after 7 days: above the gateway's idempotency horizon)",
        partitions=3,
        retention_ms=7 * DAY_MS,
        cleanup_policy=CleanupPolicy.COMPACT_DELETE,
        producers=("gateway",),
        consumers=("gateway",),
        extra_config=_CHANGELOG,
        has_dlq=False,
    ),
    StreamSpec(
        name="alerts",
        description="review / decline notifications for analysts and webhooks",
        partitions=3,
        retention_ms=30 * DAY_MS,
        producers=("notifier",),
        consumers=("operator",),
        contracts=("scorestream.decision.v1",),
    ),
    StreamSpec(
        name="alerts.retry",
        description="review / decline decisions whose webhook delivery failed transiently, with "
        "their attempt count and not-before time (retry.* headers); the notifier re-reads them "
        "when due",
        partitions=3,
        retention_ms=7 * DAY_MS,
        producers=("notifier",),
        consumers=("notifier",),
        contracts=("scorestream.decision.v1",),
    ),
    StreamSpec(
        name="model-events",
        description="the tenant's model published / promoted events; compacted source of truth "
        "for what serves (key <tenant>/<model>/<alias>); written only by the tenant's model "
        "management (the retrain principal)",
        partitions=1,
        retention_ms=FOREVER,
        cleanup_policy=CleanupPolicy.COMPACT,
        producers=("retrain",),
        consumers=("worker", "gateway", "retrain"),
        contracts=("scorestream.model.published.v1", "scorestream.model.promoted.v1"),
        extra_config=(("min.compaction.lag.ms", "0"), ("segment.ms", str(DAY_MS))),
        has_dlq=False,
    ),
    StreamSpec(
        name="model-rejections",
        description="promoted versions the tenant's workers refused to load, with the reason; "
        "the workers write it, model management reads it (never the promotion stream)",
        partitions=1,
        retention_ms=FOREVER,
        cleanup_policy=CleanupPolicy.COMPACT,
        producers=("worker",),
        consumers=("worker", "retrain"),
        contracts=("scorestream.model.rejected.v1",),
        extra_config=(("min.compaction.lag.ms", "0"), ("segment.ms", str(DAY_MS))),
        has_dlq=False,
    ),
)


def _with_dlqs(base: Iterable[StreamSpec]) -> tuple[StreamSpec, ...]:
    out: list[StreamSpec] = []
    for spec in base:
        out.append(spec)
    for spec in base:
        if spec.consumers and spec.consumers != ("operator",) and spec.has_dlq:
            out.append(_dlq(spec))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TopicRegistry:
    streams: tuple[StreamSpec, ...] = field(default_factory=lambda: _with_dlqs(_BASE))

    def get(self, name: str) -> StreamSpec:
        for spec in self.streams:
            if spec.name == name:
                return spec
        raise ConfigError(f"no stream named {name!r} in the topic registry")

    def topic(self, name: str, tenant: str | None = None) -> str:
        return self.get(name).topic(tenant)

    def dlq_topic(self, name: str, tenant: str | None = None) -> str:
        return self.get(f"{name}.dlq").topic(tenant)

    def tenant_streams(self) -> tuple[StreamSpec, ...]:
        return tuple(s for s in self.streams if s.scope is Scope.TENANT)

    def global_streams(self) -> tuple[StreamSpec, ...]:
        return tuple(s for s in self.streams if s.scope is Scope.GLOBAL)

    def topics_for_tenant(self, tenant: str) -> dict[str, StreamSpec]:
        """All topics a tenant needs (its own streams plus the global ones), by topic name."""
        validate_tenant(tenant)
        return {s.topic(tenant): s for s in self.streams}

    def read_by(self, service: str) -> tuple[StreamSpec, ...]:
        return tuple(s for s in self.streams if service in s.consumers)

    def written_by(self, service: str) -> tuple[StreamSpec, ...]:
        return tuple(s for s in self.streams if service in s.producers)


REGISTRY = TopicRegistry()
