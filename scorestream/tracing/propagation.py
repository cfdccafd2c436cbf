"""W3C trace context in Kafka headers (:mod:`scorestream.tracing`): the OTel TraceContext
propagator with a getter and a setter for lists of header pairs (or a dict)."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

HeaderValue = str | bytes | None
HeaderList = list[tuple[str, HeaderValue]]
Carrier = Mapping[str, str] | Sequence[tuple[str, HeaderValue]]
"""Kafka headers as confluent-kafka / Quix give them (a list of pairs), or a plain dict."""

TRACE_HEADERS = ("traceparent", "tracestate")


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
