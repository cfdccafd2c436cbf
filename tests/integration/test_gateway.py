"""The gateway as a real uvicorn process against the real broker.

The decision chain (enricher → worker → decision) is replaced here by a small *echo decision*
responder thread: it reads ``<tenant>.transactions`` and answers every event that carries
``ce_replyto`` with a ``DecisionEvent`` on the named reply topic and partition — exactly what
the decision service does at the end of the real chain. Transaction ids starting with
``noreply-`` get no answer (deadline and overload tests).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from confluent_kafka import Consumer, Message, Producer
from tritonclient.utils import InferenceServerException

from schemas.cloudevents import decode, encode
from schemas.events import DecisionEvent, ModelAlias, ModelPromoted, Outcome, TransactionEvent
from scorestream.model_events import publish_model_event
from scorestream.processing import carried_extensions
from scorestream.serde import decode_message, raw_from_message
from tests.factories import transaction_json
from tests.gateway_process import gateway_process
from tests.kafka_helpers import read_messages
from tests.worker_support import Tenant, new_tenant, wait_until

pytestmark = pytest.mark.integration

REPLY_PARTITION = 3
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def echo_decision(tx: TransactionEvent) -> DecisionEvent:
    now = datetime.now(UTC)
    return DecisionEvent(
        transaction_id=tx.transaction_id,
        tenant_id=tx.tenant_id,
        account_id=tx.account_id,
        outcome=Outcome.DECLINE if tx.amount_minor >= 100_000 else Outcome.APPROVE,
        score=min(1.0, tx.amount_minor / 200_000),
        model_name="fraud-gbt",
        model_version="echo-1",
        policy_version="echo",
        event_time=tx.timestamp,
        decided_at=now,
    )


class EchoDecision(threading.Thread):
    """Stand-in for enricher → worker → decision: reply to ``ce_replyto`` at once."""

    def __init__(self, bootstrap: str, tenant: Tenant) -> None:
        super().__init__(name="echo-decision", daemon=True)
        self.bootstrap = bootstrap
        self.tenant = tenant
        self.stopping = threading.Event()
        self.answered = 0
        self.error: Exception | None = None

    def run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"echo-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 20,
            }
        )
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
        consumer.subscribe([self.tenant.topic("transactions")])
        try:
            while not self.stopping.is_set():
                for msg in consumer.consume(100, timeout=0.1):
                    if msg.error() is None:
                        self._answer(producer, msg)
                producer.poll(0)
        except Exception as exc:  # noqa: BLE001  (reported by the fixture)
            self.error = exc
        finally:
            producer.flush(5)
            consumer.close()

    def _answer(self, producer: Producer, msg: Message) -> None:
        env = decode_message(msg, accept=[TransactionEvent])
        replyto = env.extensions.get("replyto")
        if replyto is None or env.event.transaction_id.startswith("noreply-"):
            return
        topic, partition = replyto.rsplit("/", 1)
        # the extensions travel on, as the decision service carries them (ce_requestid: the
        # gateway matches a reply to its request by it)
        out = encode(
            echo_decision(env.event),
            source="tests/echo-decision",
            trace=env.trace,
            extensions=carried_extensions(env),
        )
        producer.produce(
            topic,
            key=out.key,
            value=out.value,
            headers=list(out.headers),
            partition=int(partition),
        )
        self.answered += 1


@pytest.fixture(scope="module")
def tenant(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    return new_tenant(tmp_path_factory.mktemp("gateway"))


@pytest.fixture(scope="module")
def echo(kafka_bootstrap: str, tenant: Tenant) -> Iterator[EchoDecision]:
    responder = EchoDecision(kafka_bootstrap, tenant)
    responder.start()
    yield responder
    responder.stopping.set()
    responder.join(10)
    assert responder.error is None


@pytest.fixture(scope="module")
def gateway(tenant: Tenant, echo: EchoDecision) -> Iterator[str]:
    with gateway_process(
        tenant.name,
        tenant.repo_dir.parent / "gateway.log",
        *("--reply-partition", str(REPLY_PARTITION), "--max-in-flight", "2"),
        *("--max-body-bytes", "4096"),
        # API keys are tested in tests/security/test_gateway_security.py
        env={
            "SCORESTREAM_GATEWAY_INSTANCE_ID": "gw-test",
            "SCORESTREAM_GATEWAY_AUTH_MODE": "disabled",
        },
        clean_exit=True,
    ) as gw:
        yield gw.base


def body(tenant: Tenant, **changes: object) -> dict[str, object]:
    data = transaction_json(**changes)
    data.pop("tenant_id")  # the gateway fills in its tenant
    return data | {"transaction_id": changes.get("transaction_id", f"tx-{uuid.uuid4().hex[:12]}")}


def records_of(
    bootstrap: str, tenant: Tenant, until_txid: str, timeout: float = 30
) -> list[Message]:
    """Every transaction record up to (and including) the one of ``until_txid``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msgs = read_messages(bootstrap, tenant.topic("transactions"), 10_000, timeout=2)
        ids = [json.loads(m.value() or b"{}").get("transaction_id") for m in msgs]
        if until_txid in ids:
            return msgs
    raise AssertionError(f"{until_txid} never reached Kafka")


