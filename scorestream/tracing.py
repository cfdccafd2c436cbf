"""OpenTelemetry tracing: one trace per transaction across every Kafka hop.

Each service calls :func:`setup` once; spans go through a ``BatchSpanProcessor`` (a background
thread, a bounded queue that drops rather than blocks) to an OTLP/HTTP exporter, which Jaeger v2
and any OpenTelemetry Collector ingest natively. When tracing is not configured nothing is set
up and every helper here is a cheap no-op that leaves the W3C headers as they were, so a trace
still flows *through* a service that does not report spans.

Context travels in Kafka headers as W3C ``traceparent`` / ``tracestate`` (the OTel
TraceContext propagator with a getter/setter for Kafka header lists). The hops:

* a consumer starts a ``process <topic>`` span per message, a child of the context in *that
  message's* headers (batches never merge traces); the batch gets its own span that *links*
  every message's context (:class:`BatchTrace`, used by :mod:`scorestream.processor`);
* a producer starts a ``send <topic>`` span, a child of the process span of the message the
  output derives from, and injects the send span's context into the outgoing headers, so the
  next hop is its child;
* outside the processor (the gateway, a Quix Streams pipeline) use :func:`continue_from_headers`,
  :func:`send_span`, :func:`hop` and :func:`inject`.

Attribute names follow the messaging semantic conventions of the installed
``opentelemetry-semantic-conventions`` (``messaging.destination.partition.id``,
``messaging.kafka.offset``, ``messaging.consumer.group.name``, ``messaging.operation.type``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from scorestream.logs import redact_url

HeaderValue = str | bytes | None
HeaderList = list[tuple[str, HeaderValue]]
Carrier = Mapping[str, str] | Sequence[tuple[str, HeaderValue]]
"""Kafka headers as confluent-kafka / Quix give them (a list of pairs), or a plain dict."""

# messaging semantic conventions (opentelemetry-semantic-conventions 0.66b2, incubating names)
SYSTEM = "messaging.system"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
OFFSET = "messaging.kafka.offset"
KEY = "messaging.kafka.message.key"
GROUP = "messaging.consumer.group.name"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
MESSAGE_ID = "messaging.message.id"
BATCH_COUNT = "messaging.batch.message_count"
TENANT = "scorestream.tenant"

TRACE_HEADERS = ("traceparent", "tracestate")


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
    max_queue_size: int = Field(default=8192, ge=128)
    export_timeout_s: float = Field(default=10.0, gt=0)
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


# -- Kafka header carrier ------------------------------------------------------------------------
def _text(value: HeaderValue) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


class KafkaHeadersGetter(Getter[Carrier]):
    """Reads a header from a list of pairs (the last occurrence wins) or a mapping."""

    def get(self, carrier: Carrier, key: str) -> list[str] | None:
        if isinstance(carrier, Mapping):
            value = carrier.get(key)
            return None if value is None else [value]
        found: str | None = None
        for name, raw in carrier:
            if name == key:
                found = _text(raw)
        return None if found is None else [found]

    def keys(self, carrier: Carrier) -> list[str]:
        if isinstance(carrier, Mapping):
            return list(carrier)
        return [name for name, _ in carrier]


class KafkaHeadersSetter(Setter[Any]):
    """Writes a header into a list of pairs (replacing earlier ones, as bytes) or a dict."""

    def set(self, carrier: Any, key: str, value: str) -> None:
        if isinstance(carrier, MutableMapping):
            carrier[key] = value
            return
        carrier[:] = [(n, v) for n, v in carrier if n != key]
        carrier.append((key, value.encode()))


GETTER = KafkaHeadersGetter()
SETTER = KafkaHeadersSetter()
PROPAGATOR = TraceContextTextMapPropagator()


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


# -- propagation --------------------------------------------------------------------------------
def extract(headers: Carrier | None) -> Context:
    """The remote context in ``headers`` (an empty context when there is none or it is invalid)."""
    return PROPAGATOR.extract(headers or {}, getter=GETTER)


def inject(headers: Any, context: Context | Span | None = None) -> Any:
    """Write ``traceparent``/``tracestate`` of ``context`` (default: the current span) into
    ``headers`` — a list of pairs (Kafka, Quix) or a dict (HTTP) — and return it. With tracing
    off, or no valid span, the headers are left as they are."""
    if isinstance(context, Span):
        context = trace.set_span_in_context(context)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return headers
    PROPAGATOR.inject(headers, context=context, setter=SETTER)
    return headers


def w3c(span: Span) -> dict[str, str]:
    """The W3C headers naming ``span`` as the parent (empty for an invalid span)."""
    out: dict[str, str] = {}
    inject(out, span)
    return out


def trace_ids(headers: Carrier | None) -> tuple[str | None, str | None]:
    """(trace id, span id) in hex from W3C headers, for log lines; (None, None) without."""
    ctx = trace.get_current_span(extract(headers)).get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# -- per-message helpers (gateway, Quix pipelines, webhooks) --------------------------------------
def kafka_attributes(
    topic: str | None,
    *,
    operation: str,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | str | None = None,
    group: str | None = None,
    message_id: str | None = None,
) -> dict[str, str | int]:
    """Messaging semantic-convention attributes of one Kafka message."""
    attrs: dict[str, str | int] = {
        SYSTEM: "kafka",
        OPERATION_TYPE: operation,
        OPERATION_NAME: operation,
    }
    if topic:
        attrs[DESTINATION] = topic
    if partition is not None and partition >= 0:
        attrs[PARTITION] = str(partition)
    if offset is not None and offset >= 0:
        attrs[OFFSET] = offset
    if key:
        attrs[KEY] = key if isinstance(key, str) else key.decode("utf-8", errors="replace")
    if group:
        attrs[GROUP] = group
    if message_id:
        attrs[MESSAGE_ID] = message_id
    return attrs  # the tenant is on the resource of every span, not repeated here


@contextlib.contextmanager
def continue_from_headers(
    headers: Carrier | None,
    name: str,
    attributes: Mapping[str, str | int] | None = None,
    *,
    kind: SpanKind = SpanKind.CONSUMER,
) -> Iterator[Span]:
    """A current span that continues the trace in ``headers`` (e.g. ``process <topic>``).

    Exceptions are recorded on the span and re-raised."""
    with tracer().start_as_current_span(
        name, context=extract(headers), kind=kind, attributes=attributes
    ) as span:
        yield span


@contextlib.contextmanager
def send_span(
    topic: str,
    *,
    parent: Context | Span | None = None,
    key: bytes | str | None = None,
    partition: int | None = None,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[dict[str, str]]:
    """A ``send <topic>`` producer span (child of ``parent``, default the current span) for as
    long as the block runs; yields the W3C headers to put on the record (empty when tracing is
    off: then keep the incoming ones)."""
    if isinstance(parent, Span):
        parent = trace.set_span_in_context(parent)
    attrs = kafka_attributes(topic, operation="send", key=key, partition=partition)
    attrs.update(attributes or {})
    span = tracer().start_span(
        f"send {topic}", context=parent, kind=SpanKind.PRODUCER, attributes=attrs
    )
    try:
        yield w3c(span)
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()


def hop(
    headers: Carrier | None,
    *,
    consumed_from: str,
    produce_to: str,
    group: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | str | None = None,
) -> Any:
    """One consume → produce hop in a single call, for stream pipelines (Quix ``set_headers``,
    or the ``trace`` dict an output is encoded with): records a ``process`` span continuing
    ``headers`` and a ``send`` span under it, and returns a copy of ``headers`` — a list of
    pairs for a list, a dict for a mapping — carrying the send span's context (an unchanged
    copy when tracing is off)."""
    if isinstance(headers, Mapping):
        pairs = hop(
            list(headers.items()),
            consumed_from=consumed_from,
            produce_to=produce_to,
            group=group,
            partition=partition,
            offset=offset,
            key=key,
        )
        return {k: _text(v) or "" for k, v in pairs}
    items: HeaderList = list(headers or [])
    if _state is None:
        return items
    attrs = kafka_attributes(
        consumed_from,
        operation="process",
        partition=partition,
        offset=offset,
        key=key,
        group=group,
    )
    with (
        continue_from_headers(items, f"process {consumed_from}", attrs) as span,
        send_span(produce_to, parent=span, key=key) as out,
    ):
        for name, value in out.items():
            SETTER.set(items, name, value)
    return items


@contextlib.contextmanager
def client_span(
    method: str, url: str, *, parent: Context | Span | None = None
) -> Iterator[tuple[Span, dict[str, str]]]:
    """An HTTP client span; yields it and the W3C headers to send.

    ``url.full`` is the URL as :func:`scorestream.logs.redact_url` leaves it (scheme, host,
    port; user-info, path, query and fragment masked): a webhook URL carries its credentials
    there, and spans are kept and read like logs (the semantic conventions ask the same)."""
    if isinstance(parent, Span):
        parent = trace.set_span_in_context(parent)
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    attrs: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": redact_url(url),
        "server.address": parts.hostname or "",
    }
    if port:
        attrs["server.port"] = port
    with tracer().start_as_current_span(
        method, context=parent, kind=SpanKind.CLIENT, attributes=attrs
    ) as span:
        yield span, w3c(span)


def http_result(span: Span, status: int | None, error_type: str = "", attempts: int = 1) -> None:
    """Record an HTTP outcome on a client span (error status from 500 or a transport error)."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if attempts > 1:
        span.set_attribute("http.request.resend_count", attempts - 1)
    if error_type:
        span.set_attribute("error.type", error_type)
    if error_type or (status is not None and status >= 500):
        span.set_status(Status(StatusCode.ERROR, error_type or str(status)))


