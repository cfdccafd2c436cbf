"""``scorestream state rescale``: move a keyed store's state after its input topic grew.

A keyed state store is partitioned like its input (:mod:`scorestream.state`): the state of key
``k`` lives in changelog partition ``murmur2(k) % N``. When the input grows from N to M
partitions, the producers send ``k`` to ``murmur2(k) % M`` from then on, and the service refuses
to start (``PartitionCountMismatchError``). With every instance of the service stopped, this
tool grows the changelog to M partitions and moves each live key to its new partition (a copy
there, a tombstone where it was), in one Kafka transaction. Records the input still holds on a
key's old partition are moved by the service itself when it meets them (the enricher's
reroute), so nothing is lost; an account's records from before and after the move may be
processed out of order (tiled windows count them anyway).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewPartitions

from scorestream.errors import ConfigError, KafkaClientError
from scorestream.kafka_config import (
    admin_config,
    consumer_config,
    transactional_producer_config,
)
from scorestream.partitioning import partition_for
from scorestream.reader import read_to_end
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class StoreRef:
    """Where a service's keyed store lives: its changelog, the topic it is partitioned like
    and the consumer group whose instances must be stopped first."""

    service: str
    changelog: str
    source: str

    @property
    def group(self) -> str:
        return f"{self.changelog.split('.', 1)[0]}.{self.service}"


STORES = {
    "enricher": ("enricher.state", "transactions"),
    "merchant": ("merchant.state", "merchant-activity"),
}
"""Rescalable stores: service → (changelog stream, source stream). Keys starting with ``__``
(the merchant stage's per-partition progress) stay in their partition."""


def store_ref(service: str, tenant: str) -> StoreRef:
    if service not in STORES:
        raise ConfigError(f"no rescalable store for {service!r}: one of {sorted(STORES)}")
    changelog, source = STORES[service]
    return StoreRef(service, REGISTRY.topic(changelog, tenant), REGISTRY.topic(source, tenant))


@dataclass(frozen=True, slots=True)
class RescaleReport:
    source_partitions: int
    changelog_partitions_before: int
    keys: int
    moved: int


def _partition_count(admin: AdminClient, topic: str) -> int:
    meta = admin.list_topics(topic, timeout=30).topics.get(topic)
    if meta is None or meta.error is not None:
        raise KafkaClientError(f"topic {topic} does not exist")
    return len(meta.partitions)


def _active_members(admin: AdminClient, group: str) -> list[str]:
    futures = admin.describe_consumer_groups([group], request_timeout=30)
    try:
        description = futures[group].result()
    except KafkaException as exc:
        raise KafkaClientError(f"cannot describe consumer group {group}: {exc}") from exc
    return [f"{m.client_id}@{m.host}" for m in description.members]


def rescale(
    ref: StoreRef,
    *,
    kafka: KafkaSettings | None = None,
    dry_run: bool = False,
    progress: Progress = lambda _: None,
) -> RescaleReport:
    kafka = kafka or KafkaSettings()
    admin = AdminClient(admin_config(kafka, client_id="scorestream-rescale"))
    members = _active_members(admin, ref.group)
    if members:
        raise ConfigError(
            f"consumer group {ref.group} still has {len(members)} member(s) ({', '.join(members)})"
            f": stop every {ref.service} instance first (their state would be moved under them)"
        )
    target = _partition_count(admin, ref.source)
    before = _partition_count(admin, ref.changelog)
    if target < before:
        raise ConfigError(f"{ref.source} has fewer partitions ({target}) than {ref.changelog}")
    progress(f"{ref.source}: {target} partitions, {ref.changelog}: {before}")
    latest: dict[tuple[int, bytes], bytes] = {}
    conf = consumer_config(kafka, group_id=f"{ref.group}.rescale", client_id="scorestream-rescale")
    for msg in read_to_end(conf, ref.changelog, timeout=300):
        key = msg.key() or b""
        value = msg.value()
        slot = (msg.partition() or 0, key)
        if value is None:
            latest.pop(slot, None)
        else:
            latest[slot] = value
    moves = [
        (p, key, value, partition_for(key, target))
        for (p, key), value in latest.items()
        if not key.startswith(b"__") and partition_for(key, target) != p
    ]
    progress(f"{len(latest)} live keys, {len(moves)} to move")
    if dry_run:
        return RescaleReport(target, before, len(latest), len(moves))
    if target > before:
        futures = admin.create_partitions([NewPartitions(ref.changelog, target)])
        for topic, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                raise KafkaClientError(f"cannot grow {topic} to {target}: {exc}") from exc
        _wait_partitions(admin, ref.changelog, target)
        progress(f"{ref.changelog} grown to {target} partitions")
    if moves:
        producer = Producer(
            transactional_producer_config(
                kafka, transactional_id=f"{ref.group}.rescale", client_id="scorestream-rescale"
            )
        )
        producer.init_transactions(60)
        producer.begin_transaction()
        for p, key, value, home in moves:
            producer.produce(ref.changelog, value=value, key=key, partition=home)
            producer.produce(ref.changelog, value=None, key=key, partition=p)
            producer.poll(0)
        producer.commit_transaction(120)
        progress(f"moved {len(moves)} keys to their partitions (one transaction)")
    return RescaleReport(target, before, len(latest), len(moves))


def _wait_partitions(admin: AdminClient, topic: str, n: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _partition_count(admin, topic) < n:
        if time.monotonic() > deadline:
            raise KafkaClientError(f"{topic} does not show {n} partitions after {timeout_s}s")
        time.sleep(0.2)
