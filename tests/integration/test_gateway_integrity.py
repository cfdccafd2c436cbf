"""Issue 15, items 3, 7 and 8: what a gateway answers is the answer to *this* request, and a
transaction is published once — whatever replica a retry reaches, across a restart.

Real gateway processes against the real broker; the decision chain is the echo responder of
``tests/integration/test_gateway.py`` (it answers ``ce_replyto`` at once, carrying the
extensions as the decision service does).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from confluent_kafka import Producer

from producers.gateway.idempotency import Entry, tx_key
from producers.publisher import Publisher
from schemas.cloudevents import encode
from schemas.events import TransactionEvent
from scorestream.serde import raw_from_message
from tests.gateway_process import GatewayProcess, gateway_process
from tests.integration.test_gateway import EchoDecision, body, echo_decision, headers_of
from tests.kafka_helpers import read_messages
from tests.worker_support import Tenant, new_tenant, wait_until

pytestmark = pytest.mark.integration

APPROVE, DECLINE = 12_345, 150_000  # the echo declines from 100,000 minor units


@pytest.fixture(scope="module")
def tenant(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    return new_tenant(tmp_path_factory.mktemp("gateway-integrity"))


@pytest.fixture(scope="module")
def echo(kafka_bootstrap: str, tenant: Tenant) -> Iterator[EchoDecision]:
    responder = EchoDecision(kafka_bootstrap, tenant)
    responder.start()
    yield responder
    responder.stopping.set()
    responder.join(10)
    assert responder.error is None


def _gateway(
    tenant: Tenant, name: str, partition: int
) -> contextlib.AbstractContextManager[GatewayProcess]:
    return gateway_process(
        tenant.name,
        tenant.repo_dir.parent / f"gateway-{name}.log",
        *("--reply-partition", str(partition)),
        env={
            "SCORESTREAM_GATEWAY_INSTANCE_ID": f"gw-{name}",
            "SCORESTREAM_GATEWAY_AUTH_MODE": "disabled",
        },
    )


@pytest.fixture(scope="module")
def replica_a(tenant: Tenant, echo: EchoDecision) -> Iterator[str]:
    with _gateway(tenant, "a", 1) as gw:
        yield gw.base


@pytest.fixture(scope="module")
def replica_b(tenant: Tenant, echo: EchoDecision) -> Iterator[str]:
    with _gateway(tenant, "b", 2) as gw:
        yield gw.base


def copies_of(bootstrap: str, tenant: Tenant, txids: list[str]) -> dict[str, list[str]]:
    """The ``ce_id`` of every record of each of ``txids`` in the transactions topic (read once
    every one is there, plus a second to catch a late extra copy)."""
    topic = tenant.topic("transactions")

    def read() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {t: [] for t in txids}
        for m in read_messages(bootstrap, topic, 100_000, timeout=2):
            txid = json.loads(m.value() or b"{}").get("transaction_id")
            if txid in found:
                found[txid].append((dict(raw_from_message(m).headers).get("ce_id") or b"").decode())
        return found

    wait_until(lambda: all(read().values()), 30, "every transaction in Kafka")
    time.sleep(1)
    return read()


def copies(bootstrap: str, tenant: Tenant, txid: str) -> list[str]:
    return copies_of(bootstrap, tenant, [txid])[txid]


def score(base: str, data: dict[str, object], **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/transactions:score", json=data, headers=headers, timeout=15)


def v2_row(data: dict[str, object]) -> dict[str, object]:
    """One transaction as a KServe V2 infer request (one row per input tensor)."""
    ints = {"amount_minor"}
    return {
        "inputs": [
            {
                "name": name,
                "datatype": "INT64" if name in ints else "BYTES",
                "shape": [1],
                "data": [value],
            }
            for name, value in data.items()
            if name in ("transaction_id", "account_id", "merchant_id", "amount_minor")
            or name in ("currency", "channel", "country", "mcc")
        ]
    }


def test_a_reused_transaction_id_with_another_body_gets_409_not_the_first_decision(
    kafka_bootstrap: str, tenant: Tenant, replica_a: str
) -> None:
    """The attack: a second request with the same transaction_id and another body got the first
    one's "approve" in milliseconds, while its own committed decision was "decline"."""
    txid = f"tx-reuse-{uuid.uuid4().hex[:10]}"
    first = body(tenant, transaction_id=txid, amount_minor=APPROVE, account_id="acc-reuse")
    r1 = score(replica_a, first)
    assert r1.status_code == 200, r1.text
    assert r1.json()["decision"] == "approve"

    other = first | {"amount_minor": DECLINE}
    r2 = score(replica_a, other)
    assert r2.status_code == 409, r2.text
    assert r2.json()["detail"][0]["type"] == "transaction_id_reused"
    assert "approve" not in r2.text
    async_other = httpx.post(f"{replica_a}/v1/transactions", json=other, timeout=15)
    assert async_other.status_code == 409, async_other.text
    v2_other = httpx.post(f"{replica_a}/v2/models/fraud-gbt/infer", json=v2_row(other), timeout=15)
    assert v2_other.status_code == 409, v2_other.text
    assert "transaction_id" in v2_other.json()["error"]

    # the same request again is a replay: the first answer, nothing published again
    r3 = score(replica_a, first)
    assert r3.status_code == 200, r3.text
    assert r3.json() == r1.json()
    assert r3.headers["idempotent-replayed"] == "true"
    assert copies(kafka_bootstrap, tenant, txid) == [r1.json()["event_id"]]


