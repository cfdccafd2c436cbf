"""Idempotent topic management with the confluent-kafka AdminClient."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from scorestream.errors import MissingTopicError, ScorestreamError, TopicError
from scorestream.kafka_config import admin_config
from scorestream.settings import KafkaSettings, TopicSettings
from scorestream.topics import REGISTRY, StreamSpec, TopicRegistry

TIMEOUT_S = 30.0


APPEAR_WITHIN_S = 5.0
"""How long :func:`require_topics` asks again for a topic it does not see yet."""


def require_topics(
    client: Consumer | Producer | AdminClient,
    topics: Sequence[str],
    *,
    tenant: str,
    denied: Callable[[str], ScorestreamError] | None = None,
    appear_within_s: float = APPEAR_WITHIN_S,
) -> None:
    """Raise :class:`MissingTopicError` (naming the provisioning command) unless every topic
    exists, or ``denied(topic)`` (default: a :class:`TopicError` naming the ACLs) when the client
    may not see one. Nothing at runtime creates a topic: a missing one is a deployment error,
    and subscribing to it would only surface later as an opaque UNKNOWN_TOPIC_OR_PART.

    A topic created a moment ago may not be in the broker's metadata yet: the controller commits
    the creation and the brokers apply it to their metadata caches after the create call has
    returned (seen under load: a service started right after its topics were created refused
    to start). So missing topics are asked for again, every 0.25 s for up to
    ``appear_within_s``, before the error; a denied one fails at once."""
    deadline = time.monotonic() + appear_within_s
    pending = list(topics)
    while True:
        missing = []
        for topic in pending:
            meta = client.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
            err = None if meta is None else meta.error
            if err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                if denied is not None:
                    raise denied(topic)
                raise TopicError(f"not authorized to describe {topic}: check the principal's ACLs")
            if meta is None or err is not None:
                missing.append(topic)
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise MissingTopicError(missing, tenant)
        time.sleep(0.25)
        pending = missing


class Action(StrEnum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    UPDATED = "updated"


@dataclass(frozen=True, slots=True)
class TopicResult:
    topic: str
    action: Action
    partitions: int
    detail: str = ""


def _partitions(spec: StreamSpec, topics: TopicSettings) -> int:
    return max(1, math.ceil(spec.partitions * topics.partitions_scale))


def ensure_topics(
    wanted: dict[str, StreamSpec],
    *,
    kafka: KafkaSettings | None = None,
    topics: TopicSettings | None = None,
    progress: Callable[[TopicResult], None] = lambda _: None,
) -> list[TopicResult]:
    """Create missing topics; bring configs and partition counts of existing ones up to date.

    Idempotent: running it twice changes nothing the second time. Partitions only ever grow
    (shrinking would break key ordering and is refused by Kafka anyway).
    """
    kafka = kafka or KafkaSettings()
    topics = topics or TopicSettings()
    admin = AdminClient(admin_config(kafka, client_id="scorestream-admin"))
    try:
        existing = admin.list_topics(timeout=TIMEOUT_S).topics
    except KafkaException as exc:
        raise TopicError(f"cannot list topics: {exc}") from exc
    results: list[TopicResult] = []
    to_create = [
        NewTopic(
            name,
            num_partitions=_partitions(spec, topics),
            replication_factor=topics.replication_factor,
            config=spec.topic_config(min_insync_replicas=topics.min_insync_replicas),
        )
        for name, spec in wanted.items()
        if name not in existing
    ]
    if to_create:
        for name, future in admin.create_topics(to_create, request_timeout=TIMEOUT_S).items():
            try:
                future.result()
            except KafkaException as exc:
                err = exc.args[0]
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # created concurrently by someone else: reconciled below next run
                raise TopicError(f"cannot create topic {name}: {exc}") from exc
            result = TopicResult(name, Action.CREATED, _partitions(wanted[name], topics))
            results.append(result)
            progress(result)
    if to_create:
        _wait_until_visible(admin, [t.topic for t in to_create])
    for name, spec in wanted.items():
        if name not in existing:
            continue
        result = _reconcile(admin, name, spec, len(existing[name].partitions), topics)
        results.append(result)
        progress(result)
    return results


def _reconcile(
    admin: AdminClient, name: str, spec: StreamSpec, have_partitions: int, topics: TopicSettings
) -> TopicResult:
    changes: list[str] = []
    want_partitions = _partitions(spec, topics)
    if have_partitions < want_partitions:
        fut = admin.create_partitions([NewPartitions(name, want_partitions)])[name]
        try:
            fut.result()
        except KafkaException as exc:
            raise TopicError(f"cannot grow {name} to {want_partitions} partitions: {exc}") from exc
        changes.append(f"partitions {have_partitions}->{want_partitions}")
    current = describe_topic_config(admin, name)
    wanted = spec.topic_config(min_insync_replicas=topics.min_insync_replicas)
    drift = {k: v for k, v in wanted.items() if current.get(k) != v}
    if drift:
        resource = ConfigResource(
            ResourceType.TOPIC,
            name,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in drift.items()
            ],
        )
        try:
            admin.incremental_alter_configs([resource])[resource].result()
        except KafkaException as exc:
            raise TopicError(f"cannot update config of {name}: {exc}") from exc
        changes.extend(f"{k}={v}" for k, v in drift.items())
    partitions = max(have_partitions, want_partitions)
    if changes:
        return TopicResult(name, Action.UPDATED, partitions, ", ".join(changes))
    return TopicResult(name, Action.UNCHANGED, partitions)


def _wait_until_visible(admin: AdminClient, names: list[str], timeout: float = TIMEOUT_S) -> None:
    """Creation is acknowledged by the controller before every broker's metadata has the new
    topics; wait until they are listed with a leader for every partition, so callers can
    produce, consume and describe right away."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        try:
            topics = admin.list_topics(timeout=5).topics
        except KafkaException:
            topics = {}
        pending = {
            n
            for n in pending
            if n not in topics
            or topics[n].error is not None
            or any(p.leader < 0 for p in topics[n].partitions.values())
        }
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopicError(f"topics not visible {timeout:.0f}s after creation: {sorted(pending)}")
        time.sleep(0.1)


def describe_topic_config(admin: AdminClient, topic: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    for attempt in range(20):
        try:
            entries = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
        except KafkaException as exc:
            err = exc.args[0]
            unknown = isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            if unknown and attempt < 19:
                time.sleep(0.1 * (attempt + 1))  # metadata of a new topic still propagating
                continue
            raise TopicError(f"cannot describe {topic}: {exc}") from exc
        return {k: str(v.value) for k, v in entries.items()}
    raise AssertionError("unreachable")


def ensure_tenant_topics(
    tenant: str,
    *,
    registry: TopicRegistry = REGISTRY,
    kafka: KafkaSettings | None = None,
    topics: TopicSettings | None = None,
    progress: Callable[[TopicResult], None] = lambda _: None,
) -> list[TopicResult]:
    """Create every topic of ``tenant`` plus the global ones, idempotently."""
    return ensure_topics(
        registry.topics_for_tenant(tenant), kafka=kafka, topics=topics, progress=progress
    )
