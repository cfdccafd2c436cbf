"""HTTP hardening of the real gateway process, attacked over raw sockets (issue 15, items 4, 9,
13 and 17): made-up methods and paths do not grow memory or ``/metrics``; one key's stalled
bodies do not lock out another key; half-sent headers are cut off; malformed or lenient input
gets a clear 4xx, never a 500; header errors name the header without echoing its value."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import string
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from producers.gateway.auth import add_key
from scorestream.admin import ensure_tenant_topics
from tests.factories import transaction_json
from tests.gateway_process import gateway_process

pytestmark = [pytest.mark.security, pytest.mark.integration]

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 2.0
PER_KEY = 8
MAX_IN_FLIGHT = 32
V2_INFER = "/v2/models/fraud-gbt/infer"


@dataclass
class Gateway:
    url: str
    host: str
    port: int
    tenant: str
    key_a: str
    key_b: str
    log: Path
    pid: int


@pytest.fixture(scope="module")
def gateway(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tenant = f"h{uuid.uuid4().hex[:9]}"
    ensure_tenant_topics(tenant)
    d = tmp_path_factory.mktemp("gw-http")
    keys = d / "gateway-keys"
    key_a, _ = add_key(tenant, keys)
    key_b, _ = add_key(tenant, keys)
    log_path = d / "gateway.log"
    env: dict[str, str | None] = {
        "SCORESTREAM_GATEWAY_API_KEYS_FILE": str(keys),
        "SCORESTREAM_GATEWAY_AUTH_MODE": None,
        "SCORESTREAM_GATEWAY_RATE_LIMIT_PER_S": "10000",
        "SCORESTREAM_GATEWAY_RATE_LIMIT_BURST": "10000",
        "SCORESTREAM_GATEWAY_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "SCORESTREAM_GATEWAY_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "SCORESTREAM_GATEWAY_MAX_IN_FLIGHT_PER_KEY": str(PER_KEY),
        "SCORESTREAM_GATEWAY_INSTANCE_ID": "gw-http",
    }
    args = ("--max-in-flight", str(MAX_IN_FLIGHT))
    with gateway_process(tenant, log_path, *args, env=env) as gw:
        url = urlsplit(gw.base)
        assert url.hostname is not None
        assert url.port is not None
        yield Gateway(gw.base, url.hostname, url.port, tenant, key_a, key_b, log_path, gw.proc.pid)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _body(gw: Gateway, **overrides: object) -> dict[str, object]:
    data = transaction_json(transaction_id=f"tx-{uuid.uuid4().hex[:10]}")
    data |= {"tenant_id": gw.tenant, "timestamp": datetime.now(UTC).isoformat(), **overrides}
    return data


def _connect(gw: Gateway, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection((gw.host, gw.port), timeout=timeout)


def _read_until_closed(s: socket.socket) -> bytes:
    """Everything the server sends until it closes; socket.timeout if it never does."""
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _exchange(gw: Gateway, request: bytes) -> bytes:
    with _connect(gw) as s:
        s.sendall(request)
        return _read_until_closed(s)


def _status(reply: bytes) -> int:
    assert reply.startswith(b"HTTP/1.1 "), reply[:200]
    return int(reply.split(b" ", 2)[1])


def _metrics(gw: Gateway) -> str:
    r = httpx.get(f"{gw.url}/metrics", timeout=10)
    assert r.status_code == 200
    return r.text


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _label(line: str, name: str) -> str:
    return line.split(f'{name}="', 1)[1].split('"', 1)[0]


# -- item 4: unbounded metric labels -------------------------------------------------------------


def test_made_up_methods_and_paths_neither_grow_metrics_nor_reach_the_app(gateway: Gateway) -> None:
    gw = gateway
    rng = random.Random(4)
    httpx.get(f"{gw.url}/no-such-page", timeout=10)  # every label value that can exist, once
    before = _metrics(gw)
    rss_before = _rss_bytes(gw.pid)
    statuses: Counter[int] = Counter()
    for i in range(200):
        method = "".join(rng.choices(string.ascii_uppercase, k=rng.randrange(2000, 8000)))
        path = "/" + "".join(rng.choices(string.ascii_lowercase + "/-", k=rng.randrange(1, 2000)))
        if i % 4 == 0:
            method = rng.choice(("GET", "POST", "PUT", "DELETE", "PATCH"))  # real method, odd path
        request = f"{method} {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
        statuses[_status(_exchange(gw, request.encode()))] += 1
    assert statuses[501] == 150, statuses  # unknown methods: refused before any work
    assert set(statuses) <= {401, 404, 405, 501}, statuses
    after = _metrics(gw)
    assert len(after) < len(before) + 20_000, (len(before), len(after))
    grown = _rss_bytes(gw.pid) - rss_before
    assert grown < 10_000_000, f"the gateway grew by {grown / 1e6:.1f} MB"
    series = [
        line
        for line in after.splitlines()
        if line.startswith("scorestream_gateway_request") and not line.startswith("#")
    ]
    methods = {
        line.split('method="', 1)[1].split('"', 1)[0] for line in series if "method=" in line
    }
    routes = {line.split('route="', 1)[1].split('"', 1)[0] for line in series if "route=" in line}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "_OTHER"}
    assert all(r.startswith(("/", "unmatched")) and len(r) < 100 for r in routes), routes
    assert len(series) < 400, len(series)


# -- item 9: slow clients ------------------------------------------------------------------------


def _stalled_post(gw: Gateway, key: str) -> socket.socket:
    s = _connect(gw, timeout=BODY_TIMEOUT_S + 8)
    head = (
        "POST /v1/transactions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n"
    )
    s.sendall(head.encode() + b'{"transaction_id": ')  # and then nothing more
    return s


def test_stalled_bodies_of_one_key_do_not_lock_out_another(gateway: Gateway) -> None:
    gw = gateway
    stalled: list[socket.socket] = []
    try:
        for _ in range(100):
            stalled.append(_stalled_post(gw, gw.key_a))
        time.sleep(0.3)
        started = time.monotonic()
        other = httpx.post(
            f"{gw.url}/v1/transactions", json=_body(gw), headers=_bearer(gw.key_b), timeout=10
        )
        assert other.status_code == 202, other.text
        more = httpx.post(
            f"{gw.url}/v1/transactions", json=_body(gw), headers=_bearer(gw.key_a), timeout=10
        )
        assert more.status_code == 429, more.text
        assert 1 <= int(more.headers["retry-after"]) <= 10
        assert str(PER_KEY) in more.json()["detail"]
        replies = [_read_until_closed(s) for s in stalled]  # each connection is closed
        waited = time.monotonic() - started
    finally:
        for s in stalled:
            s.close()
    statuses = Counter(_status(r) for r in replies)
    assert statuses == {429: 100 - PER_KEY, 408: PER_KEY}, statuses
    assert waited < BODY_TIMEOUT_S + 5, waited
    # and key A is served again once its stalled requests are gone
    again = httpx.post(
        f"{gw.url}/v1/transactions", json=_body(gw), headers=_bearer(gw.key_a), timeout=10
    )
    assert again.status_code == 202, again.text


def test_half_sent_headers_are_cut_off_after_the_header_timeout(gateway: Gateway) -> None:
    """Unauthenticated: the request line and one header, then a byte every 0.2 s (a trickle
    must not reset the clock); and a connection that sends nothing at all."""
    gw = gateway
    with _connect(gw, timeout=0.2) as s:
        s.sendall(b"POST /v1/transactions HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
        started = time.monotonic()
        received = b""
        while time.monotonic() - started < HEADER_TIMEOUT_S + 5:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                with contextlib.suppress(OSError):
                    s.sendall(b"a")
                continue
            if not chunk:
                break
            received += chunk
        elapsed = time.monotonic() - started
    assert elapsed < HEADER_TIMEOUT_S + 2, f"still open after {elapsed:.1f}s"
    assert _status(received) == 408
    with _connect(gw, timeout=HEADER_TIMEOUT_S + 5) as idle:
        started = time.monotonic()
        assert _read_until_closed(idle) == b""
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 2


# -- item 13: 500 instead of 4xx -----------------------------------------------------------------


def _post_raw(gw: Gateway, path: str, body: bytes, content_type: str | None) -> httpx.Response:
    headers = _bearer(gw.key_b)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return httpx.post(gw.url + path, content=body, headers=headers, timeout=10)


def test_malformed_structures_get_a_4xx_not_a_500(gateway: Gateway) -> None:
    gw = gateway
    deep_list = b"[" * 50_000 + b"]" * 50_000
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    for deep in (deep_list, deep_object):
        for path in ("/v1/transactions", "/v1/transactions:score"):
            r = _post_raw(gw, path, deep, "application/json")
            assert r.status_code == 422, (path, r.status_code, r.text[:300])
            assert "nested too deeply" in r.json()["detail"][0]["msg"]
        r = _post_raw(gw, V2_INFER, deep, "application/json")
        assert r.status_code == 400, r.text[:300]
        assert "nested too deeply" in r.json()["error"]
    inputs = [{"name": "transaction_id", "datatype": "BYTES", "shape": [1], "data": [[[["x"]]]]}]
    deep_data = {"inputs": [inputs[0] | {"data": json.loads("[" * 900 + "]" * 900)}]}
    shapes: list[dict[str, object]] = [
        deep_data,
        {"inputs": inputs, "outputs": [{"name": ["score"]}]},
        {"inputs": inputs, "outputs": [{"name": {"a": 1}}]},
        {"inputs": inputs, "parameters": ["timeout", 5]},
        {"inputs": inputs, "parameters": "binary_data_output"},
        {"inputs": inputs, "outputs": [{"name": "score", "parameters": ["binary_data"]}]},
        {"inputs": [inputs[0] | {"parameters": "binary_data_size"}]},
        {"inputs": [inputs[0] | {"parameters": [1, 2]}]},
    ]
    for request in shapes:
        r = _post_raw(gw, V2_INFER, json.dumps(request).encode(), "application/json")
        assert r.status_code == 400, (request, r.status_code, r.text[:300])
        assert r.json()["error"], request


# -- item 17: lenient input ----------------------------------------------------------------------


def test_duplicate_keys_are_refused(gateway: Gateway) -> None:
    gw = gateway
    good = json.dumps(_body(gw))
    dup = good[:-1] + ', "amount_minor": 1}'  # a second amount_minor: last would win
    for path in ("/v1/transactions", "/v1/transactions:score"):
        r = _post_raw(gw, path, dup.encode(), "application/json")
        assert r.status_code == 422, (path, r.text)
        detail = r.json()["detail"][0]
        assert detail["type"] == "json_duplicate_key"
        assert detail["loc"] == ["body", "amount_minor"]
    v2 = '{"inputs": [], "inputs": []}'
    r = _post_raw(gw, V2_INFER, v2.encode(), "application/json")
    assert r.status_code == 400, r.text
    assert "duplicate key 'inputs'" in r.json()["error"]


def test_content_types_other_than_json_are_refused(gateway: Gateway) -> None:
    gw = gateway
    body = json.dumps(_body(gw)).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        for path in ("/v1/transactions", "/v1/transactions:score", V2_INFER):
            r = _post_raw(gw, path, body, content_type)
            assert r.status_code == 415, (path, content_type, r.status_code)
            assert "application/json" in r.json()["error" if path == V2_INFER else "detail"]
    r = _post_raw(gw, "/v1/transactions", body, None)
    assert r.status_code == 415
    ok = _post_raw(gw, "/v1/transactions", body, "application/json; charset=utf-8")
    assert ok.status_code == 202, ok.text


def test_event_times_outside_the_window_are_refused(gateway: Gateway) -> None:
    gw = gateway
    now = datetime.now(UTC)
    for when in ("1900-01-01T00:00:00Z", (now + timedelta(days=1)).isoformat()):
        r = httpx.post(
            f"{gw.url}/v1/transactions",
            json=_body(gw, timestamp=when),
            headers=_bearer(gw.key_b),
            timeout=10,
        )
        assert r.status_code == 422, (when, r.text)
        detail = r.json()["detail"][0]
        assert detail["loc"] == ["body", "timestamp"]
        assert detail["type"] == "event_time_out_of_window"
    ok = httpx.post(
        f"{gw.url}/v1/transactions",
        json=_body(gw, timestamp=(now - timedelta(days=2)).isoformat()),
        headers=_bearer(gw.key_b),
        timeout=10,
    )
    assert ok.status_code == 202, ok.text


def test_header_errors_name_the_header_but_never_echo_its_value(gateway: Gateway) -> None:
    gw = gateway
    canary = "CANARY" + "x" * 300
    for path in ("/v1/transactions", "/v1/transactions:score"):
        r = httpx.post(
            gw.url + path,
            json=_body(gw),
            headers=_bearer(gw.key_b) | {"Idempotency-Key": canary},
            timeout=10,
        )
        assert r.status_code == 422, r.text
        assert "CANARY" not in r.text
        detail = r.json()["detail"][0]
        assert [part.lower() for part in detail["loc"]] == ["header", "idempotency-key"]
    r = httpx.post(
        gw.url + V2_INFER,
        content=b"{}",
        headers=_bearer(gw.key_b)
        | {"Inference-Header-Content-Length": canary, "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400
    assert "CANARY" not in r.text
    assert "CANARY" not in gw.log.read_text()
