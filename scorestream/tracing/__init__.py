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

Layout: :mod:`~scorestream.tracing.provider` (:func:`setup`, the tracer),
:mod:`~scorestream.tracing.propagation` (W3C context in Kafka headers),
:mod:`~scorestream.tracing.conventions` (attribute names), :mod:`~scorestream.tracing.hops`
(consume → produce outside the processor), :mod:`~scorestream.tracing.http_spans` (HTTP client
and server spans), :mod:`~scorestream.tracing.batches` (the processor's batches) and
:mod:`~scorestream.tracing.settings`.
"""

from __future__ import annotations

from scorestream.tracing.batches import BatchTrace, batch, parent_of
from scorestream.tracing.conventions import (
    BATCH_COUNT,
    DESTINATION,
    GROUP,
    KEY,
    MESSAGE_ID,
    OFFSET,
    OPERATION_NAME,
    OPERATION_TYPE,
    PARTITION,
    SYSTEM,
    TENANT,
    kafka_attributes,
)
from scorestream.tracing.hops import continue_from_headers, hop, send_span
from scorestream.tracing.http_spans import ServerSpanMiddleware, client_span, http_result
from scorestream.tracing.propagation import (
    GETTER,
    PROPAGATOR,
    SETTER,
    TRACE_HEADERS,
    Carrier,
    HeaderList,
    HeaderValue,
    KafkaHeadersGetter,
    KafkaHeadersSetter,
    extract,
    inject,
    trace_ids,
    w3c,
)
from scorestream.tracing.provider import active, flush, setup, shutdown, tracer
from scorestream.tracing.settings import TracingSettings

__all__ = [
    "BATCH_COUNT",
    "DESTINATION",
    "GETTER",
    "GROUP",
    "KEY",
    "MESSAGE_ID",
    "OFFSET",
    "OPERATION_NAME",
    "OPERATION_TYPE",
    "PARTITION",
    "PROPAGATOR",
    "SETTER",
    "SYSTEM",
    "TENANT",
    "TRACE_HEADERS",
    "BatchTrace",
    "Carrier",
    "HeaderList",
    "HeaderValue",
    "KafkaHeadersGetter",
    "KafkaHeadersSetter",
    "ServerSpanMiddleware",
    "TracingSettings",
    "active",
    "batch",
    "client_span",
    "continue_from_headers",
    "extract",
    "flush",
    "hop",
    "http_result",
    "inject",
    "kafka_attributes",
    "parent_of",
    "send_span",
    "setup",
    "shutdown",
    "trace_ids",
    "tracer",
    "w3c",
]
