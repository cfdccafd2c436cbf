"""The real gateway process with API keys: 401/403/429/413 on every write and score endpoint
(v1 and KServe V2), open probes, and no key or card data in its log or its error bodies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from producers.gateway.auth import add_key
from scorestream.admin import ensure_tenant_topics
from tests.factories import transaction_json
from tests.gateway_process import gateway_process

pytestmark = [pytest.mark.security, pytest.mark.integration]

PAN = "4111111111111111"  # a test card number: must never be echoed or logged
BURST = 40


@dataclass
class Gateway:
    url: str
    tenant: str
    key: str
    rate_key: str
    foreign_key: str
    log: Path


@pytest.fixture(scope="module")
def gateway(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tenant = f"g{uuid.uuid4().hex[:9]}"
    ensure_tenant_topics(tenant)
    d = tmp_path_factory.mktemp("gw-auth")
    keys = d / "gateway-keys"
    key, _ = add_key(tenant, keys)
    rate_key, _ = add_key(tenant, keys)
    foreign_key, _ = add_key(f"x{tenant}", keys)
    log_path = d / "gateway.log"
    env: dict[str, str | None] = {
        "SCORESTREAM_GATEWAY_API_KEYS_FILE": str(keys),
        "SCORESTREAM_GATEWAY_RATE_LIMIT_PER_S": "0.05",
        "SCORESTREAM_GATEWAY_RATE_LIMIT_BURST": str(BURST),
        "SCORESTREAM_GATEWAY_INSTANCE_ID": "gw-auth",
        "SCORESTREAM_GATEWAY_AUTH_MODE": None,  # the default: keys required
    }
    with gateway_process(tenant, log_path, "--max-body-bytes", "4096", env=env) as gw:
        yield Gateway(gw.base, tenant, key, rate_key, foreign_key, log_path)


WRITE_ENDPOINTS = ("/v1/transactions", "/v1/transactions:score", "/v2/models/fraud-gbt/infer")


def _body(gw: Gateway) -> dict[str, object]:
    data = transaction_json(transaction_id=f"tx-{uuid.uuid4().hex[:10]}")
    data["tenant_id"] = gw.tenant
    return data


def test_every_write_endpoint_needs_a_key_of_its_tenant(gateway: Gateway) -> None:
    gw = gateway
    for path in WRITE_ENDPOINTS:
        missing = httpx.post(gw.url + path, json=_body(gw), timeout=10)
        assert missing.status_code == 401, path
        assert missing.headers["www-authenticate"] == 'Bearer realm="scorestream"'
        forged = gw.key[:-4] + "AAAA" if not gw.key.endswith("AAAA") else gw.key[:-4] + "BBBB"
        wrong = httpx.post(gw.url + path, json=_body(gw), timeout=10, headers=_bearer(forged))
        assert wrong.status_code == 401, path
        foreign = httpx.post(
            gw.url + path, json=_body(gw), timeout=10, headers={"X-API-Key": gw.foreign_key}
        )
        assert foreign.status_code == 403, path
        # the V2 routes answer with the Open Inference Protocol's error object
        assert gw.tenant in foreign.json()["error" if path.startswith("/v2/") else "detail"]
    metadata = httpx.get(f"{gw.url}/v2/models/fraud-gbt", timeout=10)
    assert metadata.status_code == 401
    accepted = httpx.post(
        f"{gw.url}/v1/transactions", json=_body(gw), timeout=30, headers=_bearer(gw.key)
    )
    assert accepted.status_code == 202, accepted.text


def test_probes_and_metrics_stay_open(gateway: Gateway) -> None:
    for path in ("/livez", "/readyz", "/metrics", "/v2/health/live"):
        assert httpx.get(gateway.url + path, timeout=10).status_code == 200, path
    # open too, and false: no model serves this tenant (tests/integration/test_gateway_v2_protocol)
    ready = httpx.get(gateway.url + "/v2/health/ready", timeout=10)
    assert (ready.status_code, ready.json()) == (503, {"ready": False})
    # a rejection of its own: the test must not depend on another test having run first
    assert httpx.post(gateway.url + "/v1/transactions", json={}, timeout=10).status_code == 401
    metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
    assert 'scorestream_gateway_rejected_total{reason="unauthenticated"}' in metrics


def test_size_limit_applies_to_authenticated_requests(gateway: Gateway) -> None:
    big = {"transaction_id": "x" * 10_000}
    r = httpx.post(
        f"{gateway.url}/v1/transactions", json=big, timeout=10, headers=_bearer(gateway.key)
    )
    assert r.status_code == 413


def test_rate_limit_per_key(gateway: Gateway) -> None:
    """The rate key's bucket runs dry (refill 0.05/s); the main key is unaffected."""
    statuses = []
    retry_after = []
    for _ in range(BURST + 5):
        r = httpx.post(
            f"{gateway.url}/v1/transactions",
            content=b"{}",  # 422 from the handler once admitted: no Kafka work
            timeout=10,
            headers=_bearer(gateway.rate_key) | {"content-type": "application/json"},
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            retry_after.append(int(r.headers["retry-after"]))
    assert 429 in statuses
    assert statuses.count(422) >= BURST
    assert all(s in (422, 429) for s in statuses)
    assert all(1 <= s <= 20 for s in retry_after)
    ok = httpx.post(
        f"{gateway.url}/v1/transactions",
        json=_body(gateway),
        timeout=30,
        headers=_bearer(gateway.key),
    )
    assert ok.status_code == 202


def test_no_secret_or_card_data_in_logs_or_error_bodies(gateway: Gateway) -> None:
    gw = gateway
    bodies = []
    bad = _body(gw) | {"card_number": PAN, "amount_minor": f"{PAN}x", "cvv": "123"}
    for headers in (_bearer(gw.key), _bearer(gw.key + "tampered"), {"X-API-Key": gw.foreign_key}):
        for path in WRITE_ENDPOINTS:
            r = httpx.post(gw.url + path, json=bad, timeout=30, headers=headers)
            assert r.status_code in (400, 401, 403, 422), (path, r.status_code)
            bodies.append(r.text)
        bodies.append(
            httpx.post(
                f"{gw.url}/v1/transactions",
                content=f'{{"card_number": "{PAN}", '.encode(),  # truncated JSON
                headers=headers | {"content-type": "application/json"},
                timeout=30,
            ).text
        )
    log = gw.log.read_text(errors="replace")
    for secret in (gw.key, gw.key.split("_", 2)[2], gw.foreign_key.split("_", 2)[2], PAN):
        assert secret not in log
        for body in bodies:
            assert secret not in body
    assert "invalid API key" in log  # the refusals are logged, without the key


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
