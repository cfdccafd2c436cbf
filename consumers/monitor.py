"""The monitor: live model quality and score drift, per tenant, as Prometheus gauges.

Reads ``<tenant>.predictions`` (champion), ``<tenant>.predictions.shadow`` (challenger) and
``<tenant>.labels``, joins predictions with their (late) labels by transaction id over a rolling
window, and exports per model version and alias:

* ``scorestream_monitor_precision`` / ``_recall`` at the decision threshold and
  ``scorestream_monitor_average_precision`` over the labelled predictions of the window,
  with ``scorestream_monitor_labelled_predictions`` saying how many that is;
* ``scorestream_score_psi``: the population stability index of the window's live scores
  against the deciles stored in the model's ``model.json`` (``score_reference``).

How it consumes, and why:

* It only produces metrics, so it does not use the exactly-once Processor. It ``assign()``\\ s
  itself *all* partitions of the three topics (``read_committed``) and, on start, seeks each one to
  the first record at or after ``now - window_s`` (``offsets_for_times``): a restart rebuilds the
  rolling state from Kafka, nothing is stored elsewhere. ``/readyz`` turns green once every
  partition has been read up to where it stood at start-up (the rebuild is complete).
* The window is measured in *record time* (the Kafka timestamp of each record, i.e. when the
  prediction or the label was produced), default 24 h (``SCORESTREAM_MONITOR_WINDOW_S``). A
  label joins a prediction only while that prediction is in the window, so the window must cover
  the label delay you care about; memory is bounded by ``max_predictions`` / ``max_labels``.
* **One replica per tenant.** Every replica reads every partition (the join needs all of them
  and there is no consumer-group split), so a second replica would only duplicate the gauges and
  the dead letters. A restart costs a re-read of one window. Scale by tenant, not by replica.
* Records that cannot be decoded (or belong to another tenant) go to the topic's DLQ with the
  reason, as in every service. The offsets up to which dead letters were written are committed
  under the group ``<tenant>.monitor`` — a bookkeeping mark only, never a read position — so a
  restart's rebuild does not dead-letter the same records twice. Dead letters and that mark are
  written in one Kafka transaction (``transactional.id`` ``<tenant>.monitor.<instance>``) at
  each publish interval, or sooner when ``MAX_PENDING_DEAD_LETTERS`` (or
  ``MAX_PENDING_BYTES``) are waiting: a SIGKILL
  loses or repeats none of them (read_committed). A record too large to be copied is
  dead-lettered as a pointer (:mod:`scorestream.dlq`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from prometheus_client import Gauge
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.monitor_stats import (
    Group,
    Label,
    Prediction,
    RollingJoin,
    classification_stats,
    psi,
)
from pipelines.repository import ModelRepository
from schemas.errors import DecodeError
from schemas.events import Contract, LabelEvent, PredictionEvent
from scorestream import metrics
from scorestream.codec import BatchDecoder
from scorestream.dlq import DeadLetter, DlqRecord
from scorestream.errors import KafkaClientError, ModelError, TopicError
from scorestream.health import HealthServer
from scorestream.kafka_config import consumer_config, transactional_producer_config
from scorestream.reader import offsets_for_times
from scorestream.serde import raw_from_message
from scorestream.settings import KafkaSettings
from scorestream.topics import MAX_MESSAGE_BYTES, REGISTRY

_COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError._TIMED_OUT,
    }
)

log = logging.getLogger("scorestream.monitor")
SERVICE = "monitor"
MAX_PENDING_DEAD_LETTERS = 1000
"""Dead letters waiting for their transaction; this many commit at once, before the interval.
Should transactions keep failing, the monitor exits at twice this (its restart re-reads them)."""
MAX_PENDING_BYTES = 16 << 20
"""The same bound in bytes of the records held (a dead letter can be a 1 MB record)."""
STREAMS: dict[str, type[Contract]] = {
    "predictions": PredictionEvent,
    "predictions.shadow": PredictionEvent,
    "labels": LabelEvent,
}

_GROUP_LABELS = ["tenant", "model", "version", "alias"]
PRECISION = Gauge(
    "scorestream_monitor_precision",
    "Precision of score >= threshold over the labelled predictions of the window",
    _GROUP_LABELS,
)
RECALL = Gauge(
    "scorestream_monitor_recall",
    "Recall of score >= threshold over the labelled predictions of the window",
    _GROUP_LABELS,
)
AVERAGE_PRECISION = Gauge(
    "scorestream_monitor_average_precision",
    "Average precision (area under the precision-recall curve) over the labelled predictions",
    _GROUP_LABELS,
)
LABELLED = Gauge(
    "scorestream_monitor_labelled_predictions",
    "Predictions of the window that have their label (the sample behind precision/recall/AP)",
    _GROUP_LABELS,
)
WINDOW_PREDICTIONS = Gauge(
    "scorestream_monitor_predictions",
    "Predictions in the window (the sample behind the PSI)",
    _GROUP_LABELS,
)
PSI = Gauge(
    "scorestream_score_psi",
    "Population stability index of the window's scores vs the model's reference deciles",
    _GROUP_LABELS,
)
WINDOW_ENTRIES = Gauge(
    "scorestream_monitor_window_entries",
    "Entries held in the monitor's rolling window, by store (predictions, labels)",
    ["tenant", "store"],
)
GROUP_GAUGES = (PRECISION, RECALL, AVERAGE_PRECISION, LABELLED, WINDOW_PREDICTIONS, PSI)


class MonitorSettings(BaseSettings):
    """Env: ``SCORESTREAM_MONITOR_*`` (and ``SCORESTREAM_KAFKA_*``, ``SCORESTREAM_MODELS_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_MONITOR_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    instance_id: str = Field(default="monitor", min_length=1, max_length=200)
    window_s: float = Field(default=24 * 3600.0, gt=0)
    """Rolling window in record time; also how far back a (re)start reads."""
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """Decision threshold for precision and recall: a score at or above it flags fraud."""
    max_predictions: int = Field(default=500_000, ge=1)
    max_labels: int = Field(default=500_000, ge=1)
    psi_min_samples: int = Field(default=100, ge=1)
    """Fewer live scores than this in the window: no PSI (too noisy to mean anything)."""
    publish_interval_s: float = Field(default=10.0, gt=0)
    """How often the gauges are recomputed (and dead-letter marks committed)."""
    model_retry_s: float = Field(default=300.0, gt=0)
    """A model version missing from the repository is looked up again after this long."""
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    health_port: int = Field(default=8080, ge=0, le=65535)
    live_after_s: float = Field(default=60.0, gt=0)
    metadata_timeout_s: float = Field(default=15.0, gt=0)
    partition_refresh_s: float = Field(default=60.0, gt=0)
    transaction_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of the dead-letter transactions' calls."""

    @property
    def group_id(self) -> str:
        return f"{self.tenant}.{SERVICE}"


# -- reference deciles, per model version ----------------------------------------------------------
@dataclass
class _Cached:
    deciles: tuple[float, ...] | None
    retry_at: float | None
    """``None``: final (versions are immutable); else when to ask the repository again."""


class ReferenceCache:
    """``score_reference`` of each model version, read once from the model repository.

    A missing version (or an unreachable repository) means no PSI for it, logged once, and is
    looked up again after ``retry_s``; a version without a reference is final (versions are
    immutable).
    """

    def __init__(
        self,
        repo: ModelRepository,
        *,
        retry_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self.retry_s = retry_s
        self.clock = clock
        self._cache: dict[tuple[str, str], _Cached] = {}

    def get(self, model: str, version: str) -> tuple[float, ...] | None:
        key = (model, version)
        cached = self._cache.get(key)
        if cached is not None and (cached.retry_at is None or self.clock() < cached.retry_at):
            return cached.deciles
        try:
            meta = self.repo.metadata(model, version)
        except (ModelError, OSError) as exc:
            if cached is None:
                log.warning("no PSI for %s/%s: %s", model, version, exc)
            self._cache[key] = _Cached(None, self.clock() + self.retry_s)
            return None
        deciles = meta.score_reference or None
        if deciles is not None and len(deciles) != 9:
            log.warning(
                "no PSI for %s/%s: score_reference has %d values, not 9",
                model,
                version,
                len(deciles),
            )
            deciles = None
        elif deciles is None:
            log.warning("no PSI for %s/%s: model.json has no score_reference", model, version)
        self._cache[key] = _Cached(deciles, None)
        return deciles


# -- gauges --------------------------------------------------------------------------------------
class GaugePublisher:
    """Sets the per-version gauges from a :class:`RollingJoin`; removes series that went away."""

    def __init__(
        self, tenant: str, refs: ReferenceCache, *, threshold: float, psi_min_samples: int
    ) -> None:
        self.tenant = tenant
        self.refs = refs
        self.threshold = threshold
        self.psi_min_samples = psi_min_samples
        self._live: dict[Gauge, set[tuple[str, ...]]] = {g: set() for g in GROUP_GAUGES}

    def publish(self, join: RollingJoin) -> None:
        values: dict[Gauge, dict[tuple[str, ...], float]] = {g: {} for g in GROUP_GAUGES}
        for group in join.groups():
            key = (self.tenant, group.model, group.version, group.alias)
            scores = join.scores(group)
            values[WINDOW_PREDICTIONS][key] = float(scores.size)
            y_true, y_score = join.labelled(group)
            stats = classification_stats(y_true, y_score, threshold=self.threshold)
            values[LABELLED][key] = float(stats.labelled)
            for gauge, value in (
                (PRECISION, stats.precision),
                (RECALL, stats.recall),
                (AVERAGE_PRECISION, stats.average_precision),
            ):
                if value is not None:
                    values[gauge][key] = value
            if scores.size >= self.psi_min_samples:
                deciles = self.refs.get(group.model, group.version)
                if deciles is not None:
                    values[PSI][key] = psi(scores, deciles)
        for gauge, series in values.items():
            for labels, value in series.items():
                gauge.labels(*labels).set(value)
            for gone in self._live[gauge] - series.keys():
                with contextlib.suppress(KeyError):
                    gauge.remove(*gone)
            self._live[gauge] = set(series)
        WINDOW_ENTRIES.labels(self.tenant, "predictions").set(join.n_predictions)
        WINDOW_ENTRIES.labels(self.tenant, "labels").set(join.n_labels)


# -- records → domain objects ----------------------------------------------------------------------
class TenantMismatchError(DecodeError):
    """A well-formed event of another tenant on this tenant's topic."""

    reason = "unknown_tenant"


def record_time(msg: Message) -> float:
    kind, ms = msg.timestamp()
    return ms / 1000 if kind != TIMESTAMP_NOT_AVAILABLE and ms >= 0 else time.time()


@functools.lru_cache(maxsize=8)
def _decoder(contract: type[Contract]) -> BatchDecoder:
    return BatchDecoder([contract])


def to_domain(msg: Message, contract: type[Contract], tenant: str) -> Prediction | Label:
    """Decode one record; raises :class:`~schemas.errors.DecodeError` (with the raw record)."""
    envelope = _decoder(contract).decode_one(msg)
    event = envelope.event
    at = record_time(msg)
    if isinstance(event, PredictionEvent):
        if event.tenant_id != tenant:
            raise TenantMismatchError(
                f"prediction of tenant {event.tenant_id!r} on {tenant!r}'s topic",
                raw_from_message(msg),
            )
        group = Group(event.model_name, event.model_version, event.alias.value)
        return Prediction(event.transaction_id, group, event.score, at)
    if isinstance(event, LabelEvent):
        if event.tenant_id != tenant:
            raise TenantMismatchError(
                f"label of tenant {event.tenant_id!r} on {tenant!r}'s topic", raw_from_message(msg)
            )
        return Label(event.transaction_id, event.is_fraud, at)
    raise TypeError(f"unexpected contract {type(event).__name__}")  # accept= rules it out


# -- the service -----------------------------------------------------------------------------------
class Monitor:
    def __init__(
        self,
        settings: MonitorSettings,
        *,
        kafka: KafkaSettings | None = None,
        repo: ModelRepository,
    ) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        t = settings.tenant
        self.contracts = {REGISTRY.topic(s, t): c for s, c in STREAMS.items()}
        self.dlq_topics = {REGISTRY.topic(s, t): REGISTRY.dlq_topic(s, t) for s in STREAMS}
        self.join = RollingJoin(
            window_s=settings.window_s,
            max_predictions=settings.max_predictions,
            max_labels=settings.max_labels,
        )
        self.publisher = GaugePublisher(
            t,
            ReferenceCache(repo, retry_s=settings.model_retry_s),
            threshold=settings.threshold,
            psi_min_samples=settings.psi_min_samples,
        )
        self.stopping = threading.Event()
        self.last_poll = time.monotonic()
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.assigned: set[tuple[str, int]] = set()
        self.rebuilding: set[tuple[str, int]] = set()
        """Partitions not yet read up to where they stood at start-up."""
        self.started = False
        self._dlq_mark: dict[tuple[str, int], int] = {}
        """Per partition: records below this offset were already dead-lettered by a prior run."""
        self._position: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self._pending: list[DeadLetter] = []
        """Dead letters not yet committed (bounded: :data:`MAX_PENDING_DEAD_LETTERS`,
        :data:`MAX_PENDING_BYTES`)."""
        self._pending_bytes = 0

    # -- health --------------------------------------------------------------------------------
    def live(self) -> tuple[bool, str]:
        idle = time.monotonic() - self.last_poll
        if idle >= self.settings.live_after_s:
            return False, f"no poll for {idle:.1f}s"
        return True, f"last poll {idle:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        if not self.started:
            return False, "not assigned yet"
        if self.rebuilding:
            return False, f"rebuilding the window: {len(self.rebuilding)} partition(s) to go"
        return True, (
            f"{len(self.assigned)} partitions; window holds {self.join.n_predictions} "
            f"predictions, {self.join.n_labels} labels"
        )

    def stop(self, *_: Any) -> None:
        self.stopping.set()

    def _c(self) -> Consumer:
        if self.consumer is None:
            raise KafkaClientError("the consumer is not started")
        return self.consumer

    def _p(self) -> Producer:
        if self.producer is None:
            raise KafkaClientError("the producer is not started")
        return self.producer

    @property
    def transactional_id(self) -> str:
        return f"{self.settings.group_id}.{self.settings.instance_id}"

    def _make_producer(self) -> Producer:
        """A transactional producer; ``init_transactions`` fences a previous instance of the
        same id and completes or aborts its open transaction."""
        s = self.settings
        conf = transactional_producer_config(
            self.kafka, transactional_id=self.transactional_id, client_id=s.instance_id
        )
        producer = Producer(conf)
        producer.init_transactions(s.transaction_timeout_s)
        return producer

    # -- assignment --------------------------------------------------------------------------------
    def _partitions(self, topic: str) -> list[int]:
        md = self._c().list_topics(topic, timeout=self.settings.metadata_timeout_s)
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None or not tmd.partitions:
            raise TopicError(
                f"topic {topic} is missing ({tmd.error if tmd else 'no metadata'}); create the "
                f"tenant's topics first: scorestream topics create --tenant {self.settings.tenant}"
            )
        return sorted(tmd.partitions)

    def _committed_offsets(
        self, partitions: list[TopicPartition], timeout: float
    ) -> list[TopicPartition]:
        """``committed()``, retried while the group coordinator is still being elected or loaded
        (NOT_COORDINATOR and friends on a freshly started broker) instead of exiting."""
        deadline = time.monotonic() + max(timeout, 30.0)
        while True:
            try:
                result: list[TopicPartition] = self._c().committed(partitions, timeout=timeout)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                retriable = isinstance(err, KafkaError) and (
                    err.retriable() or err.code() in _COORDINATOR_NOT_READY
                )
                if not retriable or time.monotonic() > deadline:
                    raise
                log.warning("committed offsets not available yet (%s); retrying", err)
                time.sleep(0.5)
                continue
            return result

    def _assign(self, *, initial: bool) -> None:
        """Assign every partition not yet assigned, positioned at ``now - window``."""
        new = [
            TopicPartition(topic, p)
            for topic in self.contracts
            for p in self._partitions(topic)
            if (topic, p) not in self.assigned
        ]
        if not new:
            return
        timeout = self.settings.metadata_timeout_s
        if initial:
            since_ms = int((time.time() - self.settings.window_s) * 1000)
            lookup = [TopicPartition(tp.topic, tp.partition, since_ms) for tp in new]
            start = offsets_for_times(self._c(), lookup, timeout=timeout)
        else:  # a partition added while running holds only records newer than our start
            start = [TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in new]
        for tp in start:
            if tp.error is not None:
                raise KafkaClientError(f"offsets_for_times {tp.topic}[{tp.partition}]: {tp.error}")
            if tp.offset < 0 and tp.offset != OFFSET_BEGINNING:
                tp.offset = OFFSET_END  # nothing in the window yet
        for tp in self._committed_offsets(new, timeout):
            self._dlq_mark[(tp.topic, tp.partition)] = max(tp.offset, 0)
            if tp.offset >= 0:
                self._committed[(tp.topic, tp.partition)] = tp.offset
        self._c().incremental_assign(start)
        keys = {(tp.topic, tp.partition) for tp in start}
        self.assigned |= keys
        self.rebuilding |= keys
        log.info(
            "assigned %d partitions from %s",
            len(keys),
            "now - window" if initial else "the beginning (new partitions)",
            extra={"window_s": self.settings.window_s},
        )

    # -- run ---------------------------------------------------------------------------------------
    def run(self, *, install_signals: bool = True) -> int:
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        s = self.settings
        health = None
        if s.health_port:
            health = HealthServer(port=s.health_port, live=self.live, ready=self.ready).start()
        try:
            conf = consumer_config(self.kafka, group_id=s.group_id, client_id=s.instance_id)
            self.consumer = Consumer(
                conf | {"enable.partition.eof": True, "fetch.wait.max.ms": 100}
            )
            self.producer = self._make_producer()
            self._assign(initial=True)
            self.started = True
            self._loop()
            return 0
        finally:
            if self.producer is not None and self.consumer is not None:
                with contextlib.suppress(KafkaException, KafkaClientError):
                    self._flush_dead_letters()
            if self.consumer is not None:
                self.consumer.close()
            if health is not None:
                health.stop()

    def _loop(self) -> None:
        s = self.settings
        next_publish = time.monotonic()
        next_refresh = time.monotonic() + s.partition_refresh_s
        was_rebuilding = True
        while not self.stopping.is_set():
            messages = self._c().consume(num_messages=s.max_batch, timeout=0.2)
            self.last_poll = time.monotonic()
            for msg in messages:
                self.on_message(msg)
            now = time.monotonic()
            caught_up = was_rebuilding and not self.rebuilding
            if caught_up:
                log.info("window rebuilt: %s", self.ready()[1])
            was_rebuilding = bool(self.rebuilding)
            if now >= next_publish or caught_up:
                self.join.evict(time.time())
                if not self.rebuilding:  # partial windows would publish misleading numbers
                    self.publisher.publish(self.join)
                self._flush_dead_letters()
                next_publish = now + s.publish_interval_s
            if now >= next_refresh:
                with contextlib.suppress(KafkaException, TopicError):
                    self._assign(initial=False)
                next_refresh = now + s.partition_refresh_s

    def on_message(self, msg: Message) -> None:
        err = msg.error()
        tp = (msg.topic() or "", msg.partition() or 0)
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self.rebuilding.discard(tp)
                return
            if err.retriable() or not err.fatal():
                log.warning("consume error on %s[%d]: %s", tp[0], tp[1], err.str())
                return
            raise KafkaException(err)
        offset = msg.offset() or 0
        self._position[tp] = offset + 1
        metrics.EVENTS_IN.labels(SERVICE, self.settings.tenant).inc()
        try:
            item = to_domain(msg, self.contracts[tp[0]], self.settings.tenant)
        except DecodeError as exc:
            if offset >= self._dlq_mark.get(tp, 0):
                self._dead_letter(DeadLetter.from_decode_error(exc))
            return
        if isinstance(item, Prediction):
            self.join.add_prediction(item)
        else:
            self.join.add_label(item)

    # -- dead letters ------------------------------------------------------------------------------
    def _dead_letter(self, dl: DeadLetter) -> None:
        log.warning(
            "dead letter: %s", dl.message, extra={"reason": dl.reason, "topic": dl.raw.topic}
        )
        self._pending.append(dl)
        self._pending_bytes += len(dl.raw.value or b"") + len(dl.raw.key or b"")
        if (
            len(self._pending) >= MAX_PENDING_DEAD_LETTERS
            or self._pending_bytes >= MAX_PENDING_BYTES
        ):
            self._flush_dead_letters()

    def _produce_dead_letter(self, dl: DeadLetter) -> None:
        """The copy, or a pointer when it does not fit (never an error that fails the batch)."""
        topic = self.dlq_topics[dl.raw.topic or ""]
        rec = dl.record(SERVICE, max_bytes=MAX_MESSAGE_BYTES)
        try:
            self._produce(topic, rec)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                raise
            self._produce(topic, dl.pointer(SERVICE, max_bytes=MAX_MESSAGE_BYTES))

    def _produce(self, topic: str, rec: DlqRecord) -> None:
        """Produce, waiting for room while librdkafka's bounded queue is full."""
        while True:
            try:
                self._p().produce(topic, key=rec.key, value=rec.value, headers=rec.headers)
                return
            except BufferError:
                self._p().poll(0.05)

    def _flush_dead_letters(self) -> bool:
        """Commit the pending dead letters and how far they go (the restart dedup mark) in one
        transaction. False when it failed: both are retried at the next flush."""
        changed = [
            TopicPartition(t, p, o)
            for (t, p), o in self._position.items()
            if self._committed.get((t, p)) != o
        ]
        if not changed and not self._pending:
            return True
        timeout = self.settings.transaction_timeout_s
        producer = self._p()
        try:
            producer.begin_transaction()
            for dl in self._pending:
                self._produce_dead_letter(dl)
            if changed:
                producer.send_offsets_to_transaction(
                    changed, self._c().consumer_group_metadata(), timeout
                )
            producer.commit_transaction(timeout)
        except KafkaException as exc:
            if not self._recover(exc.args[0], changed):
                if (
                    len(self._pending) >= 2 * MAX_PENDING_DEAD_LETTERS
                    or self._pending_bytes >= 2 * MAX_PENDING_BYTES
                ):
                    raise KafkaClientError(
                        f"{len(self._pending)} dead letters could not be committed: exiting "
                        "(a restart dead-letters them again from the committed mark)"
                    ) from exc
                return False
        for dl in self._pending:
            metrics.DLQ.labels(SERVICE, self.settings.tenant, dl.reason).inc()
        self._pending.clear()
        self._pending_bytes = 0
        for tp in changed:
            self._committed[(tp.topic, tp.partition)] = tp.offset
        return True

    def _recover(self, err: KafkaError, changed: list[TopicPartition]) -> bool:
        """After a failed transaction: abort it (or replace a fatal producer, which aborts or
        completes it), then read the mark back. True: it did commit after all."""
        log.warning("dead-letter transaction failed (%s): retried at the next flush", err.str())
        timeout = self.settings.transaction_timeout_s
        if err.txn_requires_abort():
            try:
                self._p().abort_transaction(timeout)
            except KafkaException as abort_exc:
                log.warning("abort failed (%s): replacing the producer", abort_exc)
                self.producer = self._make_producer()
        else:
            self.producer = self._make_producer()
        if not changed:
            return False
        try:
            committed = self._committed_offsets(
                [TopicPartition(t.topic, t.partition) for t in changed], timeout
            )
        except KafkaException:
            return False
        return {(t.topic, t.partition, t.offset) for t in committed} == {
            (t.topic, t.partition, t.offset) for t in changed
        }


def main(
    argv: list[str] | None = None, *, on_ready: Callable[[Monitor], None] | None = None
) -> int:
    """Entry point of ``scorestream monitor`` and of the container."""
    import argparse  # noqa: PLC0415

    from scorestream import tracing  # noqa: PLC0415
    from scorestream.logs import configure_logging  # noqa: PLC0415
    from scorestream.settings import ModelRepoSettings  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="scorestream monitor")
    parser.add_argument("--tenant")
    parser.add_argument("--instance-id")
    parser.add_argument("--health-port", type=int)
    parser.add_argument("--window-s", type=float, help="rolling window in record time")
    parser.add_argument("--threshold", type=float, help="decision threshold")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = MonitorSettings(**overrides)
    configure_logging(SERVICE, settings.tenant)
    tracing.setup(SERVICE, settings.tenant)
    repo_settings = ModelRepoSettings()
    repo = ModelRepository(repo_settings.url, repo_settings.storage_options())
    monitor = Monitor(settings, repo=repo)
    if on_ready is not None:
        on_ready(monitor)
    return monitor.run()


if __name__ == "__main__":
    import sys

    sys.exit(main())