def test_a_reply_reaches_only_the_request_that_caused_it(
    kafka_bootstrap: str, tenant: Tenant, echo: EchoDecision, replica_a: str
) -> None:
    """Another client of the tenant publishes (straight to Kafka) a transaction with the id a
    client is about to score, asking for a reply on the gateway's reply partition: the gateway
    must answer the client with the decision of the client's own transaction, not that one."""
    txid = f"tx-forged-{uuid.uuid4().hex[:10]}"
    forged = body(tenant, transaction_id=txid, amount_minor=DECLINE, account_id="acc-forged")
    answered = echo.answered
    with Publisher(tenant=tenant.name, source="tests/another-client") as pub:
        pub.publish(forged | {"tenant_id": tenant.name}, extensions={"replyto": _replyto(tenant)})
    wait_until(lambda: echo.answered > answered, 15, "the forged transaction's reply")
    time.sleep(0.5)  # the gateway has read it from its reply partition

    mine = forged | {"amount_minor": APPROVE}
    r = score(replica_a, mine)
    assert r.status_code == 200, r.text
    assert r.json()["decision"] == "approve", "answered with another transaction's decision"
    assert r.json()["score"] == pytest.approx(APPROVE / 200_000)


def _replyto(tenant: Tenant) -> str:
    return f"{tenant.topic('replies')}/1"  # replica_a's partition


def test_a_retry_through_another_replica_or_after_a_restart_publishes_nothing_twice(
    kafka_bootstrap: str, tenant: Tenant, echo: EchoDecision, replica_b: str
) -> None:
    """Idempotency-Keys and transaction ids are durable and shared: the same request sent to a
    second replica, and again to the first one restarted, is answered as the first time."""
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    txid = f"tx-replicas-{uuid.uuid4().hex[:10]}"
    data = body(tenant, transaction_id=txid, account_id="acc-replicas")
    scored_txid = f"tx-replicas-score-{uuid.uuid4().hex[:10]}"
    scored = body(tenant, transaction_id=scored_txid, amount_minor=DECLINE, account_id="acc-r")
    with _gateway(tenant, "c", 3) as first_life:
        r1 = httpx.post(f"{first_life.base}/v1/transactions", json=data, headers=key, timeout=15)
        assert r1.status_code == 202, r1.text
        s1 = score(first_life.base, scored)
        assert s1.status_code == 200, s1.text

    # another replica: the key and the transaction ids are known there too
    r2 = httpx.post(f"{replica_b}/v1/transactions", json=data, headers=key, timeout=15)
    assert r2.status_code == 202, r2.text
    assert r2.json() == r1.json()
    assert r2.headers["idempotent-replayed"] == "true"
    no_key = httpx.post(f"{replica_b}/v1/transactions", json=data, timeout=15)
    assert no_key.status_code == 202, no_key.text  # the same transaction: a replay
    assert no_key.json()["event_id"] == r1.json()["event_id"]
    s2 = score(replica_b, scored)
    assert s2.status_code == 200, s2.text
    assert s2.json() == s1.json()
    reused_key = httpx.post(
        f"{replica_b}/v1/transactions", json=data | {"amount_minor": 1}, headers=key, timeout=15
    )
    assert reused_key.status_code == 422, reused_key.text

    # the first replica restarted (same instance, same reply partition)
    with _gateway(tenant, "c", 3) as second_life:
        r3 = httpx.post(f"{second_life.base}/v1/transactions", json=data, headers=key, timeout=15)
        assert r3.status_code == 202, r3.text
        assert r3.json() == r1.json()
        s3 = score(second_life.base, scored)
        assert s3.json() == s1.json()

    assert copies(kafka_bootstrap, tenant, txid) == [r1.json()["event_id"]]
    assert copies(kafka_bootstrap, tenant, scored_txid) == [s1.json()["event_id"]]


