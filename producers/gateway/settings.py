"""The gateway's settings (``SCORESTREAM_GATEWAY_*``)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_instance() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()


class GatewaySettings(BaseSettings):
    """Env: ``SCORESTREAM_GATEWAY_*`` (Kafka: ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_GATEWAY_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    """The tenant served: transactions go to ``<tenant>.transactions``; API keys of another
    tenant get 403."""
    host: str = "127.0.0.1"
    """Bind address; ``0.0.0.0`` in a container."""
    port: int = Field(default=8000, ge=0, le=65535)
    """The HTTP port: the API, the probes and ``/metrics``."""
    reply_partition: int = Field(default=0, ge=0, le=10_000)
    """The partition of ``<tenant>.replies`` this replica owns; unique per replica (StatefulSet
    ordinal)."""
    deadline_s: float = Field(default=2.0, gt=0)
    """Default wait for a synchronous decision; ``Prefer: wait=<s>`` overrides it per request."""
    max_deadline_s: float = Field(default=30.0, gt=0)
    """Cap on a synchronous wait (``Prefer: wait``, a V2 request's timeout); on SIGTERM,
    requests in progress get this long plus 5 s to finish."""
    publish_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """How long the producer tries to get a record acknowledged before the request fails."""
    max_in_flight: int = Field(default=512, ge=1)
    """Requests in progress at once on ``/v1/`` and the V2 ``infer`` endpoints; beyond it 503
    with ``Retry-After`` at once (probes and metrics are not counted)."""
    retry_after_s: int = Field(default=1, ge=1)
    """The ``Retry-After`` (seconds) of answers that ask the client to retry: 503 (overload,
    Kafka unavailable), 409 (the same request still in progress), 429 (a key's in-flight limit)."""
    max_body_bytes: int = Field(default=1_048_576, ge=256)
    """Largest request body accepted; a larger one gets 413 before any of it is processed."""
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """From connecting (or the previous response) until a request's headers are complete; then
    408 and the connection is closed (:mod:`producers.gateway.server`)."""
    body_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """From a request's headers until its body is complete; then 408 and closed."""
    max_infer_rows: int = Field(default=1000, ge=1)
    """Most rows (transactions) in one V2 ``infer`` request; more gets 400."""
    idempotency_ttl_s: float = Field(default=3600.0, gt=0, le=6 * 86400)
    """The idempotency horizon: how long a transaction id or Idempotency-Key is remembered (on
    every replica, read back from ``<tenant>.gateway.idempotency`` at start). Below the topic's
    7-day retention."""
    idempotency_max_entries: int = Field(default=50_000, ge=1)
    """Entries kept in memory per replica (oldest dropped first): size it to the requests of one
    horizon (two entries per request with an Idempotency-Key, one without)."""
    max_pending: int = Field(default=20_000, ge=1)
    """Publisher queue bound (records awaiting acknowledgement)."""
    linger_ms: int = Field(default=1, ge=0, le=1000)
    """The producer's ``linger.ms``: how long it waits to fill a batch before sending; adds up
    to this much latency to each request."""
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The HTTP server's event loop: uvloop (less CPU per request) or the standard library's."""
    model_name: str = Field(default="fraud-gbt", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    """The model name the V2 endpoints answer to (what the workers serve)."""
    instance_id: str = Field(default_factory=_default_instance, min_length=1, max_length=200)
    """Names this replica in its Kafka client ids (``<tenant>.gateway.<instance_id>``)."""
    source: str = Field(default="scorestream/gateway", min_length=1)
    """CloudEvents ``source`` of the transactions it publishes."""
