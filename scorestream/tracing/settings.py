"""Tracing settings (:mod:`scorestream.tracing`): ``SCORESTREAM_TRACING_*``."""

from __future__ import annotations

import os

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TracingSettings(BaseSettings):
    """Env: ``SCORESTREAM_TRACING_*``; the endpoint also from ``OTEL_EXPORTER_OTLP_ENDPOINT``.

    ``enabled`` unset means "on when an endpoint is configured", so pointing a deployment at a
    collector is one variable, and a developer machine without one logs no export errors.
    """

    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_TRACING_",
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,  # an endpoint URL may carry credentials
    )

    enabled: bool | None = None
    """Record and export spans; unset: on when an endpoint is configured (this one or
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)."""
    endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "SCORESTREAM_TRACING_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "endpoint"
        ),
        description="OTLP/HTTP base URL, e.g. http://127.0.0.1:4318 (/v1/traces is appended)",
    )
    sampler_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of *new* traces recorded; downstream hops follow the sampled flag of the parent."""
    schedule_delay_ms: int = Field(default=1000, ge=10)
    """How often finished spans are sent to the collector, in ms (sooner once 512 wait)."""
    max_queue_size: int = Field(default=8192, ge=128)
    """Most finished spans held for export; a span that finds the queue full is dropped."""
    export_timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of one export to the collector."""
    max_links: int = Field(default=1024, ge=0)
    """Links per batch span (the SDK's default of 128 would cut a 500-message batch)."""

    @property
    def active(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        return bool(self.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))

    def traces_url(self) -> str | None:
        """The full OTLP/HTTP traces URL, or None to let the exporter read the OTEL_* env."""
        if not self.endpoint:
            return None
        base = self.endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else f"{base}/v1/traces"
