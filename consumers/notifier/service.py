"""The notifier service on the kernel's processor: consume decisions and due retries, run the
batch logic, produce in one transaction; ``main``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import TopicPartition

from consumers.decision import carried_extensions
from consumers.notifier.handler import NotifyOutput, notify_batch
from consumers.notifier.retry import RetryPolicy
from consumers.notifier.settings import ALERTS, SERVICE, WEBHOOK_RETRIES, NotifierSettings
from consumers.notifier.webhook import Webhook
from schemas.cloudevents import Envelope
from schemas.events import DecisionEvent
from scorestream import __version__, tracing
from scorestream.processor import Emit, Processor, ProcessorConfig, Result
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.notifier")


# -- the service ---------------------------------------------------------------------------------
class Notifier:
    def __init__(
        self,
        settings: NotifierSettings,
        *,
        kafka: KafkaSettings | None = None,
    ) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        t = settings.tenant
        self.input_topic = REGISTRY.topic("decisions", t)
        self.alerts_topic = REGISTRY.topic("alerts", t)
        self.retry_topic = REGISTRY.topic("alerts.retry", t)
        s = settings
        self.webhook = (
            None
            if s.webhook_url is None
            else Webhook(
                s.webhook_url.get_secret_value(),
                tenant=t,
                connect_timeout_s=s.webhook_connect_timeout_s,
                read_timeout_s=s.webhook_read_timeout_s,
                attempts=s.webhook_attempts,
                backoff_s=s.webhook_backoff_s,
                backoff_max_s=s.webhook_backoff_max_s,
                circuit_threshold=s.webhook_circuit_threshold,
                circuit_cooldown_s=s.webhook_circuit_cooldown_s,
                max_connections=s.webhook_concurrency,
                user_agent=f"scorestream-notifier/{__version__}",
            )
        )
        self.pool = (
            ThreadPoolExecutor(s.webhook_concurrency, thread_name_prefix="webhook")
            if self.webhook is not None
            else None
        )
        # the retry topic is read only with a webhook to deliver to (else its records wait)
        self.retry = (
            None
            if self.webhook is None
            else RetryPolicy(
                self.retry_topic,
                attempts=s.retry_attempts,
                backoff_s=s.retry_backoff_s,
                backoff_max_s=s.retry_backoff_max_s,
                max_delay_s=s.retry_max_delay_s,
            )
        )
        self._paused: dict[int, float] = {}
        """Retry-topic partitions paused until their earliest parked record is due (epoch s)."""
        inputs = (self.input_topic,) if self.retry is None else (self.input_topic, self.retry_topic)
        config = ProcessorConfig.for_service(
            s,
            service=SERVICE,
            inputs=inputs,
            accept=(DecisionEvent,),
            dlq_topics={
                self.input_topic: REGISTRY.dlq_topic("decisions", t),
                self.retry_topic: REGISTRY.dlq_topic("alerts.retry", t),
            },
        )
        self.processor = Processor(
            config,
            self.handle,
            kafka=self.kafka,
            ready=self._ready,
            before_batch=self._resume_due,
            on_revoked=self._forget_paused,
            on_lost=self._forget_paused,
        )

    def _ready(self) -> tuple[bool, str]:
        if self.webhook is None:
            return True, "no webhook configured (alerts only)"
        state = "open" if self.webhook.circuit_open() else "closed"
        # an open circuit is not "unready": restarting or removing the pod would not help
        return True, f"webhook {self.webhook.host} (circuit {state})"

    def handle(self, batch: list[Envelope[Any]]) -> Result:
        out = notify_batch(
            batch,
            tenant=self.settings.tenant,
            webhook=self.webhook,
            pool=self.pool,
            budget_s=self.settings.webhook_batch_budget_s,
            retry=self.retry,
        )
        emits = [
            Emit(self.alerts_topic, env.event, env.trace, carried_extensions(env))
            for env in out.alerts
        ]
        self._pause(out.resume_at)
        return Result(
            emits=emits,
            dead_letters=out.dead_letters,
            records=[*out.retries, *out.parked],
            on_commit=lambda: self._count(out),
        )

    # -- waiting for the retry topic's records to be due, without blocking anything else -------
    def _pause(self, resume_at: Mapping[int, float]) -> None:
        """Stop fetching a retry partition whose records are not due yet (the parked ones are
        written back to it in this batch's transaction; should it abort, the processor rewinds
        the partition and the same records come back once it is resumed)."""
        consumer = self.processor.consumer
        if not resume_at or consumer is None:
            return
        for p, until in resume_at.items():
            self._paused[p] = min(self._paused.get(p, until), until)
        consumer.pause([TopicPartition(self.retry_topic, p) for p in resume_at])

    def _resume_due(self) -> None:
        """Before each batch: resume the retry partitions whose earliest record is due."""
        if not self._paused:
            return
        now = time.time()
        due = [p for p, until in self._paused.items() if until <= now]
        consumer = self.processor.consumer
        if not due or consumer is None:
            return
        for p in due:
            del self._paused[p]
        owned = [
            TopicPartition(self.retry_topic, p)
            for p in due
            if (self.retry_topic, p) in self.processor.assigned
        ]
        if owned:
            consumer.resume(owned)

    def _forget_paused(self, partitions: list[TopicPartition]) -> None:
        """A revoked or lost partition is not ours to resume (if it comes back, it comes back
        unpaused and its not-yet-due records are parked again)."""
        for tp in partitions:
            if tp.topic == self.retry_topic:
                self._paused.pop(tp.partition, None)

    def _count(self, out: NotifyOutput) -> None:
        per_outcome: dict[str, int] = {}
        for env in out.alerts:
            key = env.event.outcome.value
            per_outcome[key] = per_outcome.get(key, 0) + 1
        for outcome, n in per_outcome.items():
            ALERTS.labels(self.settings.tenant, outcome).inc(n)
        tenant = self.settings.tenant
        for result, n in (
            ("scheduled", len(out.retries)),
            ("parked", len(out.parked)),
            ("exhausted", out.exhausted),
        ):
            if n:
                WEBHOOK_RETRIES.labels(tenant, result).inc(n)

    def stop(self, *_: Any) -> None:
        self.processor.stop()

    def run(self, *, install_signals: bool = True) -> int:
        if self.webhook is not None and self.retry is not None:
            log.info(
                "webhook %s, %d attempts per round, up to %d retry rounds via %s",
                self.webhook.host,
                self.webhook.attempts,
                self.retry.attempts,
                self.retry_topic,
            )
        else:
            log.info("no webhook configured: alerts only")
        try:
            return self.processor.run(install_signals=install_signals)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
            if self.webhook is not None:
                self.webhook.close()


def main(
    argv: list[str] | None = None, *, on_ready: Callable[[Notifier], None] | None = None
) -> int:
    """Entry point of ``scorestream notifier`` and of the container."""
    import argparse  # noqa: PLC0415

    from scorestream.logs import configure_logging  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="scorestream notifier",
        description="Review / decline decisions to the alerts topic and the tenant's webhook. "
        "Settings come from SCORESTREAM_NOTIFIER_* / SCORESTREAM_KAFKA_* env; flags override.",
    )
    parser.add_argument("--tenant")
    parser.add_argument("--instance-id")
    parser.add_argument("--webhook-url")
    parser.add_argument("--delivery", choices=("exactly_once", "at_least_once"))
    parser.add_argument("--max-batch", type=int)
    parser.add_argument("--max-wait-ms", type=int)
    parser.add_argument("--health-port", type=int)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = NotifierSettings(**overrides)
    configure_logging(SERVICE, settings.tenant)
    tracing.setup(SERVICE, settings.tenant)
    service = Notifier(settings)
    if on_ready is not None:
        on_ready(service)
    return service.run()