class ServerSpanMiddleware:
    """ASGI middleware: a SERVER span per HTTP request, continuing a ``traceparent`` header, and
    current while the app runs (so a producer span in a handler is its child). Named
    ``<METHOD> <route template>`` once routing has matched (low cardinality), else the method.
    Written by hand rather than taken from opentelemetry-instrumentation-asgi: it is thirty
    lines, and that package pins its own semantic-conventions versions."""

    def __init__(self, app: Any, *, exclude: Sequence[str] = ("/livez", "/readyz", "/metrics")):
        self.app = app
        self.exclude = tuple(exclude)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or _state is None or scope["path"] in self.exclude:
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k in (b"traceparent", b"tracestate")
        }
        method = scope["method"]
        attrs: dict[str, str | int] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        if _state.tenant:
            attrs[TENANT] = _state.tenant
        status: list[int] = []

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with continue_from_headers(headers, method, attrs, kind=SpanKind.SERVER) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        span.set_status(Status(StatusCode.ERROR, str(status[0])))


# -- the processor's batches --------------------------------------------------------------------
_registry: dict[str, Span] = {}
"""traceparent of a message in the batch being processed → its process span, so that code
running for that message (a webhook in a thread pool) can parent its spans under it."""


def _unsampled(traceparent: str | None) -> bool:
    """A valid-looking ``traceparent`` whose sampled flag is off: nobody records this trace, so
    the hop only passes the context on (no span objects on the hot path)."""
    if not traceparent or len(traceparent) != 55:
        return False
    try:
        return not int(traceparent[53:], 16) & 1
    except ValueError:
        return False


