"""The :class:`Publisher` (:mod:`producers.publisher`): an idempotent ``acks=all`` producer with a
bounded number of records awaiting acknowledgement; its settings and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from producers.publisher.contract import TransactionInput, validate_extensions, validate_transaction
from producers.publisher.outcomes import (
    BatchPublishError,
    ContractViolationError,
    DeliveryFailedError,
    DeliveryReport,
    PublisherClosedError,
    PublisherError,
    PublishTimeoutError,
    QueueFullError,
)
from producers.publisher.trace_context import trace_headers
from schemas.cloudevents import encode
from scorestream.errors import ConfigError, KafkaClientError
from scorestream.kafka_config import producer_config
from scorestream.metrics import LATENCY_BUCKETS
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY, validate_tenant

log = logging.getLogger("scorestream.publisher")


PUBLISHED = Counter(
    "scorestream_publisher_records_total",
    "Records handed to the publisher, by outcome (delivered, failed, rejected, queue_full)",
    ["tenant", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "scorestream_publisher_delivery_seconds",
    "From send to the broker's acknowledgement",
    ["tenant"],
    buckets=LATENCY_BUCKETS,
)
PENDING = Gauge(
    "scorestream_publisher_pending_records", "Records awaiting acknowledgement", ["tenant"]
)


class PublisherSettings(BaseSettings):
    """Env: ``SCORESTREAM_PUBLISHER_*`` (Kafka itself: ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_PUBLISHER_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    """The tenant published for: records go to ``<tenant>.transactions``."""
    source: str = Field(default="scorestream/publisher", min_length=1, max_length=200)
    """CloudEvents ``source``: who publishes (a URI-reference such as ``payments-api``)."""
    max_pending: int = Field(default=10_000, ge=1, le=1_000_000)
    """Most records sent and not yet acknowledged; ``send`` then waits up to
    ``enqueue_timeout_s`` for room, else raises ``QueueFullError``."""
    enqueue_timeout_s: float = Field(default=0.0, ge=0)
    """How long ``send`` waits for room when ``max_pending`` is reached (0: fail at once)."""
    delivery_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """The producer gives up on a record after this long (librdkafka ``delivery.timeout.ms``)."""
    linger_ms: int = Field(default=5, ge=0, le=1000)
    """The producer's ``linger.ms``: how long it waits to fill a batch before sending (more
    throughput, up to this much more latency)."""
    client_id: str | None = None
    """Kafka ``client.id``; unset: the ``source``."""


class Publisher:
    """Thread-safe; one per process is enough (it batches internally)."""

    def __init__(
        self,
        settings: PublisherSettings | None = None,
        *,
        kafka: KafkaSettings | None = None,
        config_overrides: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """``Publisher(tenant="acme", source="payments-api")`` or ``Publisher(settings)``."""
        if settings is not None and fields:
            raise ConfigError("pass either settings or keyword fields, not both")
        self.settings = settings or PublisherSettings(**fields)
        s = self.settings
        self.tenant = validate_tenant(s.tenant)
        self.topic = REGISTRY.topic("transactions", s.tenant)
        conf = producer_config(kafka or KafkaSettings(), client_id=s.client_id or s.source)
        conf |= {
            "linger.ms": s.linger_ms,
            "delivery.timeout.ms": int(s.delivery_timeout_s * 1000),
            "request.timeout.ms": min(30_000, int(s.delivery_timeout_s * 1000)),
            # librdkafka's own queue never binds first: ``max_pending`` is the bound
            "queue.buffering.max.messages": s.max_pending + 1000,
            "error_cb": self._on_error,
        }
        self._producer = Producer(conf | dict(config_overrides or {}))
        self._cond = threading.Condition()
        self._pending = 0
        self._inflight: set[Future[DeliveryReport]] = set()
        self._closed = False
        self.fatal: str | None = None
        self.last_error: str | None = None
        self._pending_gauge = PENDING.labels(self.tenant)
        self._poller = threading.Thread(target=self._poll_loop, name="publisher-poll", daemon=True)
        self._poller.start()

    # -- health ----------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return self._pending

    def alive(self) -> bool:
        return self._poller.is_alive() and self.fatal is None

    def check_topic(self, timeout: float = 10.0) -> None:
        """Raise KafkaClientError unless the broker answers and the tenant's topic exists."""
        try:
            md = self._producer.list_topics(self.topic, timeout=timeout)
        except KafkaException as exc:
            raise KafkaClientError(f"cannot reach Kafka: {exc.args[0]}") from exc
        meta = md.topics.get(self.topic)
        if meta is None or meta.error is not None or not meta.partitions:
            why = meta.error.str() if meta is not None and meta.error is not None else "missing"
            raise KafkaClientError(
                f"topic {self.topic} is not available ({why}); create the tenant's topics with "
                f"`scorestream topics create --tenant {self.tenant}`"
            )

    # -- sending -----------------------------------------------------------------------------------
    def send(
        self,
        event: TransactionInput,
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
        event_id: str | None = None,
        extensions: Mapping[str, str] | None = None,
        enqueue_timeout_s: float | None = None,
    ) -> Future[DeliveryReport]:
        """Validate and queue ``event``; the future resolves once the broker acknowledged it.

        Raises ContractViolationError, QueueFullError or PublisherClosedError synchronously; the
        future fails with DeliveryFailedError or PublisherClosedError.
        """
        try:
            tx = validate_transaction(event, tenant=self.tenant)
            ext = validate_extensions(extensions)
        except ContractViolationError:
            PUBLISHED.labels(self.tenant, "rejected").inc()
            raise
        trace = trace_headers(traceparent, tracestate)
        eid = event_id or str(uuid.uuid4())
        message = encode(tx, source=self.settings.source, event_id=eid, trace=trace, extensions=ext)
        wait = self.settings.enqueue_timeout_s if enqueue_timeout_s is None else enqueue_timeout_s
        self._reserve(wait)
        future: Future[DeliveryReport] = Future()
        future.set_running_or_notify_cancel()  # a queued record cannot be taken back
        started = time.perf_counter()
        traceparent_sent = trace["traceparent"]

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self._settle(future, err, msg, eid, tx.transaction_id, traceparent_sent, started)

        with self._cond:
            self._inflight.add(future)
        try:
            self._producer.produce(
                self.topic,
                key=message.key,
                value=message.value,
                headers=list(message.headers),
                on_delivery=on_delivery,
            )
        except BufferError as exc:
            self._release(future)
            PUBLISHED.labels(self.tenant, "queue_full").inc()
            raise QueueFullError(
                f"the producer's local queue is full ({self._pending} pending)"
            ) from exc
        except KafkaException as exc:
            self._release(future)
            raise DeliveryFailedError(
                f"produce to {self.topic} refused: {exc.args[0]}", code="produce", retriable=False
            ) from exc
        return future

    def publish(
        self,
        event: TransactionInput,
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
        event_id: str | None = None,
        extensions: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> DeliveryReport:
        """Send and block until the broker acknowledged ``event`` (acks=all)."""
        future = self.send(
            event,
            traceparent=traceparent,
            tracestate=tracestate,
            event_id=event_id,
            extensions=extensions,
        )
        return self._result(future, timeout)

    def publish_many(
        self,
        events: Iterable[TransactionInput],
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
        timeout: float | None = None,
    ) -> list[DeliveryReport]:
        """Send a batch, then wait once for all of it. Validation fails the batch before sending.

        With ``traceparent`` every event joins that trace; without, each starts its own. Raises
        BatchPublishError (with the per-record reports and failures) when some records were not
        delivered; the reports are in the order of ``events``.
        """
        batch = [validate_transaction(e, tenant=self.tenant) for e in events]
        futures: list[Future[DeliveryReport] | PublisherError] = []
        for tx in batch:
            try:
                futures.append(
                    self.send(
                        tx,
                        traceparent=traceparent,
                        tracestate=tracestate,
                        enqueue_timeout_s=self._batch_wait(timeout),
                    )
                )
            except QueueFullError as exc:
                futures.append(exc)
        reports: list[DeliveryReport | None] = []
        failures: dict[int, PublisherError] = {}
        deadline = time.monotonic() + self._wait_s(timeout)
        for i, f in enumerate(futures):
            try:
                if isinstance(f, PublisherError):
                    raise f
                reports.append(self._result(f, max(0.0, deadline - time.monotonic())))
            except PublisherError as exc:
                reports.append(None)
                failures[i] = exc
        if failures:
            raise BatchPublishError(reports, failures)
        return [r for r in reports if r is not None]

    async def apublish(
        self,
        event: TransactionInput,
        *,
        traceparent: str | None = None,
        tracestate: str | None = None,
        event_id: str | None = None,
        extensions: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> DeliveryReport:
        """``publish`` for asyncio: never blocks the event loop (a full queue fails at once)."""
        future = self.send(
            event,
            traceparent=traceparent,
            tracestate=tracestate,
            event_id=event_id,
            extensions=extensions,
            enqueue_timeout_s=0.0,
        )
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._wait_s(timeout))
        except TimeoutError as exc:
            raise PublishTimeoutError(self._timeout_message(timeout)) from exc

    # -- lifecycle -------------------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> int:
        """Wait for every pending acknowledgement; returns how many are still pending."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> None:
        """Flush (bounded), stop, and fail whatever is still unacknowledged."""
        if self._closed:
            return
        remaining = self.flush(timeout) if self.fatal is None else 1
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._poller.join(timeout=5)
        with self._cond:
            left = list(self._inflight)
        for future in left:
            self._release(future)
            if not future.done():
                future.set_exception(
                    PublisherClosedError("publisher closed before the broker acknowledged")
                )
        if remaining:
            log.warning("publisher closed with %d unacknowledged record(s)", remaining)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------
    def _wait_s(self, timeout: float | None) -> float:
        """Default wait for a report: a little longer than the producer's own delivery timeout."""
        return self.settings.delivery_timeout_s + 5.0 if timeout is None else timeout

    def _batch_wait(self, timeout: float | None) -> float:
        return max(self.settings.enqueue_timeout_s, self._wait_s(timeout))

    def _timeout_message(self, timeout: float | None) -> str:
        return (
            f"no delivery report within {self._wait_s(timeout):.3g}s; "
            "the record may still be delivered"
        )

    def _result(self, future: Future[DeliveryReport], timeout: float | None) -> DeliveryReport:
        try:
            return future.result(self._wait_s(timeout))
        except FutureTimeoutError as exc:
            raise PublishTimeoutError(self._timeout_message(timeout)) from exc

    def _reserve(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        with self._cond:
            while True:
                if self._closed:
                    raise PublisherClosedError("publisher is closed")
                if self.fatal is not None:
                    raise PublisherClosedError(f"producer failed fatally: {self.fatal}")
                if self._pending < self.settings.max_pending:
                    self._pending += 1
                    self._pending_gauge.inc()
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    PUBLISHED.labels(self.tenant, "queue_full").inc()
                    raise QueueFullError(
                        f"publisher queue is full: {self._pending} record(s) await the broker's "
                        f"acknowledgement (max_pending={self.settings.max_pending}); the broker is "
                        "slow or unreachable. Retry later, or raise max_pending/enqueue_timeout_s."
                    )
                self._cond.wait(left)

    def _release(self, future: Future[DeliveryReport]) -> None:
        with self._cond:
            if future in self._inflight:
                self._inflight.discard(future)
                self._pending -= 1
                self._pending_gauge.dec()
                self._cond.notify()

    def _settle(
        self,
        future: Future[DeliveryReport],
        err: KafkaError | None,
        msg: Message,
        event_id: str,
        transaction_id: str,
        traceparent: str,
        started: float,
    ) -> None:
        self._release(future)
        if future.done():
            return
        latency = time.perf_counter() - started
        if err is not None:
            PUBLISHED.labels(self.tenant, "failed").inc()
            future.set_exception(
                DeliveryFailedError(
                    f"event {event_id} not delivered to {msg.topic()}: {err.str()}",
                    code=err.name(),
                    retriable=bool(err.retriable()),
                )
            )
            return
        PUBLISHED.labels(self.tenant, "delivered").inc()
        DELIVERY_SECONDS.labels(self.tenant).observe(latency)
        future.set_result(
            DeliveryReport(
                event_id=event_id,
                transaction_id=transaction_id,
                topic=str(msg.topic()),
                partition=int(msg.partition() or 0),
                offset=int(msg.offset() or 0),
                traceparent=traceparent,
                latency_s=latency,
            )
        )

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = err.str()
        if err.fatal():
            self.fatal = err.str()
            log.error("producer fatal error: %s", err.str())
            with self._cond:
                self._cond.notify_all()
        else:
            log.warning("producer error: %s", err.str())

    def _poll_loop(self) -> None:
        while not self._closed:
            with contextlib.suppress(KafkaException):
                self._producer.poll(0.05)
        with contextlib.suppress(KafkaException):
            self._producer.poll(0)
