"""The pure parts of the gateway's HTTP hardening (issue 15, items 4, 9, 13, 17): bounded metric
labels, strict JSON, the event-time window, V2 shape errors, redacted parameter errors, the
per-key in-flight bound and the content-type gate, on minimal ASGI apps (no processes)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from producers.gateway import RequestInvalid, parse_transaction, redacted_errors
from producers.gateway.auth import ApiKeyMiddleware, KeyStore, new_key, parse_keys
from producers.gateway.http import (
    ContentTypeMiddleware,
    MethodFilterMiddleware,
    method_label,
)
from producers.gateway.strict_json import JsonBodyError, loads
from producers.gateway.v2 import V2RequestError, parse_infer_request
from scorestream.event_time import EventTimeSettings, out_of_window
from tests.factories import transaction_json

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_method_labels_are_bounded() -> None:
    assert method_label("POST") == "POST"
    assert method_label("X" * 8000) == "_OTHER"
    assert method_label("post") == "_OTHER"  # methods are case-sensitive (RFC 9110)
    assert method_label("CONNECT") == "_OTHER"


def test_strict_json() -> None:
    assert loads(b'{"a": [{"b": 1}, {"b": 2}]}') == {"a": [{"b": 1}, {"b": 2}]}
    with pytest.raises(JsonBodyError) as dup:
        loads(b'{"a": {"b": 1, "b": 2}}')
    assert (dup.value.kind, dup.value.key) == ("json_duplicate_key", "b")
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        with pytest.raises(JsonBodyError, match="nested too deeply") as info:
            loads(deep)
        assert info.value.kind == "json_invalid"
    with pytest.raises(JsonBodyError, match="Invalid JSON"):
        loads(b"\xff{")


def test_parse_transaction_refuses_duplicates_depth_and_times_outside_the_window() -> None:
    good = transaction_json(timestamp=NOW.isoformat())
    text = json.dumps(good)
    window = EventTimeSettings(max_event_age=timedelta(days=30))
    with pytest.raises(RequestInvalid) as dup:
        parse_transaction((text[:-1] + ', "amount_minor": 1}').encode(), "acme", window=window)
    assert dup.value.detail == [
        {
            "loc": ["body", "amount_minor"],
            "msg": "duplicate key 'amount_minor' in a JSON object",
            "type": "json_duplicate_key",
        }
    ]
    deep = json.dumps(good | {"x": json.loads("[" * 900 + "]" * 900)}).encode()
    with pytest.raises(RequestInvalid):  # deep but parseable: the contract refuses it, no 500
        parse_transaction(deep, "acme", window=window)
    now = datetime.now(UTC)
    for when in (datetime(1900, 1, 1, tzinfo=UTC), now - timedelta(days=31), now + timedelta(1)):
        body = json.dumps(good | {"timestamp": when.isoformat()}).encode()
        with pytest.raises(RequestInvalid) as old:
            parse_transaction(body, "acme", window=window)
        assert old.value.detail[0]["loc"] == ["body", "timestamp"]
        assert old.value.detail[0]["type"] == "event_time_out_of_window"
    body = json.dumps(good | {"timestamp": (now - timedelta(days=29)).isoformat()}).encode()
    assert parse_transaction(body, "acme", window=window).amount_minor == good["amount_minor"]


def test_event_time_window(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = EventTimeSettings()
    assert settings.max_event_age == timedelta(days=3650)
    assert settings.max_event_skew == timedelta(minutes=5)
    assert out_of_window(NOW - timedelta(days=3649), NOW, settings) is None
    assert out_of_window(NOW + timedelta(minutes=4), NOW, settings) is None
    past = out_of_window(datetime(1900, 1, 1, tzinfo=UTC), NOW, settings)
    assert past == "event time 1900-01-01T00:00:00+00:00 is more than 3650 days in the past"
    future = out_of_window(NOW + timedelta(minutes=6), NOW, settings)
    assert future is not None
    assert "5 minutes in the future" in future
    monkeypatch.setenv("SCORESTREAM_MAX_EVENT_AGE", "P7D")
    monkeypatch.setenv("SCORESTREAM_MAX_EVENT_SKEW", "30")
    env = EventTimeSettings()
    assert (env.max_event_age, env.max_event_skew) == (timedelta(days=7), timedelta(seconds=30))
    with pytest.raises(ValueError, match="frozen"):
        env.max_event_age = timedelta(1)  # type: ignore[misc]


def _v2(request: object) -> bytes:
    return json.dumps(request).encode()


def _input(name: str, value: object) -> dict[str, object]:
    datatype = "INT64" if name == "amount_minor" else "BYTES"
    return {"name": name, "datatype": datatype, "shape": [1], "data": [value]}


ROW = {
    "transaction_id": "t-1",
    "account_id": "acc-1",
    "merchant_id": "mer-1",
    "amount_minor": 100,
    "currency": "EUR",
    "channel": "ecommerce",
    "country": "DE",
    "mcc": "5411",
}
INPUTS = [_input(name, value) for name, value in ROW.items()]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"inputs": INPUTS, "outputs": [{"name": ["score"]}]}, "every output needs a 'name'"),
        ({"inputs": INPUTS, "outputs": ["score"]}, "every output needs a 'name'"),
        ({"inputs": INPUTS, "parameters": ["timeout"]}, "'parameters' must be an object"),
        ({"inputs": INPUTS, "parameters": "x"}, "'parameters' must be an object"),
        (
            {"inputs": INPUTS, "outputs": [{"name": "score", "parameters": [1]}]},
            "output 'score': 'parameters' must be an object",
        ),
        (
            {"inputs": [INPUTS[0] | {"parameters": "binary_data_size"}]},
            "input 'transaction_id': 'parameters' must be an object",
        ),
        (
            {"inputs": [INPUTS[0] | {"data": json.loads("[" * 500 + "]" * 500)}]},
            "'data' is nested too deeply",
        ),
        ({"inputs": INPUTS, "id": json.loads("[" * 900 + "]" * 900)}, "'id' must be a string"),
        ({"inputs": INPUTS, "id": {"a": 1}}, "'id' must be a string"),
        (
            {"inputs": [INPUTS[0] | {"data": [{"x": "y" * 1000}]}, *INPUTS[1:]]},
            "expected a string",
        ),
    ],
)
def test_v2_shape_errors_are_request_errors(request_: object, message: str) -> None:
    with pytest.raises(V2RequestError, match=message) as info:
        parse_infer_request(_v2(request_), None)
    assert len(str(info.value)) < 400  # a preview of the value at most, never all of it


def test_v2_duplicate_keys_and_deep_json() -> None:
    with pytest.raises(V2RequestError, match="duplicate key 'inputs'"):
        parse_infer_request(b'{"inputs": [], "inputs": []}', None)
    with pytest.raises(V2RequestError, match="nested too deeply"):
        parse_infer_request(b"[" * 50_000 + b"]" * 50_000, None)


def test_redacted_errors_keep_the_location_not_the_value() -> None:
    errors = [
        {
            "type": "string_too_long",
            "loc": ("header", "Idempotency-Key"),
            "msg": "String should have at most 255 characters",
            "input": "SECRET" * 100,
            "ctx": {"max_length": 255, "pattern": "SECRET"},
            "url": "https://errors.pydantic.dev/",
        }
    ]
    assert redacted_errors(errors) == [
        {
            "type": "string_too_long",
            "loc": ("header", "Idempotency-Key"),
            "msg": "String should have at most 255 characters",
            "ctx": {"max_length": 255},
        }
    ]


# -- middlewares on a minimal app ----------------------------------------------------------------


def _app(store: KeyStore, gate: asyncio.Event, limit: int) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/transactions")
    async def post(request: Request) -> JSONResponse:
        await gate.wait()
        return JSONResponse({"body": (await request.body()).decode()}, status_code=202)

    app.add_middleware(
        ContentTypeMiddleware,
        media_types=lambda p: frozenset({"application/json"}) if p.startswith("/v1/") else None,
    )
    app.add_middleware(
        ApiKeyMiddleware,
        tenant="acme",
        store=store,
        rate_per_s=1e6,
        burst=10**6,
        max_in_flight=limit,
    )
    app.add_middleware(MethodFilterMiddleware)
    return app


def test_per_key_in_flight_bound_and_gates() -> None:
    asyncio.run(_per_key())


async def _per_key() -> None:
    key_a, line_a = new_key("acme")
    key_b, line_b = new_key("acme")
    gate = asyncio.Event()
    app = _app(KeyStore(parse_keys(f"{line_a}\n{line_b}", origin="t")), gate, limit=3)
    transport = httpx.ASGITransport(app=app)
    json_ct = {"content-type": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:

        def post(key: str, **kw: object) -> asyncio.Task[httpx.Response]:
            headers = {"Authorization": f"Bearer {key}"} | json_ct
            return asyncio.create_task(
                c.post("/v1/transactions", content=b"{}", headers=headers, **kw)  # type: ignore[arg-type]
            )

        held = [post(key_a) for _ in range(3)]
        await asyncio.sleep(0.05)
        refused = await post(key_a)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert "limit 3" in refused.json()["detail"]
        other = post(key_b)  # another key is not affected
        await asyncio.sleep(0.05)
        gate.set()
        assert (await other).status_code == 202
        assert [(await t).status_code for t in held] == [202, 202, 202]
        assert (await post(key_a)).status_code == 202  # the slots are given back
        auth = {"Authorization": f"Bearer {key_a}"}
        for content_type in ({}, {"content-type": "text/plain"}):
            r = await c.post("/v1/transactions", content=b"{}", headers=auth | content_type)
            assert r.status_code == 415
            assert r.headers["accept-post"] == "application/json"
        ok = auth | {"content-type": "Application/JSON; charset=utf-8"}
        assert (await c.post("/v1/transactions", content=b"{}", headers=ok)).status_code == 202
        odd = await c.request("BREW", "/v1/transactions", headers=auth)
        assert odd.status_code == 501
        wrong = await c.request("PUT", "/v1/transactions", headers=auth | json_ct)
        assert wrong.status_code == 405