def parent_of(trace_headers: Carrier | None) -> Context:
    """The context to parent work for a consumed message under: its process span while the
    processor handles it, else the context in its headers."""
    if trace_headers is not None:
        tp = GETTER.get(trace_headers, "traceparent")
        span = _registry.get(tp[0]) if tp else None
        if span is not None:
            return trace.set_span_in_context(span)
    return extract(trace_headers)


class BatchTrace:
    """The spans of one processor batch: a batch span linking every message's context, a
    process span per message (child of that message's context), send spans per output.

    Messages of unsampled traces (``traceparent`` flag 00) get no spans at all and their outputs
    carry the incoming context on: with a sampler ratio below 1 at the gateway, the hot path of
    every later hop costs the ratio times the full span work, not a span per message."""

    def __init__(self, *, topics: Sequence[str], group: str, count: int) -> None:
        self.group = group
        self.tracer = tracer()
        self.by_parent: dict[str, Span] = {}
        self.spans: list[Span] = []
        self.links: list[Link] = []
        attrs = kafka_attributes(
            topics[0] if len(topics) == 1 else None, operation="process", group=group
        )
        attrs[BATCH_COUNT] = count
        self.batch = self.tracer.start_span(
            f"process {' '.join(topics)}", kind=SpanKind.CONSUMER, attributes=attrs
        )

    def consumed(
        self,
        trace_headers: Mapping[str, str],
        *,
        topic: str | None,
        partition: int | None,
        offset: int | None,
        key: bytes | None,
        message_id: str | None,
    ) -> None:
        tp = trace_headers.get("traceparent")
        if _unsampled(tp):
            return
        ctx = extract(trace_headers)
        remote = trace.get_current_span(ctx).get_span_context()
        if remote.is_valid:
            self.links.append(Link(remote))
        attrs = kafka_attributes(
            topic,
            operation="process",
            partition=partition,
            offset=offset,
            key=key,
            group=self.group,
            message_id=message_id,
        )
        span = self.tracer.start_span(
            f"process {topic}",
            context=ctx,
            kind=SpanKind.CONSUMER,
            attributes=attrs,
            links=[Link(self.batch.get_span_context())],
        )
        self.spans.append(span)
        if tp:
            self.by_parent[tp] = span
            _registry[tp] = span

    def sending(
        self,
        topic: str,
        trace_headers: Mapping[str, str] | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> dict[str, str]:
        """Start a send span for one output and return the headers naming it as parent: under
        the process span of the message the output derives from (its ``trace``), else under
        that context, else under the batch span."""
        tp = trace_headers.get("traceparent") if trace_headers else None
        parent = self.by_parent.get(tp) if tp else None
        if parent is None and trace_headers and _unsampled(tp):
            return dict(trace_headers)  # an unsampled trace: pass the context on
        if parent is not None:
            ctx = trace.set_span_in_context(parent)
        elif trace_headers:
            ctx = extract(trace_headers)
        else:
            ctx = trace.set_span_in_context(self.batch)
        span = self.tracer.start_span(
            f"send {topic}",
            context=ctx,
            kind=SpanKind.PRODUCER,
            attributes=kafka_attributes(topic, operation="send", key=key, partition=partition),
        )
        self.spans.append(span)
        out = w3c(span)
        if not out and trace_headers:  # not recorded (e.g. an invalid context): pass through
            return dict(trace_headers)
        return out

    def dead_letter(self, trace_headers: Carrier, topic: str, reason: str) -> None:
        """Mark the message's process span (or a new send span) as failed with the reason."""
        tp = GETTER.get(trace_headers, "traceparent")
        span = self.by_parent.get(tp[0]) if tp else None
        if span is None:
            span = self.tracer.start_span(
                f"send {topic}",
                context=extract(trace_headers),
                kind=SpanKind.PRODUCER,
                attributes=kafka_attributes(topic, operation="send"),
            )
            self.spans.append(span)
        span.set_attribute("scorestream.dlq.reason", reason)
        span.set_status(Status(StatusCode.ERROR, f"dead-lettered: {reason}"))

    def end(self, *, committed: bool) -> None:
        if self.links:
            # links can only be given at start in older SDKs; add_link exists on SDK spans
            for link in self.links:
                self.batch.add_link(link.context)
        if not committed:
            for span in self.spans:
                span.set_status(Status(StatusCode.ERROR, "transaction aborted"))
            self.batch.set_status(Status(StatusCode.ERROR, "transaction aborted"))
        for span in self.spans:
            span.end()
        self.batch.end()
        for tp in self.by_parent:
            _registry.pop(tp, None)


def batch(topics: Sequence[str], group: str, count: int) -> BatchTrace | None:
    """A :class:`BatchTrace` when tracing is on, else None (the processor skips all span work)."""
    return BatchTrace(topics=topics, group=group, count=count) if _state is not None else None
