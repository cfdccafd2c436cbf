"""The gateway's V2 endpoints checked against the Open Inference Protocol with plain HTTP.

KServe V2 REST (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/):
``/v2/models/<m>[/versions/<v>]`` (metadata), ``.../ready`` and ``.../infer`` with and without a
version; a failed request answers with the error object ``{"error": "<message>"}``; the server and
model readiness say whether the model can serve. Requests are raw ``httpx`` calls (no client
library, ours or tritonclient) so the status codes and bodies are what the spec defines; one more
test drives the versioned routes with ``tritonclient``, which reads ``error`` from failures.

A real gateway process with API keys on, a fresh tenant, and the echo decision responder of
:mod:`tests.integration.test_gateway` standing in for enricher → worker → decision.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from producers.gateway.auth import new_key
from schemas.events import ModelAlias, ModelPromoted
from scorestream.model_events import publish_model_event
from tests.gateway_process import gateway_process
from tests.integration.test_gateway import EchoDecision
from tests.worker_support import Tenant, new_tenant, wait_until

pytestmark = pytest.mark.integration

MODEL = "fraud-gbt"
VERSION = "2"
RATE_PER_S = 5


@dataclass(frozen=True)
class Keys:
    main: str
    triton: str
    hammer: str
    """Only for the rate-limit test (limits are per key)."""
    foreign: str
    """A valid key of another tenant."""


@dataclass(frozen=True)
class Gateway:
    base: str
    tenant: Tenant
    keys: Keys

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.keys.main}"}


@pytest.fixture(scope="module")
def tenant(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    return new_tenant(tmp_path_factory.mktemp("gateway-v2"))


@pytest.fixture(scope="module")
def gateway(kafka_bootstrap: str, tenant: Tenant) -> Iterator[Gateway]:
    responder = EchoDecision(kafka_bootstrap, tenant)
    responder.start()
    made = {name: new_key(tenant.name) for name in ("main", "triton", "hammer")}
    foreign_key, foreign_line = new_key(f"{tenant.name}-other")
    lines = [line for _, line in made.values()] + [foreign_line]
    keys = Keys(made["main"][0], made["triton"][0], made["hammer"][0], foreign_key)
    try:
        with gateway_process(
            tenant.name,
            tenant.repo_dir.parent / "gateway.log",
            *("--max-in-flight", "1", "--max-body-bytes", "4096"),
            env={
                "SCORESTREAM_GATEWAY_API_KEYS": "\n".join(lines),
                "SCORESTREAM_GATEWAY_RATE_LIMIT_PER_S": str(RATE_PER_S),
                "SCORESTREAM_GATEWAY_RATE_LIMIT_BURST": "20",
            },
        ) as gw:
            yield Gateway(gw.base, tenant, keys)
    finally:
        responder.stopping.set()
        responder.join(10)
    assert responder.error is None


@dataclass(frozen=True)
class Serving:
    before: dict[str, httpx.Response]
    """The readiness answers before any model was promoted for the tenant."""


READINESS = (
    "/v2/health/ready",
    f"/v2/models/{MODEL}/ready",
    f"/v2/models/{MODEL}/versions/{VERSION}/ready",
)


@pytest.fixture(scope="module")
def serving(gateway: Gateway) -> Serving:
    """Records the readiness of a tenant without a model, then promotes version 2 as champion
    and waits until the gateway has seen it."""
    before = {path: httpx.get(gateway.base + path, headers=gateway.auth()) for path in READINESS}
    publish_model_event(
        ModelPromoted(
            tenant_id=gateway.tenant.name,
            model_name=MODEL,
            model_version=VERSION,
            alias=ModelAlias.CHAMPION,
            promoted_at=datetime.now(UTC),
        ),
        tenant=gateway.tenant.name,
    )

    def ready() -> bool:
        r = httpx.get(f"{gateway.base}/v2/health/ready", timeout=5)
        return r.status_code == 200

    wait_until(ready, 20, "server ready after the promotion")
    return Serving(before)


def infer_body(n: int = 2, *, prefix: str = "v2p", timeout_us: int = 5_000_000) -> dict[str, Any]:
    ids = [f"{prefix}-{uuid.uuid4().hex[:10]}" for _ in range(n)]

    def column(name: str, values: list[Any], datatype: str = "BYTES") -> dict[str, Any]:
        return {"name": name, "datatype": datatype, "shape": [n], "data": values}

    return {
        "id": f"req-{uuid.uuid4().hex[:6]}",
        "parameters": {"timeout": timeout_us},
        "inputs": [
            column("transaction_id", ids),
            column("account_id", [f"acc-{i}" for i in range(n)]),
            column("merchant_id", ["m1"] * n),
            column("amount_minor", [1_000 * (i + 1) for i in range(n)], "INT64"),
            column("currency", ["EUR"] * n),
            column("channel", ["ecommerce"] * n),
            column("country", ["DE"] * n),
            column("mcc", ["5411"] * n),
        ],
    }


def assert_error(r: httpx.Response, status: int) -> str:
    """The spec's error object: a JSON object whose only member is the string ``error``."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str), body
    assert body["error"], body
    return str(body["error"])


