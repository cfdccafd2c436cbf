"""Spans of one Kafka message outside the processor (:mod:`scorestream.tracing`): the gateway,
Quix Streams pipelines, webhooks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from scorestream.tracing import provider
from scorestream.tracing.conventions import kafka_attributes
from scorestream.tracing.propagation import SETTER, Carrier, HeaderList, _text, extract, w3c
from scorestream.tracing.provider import tracer


# -- per-message helpers (gateway, Quix pipelines, webhooks) --------------------------------------
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
    if provider._state is None:
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