def test_the_same_request_racing_through_two_replicas_is_published_once(
    kafka_bootstrap: str, tenant: Tenant, replica_a: str, replica_b: str
) -> None:
    """Both replicas claim the request's key and transaction id at the same moment: the first
    claim in the log wins on both, the other replica answers 409 (or replays), never publishes."""
    txids = [f"tx-race-{i}-{uuid.uuid4().hex[:8]}" for i in range(10)]

    def send(base: str, data: dict[str, object], key: str) -> httpx.Response:
        return httpx.post(
            f"{base}/v1/transactions", json=data, headers={"Idempotency-Key": key}, timeout=15
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        for txid in txids:
            data = body(tenant, transaction_id=txid, account_id=f"acc-{txid}")
            key = f"key-{uuid.uuid4().hex}"
            racing = [pool.submit(send, base, data, key) for base in (replica_a, replica_b)]
            answers = [r.result() for r in racing]
            statuses = sorted(a.status_code for a in answers)
            assert statuses in ([202, 202], [202, 409]), [a.text for a in answers]
            event_ids = {a.json()["event_id"] for a in answers if a.status_code == 202}
            assert len(event_ids) == 1
    found = copies_of(kafka_bootstrap, tenant, txids)
    assert {t: len(ids) for t, ids in found.items()} == dict.fromkeys(txids, 1)


def _idempotency_states(bootstrap: str, tenant: Tenant, txid: str) -> list[tuple[str, bool]]:
    """(state, awaiting a decision) of every record of ``tx/<txid>`` in the tenant's idempotency
    log, in log order."""
    out = []
    for m in read_messages(bootstrap, tenant.topic("gateway.idempotency"), 100_000, timeout=2):
        if m.key() == tx_key(txid).encode():
            entry = Entry.from_json(m.value() or b"")
            out.append((entry.state, bool((entry.response or {}).get("awaiting"))))
    return out


def test_a_score_records_its_claim_and_then_its_outcome_once(
    kafka_bootstrap: str, tenant: Tenant, echo: EchoDecision, replica_a: str, replica_b: str
) -> None:
    """A decided ``:score`` writes two records (its claim, then its decision: no intermediate
    'published, awaiting the decision' record on the request path); one that runs out of time
    writes its pending answer instead. Either way another replica answers the same."""
    decided_id = f"tx-records-{uuid.uuid4().hex[:10]}"
    decided = body(tenant, transaction_id=decided_id, amount_minor=APPROVE, account_id="acc-rec")
    r = score(replica_a, decided)
    assert r.status_code == 200, r.text
    wait_until(
        lambda: len(_idempotency_states(kafka_bootstrap, tenant, decided_id)) >= 2,
        15,
        "the decision recorded",
    )
    time.sleep(0.5)  # nothing else follows
    assert _idempotency_states(kafka_bootstrap, tenant, decided_id) == [
        ("pending", False),
        ("done", False),
    ]
    elsewhere = score(replica_b, decided)
    assert elsewhere.status_code == 200, elsewhere.text
    assert elsewhere.json() == r.json()

    late_id = f"noreply-{uuid.uuid4().hex[:10]}"  # the echo never answers these
    late = body(tenant, transaction_id=late_id, account_id="acc-rec")
    pending = score(replica_a, late, Prefer="wait=1.5")  # long enough for Kafka's ack
    assert pending.status_code == 504, pending.text
    assert pending.json()["status"] == "pending", pending.text
    wait_until(
        lambda: len(_idempotency_states(kafka_bootstrap, tenant, late_id)) >= 2,
        15,
        "the pending answer recorded",
    )
    assert _idempotency_states(kafka_bootstrap, tenant, late_id) == [
        ("pending", False),
        ("done", True),
    ]
    replayed = score(replica_b, late, Prefer="wait=0.3")
    assert replayed.status_code == 504, replayed.text
    assert replayed.json()["event_id"] == pending.json()["event_id"]
    assert copies(kafka_bootstrap, tenant, late_id) == [pending.json()["event_id"]]


def test_a_retry_on_another_replica_gets_the_late_decision_from_the_decisions_topic(
    kafka_bootstrap: str, tenant: Tenant, echo: EchoDecision, replica_a: str, replica_b: str
) -> None:
    """The decision of a ``:score`` that ran out of time on replica A arrives later (on A's
    reply partition and in ``decisions``): a retry through replica B answers it, as a retry
    through A does, instead of replaying A's 504."""
    late_id = f"noreply-{uuid.uuid4().hex[:10]}"  # the echo never answers these
    late = body(tenant, transaction_id=late_id, amount_minor=DECLINE, account_id="acc-late-b")
    pending = score(replica_a, late, Prefer="wait=1.5")  # long enough for Kafka's ack
    assert pending.status_code == 504, pending.text
    assert pending.json()["status"] == "pending", pending.text
    event_id = pending.json()["event_id"]
    [published] = [
        m
        for m in read_messages(kafka_bootstrap, tenant.topic("transactions"), 100_000, timeout=2)
        if headers_of(m).get("ce_id") == event_id
    ]
    tx = TransactionEvent.model_validate_json(published.value() or b"")
    # the decision service's output, with the request's extensions, in <tenant>.decisions only
    decided = encode(
        echo_decision(tx),
        source="tests/late-decision",
        extensions={"requestid": headers_of(published)["ce_requestid"]},
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    producer.produce(
        tenant.topic("decisions"), key=decided.key, value=decided.value, headers=decided.headers
    )
    assert producer.flush(10) == 0

    retry = score(replica_b, late, Prefer="wait=5")
    assert retry.status_code == 200, retry.text
    assert retry.json()["event_id"] == event_id
    assert retry.json()["decision"] == "decline"
    assert retry.headers["idempotent-replayed"] == "true"
    assert copies(kafka_bootstrap, tenant, late_id) == [event_id]