# -- readiness ---------------------------------------------------------------------------------


def test_server_and_model_readiness_follow_the_tenants_model(
    gateway: Gateway, serving: Serving
) -> None:
    before = serving.before
    server = before["/v2/health/ready"]
    assert server.status_code != 200, "server ready with no model for the tenant"
    assert server.json() == {"ready": False}
    model = before[f"/v2/models/{MODEL}/ready"]
    assert model.status_code != 200
    assert model.json() == {"name": MODEL, "ready": False}
    # no version serves yet: version 2 is not a version of the model
    assert_error(before[f"/v2/models/{MODEL}/versions/{VERSION}/ready"], 404)

    live = httpx.get(f"{gateway.base}/v2/health/live")
    assert (live.status_code, live.json()) == (200, {"live": True})
    server = httpx.get(f"{gateway.base}/v2/health/ready")
    assert (server.status_code, server.json()) == (200, {"ready": True})
    for path in READINESS[1:]:
        r = httpx.get(gateway.base + path, headers=gateway.auth())
        assert (r.status_code, r.json()) == (200, {"name": MODEL, "ready": True}), path
    # the K8s probe of the gateway itself does not wait for a model: /v1 intake works without one
    assert httpx.get(f"{gateway.base}/readyz").status_code == 200


# -- versioned routes --------------------------------------------------------------------------


