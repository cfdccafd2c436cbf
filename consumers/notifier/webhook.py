"""The tenant's HTTP webhook: POST with timeouts, retries with backoff and jitter, a circuit
breaker and a per-batch time budget, over one shared ``httpx.Client``."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from consumers.notifier.settings import (
    WEBHOOK_CIRCUIT_OPEN,
    WEBHOOK_DELIVERIES,
    WEBHOOK_REQUESTS,
    WEBHOOK_SECONDS,
    retryable_status,
)
from schemas.events import DecisionEvent
from scorestream import logs

log = logging.getLogger("scorestream.notifier")


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
