"""Quix Streams plumbing for the enricher: client settings, health hooks, output serialisation.

The Kafka settings come from :mod:`scorestream.kafka_config` like every other client's, so
security, timeouts and the exactly-once defaults are decided in one place: the connection part
becomes Quix's ``ConnectionConfig``, the rest goes in as producer/consumer extra config. Two
settings differ from Quix's defaults on purpose:

* ``transactional.id`` is ``<tenant>.enricher.<instance id>`` (stable per instance, like the
  other services) instead of a random one, so a restarted instance fences its predecessor's
  open transaction at once instead of read_committed readers stalling until it times out;
* ``partitioner`` is librdkafka's default (``consistent_random``) instead of Quix's
  ``murmur2``, so an enriched record lands on the partition every other scorestream producer
  picks for the same account (the audit's co-partitioned join relies on it).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import TopicPartition
from quixstreams import Application
from quixstreams.kafka import ConnectionConfig
from quixstreams.models.serializers import SerializationContext, Serializer

from consumers.enricher_stages import Outgoing
from scorestream import metrics
from scorestream.kafka_config import (
    ClientConfig,
    common_config,
    consumer_config,
    transactional_producer_config,
)
from scorestream.settings import KafkaSettings
from scorestream.stall_guard import StallGuard

log = logging.getLogger("scorestream.enricher")
CHANGELOG = "changelog__"
REPARTITION = "repartition__"
LOOP = "an iteration of the Quix main loop (poll, process, commit_checkpoint)"

# set by Quix itself from Application arguments; ours would be ignored or conflict
_QUIX_OWNED_CONSUMER = (
    "group.id",
    "auto.offset.reset",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "partition.assignment.strategy",  # Quix forces "range" (co-partitioned stores)
)


def connection(kafka: KafkaSettings, *, client_id: str) -> tuple[ConnectionConfig, ClientConfig]:
    """Quix's connection config and the rest of :func:`common_config` (e.g. log level)."""
    common = common_config(kafka, client_id=client_id)
    conn = ConnectionConfig.from_librdkafka_dict(common, ignore_extras=True)
    dumped = conn.as_librdkafka_dict()
    rest = {k: v for k, v in common.items() if k not in dumped}
    return conn, rest


def producer_extra(
    kafka: KafkaSettings, *, transactional_id: str, client_id: str, timeout_s: float
) -> ClientConfig:
    conf = transactional_producer_config(
        kafka, transactional_id=transactional_id, client_id=client_id
    )
    _, rest = connection(kafka, client_id=client_id)
    common = common_config(kafka, client_id=client_id)
    extra = {k: v for k, v in conf.items() if k not in common} | rest
    extra["transaction.timeout.ms"] = int(timeout_s * 1000)
    extra["delivery.timeout.ms"] = int(timeout_s * 1000)
    extra["partitioner"] = "consistent_random"
    return extra


