"""The notifier: review / decline decisions → ``<tenant>.alerts`` and the tenant's HTTP webhook.

``<tenant>.decisions`` → :func:`notify_batch` → ``<tenant>.alerts`` (the same ``DecisionEvent``
contract, trace context and CloudEvents extensions carried on). Approve decisions produce nothing.
Alerts, dead letters and input offsets commit in one Kafka transaction per batch (exactly once).

The webhook (``SCORESTREAM_NOTIFIER_WEBHOOK_URL``, optional) receives each review / decline
decision as a JSON body (``DecisionEvent`` fields) by POST, with connect and read timeouts,
retries with exponential backoff and jitter (timeouts, connection errors, 408/425/429/5xx; other
statuses are final), over one shared ``httpx.Client`` used by a small thread pool. A decision whose
webhook fails for good goes to a DLQ with reason ``webhook_failed`` and the HTTP status or error
in ``dlq.message`` (transient failures first go through the retry topic, below); its alert is
produced all the same (analysts still see it).
Re-publishing such a DLQ record to ``decisions`` re-sends the webhook and the alert.

**The webhook is at-least-once.** HTTP calls are side effects outside the Kafka transaction: a
batch that aborts or a process that dies before the commit is processed again, and its webhooks are
sent again. Every request therefore carries ``Idempotency-Key: <transaction_id>`` so the receiver
can drop repeats (as well as ``traceparent`` when the decision had one).

**Outages: the retry topic.** A delivery that fails for a transient reason (no answer: a
connection error or timeout; 408, 425, 429 or any 5xx; the circuit open; the batch's time budget
spent) is not dead-lettered at once: the decision goes to ``<tenant>.alerts.retry`` — its key,
value and headers as consumed, plus ``retry.attempt`` (delivery rounds failed so far),
``retry.not_before`` and ``retry.first_failure`` (epoch ms) and ``retry.history`` (one
``<round> <time> <error>`` entry per failed round) — written in the batch's transaction with the
input offsets, like a dead letter. The notifier consumes that topic too: a record not yet due is
written back to its partition (same transaction) and the partition is paused until it is due,
so waiting never blocks the decisions or another partition; a due one is delivered again (the
webhook only: its alert was produced the first time). Round *n* waits ``retry_backoff_s *
2**(n-1)`` (capped at ``retry_backoff_max_s``); after ``retry_attempts`` retry rounds, or when
the next round would start more than ``retry_max_delay_s`` after the first failure, it goes to
``<tenant>.alerts.retry.dlq`` with reason ``webhook_failed``, the whole history in
``dlq.message`` and ``retry.*`` headers. A permanent failure (any other 4xx, a 3xx) goes to
``<tenant>.decisions.dlq`` at once, as before. Defaults: 5 retry rounds over ~10 minutes.
A partition's records are in arrival order, not due order: a record due sooner may wait behind
one due later in the same partition (never longer than ``retry_backoff_max_s``).

Bounded time: each batch has a time budget (``webhook_batch_budget_s``, well below
``max.poll.interval.ms``); no attempt starts after it, and unsent decisions go to the retry topic
(the DLQ with ``retry_attempts=0``). After ``webhook_circuit_threshold`` consecutive failed
deliveries the circuit opens for ``webhook_circuit_cooldown_s``: decisions fail fast to the retry
topic instead of waiting out timeouts, then one trial delivery decides whether it closes again.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from confluent_kafka import TopicPartition
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
from schemas.errors import Headers, RawRecord
from schemas.events import DecisionEvent, Outcome
from scorestream import __version__, logs, metrics, tracing
from scorestream.dlq import DeadLetter
from scorestream.errors import ScorestreamError
from scorestream.processor import Emit, OutRecord, Processor, ProcessorConfig, Result
from scorestream.settings import KafkaSettings, ProcessingSettings
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.notifier")
SERVICE = "notifier"
ALERTING = frozenset({Outcome.REVIEW, Outcome.DECLINE})
RETRY_STATUSES = frozenset({408, 425, 429})
"""Client errors worth another try; every 5xx is too. Other statuses are final."""


def retryable_status(status: int) -> bool:
    return status in RETRY_STATUSES or 500 <= status <= 599


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
WEBHOOK_RETRIES = Counter(
    "scorestream_webhook_retries_total",
    "Decisions through the retry topic by result (scheduled: a failed round sent it there; "
    "parked: read before it was due and written back; exhausted: to the DLQ after its rounds)",
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

    retry_attempts: int = Field(default=5, ge=0, le=10)
    """Delivery rounds through ``<tenant>.alerts.retry`` after a transient failure (0: such a
    decision goes to the DLQ at once)."""
    retry_backoff_s: float = Field(default=20.0, gt=0, le=3600)
    """Wait before the first retry round; doubles per round (20, 40, 80, 160, 320 s: ~10 min)."""
    retry_backoff_max_s: float = Field(default=320.0, gt=0, le=3600)
    retry_max_delay_s: float = Field(default=900.0, gt=0, le=24 * 3600)
    """No retry round starts later than this after the first failure (the retry topic keeps
    records 7 days)."""

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
        if self.retry_attempts and self.retry_backoff_s > self.retry_max_delay_s:
            raise ValueError(
                f"retry_backoff_s ({self.retry_backoff_s}s) must not exceed retry_max_delay_s "
                f"({self.retry_max_delay_s}s): no retry round could ever start"
            )
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

    @property
    def transient(self) -> bool:
        """A failure worth another delivery round later: no answer (connection error, timeout,
        circuit open, batch budget spent) or a 408/425/429/5xx."""
        if self.ok:
            return False
        return self.status is None or retryable_status(self.status)


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
        return retryable_status(self.status)

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
        # (a path, query or fragment shorter than 8 characters, e.g. ``/hook``, carries no token
        # and masking it would garble every line that contains it: URLs themselves are redacted
        # to scheme, host and port anyway)
        logs.register_secret(parts.password)
        for part in (parts.path, parts.query, parts.fragment):
            if part and len(part) >= 8:
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


# -- the retry topic -----------------------------------------------------------------------------
ATTEMPT = "retry.attempt"
NOT_BEFORE = "retry.not_before"
FIRST_FAILURE = "retry.first_failure"
HISTORY = "retry.history"
RETRY_HEADERS = frozenset({ATTEMPT, NOT_BEFORE, FIRST_FAILURE, HISTORY})
MAX_HISTORY_ERROR = 60
"""Characters of one round's error in ``retry.history`` (11 rounds fit ``dlq.message``)."""
CLOCK_SKEW_S = 60.0
"""How far another notifier pod's clock may be ahead: a ``retry.not_before`` later than
``retry_backoff_max_s`` plus this from now was not written by a notifier with these settings
(it would pause its partition for that long): it is dead-lettered instead."""


