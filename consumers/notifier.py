"""The notifier: review / decline decisions → ``<tenant>.alerts`` and the tenant's HTTP webhook.

``<tenant>.decisions`` → :func:`notify_batch` → ``<tenant>.alerts`` (the same ``DecisionEvent``
contract, trace context and CloudEvents extensions carried on). Approve decisions produce nothing.
Alerts, dead letters and input offsets commit in one Kafka transaction per batch (exactly once).

The webhook (``SCORESTREAM_NOTIFIER_WEBHOOK_URL``, optional) receives each review / decline
decision as a JSON body (``DecisionEvent`` fields) by POST, with connect and read timeouts,
retries with exponential backoff and jitter (timeouts, connection errors, 408/425/429/5xx; other
statuses are final), over one shared ``httpx.Client`` used by a small thread pool. A decision whose
webhook keeps failing goes to ``<tenant>.decisions.dlq`` with reason ``webhook_failed`` and the HTTP
status or error in ``dlq.message``; its alert is produced all the same (analysts still see it).
Re-publishing such a DLQ record to ``decisions`` re-sends the webhook and the alert.

**The webhook is at-least-once.** HTTP calls are side effects outside the Kafka transaction: a
batch that aborts or a process that dies before the commit is processed again, and its webhooks are
sent again. Every request therefore carries ``Idempotency-Key: <transaction_id>`` so the receiver
can drop repeats (as well as ``traceparent`` when the decision had one).

Bounded time: each batch has a time budget (``webhook_batch_budget_s``, well below
``max.poll.interval.ms``); no attempt starts after it, and unsent decisions go to the DLQ. After
``webhook_circuit_threshold`` consecutive failed deliveries the circuit opens for
``webhook_circuit_cooldown_s``: decisions fail fast to the DLQ instead of waiting out timeouts, then
one trial delivery decides whether it closes again.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter, Histogram
from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from consumers.decision import carried_extensions
from schemas.cloudevents import Envelope
from schemas.errors import RawRecord
from schemas.events import DecisionEvent, Outcome
from scorestream import __version__, logs, metrics, tracing
from scorestream.dlq import DeadLetter
from scorestream.processor import Emit, Processor, ProcessorConfig, Result
from scorestream.settings import KafkaSettings, ProcessingSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.notifier")
SERVICE = "notifier"
ALERTING = frozenset({Outcome.REVIEW, Outcome.DECLINE})
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

ALERTS = Counter(
    "scorestream_alerts_total", "Committed alerts by decision outcome", ["tenant", "outcome"]
)
WEBHOOK_REQUESTS = Counter(
    "scorestream_webhook_requests_total",
    "Webhook HTTP attempts by result (2xx, 3xx, 4xx, 5xx, timeout, error)",
    ["tenant", "result"],
)
WEBHOOK_SECONDS = Histogram(
    "scorestream_webhook_request_seconds",
    "Duration of one webhook HTTP attempt",
    ["tenant"],
    buckets=metrics.LATENCY_BUCKETS,
)
WEBHOOK_DELIVERIES = Counter(
    "scorestream_webhook_deliveries_total",
    "Decisions by webhook outcome (delivered, failed)",
    ["tenant", "result"],
)
WEBHOOK_CIRCUIT_OPEN = Counter(
    "scorestream_webhook_circuit_opened_total",
    "Times the webhook circuit opened after consecutive failures",
    ["tenant"],
)


_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


class NotifierSettings(ProcessingSettings):
    """Env: ``SCORESTREAM_NOTIFIER_*`` (plus ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_NOTIFIER_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    service: ClassVar[str] = "notifier"

    # off the decision's path: commit a transaction at most every max_wait_ms under light load
    # (each transaction costs the broker markers on every partition it touched; the services a
    # request waits for get the CPU), full batches under heavy load
    max_wait_ms: int = Field(default=200, ge=1, le=10_000)
    adaptive_batching: bool = False
    max_batch: int = Field(default=2000, ge=1, le=10_000)

    webhook_url: SecretStr | None = None
    """The tenant's webhook (http or https); unset: alerts only. A secret: webhook URLs carry
    credentials (user-info, a path token, a query signature), so it is never echoed, and logs
    and spans show ``scheme://host:port/***?***`` only (:func:`scorestream.logs.redact_url`)."""
    webhook_connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    webhook_read_timeout_s: float = Field(default=2.0, gt=0, le=60)
    webhook_attempts: int = Field(default=3, ge=1, le=10)
    webhook_backoff_s: float = Field(default=0.2, ge=0, le=30)
    """Delay before the 2nd attempt; doubles per attempt (with jitter), capped below."""
    webhook_backoff_max_s: float = Field(default=2.0, ge=0, le=60)
    webhook_concurrency: int = Field(default=8, ge=1, le=128)
    webhook_batch_budget_s: float = Field(default=15.0, gt=0)
    """No webhook attempt starts later than this after a batch began. SIGTERM lets the current
    batch finish, so keep budget + timeouts below the pod's termination grace period."""
    webhook_circuit_threshold: int = Field(default=5, ge=0)
    """Consecutive failed deliveries that open the circuit; 0 disables it."""
    webhook_circuit_cooldown_s: float = Field(default=10.0, ge=0)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            _HTTP_URL.validate_python(value.get_secret_value())
        except ValidationError:
            # not the value, nor pydantic's message about it: both would quote the secret
            raise ValueError("webhook_url must be an http:// or https:// URL") from None
        return value

    @model_validator(mode="after")
    def _budget_fits_poll_interval(self) -> NotifierSettings:
        worst = (
            self.webhook_batch_budget_s
            + self.webhook_connect_timeout_s
            + self.webhook_read_timeout_s
        )
        if worst * 1000 > self.max_poll_interval_ms / 2:
            raise ValueError(
                f"webhook_batch_budget_s + timeouts ({worst:.1f}s) must stay below half of "
                f"max_poll_interval_ms ({self.max_poll_interval_ms} ms), or the consumer would "
                "leave the group mid-batch"
            )
        if worst > self.live_after_s:
            raise ValueError(f"live_after_s must exceed the batch's webhook time ({worst:.1f}s)")
        return self


# -- the webhook ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WebhookResult:
    ok: bool
    attempts: int
    status: int | None = None
    error_type: str = ""
    """``HTTPStatus``, an httpx exception class name, ``CircuitOpen`` or ``BudgetExceeded``."""
    error: str = ""


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One HTTP attempt: a status, or the transport error, or neither (not attempted)."""

    status: int | None
    exc: Exception | None
    retry_after: float | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retriable(self) -> bool:
        if self.exc is not None or self.status is None:
            return True  # timeouts and connection errors are worth another try
        return self.status in RETRY_STATUSES

    @property
    def label(self) -> str:
        if isinstance(self.exc, httpx.TimeoutException):
            return "timeout"
        if self.status is None:
            return "error"
        return f"{self.status // 100}xx"

    def describe(self) -> tuple[str, str]:
        if self.exc is not None:
            name = type(self.exc).__name__
            text = logs.redact_text(str(self.exc))  # an httpx message may quote the URL
            return name, f"{name}: {text}" if text else name
        if self.status is not None:
            return "HTTPStatus", f"HTTP {self.status}"
        return "", ""


class Webhook:
    """POSTs decisions to one URL with timeouts, retries, backoff and a circuit breaker.

    Thread-safe: one instance (one ``httpx.Client`` connection pool) serves the notifier's pool.
    """

    def __init__(
        self,
        url: str,
        *,
        tenant: str = "",
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 2.0,
        attempts: int = 3,
        backoff_s: float = 0.2,
        backoff_max_s: float = 2.0,
        circuit_threshold: int = 5,
        circuit_cooldown_s: float = 10.0,
        max_connections: int = 8,
        user_agent: str = "scorestream-notifier",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        parts = urlsplit(url)
        self.host = parts.netloc.rpartition("@")[2]  # never log the path or credentials: tokens
        # and should a library quote a part of the URL on its own, the log masks it all the same
        for part in (parts.password, parts.path, parts.query, parts.fragment):
            if part and part != "/":
                logs.register_secret(part)
        self.tenant = tenant
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.circuit_threshold = circuit_threshold
        self.circuit_cooldown_s = circuit_cooldown_s
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not cryptography)
        self._lock = threading.Lock()
        self._failures = 0
        self._open_until = 0.0
        self.client = httpx.Client(
            timeout=httpx.Timeout(
                connect=connect_timeout_s,
                read=read_timeout_s,
                write=read_timeout_s,
                pool=connect_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": user_agent, "Content-Type": "application/json"},
            follow_redirects=False,
        )

    # -- circuit -----------------------------------------------------------------------------
    def circuit_open(self) -> bool:
        with self._lock:
            return self._clock() < self._open_until

    def _record(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._failures = 0
                return
            self._failures += 1
            if self.circuit_threshold and self._failures >= self.circuit_threshold:
                if self._clock() >= self._open_until:
                    WEBHOOK_CIRCUIT_OPEN.labels(self.tenant).inc()
                    log.warning(
                        "webhook %s failed %d times in a row: circuit open for %.1fs",
                        self.host,
                        self._failures,
                        self.circuit_cooldown_s,
                    )
                self._open_until = self._clock() + self.circuit_cooldown_s

    def backoff(self, retry: int) -> float:
        """Delay before retry number ``retry`` (1-based): exponential, capped, equal jitter."""
        delay = min(self.backoff_max_s, self.backoff_s * 2.0 ** (retry - 1))
        return delay * self._rng.uniform(0.5, 1.0)

    # -- delivery ----------------------------------------------------------------------------
    def deliver(
        self,
        decision: DecisionEvent,
        *,
        trace: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> WebhookResult:
        """Send one decision; retry transient failures. Never raises for HTTP problems."""
        if self.circuit_open():
            WEBHOOK_DELIVERIES.labels(self.tenant, "failed").inc()
            return WebhookResult(
                False, 0, None, "CircuitOpen", "circuit open after consecutive failures"
            )
        headers = {"Idempotency-Key": decision.transaction_id}
        for name in ("traceparent", "tracestate"):
            if trace and trace.get(name):
                headers[name] = trace[name]
        body = decision.model_dump_json().encode()
        last = _Attempt(None, None, None)
        attempt = 0
        while attempt < self.attempts:
            if deadline is not None and self._clock() >= deadline:
                break
            attempt += 1
            last = self._post(body, headers)
            if last.ok:
                self._record(True)
                WEBHOOK_DELIVERIES.labels(self.tenant, "delivered").inc()
                return WebhookResult(True, attempt, last.status)
            if not last.retriable or attempt >= self.attempts:
                break
            delay = self.backoff(attempt)
            if last.retry_after is not None:
                delay = max(delay, min(last.retry_after, self.backoff_max_s))
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - self._clock()))
            self._sleep(delay)
        self._record(False)
        WEBHOOK_DELIVERIES.labels(self.tenant, "failed").inc()
        error_type, error = last.describe()
        if attempt < self.attempts and last.retriable:  # stopped by the batch's deadline
            error_type = error_type or "BudgetExceeded"
            error = (error + "; " if error else "") + "batch time budget spent"
        return WebhookResult(False, attempt, last.status, error_type, error)

    def _post(self, body: bytes, headers: dict[str, str]) -> _Attempt:
        started = time.perf_counter()
        try:
            resp = self.client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            outcome = _Attempt(None, exc, None)
        else:
            resp.close()
            retry_after = None
            if resp.status_code in (429, 503):
                retry_after = _retry_after(resp.headers.get("Retry-After"))
            outcome = _Attempt(resp.status_code, None, retry_after)
        WEBHOOK_SECONDS.labels(self.tenant).observe(time.perf_counter() - started)
        WEBHOOK_REQUESTS.labels(self.tenant, outcome.label).inc()
        return outcome

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Webhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: keep our own backoff


# -- the pure-ish part ---------------------------------------------------------------------------
@dataclass(slots=True)
class NotifyOutput:
    alerts: list[Envelope[DecisionEvent]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    approved: int = 0
    webhook: list[WebhookResult] = field(default_factory=list)


def _raw(env: Envelope[DecisionEvent]) -> RawRecord:
    if env.raw is not None:
        return env.raw
    event = env.event
    return RawRecord(key=event.partition_key().encode(), value=event.model_dump_json().encode())


def notify_batch(
    batch: list[Envelope[DecisionEvent]],
    *,
    tenant: str,
    webhook: Webhook | None,
    pool: Executor | None = None,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> NotifyOutput:
    """Select the alerts of a batch and send them to the webhook (concurrently with ``pool``)."""
    out = NotifyOutput()
    for env in batch:
        d = env.event
        if d.tenant_id != tenant:
            out.dead_letters.append(
                DeadLetter(
                    _raw(env),
                    "unknown_tenant",
                    "TenantMismatch",
                    f"tenant {d.tenant_id!r} on a topic of tenant {tenant!r}",
                )
            )
        elif d.outcome in ALERTING:
            out.alerts.append(env)
        else:
            out.approved += 1
    if webhook is None or not out.alerts:
        return out
    deadline = None if budget_s is None else clock() + budget_s

    def send(env: Envelope[DecisionEvent]) -> WebhookResult:
        # a client span under the decision's process span; its context goes on the request
        parent = tracing.parent_of(env.trace)
        with tracing.client_span("POST", webhook.url, parent=parent) as (span, sent):
            result = webhook.deliver(env.event, trace=sent or env.trace, deadline=deadline)
            tracing.http_result(span, result.status, result.error_type, result.attempts)
            return result

    if pool is None:
        results = [send(env) for env in out.alerts]
    else:
        results = list(pool.map(send, out.alerts))
    out.webhook = results
    for env, r in zip(out.alerts, results, strict=True):
        if not r.ok:
            out.dead_letters.append(
                DeadLetter(
                    _raw(env),
                    "webhook_failed",
                    r.error_type or "WebhookError",
                    f"webhook {webhook.host} failed after {r.attempts} attempt(s): {r.error}",
                )
            )
    return out


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
        config = ProcessorConfig.for_service(
            s,
            service=SERVICE,
            inputs=(self.input_topic,),
            accept=(DecisionEvent,),
            dlq_topics={self.input_topic: REGISTRY.dlq_topic("decisions", t)},
        )
        self.processor = Processor(config, self.handle, kafka=self.kafka, ready=self._ready)

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
        )
        emits = [
            Emit(self.alerts_topic, env.event, env.trace, carried_extensions(env))
            for env in out.alerts
        ]
        return Result(
            emits=emits, dead_letters=out.dead_letters, on_commit=lambda: self._count(out)
        )

    def _count(self, out: NotifyOutput) -> None:
        per_outcome: dict[str, int] = {}
        for env in out.alerts:
            key = env.event.outcome.value
            per_outcome[key] = per_outcome.get(key, 0) + 1
        for outcome, n in per_outcome.items():
            ALERTS.labels(self.settings.tenant, outcome).inc(n)

    def stop(self, *_: Any) -> None:
        self.processor.stop()

    def run(self, *, install_signals: bool = True) -> int:
        if self.webhook is not None:
            log.info("webhook %s, %d attempts", self.webhook.host, self.webhook.attempts)
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


if __name__ == "__main__":
    sys.exit(main())
