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

* It runs on the kernel's :class:`~scorestream.processor.Processor` like every consuming
  service, with *explicit partitions* (:mod:`scorestream.partitions`): it ``assign()``\\ s itself
  *all* partitions of the three topics (``read_committed``) and, on start, seeks each one to the
  first record at or after ``now - window_s`` (``offsets_for_times``): a restart rebuilds the
  rolling state from Kafka, nothing is stored elsewhere. ``/readyz`` turns green once every
  partition has been read up to where it stood when it was assigned (the rebuild is complete).
* The window is measured in *record time* (the Kafka timestamp of each record, i.e. when the
  prediction or the label was produced), default 24 h (``SCORESTREAM_MONITOR_WINDOW_S``). A
  label joins a prediction only while that prediction is in the window, so the window must cover
  the label delay you care about; memory is bounded by ``max_predictions`` / ``max_labels``.
* **One replica per tenant.** Every replica reads every partition (the join needs all of them
  and there is no consumer-group split), so a second replica would only duplicate the gauges and
  the dead letters. A restart costs a re-read of one window. Scale by tenant, not by replica.
* Records that cannot be decoded (or belong to another tenant) go to the topic's DLQ with the
  reason, as in every service: each batch's dead letters and the batch's offsets are committed in
  one Kafka transaction (``transactional.id`` ``<tenant>.monitor.<instance>``, group
  ``<tenant>.monitor``). The committed offsets are a mark, not a read position: a restart's
  rebuild reads from before them and does not dead-letter those records again, so a SIGKILL loses
  or repeats none of them (read_committed). A record too large to be copied is dead-lettered as a
  pointer (:mod:`scorestream.dlq`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TopicPartition
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
from schemas.cloudevents import Envelope
from schemas.events import Contract, LabelEvent, PredictionEvent
from scorestream.dlq import DeadLetter
from scorestream.entrypoint import run_service
from scorestream.errors import ModelError
from scorestream.partitions import ExplicitAssignment
from scorestream.processor import Processor, ProcessorConfig, Result
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.monitor")
SERVICE = "monitor"
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
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_MONITOR_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    """The tenant monitored: its predictions (shadow ones too) and labels, ``<tenant>.*``."""
    instance_id: str = Field(default="monitor", min_length=1, max_length=200)
    """Names this instance: its ``transactional.id`` is ``<tenant>.monitor.<instance_id>``. The
    monitor runs as one replica (it reads every partition itself)."""
    window_s: float = Field(default=24 * 3600.0, gt=0)
    """Rolling window in record time; also how far back a (re)start reads."""
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """Decision threshold for precision and recall: a score at or above it flags fraud."""
    max_predictions: int = Field(default=500_000, ge=1)
    """Most predictions held in the window (memory bound); beyond it the oldest by record time
    are dropped early."""
    max_labels: int = Field(default=500_000, ge=1)
    """Most labels held in the window, likewise."""
    psi_min_samples: int = Field(default=100, ge=1)
    """Fewer live scores than this in the window: no PSI (too noisy to mean anything)."""
    publish_interval_s: float = Field(default=10.0, gt=0)
    """How often the gauges are recomputed."""
    model_retry_s: float = Field(default=300.0, gt=0)
    """A model version missing from the repository is looked up again after this long."""
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    """Most records per batch; a batch is also cut after 200 ms."""
    health_port: int = Field(default=8080, ge=0, le=65535)
    """Port of ``/livez``, ``/readyz`` and ``/metrics`` (the gauges); 0 disables them."""
    live_after_s: float = Field(default=60.0, gt=0)
    """/livez fails when the loop has not polled for this long."""
    metadata_timeout_s: float = Field(default=15.0, gt=0)
    """Timeout of the metadata and offset look-ups that assign the inputs' partitions."""
    partition_refresh_s: float = Field(default=60.0, gt=0)
    """How often the inputs' partitions are listed again; added ones are read from the start."""
    transaction_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of each batch's transaction calls."""

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
def record_time(env: Envelope[Any]) -> float:
    """When the record was produced (its Kafka timestamp, s); now when it has none."""
    ms = env.raw.timestamp_ms if env.raw is not None else None
    return ms / 1000 if ms is not None else time.time()


def to_domain(env: Envelope[Any]) -> Prediction | Label:
    event = env.event
    if isinstance(event, PredictionEvent):
        group = Group(event.model_name, event.model_version, event.alias.value)
        return Prediction(event.transaction_id, group, event.score, record_time(env))
    if isinstance(event, LabelEvent):
        return Label(event.transaction_id, event.is_fraud, record_time(env))
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
        self.tenant = t = settings.tenant
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
        self.rebuilding: set[tuple[str, int]] = set()
        """Partitions not yet read up to where they stood when they were assigned."""
        self._next_publish = 0.0
        inputs = tuple(REGISTRY.topic(s, t) for s in STREAMS)
        config = ProcessorConfig.for_service(
            settings,
            service=SERVICE,
            inputs=inputs,
            accept=tuple(dict.fromkeys(STREAMS.values())),
            dlq_topics={REGISTRY.topic(s, t): REGISTRY.dlq_topic(s, t) for s in STREAMS},
            delivery="exactly_once",
            # metrics only: batches of up to max_batch or 200 ms, one transaction each (the
            # dead letters and the offsets below which they were written)
            max_wait_ms=200,
            adaptive_batching=False,
            consumer_overrides={"enable.partition.eof": True},
        )
        self.processor = Processor(
            config,
            self.handle,
            kafka=kafka,
            ready=self.ready,
            tick=self.tick,
            on_assigned=self.on_assigned,
            on_eof=self.on_eof,
            assignment=ExplicitAssignment(
                start_ms=lambda: int((time.time() - settings.window_s) * 1000),
                refresh_s=settings.partition_refresh_s,
                metadata_timeout_s=settings.metadata_timeout_s,
            ),
        )

    # -- hooks -------------------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        if self.rebuilding:
            return False, f"rebuilding the window: {len(self.rebuilding)} partition(s) to go"
        return True, (
            f"window holds {self.join.n_predictions} predictions, {self.join.n_labels} labels"
        )

    def on_assigned(self, partitions: list[TopicPartition]) -> None:
        self.rebuilding |= {(tp.topic, tp.partition) for tp in partitions}

    def on_eof(self, topic: str, partition: int) -> None:
        if (topic, partition) in self.rebuilding:
            self.rebuilding.discard((topic, partition))
            if not self.rebuilding:
                log.info("window rebuilt: %s", self.ready()[1])
                self._next_publish = 0.0  # publish at once

    def handle(self, batch: list[Envelope[Any]]) -> Result:
        """Add the batch's predictions and labels to the window (re-adding one is harmless, so
        an aborted batch read again changes nothing); another tenant's go to the DLQ."""
        result = Result()
        for env in batch:
            dead = DeadLetter.other_tenant(env, env.event.tenant_id, self.tenant)
            if dead is not None:
                result.dead_letters.append(dead)
                continue
            item = to_domain(env)
            if isinstance(item, Prediction):
                self.join.add_prediction(item)
            else:
                self.join.add_label(item)
        return result

    def tick(self) -> None:
        """Between batches: every publish interval, evict what left the window and set the
        gauges (not while rebuilding: a partial window would publish misleading numbers)."""
        now = time.monotonic()
        if now < self._next_publish:
            return
        self._next_publish = now + self.settings.publish_interval_s
        self.join.evict(time.time())
        if not self.rebuilding:
            self.publisher.publish(self.join)

    def stop(self, *_: Any) -> None:
        self.processor.stop()

    def run(self, *, install_signals: bool = True) -> int:
        return self.processor.run(install_signals=install_signals)


def main(
    argv: list[str] | None = None, *, on_ready: Callable[[Monitor], None] | None = None
) -> int:
    """Entry point of ``scorestream monitor`` and of the container: every setting of
    :class:`MonitorSettings` from ``SCORESTREAM_MONITOR_*`` or as a flag; the model repository
    from ``SCORESTREAM_MODELS_*``."""
    return run_service(SERVICE, MonitorSettings, _build, argv, on_ready=on_ready)


def _build(settings: MonitorSettings) -> Monitor:
    return Monitor(settings, repo=ModelRepository.from_settings())


if __name__ == "__main__":
    import sys

    sys.exit(main())
