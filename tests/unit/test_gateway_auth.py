"""API keys of the gateway without Kafka: storage format, verification, token bucket, the
middleware's status codes on a minimal app, and fail-closed start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from producers.gateway import GatewaySettings, create_app
from producers.gateway.auth import (
    ApiKeyMiddleware,
    GatewayAuthSettings,
    KeyStore,
    TokenBucket,
    add_key,
    auth_store,
    dev_key,
    new_key,
    parse_keys,
)
from scorestream.errors import ConfigError


def test_new_key_is_stored_only_as_a_salted_hash() -> None:
    key, line = new_key("acme")
    key_id, tenant, hashed = line.split()
    assert tenant == "acme"
    assert key.startswith(f"ssk_{key_id}_")
    assert key.split("_", 2)[2] not in line  # the secret part is not stored
    assert hashed.startswith("sha256:")
    other_key, other_line = new_key("acme")
    assert other_key != key
    assert other_line.split()[2].split(":")[1] != hashed.split(":")[1]  # per-key salt


def test_verify_accepts_only_the_exact_key() -> None:
    key, line = new_key("acme")
    store = KeyStore(parse_keys(line, origin="test"))
    record = store.verify(key)
    assert record is not None
    assert record.tenant == "acme"
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.verify(key + "x") is None
    assert store.verify("ssk_unknown_" + key.split("_", 2)[2]) is None
    assert store.verify("") is None
    assert store.verify("not a key") is None
    assert "salt" not in repr(record)  # the dataclass repr hides salt and digest
    assert key not in repr(store.verify(key))


def test_parse_errors_name_the_line_not_its_content() -> None:
    _, good = new_key("acme")
    secretish = "deadbeef acme sha256:zz:notahash"
    with pytest.raises(ConfigError, match="line 3") as exc:
        parse_keys(f"# comment\n{good}\n{secretish}\n", origin="keys")
    assert "notahash" not in str(exc.value)
    with pytest.raises(ConfigError, match="duplicate"):
        parse_keys(f"{good}\n{good}\n", origin="keys")


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take(10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(10.0) == pytest.approx(0.5)
    assert bucket.take(10.5) == 0.0  # one token after half a second at 2/s
    assert bucket.take(100.0) == 0.0
    assert bucket.tokens == pytest.approx(2.0)  # refilled to the burst, minus one


def _app(store: KeyStore, clock: list[float]) -> httpx.AsyncClient:
    app = FastAPI()

    @app.post("/v1/transactions")
    async def post() -> JSONResponse:
        return JSONResponse({"ok": True}, status_code=202)

    @app.post("/v2/models/m/infer")
    async def infer() -> JSONResponse:
        return JSONResponse({"ok": True})

    @app.get("/livez")
    async def livez() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    app.add_middleware(
        ApiKeyMiddleware,
        tenant="acme",
        store=store,
        rate_per_s=1.0,
        burst=2,
        clock=lambda: clock[0],
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


def test_status_codes_of_the_middleware() -> None:
    asyncio.run(_status_codes())


async def _status_codes() -> None:
    acme_key, acme_line = new_key("acme")
    other_key, other_line = new_key("other")
    clock = [0.0]
    async with _app(KeyStore(parse_keys(f"{acme_line}\n{other_line}", origin="t")), clock) as c:
        assert (await c.get("/livez")).status_code == 200  # open without a key
        missing = await c.post("/v1/transactions")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        bad = await c.post("/v1/transactions", headers={"Authorization": "Bearer ssk_x_y"})
        assert bad.status_code == 401
        basic = await c.post("/v1/transactions", headers={"Authorization": f"Basic {acme_key}"})
        assert basic.status_code == 401
        other = await c.post("/v2/models/m/infer", headers={"X-API-Key": other_key})
        assert other.status_code == 403
        assert other_key not in other.text
        auth = {"Authorization": f"Bearer {acme_key}"}
        assert (await c.post("/v1/transactions", headers=auth)).status_code == 202
        assert (
            await c.post("/v2/models/m/infer", headers={"X-API-Key": acme_key})
        ).status_code == (200)
        limited = await c.post("/v1/transactions", headers=auth)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        clock[0] += 1.0
        assert (await c.post("/v1/transactions", headers=auth)).status_code == 202
        for response in (missing, bad, basic, other, limited):
            assert acme_key not in response.text


def test_auth_is_on_by_default_and_fails_closed(tmp_path: Path) -> None:
    assert GatewayAuthSettings().auth_mode == "api_key"
    with pytest.raises(ConfigError, match="no API key for tenant acme"):
        create_app(GatewaySettings(tenant="acme"), auth=GatewayAuthSettings())
    keys = tmp_path / "keys"
    add_key("other", keys)
    with pytest.raises(ConfigError, match="no API key for tenant acme"):
        auth_store("acme", GatewayAuthSettings(api_keys_file=keys))
    key, _ = add_key("acme", keys)
    store = auth_store("acme", GatewayAuthSettings(api_keys_file=keys))
    assert store is not None
    assert store.tenants() == {"acme", "other"}
    record = store.verify(key)
    assert record is not None
    assert record.tenant == "acme"
    with pytest.raises(ConfigError, match="cannot read"):
        auth_store("acme", GatewayAuthSettings(api_keys_file=tmp_path / "missing"))


def test_disabled_mode_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="scorestream.gateway.auth"):
        assert auth_store("acme", GatewayAuthSettings(auth_mode="disabled")) is None
    assert "DISABLED" in caplog.text


def test_inline_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key, line = new_key("acme")
    monkeypatch.setenv("SCORESTREAM_GATEWAY_API_KEYS", f"# from a Secret\n{line}\n")
    settings = GatewayAuthSettings()
    assert key not in repr(settings)
    assert line not in repr(settings)  # SecretStr
    store = auth_store("acme", settings)
    assert store is not None
    assert store.verify(key) is not None


def test_dev_key_is_created_once_and_private(tmp_path: Path) -> None:
    key, keys_file = dev_key(tmp_path / "run", "acme")
    assert (tmp_path / "run" / "api-key").stat().st_mode & 0o077 == 0
    assert key not in keys_file.read_text()
    assert dev_key(tmp_path / "run", "acme") == (key, keys_file)
