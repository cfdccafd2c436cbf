"""The process's tracer provider (:mod:`scorestream.tracing`): set up once per service, or not at
all (then every helper is a no-op)."""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from scorestream.tracing.conventions import TENANT
from scorestream.tracing.settings import TracingSettings


# -- set-up ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class _State:
    provider: TracerProvider
    tracer: trace.Tracer
    service: str
    tenant: str | None


_state: _State | None = None
_lock = threading.Lock()
_atexit_registered = False


def setup(
    service: str,
    tenant: str | None = None,
    settings: TracingSettings | None = None,
    *,
    exporter: SpanExporter | None = None,
) -> bool:
    """Configure tracing for this process; returns whether spans are recorded.

    ``exporter`` replaces the OTLP exporter (tests pass an ``InMemorySpanExporter``) and turns
    tracing on regardless of the settings. Calling it again replaces the previous set-up.
    """
    global _state, _atexit_registered  # noqa: PLW0603  (one tracer provider per process)
    settings = settings or TracingSettings()
    shutdown()
    if exporter is None and not settings.active:
        return False
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        exporter = OTLPSpanExporter(
            endpoint=settings.traces_url(), timeout=settings.export_timeout_s
        )
    attributes: dict[str, str] = {
        "service.name": f"scorestream-{service}",
        "service.namespace": "scorestream",
    }
    if tenant:
        attributes[TENANT] = tenant
    provider = TracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(settings.sampler_ratio)),
        span_limits=SpanLimits(max_links=settings.max_links),
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=settings.max_queue_size,
            schedule_delay_millis=settings.schedule_delay_ms,
            max_export_batch_size=min(512, settings.max_queue_size),
            export_timeout_millis=int(settings.export_timeout_s * 1000),
        )
    )
    with _lock:
        _state = _State(provider, provider.get_tracer("scorestream"), service, tenant)
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
    return True


def active() -> bool:
    return _state is not None


def tracer() -> trace.Tracer:
    """The configured tracer, or the API's no-op tracer when tracing is off."""
    return _state.tracer if _state is not None else trace.NoOpTracer()


def flush(timeout_s: float = 10.0) -> bool:
    """Export what is queued (a service calls this before it exits)."""
    state = _state
    return True if state is None else state.provider.force_flush(int(timeout_s * 1000))


def shutdown() -> None:
    """Flush and stop the exporter thread; tracing is off afterwards."""
    global _state
    with _lock:
        state, _state = _state, None
    if state is not None:
        state.provider.shutdown()
