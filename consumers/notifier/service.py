"""The notifier service on the kernel's processor: consume decisions and due retries, run the
batch logic, produce in one transaction; ``main``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from consumers.notifier.handler import NotifyOutput, notify_batch
from consumers.notifier.retry import RetryPolicy
from consumers.notifier.settings import ALERTS, SERVICE, WEBHOOK_RETRIES, NotifierSettings
from consumers.notifier.webhook import Webhook
from schemas.cloudevents import Envelope
from schemas.events import DecisionEvent
from scorestream import __version__
from scorestream.entrypoint import run_service
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
        emits = [Emit.derived(self.alerts_topic, env.event, env) for env in out.alerts]
        # the retry partitions whose parked records are not due yet: not fetched until then
        self.processor.pause_until(self.retry_topic, out.resume_at)
        return Result(
            emits=emits,
            dead_letters=out.dead_letters,
            records=[*out.retries, *out.parked],
            on_commit=lambda: self._count(out),
        )

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
    """Entry point of ``scorestream notifier`` and of the container: every setting of
    :class:`NotifierSettings` from ``SCORESTREAM_NOTIFIER_*`` or as a flag."""
    return run_service(SERVICE, NotifierSettings, Notifier, argv, on_ready=on_ready)