def test_versioned_metadata_ready_and_infer_answer(gateway: Gateway, serving: Serving) -> None:
    auth = gateway.auth()
    plain = httpx.get(f"{gateway.base}/v2/models/{MODEL}", headers=auth)
    assert plain.status_code == 200, plain.text
    meta = plain.json()
    assert meta["name"] == MODEL
    assert meta["versions"] == [VERSION]
    assert meta["platform"]
    for tensor in meta["inputs"] + meta["outputs"]:
        assert set(tensor) == {"name", "datatype", "shape"}
    versioned = httpx.get(f"{gateway.base}/v2/models/{MODEL}/versions/{VERSION}", headers=auth)
    assert versioned.status_code == 200, versioned.text
    assert versioned.json() == meta

    request = infer_body(2)
    r = httpx.post(
        f"{gateway.base}/v2/models/{MODEL}/versions/{VERSION}/infer",
        json=request,
        headers=auth,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model_name"] == MODEL
    assert answer["id"] == request["id"]
    assert isinstance(answer["model_version"], str)
    outputs = {o["name"]: o for o in answer["outputs"]}
    assert set(outputs) == {"score", "decision", "model_version"}
    assert (outputs["score"]["datatype"], outputs["score"]["shape"]) == ("FP32", [2])
    assert outputs["score"]["data"] == pytest.approx([1_000 / 200_000, 2_000 / 200_000])
    assert (outputs["decision"]["datatype"], outputs["decision"]["data"]) == (
        "BYTES",
        ["approve", "approve"],
    )


def test_an_unknown_version_or_model_is_a_404_error_object(
    gateway: Gateway, serving: Serving
) -> None:
    auth = gateway.auth()
    base = f"{gateway.base}/v2/models/{MODEL}/versions/3"
    assert "3" in assert_error(httpx.get(base, headers=auth), 404)
    assert_error(httpx.get(f"{base}/ready", headers=auth), 404)
    assert_error(httpx.post(f"{base}/infer", json=infer_body(1), headers=auth), 404)
    for path in ("/v2/models/nope", "/v2/models/nope/ready", f"/v2/models/nope/versions/{VERSION}"):
        assert "nope" in assert_error(httpx.get(gateway.base + path, headers=auth), 404)
    assert_error(httpx.post(f"{gateway.base}/v2/models/nope/infer", json={}, headers=auth), 404)
    # a path the protocol does not have
    assert_error(httpx.get(f"{gateway.base}/v2/models/{MODEL}/stats", headers=auth), 404)
    assert_error(httpx.get(f"{gateway.base}/v2/nothing-here"), 404)


# -- every error is {"error": ...} -------------------------------------------------------------


def test_every_v2_failure_is_an_error_object(gateway: Gateway, serving: Serving) -> None:
    base, auth = gateway.base, gateway.auth()
    infer = f"{base}/v2/models/{MODEL}/infer"
    assert_error(httpx.post(infer, json={"inputs": "nope"}, headers=auth), 400)
    assert_error(httpx.post(infer, json=infer_body(1)), 401)
    assert_error(httpx.get(f"{base}/v2/models/{MODEL}"), 401)
    assert_error(httpx.get(f"{base}/v2/models/{MODEL}", headers=gateway.auth("ssk_a_b")), 401)
    other = httpx.post(infer, json=infer_body(1), headers=gateway.auth(gateway.keys.foreign))
    assert gateway.tenant.name in assert_error(other, 403)
    assert_error(httpx.get(infer, headers=auth), 405)
    assert "4096" in assert_error(
        httpx.post(infer, content=b"{" + b" " * 5000 + b"}", headers=auth), 413
    )
    plain_text = auth | {"content-type": "text/plain"}
    assert_error(httpx.post(infer, content=b"{}", headers=plain_text), 415)
    assert_error(httpx.request("BREW", infer, headers=auth), 501)
    hammer = gateway.auth(gateway.keys.hammer)
    with httpx.Client(headers=hammer) as client:
        codes = [client.get(f"{base}/v2/models/{MODEL}/ready") for _ in range(60)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, [r.status_code for r in codes]
    assert_error(limited[0], 429)
    assert int(limited[0].headers["retry-after"]) >= 1
    # /v1 keeps its own shape
    v1 = httpx.post(f"{base}/v1/transactions", json={})
    assert v1.status_code == 401
    assert set(v1.json()) == {"detail"}


def test_overload_is_a_503_error_object(gateway: Gateway, serving: Serving) -> None:
    """``--max-in-flight 1``: an infer waiting for decisions that never come (``noreply-`` ids)
    holds the only slot; the next infer is refused with 503 and Retry-After."""
    url = f"{gateway.base}/v2/models/{MODEL}/infer"

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(timeout=10, headers=gateway.auth()) as client:
            held = asyncio.create_task(
                client.post(url, json=infer_body(1, prefix="noreply", timeout_us=1_500_000))
            )
            await asyncio.sleep(0.5)
            refused = await client.post(url, json=infer_body(1))
            return await held, refused

    held, refused = asyncio.run(scenario())
    assert "decided asynchronously" in assert_error_with_extras(held, 504)
    assert_error(refused, 503)
    assert refused.headers["retry-after"] == "1"


def assert_error_with_extras(r: httpx.Response, status: int) -> str:
    """A 504 after the deadline also names the accepted events (``event_ids``)."""
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body.get("error"), str)
    return str(body["error"])


# -- tritonclient --------------------------------------------------------------------------------


def triton_error(call: Callable[[], object]) -> str:
    """The message tritonclient shows for a failed call: the server's ``error`` member (when the
    body has none, tritonclient says it could not decode the response instead)."""
    with pytest.raises(InferenceServerException) as info:
        call()
    message = str(info.value.message())
    assert "while decoding the response" not in message, message
    return message


def test_tritonclient_on_the_versioned_routes(gateway: Gateway, serving: Serving) -> None:
    client = triton.InferenceServerClient(gateway.base.removeprefix("http://"))
    headers = gateway.auth(gateway.keys.triton)
    try:
        assert client.is_server_ready()
        assert client.is_model_ready(MODEL, VERSION, headers=headers)
        assert not client.is_model_ready(MODEL, "3", headers=headers)
        meta = client.get_model_metadata(MODEL, VERSION, headers=headers)
        assert meta["versions"] == [VERSION]
        assert "version '3'" in triton_error(
            lambda: client.get_model_metadata(MODEL, "3", headers=headers)
        )
        # the 401's own message, read from "error"
        assert triton_error(lambda: client.get_model_metadata(MODEL, VERSION)).startswith(
            "missing API key"
        )

        inputs = []
        columns = {
            "transaction_id": [f"tc-{uuid.uuid4().hex[:10]}"],
            "account_id": ["acc-tc"],
            "merchant_id": ["m9"],
            "currency": ["EUR"],
            "channel": ["ecommerce"],
            "country": ["FR"],
            "mcc": ["5812"],
        }
        for name, values in columns.items():
            tensor = triton.InferInput(name, [1], "BYTES")
            tensor.set_data_from_numpy(np.array(values, dtype=object))
            inputs.append(tensor)
        amount = triton.InferInput("amount_minor", [1], "INT64")
        amount.set_data_from_numpy(np.array([150_000], dtype=np.int64))
        inputs.append(amount)
        result = client.infer(
            MODEL, inputs, model_version=VERSION, headers=headers, timeout=5_000_000
        )
        decisions = result.as_numpy("decision")
        assert decisions is not None
        assert [d.decode() if isinstance(d, bytes) else d for d in decisions] == ["decline"]
        assert "version '3'" in triton_error(
            lambda: client.infer(MODEL, inputs, model_version="3", headers=headers)
        )
    finally:
        client.close()
