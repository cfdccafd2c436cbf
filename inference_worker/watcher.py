"""Follows the tenant's compacted ``<tenant>.model-events`` topic and prepares model swaps.

Every worker instance reads the whole topic (assign, no consumer group), and the tenant's
``<tenant>.model-rejections`` beside it. The replay at start finds what serves each alias for
this tenant; later promotions are loaded, verified and warmed up here, off the hot path, then
handed to the loop, which swaps between batches. A promotion that fails verification is
answered with ``ModelRejected`` on ``<tenant>.model-rejections`` (the worker's principal cannot
write the promotion stream) and the current model keeps serving. An event that names another
tenant is ignored, logged and counted (``scorestream_model_events_ignored_total``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from inference_worker.model import ServingModel, load_serving_model
from pipelines.repository import ModelRepository
from schemas.catalog import MODEL_EVENT_TYPES
from schemas.errors import DecodeError
from schemas.events import ModelAlias, ModelPromoted, ModelRejected
from scorestream import metrics
from scorestream.errors import MissingTopicError, ScorestreamError, TopicError
from scorestream.kafka_config import common_config
from scorestream.model_events import (
    is_foreign,
    promotions_topic,
    publish_model_event,
    rejections_topic,
)
from scorestream.reader import watermarks
from scorestream.serde import decode_message
from scorestream.settings import KafkaSettings

log = logging.getLogger("scorestream.worker.models")


class ModelWatcher(threading.Thread):
    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        repo: ModelRepository,
        tenant: str,
        model_name: str,
        instance: str,
        intra_op_threads: int = 1,
    ) -> None:
        super().__init__(name="model-watcher", daemon=True)
        self.promotions = promotions_topic(tenant)
        self.rejections = rejections_topic(tenant)
        self.kafka = kafka
        self.repo = repo
        self.tenant = tenant
        self.model_name = model_name
        self.instance = instance
        self.threads = intra_op_threads
        self.replayed = threading.Event()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[ModelAlias, ServingModel] = {}
        self._rejected: set[tuple[str, str]] = set()  # (version, reason) already announced
        self.error: BaseException | None = None

    # -- hand-over to the loop -------------------------------------------------------------------
    def take_pending(self) -> dict[ModelAlias, ServingModel]:
        with self._lock:
            pending, self._pending = self._pending, {}
        return pending

    def stop(self) -> None:
        self._halt.set()

    # -- thread ----------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001  (surfaced to the loop, which exits)
            self.error = exc
            self.replayed.set()

    def _consumer(self) -> tuple[Consumer, dict[tuple[str, int], int]]:
        conf = common_config(self.kafka, client_id=f"{self.instance}-models") | {
            "group.id": f"{self.tenant}.worker.models",  # assign() only: never joins or commits
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
        consumer = Consumer(conf)
        try:
            ends: dict[tuple[str, int], int] = {}
            assignment = []
            for topic in (self.promotions, self.rejections):
                meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
                denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
                if meta is not None and meta.error is not None and meta.error.code() == denied:
                    raise TopicError(f"not authorized to read {topic}: check the worker's ACLs")
                if meta is None or meta.error is not None:
                    raise MissingTopicError(topic, self.tenant)
                for p in meta.partitions:
                    low, high = watermarks(consumer, TopicPartition(topic, p))
                    if high > low:  # an empty partition has no position to reach
                        ends[(topic, p)] = high
                    assignment.append(TopicPartition(topic, p, low))
            consumer.assign(assignment)
        except BaseException:
            consumer.close()
            raise
        return consumer, ends

    def _run(self) -> None:
        consumer, ends = self._consumer()
        history: dict[ModelAlias, list[str]] = defaultdict(list)
        try:
            while ends and not self._halt.is_set():
                for msg in consumer.consume(num_messages=500, timeout=0.5):
                    if not msg.error():
                        self._replay_one(msg, history)
                positions = consumer.position([TopicPartition(t, p) for t, p in ends])
                if all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in positions):
                    break
            for alias, versions in history.items():
                self._load_with_fallback(alias, versions)
            self.replayed.set()
            while not self._halt.is_set():
                for msg in consumer.consume(num_messages=100, timeout=0.5):
                    if msg.error():
                        continue
                    event = self._event(msg)
                    if isinstance(event, ModelPromoted) and self._mine(event):
                        self._load_with_fallback(event.alias, [event.model_version])
                    elif isinstance(event, ModelRejected) and self._mine(event):
                        self._rejected.add((event.model_version, event.instance))
        finally:
            consumer.close()

    def _event(self, msg: Message) -> object:
        """The decoded event; None if undecodable, of another tenant or on the wrong topic (a
        rejection only counts on the rejections topic, a promotion only on the promotions')."""
        event = self._decode(msg)
        topic = msg.topic() or ""
        if event is None or is_foreign(event, self.tenant, service="worker", topic=topic):
            return None
        if isinstance(event, ModelRejected) != (topic == self.rejections):
            log.warning("ignored a %s on %s", type(event).__name__, topic)
            return None
        return event

    @staticmethod
    def _decode(msg: Message) -> object:
        try:
            return decode_message(msg, accept=MODEL_EVENT_TYPES).event
        except DecodeError:
            return None

    def _mine(self, event: ModelPromoted | ModelRejected) -> bool:
        return event.tenant_id == self.tenant and event.model_name == self.model_name

    def _replay_one(self, msg: Message, history: dict[ModelAlias, list[str]]) -> None:
        event = self._event(msg)
        if isinstance(event, ModelPromoted) and self._mine(event):
            history[event.alias].append(event.model_version)
        elif isinstance(event, ModelRejected) and self._mine(event):
            self._rejected.add((event.model_version, event.instance))

    def _load_with_fallback(self, alias: ModelAlias, versions: list[str]) -> None:
        """Newest first; on failure reject it and (at start-up) fall back to older promotions."""
        tried: set[str] = set()
        for version in reversed(versions):
            if version in tried:
                continue
            tried.add(version)
            started = time.perf_counter()
            try:
                model = load_serving_model(
                    self.repo, self.model_name, version, alias, intra_op_threads=self.threads
                )
            except ScorestreamError as exc:
                self._reject(version, f"{type(exc).__name__}: {exc}")
                continue
            with self._lock:
                self._pending[alias] = model
            log.info(
                "model %s/%s ready as %s in %.2fs",
                self.model_name,
                version,
                alias.value,
                time.perf_counter() - started,
            )
            return

    def _reject(self, version: str, reason: str) -> None:
        metrics.MODEL_REJECTED.labels(self.tenant, self.model_name).inc()
        log.warning("rejecting %s/%s: %s", self.model_name, version, reason)
        if (version, self.instance) in self._rejected:
            return  # this instance already said so (seen while replaying)
        self._rejected.add((version, self.instance))
        publish_model_event(
            ModelRejected(
                tenant_id=self.tenant,
                model_name=self.model_name,
                model_version=version,
                reason=reason[:500],
                service="worker",
                instance=self.instance,
                rejected_at=datetime.now(UTC),
            ),
            tenant=self.tenant,
            kafka=self.kafka,
            source=f"scorestream/worker/{self.instance}",
        )