class RetryRecordError(ScorestreamError):
    """A record of the retry topic without valid ``retry.*`` headers."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Where and how often a transiently failed delivery is tried again."""

    topic: str
    attempts: int
    backoff_s: float
    backoff_max_s: float
    max_delay_s: float

    def delay(self, failed_rounds: int) -> float:
        """Wait before the next round after ``failed_rounds`` failed ones (1-based)."""
        return min(self.backoff_max_s, self.backoff_s * 2.0 ** (failed_rounds - 1))


@dataclass(frozen=True, slots=True)
class RetryState:
    """What a retry record carries in its ``retry.*`` headers."""

    attempt: int
    """Delivery rounds failed so far."""
    not_before_ms: int
    first_failure_ms: int
    history: tuple[str, ...] = ()

    @classmethod
    def from_headers(cls, headers: Headers) -> RetryState:
        found: dict[str, str] = {}
        for name, value in headers:
            if name in RETRY_HEADERS and value is not None:
                found[name] = value.decode("utf-8", errors="replace")
        try:
            state = cls(
                attempt=int(found[ATTEMPT]),
                not_before_ms=int(found[NOT_BEFORE]),
                first_failure_ms=int(found[FIRST_FAILURE]),
                history=tuple(h for h in found.get(HISTORY, "").split("; ") if h),
            )
        except (KeyError, ValueError) as exc:
            raise RetryRecordError(f"missing or invalid retry header: {exc}") from None
        if state.attempt < 1:
            raise RetryRecordError(f"invalid {ATTEMPT}: {state.attempt}")
        return state

    def headers(self) -> list[tuple[str, bytes | None]]:
        return [
            (ATTEMPT, str(self.attempt).encode()),
            (NOT_BEFORE, str(self.not_before_ms).encode()),
            (FIRST_FAILURE, str(self.first_failure_ms).encode()),
            (HISTORY, "; ".join(self.history).encode()),
        ]

    def failed(self, result: WebhookResult, now_s: float) -> RetryState:
        """This state after one more failed round (``not_before`` is set by the caller)."""
        when = datetime.fromtimestamp(now_s, UTC).isoformat(timespec="seconds")
        error = (result.error or result.error_type or "failed").replace(";", ",")
        entry = f"{self.attempt + 1} {when.replace('+00:00', 'Z')} {error[:MAX_HISTORY_ERROR]}"
        return replace(self, attempt=self.attempt + 1, history=(*self.history, entry))


FIRST = RetryState(attempt=0, not_before_ms=0, first_failure_ms=0)
"""The state of a decision never tried before."""


def _with_retry_headers(raw: RawRecord, state: RetryState) -> list[tuple[str, bytes | None]]:
    kept = [(n, v) for n, v in raw.headers if n not in RETRY_HEADERS and not n.startswith("dlq.")]
    return [*kept, *state.headers()]


