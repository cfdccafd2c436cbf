"""Tracing helpers with the SDK's in-memory exporter: W3C propagation through Kafka headers,
parent chains across hops, batch links, semantic-convention attributes, the disabled no-op."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from scorestream import tracing
from scorestream.tracing import TracingSettings

UPSTREAM = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UPSTREAM_TRACE = int("0af7651916cd43dd8448eb211c80319c", 16)
UPSTREAM_SPAN = int("b7ad6b7169203331", 16)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    assert tracing.setup("worker", "acme", TracingSettings(sampler_ratio=1.0), exporter=exp)
    yield exp
    tracing.shutdown()


def finished(exp: InMemorySpanExporter) -> list[ReadableSpan]:
    assert tracing.flush()
    return list(exp.get_finished_spans())


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    """The one span of that name that has a parent (batch spans are roots of their own)."""
    matches = [s for s in spans if s.name == name and s.parent is not None]
    assert len(matches) == 1, [s.name for s in spans]
    return matches[0]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_settings_endpoint_from_otel_env_and_enabled_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCORESTREAM_TRACING_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert not TracingSettings().active
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")
    s = TracingSettings()
    assert s.active
    assert s.traces_url() == "http://127.0.0.1:4318/v1/traces"
    monkeypatch.setenv("SCORESTREAM_TRACING_ENDPOINT", "http://collector:4318/v1/traces")
    assert TracingSettings().traces_url() == "http://collector:4318/v1/traces"
    monkeypatch.setenv("SCORESTREAM_TRACING_ENABLED", "false")
    assert not TracingSettings().active
    monkeypatch.setenv("SCORESTREAM_TRACING_SAMPLER_RATIO", "1.5")
    with pytest.raises(ValueError, match="sampler_ratio"):
        TracingSettings()


def test_disabled_tracing_is_a_no_op_that_keeps_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("SCORESTREAM_TRACING_ENDPOINT", raising=False)
    assert not tracing.setup("worker", "acme")
    assert not tracing.active()
    assert tracing.batch(["t"], "g", 1) is None
    headers: list[tuple[str, str | bytes | None]] = [("traceparent", UPSTREAM.encode())]
    assert tracing.hop(headers, consumed_from="a", produce_to="b") == headers
    with tracing.send_span("b") as sent:
        assert sent == {}
    assert tracing.inject(list(headers)) == headers


def test_getter_and_setter_work_on_kafka_header_lists_and_dicts() -> None:
    headers: list[tuple[str, str | bytes | None]] = [
        ("ce_id", b"e1"),
        ("traceparent", b"00-00000000000000000000000000000001-0000000000000001-01"),
        ("traceparent", UPSTREAM.encode()),  # the last occurrence wins
    ]
    assert tracing.GETTER.get(headers, "traceparent") == [UPSTREAM]
    assert tracing.GETTER.get({"traceparent": UPSTREAM}, "traceparent") == [UPSTREAM]
    assert tracing.GETTER.get(headers, "tracestate") is None
    assert tracing.trace_ids(headers) == (f"{UPSTREAM_TRACE:032x}", f"{UPSTREAM_SPAN:016x}")
    assert tracing.trace_ids([("traceparent", b"garbage")]) == (None, None)
    tracing.SETTER.set(headers, "traceparent", "x")
    assert [h for h in headers if h[0] == "traceparent"] == [("traceparent", b"x")]


def test_one_trace_across_hops_with_parent_links_and_messaging_attributes(
    exporter: InMemorySpanExporter,
) -> None:
    # gateway: server span continuing the client's traceparent, producer span under it
    with (
        tracing.continue_from_headers(
            {"traceparent": UPSTREAM, "tracestate": "vendor=1"},
            "POST /v1/transactions",
            kind=SpanKind.SERVER,
        ),
        tracing.send_span("acme.transactions", key="acc-1") as sent,
    ):
        gateway_headers = dict(sent)
    assert gateway_headers["tracestate"] == "vendor=1"  # tracestate travels on

    # worker: a batch of two messages from different traces
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    batch = tracing.batch(["acme.transactions"], "acme.worker", 2)
    assert batch is not None
    batch.consumed(
        gateway_headers, topic="acme.transactions", partition=2, offset=41, key=b"acc-1",
        message_id="ev-1",
    )  # fmt: skip
    batch.consumed(
        {"traceparent": other}, topic="acme.transactions", partition=0, offset=7, key=b"acc-2",
        message_id="ev-2",
    )  # fmt: skip
    worker_headers = batch.sending("acme.predictions", gateway_headers, key=b"acc-1")
    batch.end(committed=True)

    # decision: continues from the worker's send span
    batch2 = tracing.batch(["acme.predictions"], "acme.decision", 1)
    assert batch2 is not None
    batch2.consumed(
        worker_headers, topic="acme.predictions", partition=1, offset=3, key=b"acc-1",
        message_id="ev-3",
    )  # fmt: skip
    batch2.end(committed=True)

    spans = finished(exporter)
    server = next(s for s in spans if s.name == "POST /v1/transactions")
    gw_send = by_name(spans, "send acme.transactions")
    w_send = by_name(spans, "send acme.predictions")
    d_process = by_name(spans, "process acme.predictions")
    w_process = [s for s in spans if s.name == "process acme.transactions" and s.parent]
    assert len(w_process) == 2  # one per message; the batch span has no parent
    w_mine = next(s for s in w_process if s.context.trace_id == UPSTREAM_TRACE)
    w_batch = next(s for s in spans if s.name == "process acme.transactions" and not s.parent)

    # one trace, each hop the child of the previous one
    assert {s.context.trace_id for s in (server, gw_send, w_mine, w_send, d_process)} == {
        UPSTREAM_TRACE
    }
    assert parent_id(server) == UPSTREAM_SPAN
    assert parent_id(gw_send) == server.context.span_id
    assert parent_id(w_mine) == gw_send.context.span_id
    assert parent_id(w_send) == w_mine.context.span_id
    assert parent_id(d_process) == w_send.context.span_id
    # the other message keeps its own trace
    w_other = next(s for s in w_process if s is not w_mine)
    assert w_other.context.trace_id == int("1" * 32, 16)

    # the batch span links every message's context; each process span links the batch
    linked = {(link.context.trace_id, link.context.span_id) for link in w_batch.links}
    assert linked == {
        (UPSTREAM_TRACE, gw_send.context.span_id),
        (int("1" * 32, 16), int("2" * 16, 16)),
    }
    assert w_mine.links[0].context.span_id == w_batch.context.span_id
    assert w_batch.attributes is not None
    assert w_batch.attributes["messaging.batch.message_count"] == 2

    assert w_mine.kind is SpanKind.CONSUMER
    assert gw_send.kind is SpanKind.PRODUCER
    assert dict(w_mine.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "acme.transactions",
        "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 41,
        "messaging.kafka.message.key": "acc-1",
        "messaging.consumer.group.name": "acme.worker",
        "messaging.message.id": "ev-1",
    }
    assert w_send.attributes is not None
    assert w_send.attributes["messaging.destination.name"] == "acme.predictions"
    assert w_send.attributes["messaging.operation.type"] == "send"
    assert w_mine.resource.attributes["service.name"] == "scorestream-worker"
    assert w_mine.resource.attributes["scorestream.tenant"] == "acme"


def test_aborted_batch_and_dead_letters_mark_spans_as_errors(
    exporter: InMemorySpanExporter,
) -> None:
    batch = tracing.batch(["acme.decisions"], "acme.notifier", 2)
    assert batch is not None
    batch.consumed(
        {"traceparent": UPSTREAM}, topic="acme.decisions", partition=0, offset=1, key=None,
        message_id="e",
    )  # fmt: skip
    # a record that could not even be decoded: a send span to the DLQ in its trace
    other = "00-33333333333333333333333333333333-4444444444444444-01"
    batch.dead_letter([("traceparent", other.encode())], "acme.decisions.dlq", "schema")
    batch.sending("acme.alerts", {"traceparent": UPSTREAM})
    batch.end(committed=False)
    spans = finished(exporter)
    assert sorted(s.name for s in spans) == [
        "process acme.decisions",  # the batch span
        "process acme.decisions",  # the message's span
        "send acme.alerts",
        "send acme.decisions.dlq",
    ]
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)
    dlq = by_name(spans, "send acme.decisions.dlq")
    assert dlq.context.trace_id == int("3" * 32, 16)
    assert dlq.attributes is not None
    assert dlq.attributes["scorestream.dlq.reason"] == "schema"


def test_hop_for_stream_pipelines_and_client_span_under_a_process_span(
    exporter: InMemorySpanExporter,
) -> None:
    incoming: list[tuple[str, str | bytes | None]] = [
        ("ce_id", b"e1"),
        ("traceparent", UPSTREAM.encode()),
    ]
    out = tracing.hop(
        incoming, consumed_from="acme.transactions", produce_to="acme.transactions.enriched",
        group="acme.enricher", partition=0, offset=5, key=b"acc-1",
    )  # fmt: skip
    assert incoming[1] == ("traceparent", UPSTREAM.encode())  # the input is not modified
    assert out[0] == ("ce_id", b"e1")
    # the next consumer continues from the send span, and code running for that message
    # (a webhook) parents under the process span while the batch is open
    nxt = dict((k, v.decode() if isinstance(v, bytes) else v) for k, v in out if v is not None)
    batch = tracing.batch(["acme.transactions.enriched"], "acme.worker", 1)
    assert batch is not None
    batch.consumed(
        {"traceparent": nxt["traceparent"]}, topic="acme.transactions.enriched", partition=0,
        offset=1, key=None, message_id=None,
    )  # fmt: skip
    with tracing.client_span(
        "POST", "http://hooks.local:8080/alerts?token=s3cr3t",
        parent=tracing.parent_of({"traceparent": nxt["traceparent"]}),
    ) as (span, sent):  # fmt: skip
        tracing.http_result(span, 503, "HTTPStatus", attempts=3)
        assert sent["traceparent"].split("-")[1] == f"{UPSTREAM_TRACE:032x}"
    batch.end(committed=True)
    spans = finished(exporter)
    process = by_name(spans, "process acme.transactions")
    send = by_name(spans, "send acme.transactions.enriched")
    worker = next(s for s in spans if s.name == "process acme.transactions.enriched" and s.parent)
    client = next(s for s in spans if s.name == "POST")
    assert parent_id(process) == UPSTREAM_SPAN
    assert parent_id(send) == process.context.span_id
    assert parent_id(worker) == send.context.span_id
    assert parent_id(client) == worker.context.span_id
    assert client.kind is SpanKind.CLIENT
    assert client.attributes is not None
    # no path (tokens live there), no query string (signatures), no user-info (passwords)
    assert client.attributes["url.full"] == "http://hooks.local:8080/***?***"
    assert client.attributes["server.address"] == "hooks.local"
    assert client.attributes["server.port"] == 8080
    assert client.attributes["http.request.resend_count"] == 2
    assert client.status.status_code is StatusCode.ERROR
    assert tracing.parent_of({"traceparent": nxt["traceparent"]}) is not None


def test_sampler_ratio_zero_records_nothing_but_still_propagates() -> None:
    exp = InMemorySpanExporter()
    tracing.setup("gateway", "acme", TracingSettings(sampler_ratio=0.0), exporter=exp)
    try:
        with tracing.send_span("acme.transactions") as sent:
            pass
        # context still sent, with the sampled bit off (0x02 is W3C level 2's random-id flag)
        assert int(sent["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0
        batch = tracing.batch(["acme.transactions"], "acme.worker", 1)
        assert batch is not None
        batch.consumed(
            sent, topic="acme.transactions", partition=0, offset=0, key=None, message_id=None
        )
        out = batch.sending("acme.predictions", sent)
        batch.end(committed=True)
        # an unsampled trace costs no spans downstream: the context is passed on as it came
        assert out == sent
        assert finished(exp) == []
    finally:
        tracing.shutdown()


def test_server_span_middleware_names_the_route_and_continues_the_caller(
    exporter: InMemorySpanExporter,
) -> None:
    app = FastAPI()

    @app.post("/v1/items/{item}")
    async def item(item: str) -> dict[str, str]:
        with tracing.send_span("acme.transactions") as sent:
            return {"traceparent": sent["traceparent"]}

    @app.get("/livez")
    async def livez() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(tracing.ServerSpanMiddleware)

    async def calls() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            body: dict[str, Any] = (
                await client.post("/v1/items/7", headers={"traceparent": UPSTREAM})
            ).json()
            assert (await client.get("/livez")).status_code == 200
            return body

    body = asyncio.run(calls())
    spans = finished(exporter)
    server = by_name(spans, "POST /v1/items/{item}")
    send = by_name(spans, "send acme.transactions")
    assert server.kind is SpanKind.SERVER
    assert parent_id(server) == UPSTREAM_SPAN
    assert parent_id(send) == server.context.span_id
    assert body["traceparent"] == f"00-{UPSTREAM_TRACE:032x}-{send.context.span_id:016x}-01"
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.route"] == "/v1/items/{item}"
    assert len(spans) == 2  # /livez is not traced


def test_hop_on_a_trace_dict_returns_a_dict_in_the_same_trace(
    exporter: InMemorySpanExporter,
) -> None:
    out = tracing.hop(
        {"traceparent": UPSTREAM, "tracestate": "v=1"}, consumed_from="a", produce_to="b"
    )
    assert isinstance(out, dict)
    assert out["traceparent"].split("-")[1] == f"{UPSTREAM_TRACE:032x}"
    assert out["traceparent"] != UPSTREAM
    assert out["tracestate"] == "v=1"
    send = by_name(finished(exporter), "send b")
    assert out["traceparent"].split("-")[2] == f"{send.context.span_id:016x}"
