"""The spans of the processor's batches (:mod:`scorestream.tracing`): a batch span linking every
message's context, a process span per message, a send span per output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from scorestream.tracing import provider
from scorestream.tracing.conventions import BATCH_COUNT, kafka_attributes
from scorestream.tracing.propagation import GETTER, Carrier, extract, w3c
from scorestream.tracing.provider import tracer

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
    return (
        BatchTrace(topics=topics, group=group, count=count) if provider._state is not None else None
    )
