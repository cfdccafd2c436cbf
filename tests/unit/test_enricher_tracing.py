"""The enricher's spans with the SDK's in-memory exporter: a ``process`` span per transaction
continuing the input's trace (messaging attributes of the consumed record), a ``send`` span
under it whose context the output carries, and no span work for unsampled traces."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from consumers.enricher import mark_span_start, traced_output
from consumers.enricher_stages import (
    Record,
    account_stage,
    decode_input,
    merchant_stage,
    raw_record,
    with_sequence,
)
from schemas.cloudevents import decode, encode
from schemas.errors import RawRecord
from schemas.events import TransactionEvent
from scorestream import tracing
from scorestream.tracing import TracingSettings
from tests.factories import transaction

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    assert tracing.setup("enricher", "acme", TracingSettings(sampler_ratio=1.0), exporter=exp)
    yield exp
    tracing.shutdown()


def _raw(flags: str) -> RawRecord:
    tx = transaction(tenant_id="acme", account_id="acc-9")
    m = encode(tx, source="tests", trace={"traceparent": f"00-{TRACE}-{PARENT}-{flags}"})
    return raw_record(m.key, m.value, m.headers, topic="acme.transactions", partition=3, offset=41)


def _through_stages(raw: RawRecord) -> Record:
    """decode → account (+seq) → merchant, with JSON hops like the repartition topics."""
    rec = decode_input(raw, tenant="acme", accept=TransactionEvent)
    assert isinstance(rec, dict)
    mark_span_start(rec, raw)
    rec, _ = account_stage(json.loads(json.dumps(rec)), None)
    rec, _ = with_sequence(rec, None)
    out, _, _ = merchant_stage(json.loads(json.dumps(rec)), None, None)
    assert out is not None
    return json.loads(json.dumps(out))  # type: ignore[no-any-return]


def test_process_span_continues_the_input_and_the_output_names_the_send_span(
    exporter: InMemorySpanExporter,
) -> None:
    raw = _raw("01")
    out = traced_output(_through_stages(raw), group="acme.enricher", out_topic="acme.enriched")
    assert tracing.flush()
    spans: dict[str, ReadableSpan] = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"process acme.transactions", "send acme.enriched"}
    process, send = spans["process acme.transactions"], spans["send acme.enriched"]
    assert process.parent is not None
    assert process.parent.span_id == int(PARENT, 16)
    assert process.context.trace_id == int(TRACE, 16)
    assert process.kind == SpanKind.CONSUMER
    attrs = dict(process.attributes or {})
    assert attrs[tracing.SYSTEM] == "kafka"
    assert attrs[tracing.DESTINATION] == "acme.transactions"
    assert attrs[tracing.PARTITION] == "3"
    assert attrs[tracing.OFFSET] == 41
    assert attrs[tracing.GROUP] == "acme.enricher"
    assert attrs[tracing.MESSAGE_ID] == dict(raw.headers)["ce_id"].decode()  # type: ignore[union-attr]
    assert send.parent is not None
    assert send.parent.span_id == process.context.span_id
    assert send.kind == SpanKind.PRODUCER
    assert process.start_time is not None
    assert send.start_time is not None
    assert process.start_time <= send.start_time  # from decode, before the output
    env = decode(raw_record(out.key, out.value, out.headers, topic="o", partition=0, offset=0))
    assert env.trace["traceparent"] == f"00-{TRACE}-{send.context.span_id:016x}-01"


def test_unsampled_traces_get_no_spans_and_pass_their_context_on(
    exporter: InMemorySpanExporter,
) -> None:
    raw = _raw("00")
    rec = _through_stages(raw)
    assert "span" not in rec  # nothing extra travels through the stages
    out = traced_output(rec, group="acme.enricher", out_topic="acme.enriched")
    assert tracing.flush()
    assert exporter.get_finished_spans() == ()
    env = decode(raw_record(out.key, out.value, out.headers, topic="o", partition=0, offset=0))
    assert env.trace["traceparent"] == f"00-{TRACE}-{PARENT}-00"


def test_tracing_off_marks_nothing_and_keeps_the_input_context() -> None:
    tracing.shutdown()
    raw = _raw("01")
    rec = _through_stages(raw)
    assert "span" not in rec
    out = traced_output(rec, group="acme.enricher", out_topic="acme.enriched")
    env = decode(raw_record(out.key, out.value, out.headers, topic="o", partition=0, offset=0))
    assert env.trace["traceparent"] == f"00-{TRACE}-{PARENT}-01"
