"""The pure parts of the gateway's Open Inference Protocol conformance, without Kafka: which
version serves the tenant, the error body per API, and the app's V2 routes and error handlers
on an app that is never started (no lifespan: no broker). The real process is checked in
tests/integration/test_gateway_v2_protocol.py."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from producers.gateway import Gateway, GatewaySettings, create_app, inference
from producers.gateway.auth import GatewayAuthSettings
from producers.gateway.http import error_body, is_v2
from producers.gateway.v2 import OPTIONAL_INPUTS, OUTPUTS, REQUIRED_INPUTS, serving_version
from schemas.events import ModelAlias, ModelPromoted, ModelRejected
from scorestream.model_events import ModelState

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def promoted(version: str, at: datetime, tenant: str = "acme") -> ModelPromoted:
    return ModelPromoted(
        tenant_id=tenant,
        model_name="fraud-gbt",
        model_version=version,
        alias=ModelAlias.CHAMPION,
        promoted_at=at,
    )


def rejected(version: str, at: datetime, tenant: str = "acme") -> ModelRejected:
    return ModelRejected(
        tenant_id=tenant,
        model_name="fraud-gbt",
        model_version=version,
        reason="FeatureSpecMismatch",
        service="worker",
        instance="w-0",
        rejected_at=at,
    )


def test_serving_version_is_the_champion_no_worker_rejected() -> None:
    state = ModelState("acme", service="gateway")
    assert serving_version(state, "acme", "fraud-gbt") is None
    state.apply(promoted("1", T0, tenant="other"))
    assert serving_version(state, "acme", "fraud-gbt") is None  # another tenant's model
    assert state.foreign == 1  # ignored (and counted) by the tenant's state itself
    state.apply(
        ModelPromoted(
            tenant_id="acme",
            model_name="fraud-gbt",
            model_version="c1",
            alias=ModelAlias.CHALLENGER,
            promoted_at=T0,
        )
    )
    assert serving_version(state, "acme", "fraud-gbt") is None  # a challenger only shadows
    state.apply(rejected("2", T0 - timedelta(hours=1)))  # an older rejection of version 2
    state.apply(promoted("2", T0))
    assert serving_version(state, "acme", "fraud-gbt") == "2"
    assert serving_version(state, "acme", "other-model") is None
    state.apply(rejected("2", T0 + timedelta(seconds=5), tenant="other"))
    assert serving_version(state, "acme", "fraud-gbt") == "2"
    state.apply(rejected("2", T0 + timedelta(seconds=5)))  # a worker refused it
    assert serving_version(state, "acme", "fraud-gbt") is None
    state.apply(promoted("2", T0 + timedelta(minutes=1)))  # promoted again after a fix
    assert serving_version(state, "acme", "fraud-gbt") == "2"


def test_error_body_follows_the_api_of_the_path() -> None:
    assert error_body("/v2", "x") == {"error": "x"}
    assert error_body("/v2/models/m/infer", "x") == {"error": "x"}
    assert error_body("/v1/transactions", "x") == {"detail": "x"}
    assert error_body("/v2x", "x") == {"detail": "x"}
    assert error_body("", "x") == {"detail": "x"}
    assert [is_v2(p) for p in ("/v2", "/v2/", "/v20", "/v1/v2/")] == [True, True, False, False]


def _client(*, raise_app_exceptions: bool = True) -> tuple[httpx.AsyncClient, Gateway]:
    app = create_app(
        GatewaySettings(tenant="acme", max_body_bytes=256),
        auth=GatewayAuthSettings(auth_mode="disabled"),
    )
    gateway: Gateway = app.state.gateway
    # no lifespan: the gateway is never started (no broker), so it is never ready
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    return httpx.AsyncClient(transport=transport, base_url="http://gw"), gateway


def _only_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str), body
    return str(body["error"])


def test_v2_errors_of_middlewares_and_router_are_error_objects() -> None:
    async def scenario() -> None:
        client, _ = _client()
        async with client:
            infer = "/v2/models/fraud-gbt/infer"
            _only_error(await client.post(infer, content=b"x" * 300), 413)
            _only_error(
                await client.post(infer, content=b"{}", headers={"content-type": "a/b"}), 415
            )
            _only_error(await client.request("BREW", infer), 501)
            _only_error(await client.get(infer), 405)
            _only_error(await client.get("/v2/models/fraud-gbt/nothing"), 404)
            assert "unknown model 'm'" in _only_error(await client.get("/v2/models/m/ready"), 404)
            # /v1 keeps {"detail": ...}
            for r in (
                await client.post("/v1/transactions", content=b"x" * 300),
                await client.request("BREW", "/v1/transactions"),
                await client.get("/v1/transactions"),
                await client.get("/v1/nothing"),
            ):
                assert set(r.json()) == {"detail"}, (r.status_code, r.text)

    asyncio.run(scenario())


def test_readiness_and_versions_follow_the_model_events() -> None:
    async def scenario() -> None:
        client, gateway = _client()
        async with client:
            ready = await client.get("/v2/health/ready")
            assert (ready.status_code, ready.json()) == (503, {"ready": False})
            meta = await client.get("/v2/models/fraud-gbt")
            assert meta.status_code == 200
            assert meta.json()["versions"] == []
            missing = await client.get("/v2/models/fraud-gbt/versions/7")
            assert "no version serves tenant acme" in _only_error(missing, 404)
            gateway.router.models.apply(promoted("7", T0))
            meta = await client.get("/v2/models/fraud-gbt/versions/7")
            assert (meta.status_code, meta.json()["versions"]) == (200, ["7"])
            other = await client.post("/v2/models/fraud-gbt/versions/8/infer", json={})
            assert "version '7' serves" in _only_error(other, 404)
            # the model serves, but this replica never started: not ready
            model = await client.get("/v2/models/fraud-gbt/versions/7/ready")
            assert (model.status_code, model.json()) == (503, {"name": "fraud-gbt", "ready": False})

    asyncio.run(scenario())


@pytest.mark.parametrize("path", ["/v2/models/fraud-gbt/infer", "/v1/transactions"])
def test_an_unexpected_failure_is_a_json_500(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    async def scenario() -> httpx.Response:
        client, gateway = _client(raise_app_exceptions=False)
        gateway.router.models.apply(promoted("7", T0))
        monkeypatch.setattr(inference, "infer", boom)  # a bug in a handler
        monkeypatch.setattr(gateway, "submit", boom)
        async with client:
            return await client.post(path, json={})

    r = asyncio.run(scenario())
    assert r.status_code == 500
    assert r.json() == error_body(path, "internal server error")
    assert "boom" not in r.text


def test_docs_api_lists_the_v2_model_and_its_tensors() -> None:
    """docs/api.md stays true to the code: the model name, every input and every output with
    its datatype (a renamed or added tensor fails here until the doc says so)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    assert f"**`{GatewaySettings.model_fields['model_name'].default}`**" in doc
    for name in (*REQUIRED_INPUTS, *OPTIONAL_INPUTS):
        assert re.search(rf"^\| `{name}`( \(optional\))? \|", doc, re.MULTILINE), name
    for name, datatype in OUTPUTS.items():
        assert f"| `{name}` | {datatype} |" in doc, name