def headers_of(msg: Message) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in raw_from_message(msg).headers}


# -- tests ---------------------------------------------------------------------------------------


def test_accept_is_durable_with_cloudevents_headers(
    kafka_bootstrap: str, tenant: Tenant, gateway: str
) -> None:
    data = body(tenant, account_id="acc-headers")
    r = httpx.post(f"{gateway}/v1/transactions", json=data, headers={"traceparent": TRACEPARENT})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["status"] == "accepted"
    assert accepted["topic"] == tenant.topic("transactions")
    assert accepted["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    msgs = records_of(kafka_bootstrap, tenant, str(data["transaction_id"]))
    [msg] = [m for m in msgs if headers_of(m).get("ce_id") == accepted["event_id"]]
    assert (msg.partition(), msg.offset()) == (accepted["partition"], accepted["offset"])
    assert msg.key() == b"acc-headers"  # key = account_id
    h = headers_of(msg)
    assert h["ce_specversion"] == "1.0"
    assert h["ce_type"] == "scorestream.transaction.v1"
    assert h["ce_source"] == "scorestream/gateway"
    assert h["content-type"] == "application/json"
    assert "ce_replyto" not in h  # asynchronous intake asks for no reply
    # a child span of the caller's trace: same trace id, the gateway's own span id
    assert h["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert h["traceparent"] != TRACEPARENT
    env = decode(raw_from_message(msg), accept=[TransactionEvent])
    assert env.event.tenant_id == tenant.name


def test_idempotency_key_dedupes_retries(
    kafka_bootstrap: str, tenant: Tenant, gateway: str
) -> None:
    data = body(tenant, account_id="acc-idem")
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    first = httpx.post(f"{gateway}/v1/transactions", json=data, headers=key)
    second = httpx.post(f"{gateway}/v1/transactions", json=data, headers=key)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    other = httpx.post(f"{gateway}/v1/transactions", json=data | {"amount_minor": 1}, headers=key)
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    # a marker on the same key (account) lands after any duplicate in the same partition
    marker = body(tenant, account_id="acc-idem")
    assert httpx.post(f"{gateway}/v1/transactions", json=marker).status_code == 202
    msgs = records_of(kafka_bootstrap, tenant, str(marker["transaction_id"]))
    same = [
        m
        for m in msgs
        if json.loads(m.value() or b"{}")["transaction_id"] == data["transaction_id"]
    ]
    assert len(same) == 1
    assert headers_of(same[0])["ce_id"] == first.json()["event_id"]


def test_score_returns_the_decision_from_the_reply_partition(
    kafka_bootstrap: str, tenant: Tenant, gateway: str
) -> None:
    for amount, outcome in ((12_345, "approve"), (150_000, "decline")):
        data = body(tenant, amount_minor=amount)
        r = httpx.post(f"{gateway}/v1/transactions:score", json=data, timeout=10)
        assert r.status_code == 200, r.text
        scored = r.json()
        assert scored["transaction_id"] == data["transaction_id"]
        assert scored["decision"] == outcome
        assert scored["score"] == pytest.approx(min(1.0, amount / 200_000))
        assert (scored["model_name"], scored["model_version"]) == ("fraud-gbt", "echo-1")
    msgs = records_of(kafka_bootstrap, tenant, str(data["transaction_id"]))
    [msg] = [m for m in msgs if headers_of(m)["ce_id"] == scored["event_id"]]
    assert headers_of(msg)["ce_replyto"] == f"{tenant.topic('replies')}/{REPLY_PARTITION}"
    replies = read_messages(kafka_bootstrap, tenant.topic("replies"), 2, timeout=10)
    assert {m.partition() for m in replies} == {REPLY_PARTITION}


def test_deadline_gives_504_and_a_retry_waits_for_the_late_decision(
    kafka_bootstrap: str, tenant: Tenant, gateway: str
) -> None:
    data = body(tenant, transaction_id=f"noreply-{uuid.uuid4().hex[:10]}")
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    started = time.monotonic()
    r = httpx.post(
        f"{gateway}/v1/transactions:score", json=data, headers=key | {"Prefer": "wait=0.5"}
    )
    assert 0.4 < time.monotonic() - started < 3
    assert r.status_code == 504
    pending = r.json()
    assert pending["status"] == "pending"
    assert pending["transaction_id"] == data["transaction_id"]
    msgs = records_of(kafka_bootstrap, tenant, str(data["transaction_id"]))
    assert [
        headers_of(m)["ce_id"]
        for m in msgs
        if json.loads(m.value() or b"{}")["transaction_id"] == data["transaction_id"]
    ] == [pending["event_id"]]  # the event is in Kafka
    # the decision arrives late (the chain was slow): a retry with the key gets it, no re-publish
    tx = next(
        TransactionEvent.model_validate_json(m.value() or b"")
        for m in msgs
        if headers_of(m)["ce_id"] == pending["event_id"]
    )
    # the request's extensions travel with it, as through the decision service
    [published] = [m for m in msgs if headers_of(m)["ce_id"] == pending["event_id"]]
    late = encode(
        echo_decision(tx),
        source="tests/late-decision",
        extensions={"requestid": headers_of(published)["ce_requestid"]},
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    producer.produce(
        tenant.topic("replies"),
        key=late.key,
        value=late.value,
        headers=list(late.headers),
        partition=REPLY_PARTITION,
    )
    assert producer.flush(10) == 0
    retry = httpx.post(
        f"{gateway}/v1/transactions:score", json=data, headers=key | {"Prefer": "wait=5"}
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["event_id"] == pending["event_id"]
    assert retry.json()["decision"] == "approve"
    assert retry.headers["idempotent-replayed"] == "true"


def test_body_limit_and_validation_errors(gateway: str, tenant: Tenant) -> None:
    big = body(tenant) | {"padding": "x" * 5000}
    r = httpx.post(f"{gateway}/v1/transactions", json=big)
    assert r.status_code == 413
    assert "4096" in r.json()["detail"]

    async def chunked() -> httpx.Response:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        async with httpx.AsyncClient() as client:
            return await client.post(
                f"{gateway}/v1/transactions",
                content=chunks(),
                headers={"content-type": "application/json"},
            )

    assert asyncio.run(chunked()).status_code == 413  # no Content-Length: counted while read

    bad = body(tenant, amount_minor="12", currency="EURO")
    del bad["merchant_id"]
    r = httpx.post(f"{gateway}/v1/transactions", json=bad)
    assert r.status_code == 422
    fields = {tuple(d["loc"]) for d in r.json()["detail"]}
    assert fields == {("body", "amount_minor"), ("body", "currency"), ("body", "merchant_id")}
    r = httpx.post(
        f"{gateway}/v1/transactions:score",
        content=b"{nope",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


def test_overload_gives_503_with_retry_after(gateway: str, tenant: Tenant) -> None:
    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:

            def slow() -> asyncio.Task[httpx.Response]:
                data = body(tenant, transaction_id=f"noreply-{uuid.uuid4().hex[:10]}")
                return asyncio.create_task(
                    client.post(
                        f"{gateway}/v1/transactions:score",
                        json=data,
                        headers={"Prefer": "wait=1.5"},
                    )
                )

            holding = [slow(), slow()]  # max in flight is 2
            await asyncio.sleep(0.4)
            refused = await asyncio.gather(
                client.post(f"{gateway}/v1/transactions", json=body(tenant)),
                client.post(f"{gateway}/v1/transactions:score", json=body(tenant)),
            )
            probe = await client.get(f"{gateway}/readyz")  # probes are never refused
            return list(await asyncio.gather(*holding)), list(refused), probe

    held, refused, probe = asyncio.run(scenario())
    assert [r.status_code for r in held] == [504, 504]
    assert [r.status_code for r in refused] == [503, 503]
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert probe.status_code == 200
    # capacity comes back once the slow requests are done
    assert httpx.post(f"{gateway}/v1/transactions", json=body(tenant)).status_code == 202


def test_open_inference_protocol_with_tritonclient(tenant: Tenant, gateway: str) -> None:
    publish_model_event(
        ModelPromoted(
            tenant_id=tenant.name,
            model_name="fraud-gbt",
            model_version="v-test",
            alias=ModelAlias.CHAMPION,
            promoted_at=datetime.now(UTC),
        ),
        tenant=tenant.name,
    )
    client = triton.InferenceServerClient(gateway.removeprefix("http://"))
    try:
        assert client.is_server_live()
        wait_until(lambda: client.is_model_ready("fraud-gbt"), 15, "model ready")
        assert client.is_server_ready()  # ready once a model serves the tenant
        meta = client.get_model_metadata("fraud-gbt")
        assert meta["versions"] == ["v-test"]
        assert {i["name"] for i in meta["inputs"]} >= {"transaction_id", "amount_minor", "mcc"}
        assert not client.is_model_ready("no-such-model")
        with pytest.raises(InferenceServerException, match="unknown model"):
            client.get_model_metadata("no-such-model")

        for binary in (True, False):
            ids = [f"v2-{uuid.uuid4().hex[:10]}" for _ in range(3)]
            amounts = [500, 150_000, 42_000]
            columns: dict[str, list[str]] = {
                "transaction_id": ids,
                "account_id": ["acc-v2-1", "acc-v2-2", "acc-v2-1"],
                "merchant_id": ["m1", "m2", "m3"],
                "currency": ["EUR", "EUR", "GBP"],
                "channel": ["ecommerce", "contactless", "card_present"],
                "country": ["DE", "FR", "GB"],
                "mcc": ["5411", "5812", "4111"],
            }
            inputs = []
            for name, values in columns.items():
                tensor = triton.InferInput(name, [3], "BYTES")
                tensor.set_data_from_numpy(np.array(values, dtype=object), binary_data=binary)
                inputs.append(tensor)
            amount = triton.InferInput("amount_minor", [3], "INT64")
            amount.set_data_from_numpy(np.array(amounts, dtype=np.int64), binary_data=binary)
            inputs.append(amount)
            outputs = [
                triton.InferRequestedOutput("score", binary_data=binary),
                triton.InferRequestedOutput("decision", binary_data=binary),
            ]
            result = client.infer(
                "fraud-gbt", inputs, outputs=outputs, request_id=f"req-{binary}", timeout=5_000_000
            )
            assert result.get_response()["id"] == f"req-{binary}"
            assert result.get_response()["model_version"] == "echo-1"
            scores = result.as_numpy("score")
            decisions = result.as_numpy("decision")
            assert scores is not None
            assert decisions is not None
            assert scores.dtype == np.float32
            assert scores.tolist() == pytest.approx([a / 200_000 for a in amounts], rel=1e-6)
            assert [d.decode() if isinstance(d, bytes) else d for d in decisions] == [
                "approve",
                "decline",
                "approve",
            ]
        bad = triton.InferInput("amount_minor", [1], "INT64")
        bad.set_data_from_numpy(np.array([1], dtype=np.int64))
        with pytest.raises(InferenceServerException, match="missing input"):
            client.infer("fraud-gbt", [bad])
    finally:
        client.close()


def test_probes_docs_and_metrics(gateway: str) -> None:
    assert httpx.get(f"{gateway}/livez").json()["status"] == "ok"
    assert httpx.get(f"{gateway}/docs").status_code == 200
    spec = httpx.get(f"{gateway}/openapi.json").json()
    assert {"/v1/transactions", "/v1/transactions:score", "/v2/models/{model}/infer"} <= set(
        spec["paths"]
    )
    assert "TransactionRequest" in spec["components"]["schemas"]
    text = httpx.get(f"{gateway}/metrics").text
    assert (
        'scorestream_gateway_requests_total{method="POST",route="/v1/transactions",status="202"}'
        in text
    )
    assert "scorestream_gateway_request_seconds_bucket" in text
    assert 'scorestream_gateway_sync_total{outcome="decided"' in text
    assert "scorestream_publisher_records_total" in text