def consumer_extra(
    kafka: KafkaSettings,
    *,
    group_id: str,
    client_id: str,
    session_timeout_ms: int,
    max_poll_interval_ms: int,
    fetch_wait_max_ms: int = 10,
) -> ClientConfig:
    conf = consumer_config(kafka, group_id=group_id, client_id=client_id, read_committed=True)
    _, rest = connection(kafka, client_id=client_id)
    common = common_config(kafka, client_id=client_id)
    extra = {
        k: v for k, v in conf.items() if k not in common and k not in _QUIX_OWNED_CONSUMER
    } | rest
    extra |= {
        # Quix aligns the inputs of one partition number by timestamp and, after draining a
        # partition, waits until the next fetch response tells it the partition is idle: with
        # librdkafka's default (500 ms) every stage waited up to half a second at low load.
        "fetch.wait.max.ms": fetch_wait_max_ms,
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(1000, session_timeout_ms // 5),
        "max.poll.interval.ms": max_poll_interval_ms,
    }
    return extra


class OutgoingValue(Serializer):
    """Serialises an :class:`Outgoing` to its value bytes (key and headers are set by the
    topology from the same object)."""

    def __call__(self, value: Outgoing, ctx: SerializationContext) -> bytes:
        return value.value  # type: ignore[return-value]  # None: a tombstone kept as is


def _data(topic_partitions: list[TopicPartition]) -> set[tuple[str, int]]:
    """Input and repartition partitions (Quix also assigns the changelogs, paused)."""
    return {(p.topic, p.partition) for p in topic_partitions if not p.topic.startswith(CHANGELOG)}


class EnricherApplication(Application):
    """An ``Application`` that reports assignment and recovery for ``/readyz`` and ``/livez``.

    Quix has no public hook for either, so the three rebalance callbacks and the per-message
    step are extended (pinned quixstreams 3.28.1; the integration tests read ``/readyz``).
    Ready = the consumer joined the group and the state is recovered (the loop processes
    messages only once no changelog recovery is pending). The health thread reads plain
    attributes only, never the Kafka clients.
    """

    def __init__(self, *args: Any, service: str, live_after_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.service = service
        self.live_after_s = live_after_s
        self.joined = False
        self.recovering = False
        self.assigned: set[tuple[str, int]] = set()
        self.last_poll = time.monotonic()
        self._lock = threading.Lock()
        self._next_lag = 0.0
        self.stall_guard = StallGuard()
        """Re-armed on every loop iteration: Quix's own transactional calls (commit with no
        timeout) can block forever inside librdkafka when a broker leaves (the chaos run caught
        one for minutes after a node kill); the process then exits 75 and is restarted, like
        the Processor's services (:mod:`scorestream.stall_guard`)."""

    # -- callbacks (run on the main thread, inside poll) --------------------------------------
    def _on_assign(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        with self._lock:
            self.joined = True
            self.recovering = True  # until the loop processes again
            self.assigned |= _data(topic_partitions)
        self.stall_guard.disarm()  # the changelog recovery that follows takes what it takes
        super()._on_assign(consumer, topic_partitions)
        log.info("assigned %s", sorted(f"{t}[{p}]" for t, p in _data(topic_partitions)))

    def _on_revoke(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        super()._on_revoke(consumer, topic_partitions)
        with self._lock:
            self.assigned -= _data(topic_partitions)
        log.info("revoked %s", sorted(f"{t}[{p}]" for t, p in _data(topic_partitions)))

    def _on_lost(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        super()._on_lost(consumer, topic_partitions)
        with self._lock:
            self.assigned -= _data(topic_partitions)
            self.joined = False
        log.warning("lost %s (session expired)", topic_partitions)

    def _process_message(self, dataframe_composed: Any) -> None:
        # called by run() only when no state recovery is pending
        self.recovering = False
        self.last_poll = time.monotonic()
        self.stall_guard.arm(LOOP, self.live_after_s)
        super()._process_message(dataframe_composed)  # type: ignore[no-untyped-call]
        if self.last_poll >= self._next_lag:
            self._next_lag = self.last_poll + 5.0
            self._update_lag()
            metrics.READY.labels(self.service).set(1 if self.ready()[0] else 0)

    # -- health (any thread) -------------------------------------------------------------------
    def live(self) -> tuple[bool, str]:
        if self.recovering:
            return True, "recovering state from the changelogs"
        idle = time.monotonic() - self.last_poll
        if idle >= self.live_after_s:
            return False, f"no poll for {idle:.1f}s"
        return True, f"last poll {idle:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            joined, recovering, assigned = self.joined, self.recovering, sorted(self.assigned)
        if not joined:
            return False, "not in the consumer group yet"
        if recovering:
            return False, "recovering state from the changelogs"
        parts = ", ".join(f"{t}[{p}]" for t, p in assigned)
        return True, f"assigned {parts or 'nothing (idle)'}"

    def _update_lag(self) -> None:
        consumer = self._consumer
        with self._lock:
            tps = [TopicPartition(t, p) for t, p in self.assigned]
        try:
            positions = consumer.position(tps)
        except Exception:  # noqa: BLE001  (metrics must never stop processing)
            return
        for tp in positions:
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                metrics.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(
                    max(0, high - tp.offset)
                )
