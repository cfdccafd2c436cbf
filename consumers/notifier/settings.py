"""The notifier's settings, the decision outcomes it alerts on, which HTTP statuses are worth
another try, and its metrics."""

from __future__ import annotations

import logging
from typing import ClassVar

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

from schemas.events import Outcome
from scorestream import metrics
from scorestream.settings import ProcessingSettings

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
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_NOTIFIER_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    service: ClassVar[str] = "notifier"

    max_wait_ms: int = Field(default=200, ge=1, le=10_000)
    """How long a poll waits for a full batch, in ms. This service is off the decision's path, so
    under light load it commits a transaction at most this often (each transaction costs the
    broker markers on every partition it touched; the services a request waits for get the
    CPU)."""
    adaptive_batching: bool = False
    """False here: wait up to max_wait_ms for a full batch (fewer, larger transactions). True
    takes what is already fetched as soon as the first record arrives."""
    max_batch: int = Field(default=2000, ge=1, le=10_000)
    """Most records handled and committed together as one batch (full batches under heavy
    load)."""

    webhook_url: SecretStr | None = None
    """The tenant's webhook (http or https); unset: alerts only. A secret: webhook URLs carry
    credentials (user-info, a path token, a query signature), so it is never echoed, and logs
    and spans show ``scheme://host:port/***?***`` only (:func:`scorestream.logs.redact_url`)."""
    webhook_connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    """Per attempt: the wait to connect to the webhook (and for a free pooled connection)."""
    webhook_read_timeout_s: float = Field(default=2.0, gt=0, le=60)
    """Per attempt: the wait for each write of the request and each read of the answer."""
    webhook_attempts: int = Field(default=3, ge=1, le=10)
    """HTTP attempts per delivery round, the first included; only transient failures (no
    answer, 408, 425, 429, 5xx) are tried again."""
    webhook_backoff_s: float = Field(default=0.2, ge=0, le=30)
    """Delay before the 2nd attempt; doubles per attempt (with jitter), capped below."""
    webhook_backoff_max_s: float = Field(default=2.0, ge=0, le=60)
    """Cap on the delay between attempts; a receiver's ``Retry-After`` is honoured up to it."""
    webhook_concurrency: int = Field(default=8, ge=1, le=128)
    """Webhook requests in flight at once (delivery threads and pooled connections)."""
    webhook_batch_budget_s: float = Field(default=15.0, gt=0)
    """No webhook attempt starts later than this after a batch began. SIGTERM lets the current
    batch finish, so keep budget + timeouts below the pod's termination grace period."""
    webhook_circuit_threshold: int = Field(default=5, ge=0)
    """Consecutive failed deliveries that open the circuit; 0 disables it."""
    webhook_circuit_cooldown_s: float = Field(default=10.0, ge=0)
    """How long an open circuit fails deliveries at once (to the retry topic); then deliveries
    are tried again, and the next failure opens it again."""

    retry_attempts: int = Field(default=5, ge=0, le=10)
    """Delivery rounds through ``<tenant>.alerts.retry`` after a transient failure (0: such a
    decision goes to the DLQ at once)."""
    retry_backoff_s: float = Field(default=20.0, gt=0, le=3600)
    """Wait before the first retry round; doubles per round (20, 40, 80, 160, 320 s: ~10 min)."""
    retry_backoff_max_s: float = Field(default=320.0, gt=0, le=3600)
    """Cap on the wait before a retry round. A parked record due more than this (plus 60 s for
    clock skew) from now is dead-lettered: lowering it can send waiting records to the DLQ."""
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
