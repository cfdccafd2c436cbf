"""The inference worker: enriched transactions in, predictions out, exactly once.

The Kafka loop is the shared :class:`~scorestream.processor.Processor` (one transaction per batch
holding predictions, shadow predictions, dead letters and offsets). This module adds what is
specific to scoring: waiting for a champion model, swapping models between batches, and the
scoring handler (:func:`inference_worker.handler.score_batch`, pure and unit-tested).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from inference_worker.handler import BatchOutput, score_batch
from inference_worker.model import ServingModel
from inference_worker.settings import WorkerSettings
from inference_worker.watcher import ModelWatcher
from pipelines.repository import ModelRepository
from schemas.cloudevents import Envelope
from schemas.events import EnrichedTransaction, ModelAlias
from scorestream import metrics
from scorestream.entrypoint import run_service
from scorestream.errors import KafkaClientError
from scorestream.processor import Emit, Processor, ProcessorConfig, Result
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.worker")
SERVICE = "worker"


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        *,
        kafka: KafkaSettings | None = None,
        repo: ModelRepository,
    ) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        t = settings.tenant
        self.input_topic = REGISTRY.topic("transactions.enriched", t)
        self.output_topic = REGISTRY.topic("predictions", t)
        self.shadow_topic = REGISTRY.topic("predictions.shadow", t)
        self.models: dict[ModelAlias, ServingModel] = {}
        self.watcher = ModelWatcher(
            kafka=self.kafka,
            repo=repo,
            tenant=t,
            model_name=settings.model_name,
            instance=settings.instance_id,
            intra_op_threads=settings.intra_op_threads,
        )
        config = ProcessorConfig.for_service(
            settings,
            service=SERVICE,
            inputs=(self.input_topic,),
            accept=(EnrichedTransaction,),
            dlq_topics={self.input_topic: REGISTRY.dlq_topic("transactions.enriched", t)},
            keyed=(EnrichedTransaction,),  # key = account_id, checked in the decode step
        )
        self.processor = Processor(
            config,
            self.handle,
            kafka=self.kafka,
            before_batch=self._apply_swaps,
            ready=self._model_ready,
            live=self._watcher_live,
            wait_until_ready=self._wait_for_model,
        )

    # -- model management ----------------------------------------------------------------------
    def _model_ready(self) -> tuple[bool, str]:
        champion = self.models.get(ModelAlias.CHAMPION)
        if champion is None:
            return False, "no champion model loaded yet"
        return True, f"model {champion.name}/{champion.version}"

    def _watcher_live(self) -> tuple[bool, str]:
        if self.watcher.error is not None:
            return False, f"model watcher failed: {self.watcher.error}"
        return True, "ok"

    def _apply_swaps(self) -> None:
        if self.watcher.error is not None:
            raise KafkaClientError(f"model watcher failed: {self.watcher.error}")
        for alias, model in self.watcher.take_pending().items():
            old = self.models.get(alias)
            if old is not None:
                metrics.MODEL_LOADED.labels(
                    self.settings.tenant, old.name, old.version, alias.value
                ).set(0)
            self.models[alias] = model
            metrics.MODEL_LOADED.labels(
                self.settings.tenant, model.name, model.version, alias.value
            ).set(1)
            log.info("now serving %s/%s as %s", model.name, model.version, alias.value)

    def _wait_for_model(self, stopping: threading.Event) -> bool:
        log.info("waiting for a champion model for tenant %s", self.settings.tenant)
        while not stopping.is_set():
            self._apply_swaps()
            if ModelAlias.CHAMPION in self.models:
                return True
            self.processor.last_poll = time.monotonic()  # alive, just not ready
            stopping.wait(0.2)
        return False

    # -- the handler -------------------------------------------------------------------------------
    def handle(self, batch: list[Envelope[Any]]) -> Result:
        champion = self.models[ModelAlias.CHAMPION]
        challenger = self.models.get(ModelAlias.CHALLENGER) if self.settings.shadow else None
        out = score_batch(
            batch, tenant=self.settings.tenant, champion=champion, challenger=challenger
        )
        # trace context and CloudEvents extensions (e.g. ``replyto``) travel on with the event
        emits = [Emit.derived(self.output_topic, s.prediction, s.envelope) for s in out.predictions]
        emits += [Emit.derived(self.shadow_topic, s.prediction, s.envelope) for s in out.shadow]
        return Result(
            emits=emits,
            dead_letters=out.dead_letters,
            on_commit=lambda: self._count(out, champion, challenger),
        )

    def _count(
        self, out: BatchOutput, champion: ServingModel, challenger: ServingModel | None
    ) -> None:
        t = self.settings.tenant
        metrics.PREDICTIONS.labels(t, champion.name, champion.version, "champion").inc(
            len(out.predictions)
        )
        if challenger is not None and out.shadow:
            metrics.PREDICTIONS.labels(t, challenger.name, challenger.version, "challenger").inc(
                len(out.shadow)
            )
        for alias, seconds in out.inference_s.items():
            metrics.INFERENCE_SECONDS.labels(t, champion.name, alias).observe(seconds)
        now = datetime.now(UTC)
        metrics.observe_many(
            metrics.EVENT_TO_PREDICTION_SECONDS.labels(t),
            [
                max(0.0, (now - s.envelope.event.enriched_at).total_seconds())
                for s in out.predictions
            ],
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    def stop(self, *_: Any) -> None:
        self.processor.stop()

    def run(self, *, install_signals: bool = True) -> int:
        self.watcher.start()
        try:
            return self.processor.run(install_signals=install_signals)
        finally:
            self.watcher.stop()
            self.watcher.join(timeout=5)


def main(argv: list[str] | None = None, *, on_ready: Callable[[Worker], None] | None = None) -> int:
    """Entry point of ``scorestream worker`` and of the container: every setting of
    :class:`WorkerSettings` from ``SCORESTREAM_WORKER_*`` or as a flag; the model repository
    from ``SCORESTREAM_MODELS_*``."""
    return run_service(SERVICE, WorkerSettings, _build, argv, on_ready=on_ready)


def _build(settings: WorkerSettings) -> Worker:
    return Worker(settings, repo=ModelRepository.from_settings())