# -- the pure-ish part ---------------------------------------------------------------------------
@dataclass(slots=True)
class NotifyOutput:
    alerts: list[Envelope[DecisionEvent]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    approved: int = 0
    webhook: list[WebhookResult] = field(default_factory=list)
    retries: list[OutRecord] = field(default_factory=list)
    """Decisions (re)scheduled on the retry topic after a failed round."""
    parked: list[OutRecord] = field(default_factory=list)
    """Retry records read before they were due, written back to their partition."""
    resume_at: dict[int, float] = field(default_factory=dict)
    """Retry-topic partition → when (epoch s) its earliest parked record is due."""
    redelivered: int = 0
    exhausted: int = 0


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
    retry: RetryPolicy | None = None,
    wall: Callable[[], float] = time.time,
) -> NotifyOutput:
    """Select the alerts of a batch and send them to the webhook (concurrently with ``pool``).

    With ``retry``, records of ``retry.topic`` in the batch are due deliveries (sent again, no
    alert) or not yet due (parked), and transient failures are scheduled there."""
    out = NotifyOutput()
    now_s = wall()
    due: list[tuple[Envelope[DecisionEvent], RetryState]] = []
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
        elif retry is not None and env.raw is not None and env.raw.topic == retry.topic:
            state = _triage_retry(out, env.raw, retry, now_s)
            if state is not None:
                due.append((env, state))
        elif d.outcome in ALERTING:
            out.alerts.append(env)
        else:
            out.approved += 1
    if webhook is None or not (out.alerts or due):
        return out
    deadline = None if budget_s is None else clock() + budget_s

    def send(env: Envelope[DecisionEvent]) -> WebhookResult:
        # a client span under the decision's process span; its context goes on the request
        parent = tracing.parent_of(env.trace)
        with tracing.client_span("POST", webhook.url, parent=parent) as (span, sent):
            result = webhook.deliver(env.event, trace=sent or env.trace, deadline=deadline)
            tracing.http_result(span, result.status, result.error_type, result.attempts)
            return result

    work = [*((env, FIRST) for env in out.alerts), *due]
    if pool is None:
        results = [send(env) for env, _ in work]
    else:
        results = list(pool.map(send, [env for env, _ in work]))
    out.webhook = results
    now_s = wall()
    for (env, state), r in zip(work, results, strict=True):
        if state is not FIRST:
            out.redelivered += 1
        if not r.ok:
            _after_failure(out, env, state, r, webhook=webhook, retry=retry, now_s=now_s)
    return out


def _triage_retry(
    out: NotifyOutput, raw: RawRecord, retry: RetryPolicy, now_s: float
) -> RetryState | None:
    """A record of the retry topic: its state when due; else parked (or dead-lettered when its
    ``retry.*`` headers are unreadable) and None."""
    try:
        state = RetryState.from_headers(raw.headers)
    except RetryRecordError as exc:
        out.dead_letters.append(
            DeadLetter(raw, "invalid_retry_record", type(exc).__name__, str(exc))
        )
        return None
    if state.not_before_ms <= now_s * 1000:
        return state
    if state.not_before_ms > (now_s + retry.backoff_max_s + CLOCK_SKEW_S) * 1000:
        wait = state.not_before_ms / 1000 - now_s
        message = f"{NOT_BEFORE} is {wait:.0f}s away, beyond the longest backoff"
        out.dead_letters.append(
            DeadLetter(raw, "invalid_retry_record", "RetryRecordError", message)
        )
        return None
    out.parked.append(OutRecord(retry.topic, raw.key, raw.value, list(raw.headers), raw.partition))
    p = raw.partition or 0
    until = state.not_before_ms / 1000
    out.resume_at[p] = min(out.resume_at.get(p, until), until)
    return None


def _after_failure(
    out: NotifyOutput,
    env: Envelope[DecisionEvent],
    state: RetryState,
    r: WebhookResult,
    *,
    webhook: Webhook,
    retry: RetryPolicy | None,
    now_s: float,
) -> None:
    """A failed round: schedule the next one, or dead-letter (with the history, if any)."""
    raw = _raw(env)
    error_type = r.error_type or "WebhookError"
    if retry is None or (state is FIRST and not (r.transient and retry.attempts > 0)):
        # permanent (or no retries configured): the input's DLQ, as it always was
        out.dead_letters.append(
            DeadLetter(
                raw,
                "webhook_failed",
                error_type,
                f"webhook {webhook.host} failed after {r.attempts} attempt(s): {r.error}",
            )
        )
        return
    first_ms = state.first_failure_ms or int(now_s * 1000)
    state = replace(state.failed(r, now_s), first_failure_ms=first_ms)
    delay = retry.delay(state.attempt)
    within = (now_s + delay) * 1000 - first_ms <= retry.max_delay_s * 1000
    if r.transient and state.attempt <= retry.attempts and within:
        state = replace(state, not_before_ms=int((now_s + delay) * 1000))
        headers = _with_retry_headers(raw, state)
        out.retries.append(OutRecord(retry.topic, raw.key, raw.value, headers))
        return
    if not r.transient:
        why = "a permanent error"
    elif state.attempt > retry.attempts:
        why = "its retry rounds spent"
    else:
        why = "its retry time spent"
    spent = max(0.0, now_s - first_ms / 1000)
    out.exhausted += 1
    out.dead_letters.append(
        DeadLetter(
            replace(raw, headers=_with_retry_headers(raw, state)),
            "webhook_failed",
            error_type,
            f"webhook {webhook.host} failed in {state.attempt} delivery rounds over {spent:.0f}s "
            f"({why}): {'; '.join(state.history)}",
        )
    )


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


if __name__ == "__main__":
    sys.exit(main())
