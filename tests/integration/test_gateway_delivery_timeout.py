"""Issue 15, item 6: a delivery that timed out is not "not written".

librdkafka's "Message timed out" says the producer gave up, not that the broker has no copy. A
private broker advertises a proxy (:mod:`tests.kafka_proxy`) that loses the gateway publisher's
Produce acks on demand: the broker appends the transaction, the gateway's publisher times it out
(``publish_timeout_s`` = 3 s). The attack: the Idempotency-Key was released and the retry wrote a
second copy. Now the retries get 409/503 + ``Retry-After`` while the outcome is open, the gateway
finds its event (the id derived from the key) in the topic, and the retry replays the first
acceptance: one copy in Kafka.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from producers.gateway.http import fingerprint
from producers.gateway.idempotency import derive_event_id, find_event, possibly_written
from producers.publisher import Publisher, PublisherError
from scorestream.admin import ensure_tenant_topics
from scorestream.broker import BrokerState, LocalBroker
from scorestream.broker.local import stable_free_ports
from scorestream.serde import raw_from_message
from scorestream.settings import BrokerSettings, KafkaSettings
from scorestream.topics import REGISTRY
from tests.factories import transaction_json
from tests.gateway_process import gateway_process
from tests.kafka_helpers import read_messages
from tests.kafka_proxy import KafkaProxy
from tests.worker_support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerState, KafkaProxy]]:
    """A private broker whose advertised PLAINTEXT listener is the proxy."""
    plaintext, sasl, controller, front = stable_free_ports(4)
    proxy = KafkaProxy(front, plaintext, client_id="")
    local = LocalBroker(
        BrokerSettings(
            home=tmp_path_factory.mktemp("broker"),
            plaintext_port=plaintext,
            sasl_port=sasl,
            controller_port=controller,
            heap="384m",
            extra_config={
                "advertised.listeners": (
                    f"PLAINTEXT://127.0.0.1:{front},SASL_PLAINTEXT://127.0.0.1:{sasl}"
                )
            },
        )
    )
    try:
        state = local.start()
        yield dataclasses.replace(state, plaintext_port=front), proxy  # clients: the proxy
    finally:
        local.stop()
        proxy.close()


@pytest.fixture(scope="module")
def broker(proxied: tuple[BrokerState, KafkaProxy]) -> BrokerState:
    return proxied[0]


@pytest.fixture(scope="module")
def proxy(proxied: tuple[BrokerState, KafkaProxy]) -> KafkaProxy:
    return proxied[1]


@pytest.fixture(scope="module")
def tenant(broker: BrokerState) -> str:
    name = f"t{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap)
        ensure_tenant_topics(name)
    return name


def ce_ids(broker: BrokerState, tenant: str, txid: str) -> list[str]:
    msgs = read_messages(broker.bootstrap, REGISTRY.topic("transactions", tenant), 100, timeout=5)
    return [
        (dict(raw_from_message(m).headers).get("ce_id") or b"").decode()
        for m in msgs
        if json.loads(m.value() or b"{}").get("transaction_id") == txid
    ]


def test_a_timed_out_delivery_is_not_published_again_by_its_retries(
    broker: BrokerState, proxy: KafkaProxy, tenant: str, tmp_path: Path
) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "SCORESTREAM_GATEWAY_INSTANCE_ID": "gw-timeout",
        "SCORESTREAM_GATEWAY_AUTH_MODE": "disabled",
        "SCORESTREAM_GATEWAY_PUBLISH_TIMEOUT_S": "3",
    }
    data = transaction_json(transaction_id=f"tx-{uuid.uuid4().hex[:12]}")
    data.pop("tenant_id")
    txid = str(data["transaction_id"])
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    url_path = "/v1/transactions"
    proxy.client_id = f"{tenant}.gateway.gw-timeout".encode()  # the gateway's publisher
    with gateway_process(tenant, tmp_path / "gateway.log", env=env) as gw:
        url = f"{gw.base}{url_path}"
        proxy.drop_produce_acks.set()
        try:
            first = httpx.post(url, json=data, headers=key, timeout=30)
            # on a busy machine the answer (503 at publish_timeout_s + 2 s) can come before the
            # publish itself: the ack is lost whenever the publish happens
            wait_until(lambda: proxy.dropped >= 1, 30, "the publisher's Produce ack to be lost")
        finally:
            proxy.drop_produce_acks.clear()
        assert first.status_code == 503, first.text
        assert first.headers["retry-after"] == "1"
        # the broker has it, although the producer gave up on it
        wait_until(lambda: len(ce_ids(broker, tenant, txid)) == 1, 30, "the record in Kafka")

        answers: list[httpx.Response] = []

        def settled() -> bool:
            answers.append(httpx.post(url, json=data, headers=key, timeout=30))
            return answers[-1].status_code not in (409, 503)

        wait_until(settled, 60, "the outcome to be known")
        for retry in answers[:-1]:  # while the outcome was open
            assert retry.headers["retry-after"] == "1", retry.text
        accepted = answers[-1]
        assert accepted.status_code == 202, accepted.text
        event_id = accepted.json()["event_id"]

    time.sleep(1)
    assert ce_ids(broker, tenant, txid) == [event_id]  # once: the retries never re-sent it
    # the event id is the request's own: the key's (and the body's), whatever attempt wrote it
    sent = httpx.Request("POST", url_path, json=data).content
    assert event_id == derive_event_id(
        tenant, key["Idempotency-Key"], txid, fingerprint("accept", sent)
    )


def test_a_real_message_timeout_counts_as_possibly_written_and_the_topic_tells(
    broker: BrokerState, proxy: KafkaProxy, tenant: str
) -> None:
    """librdkafka's own "Message timed out" for a record the broker appended: an open outcome,
    and looking the event up in the topic finds it."""
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
    tx = transaction_json(transaction_id=f"tx-{uuid.uuid4().hex[:12]}") | {"tenant_id": tenant}
    event_id = str(uuid.uuid4())
    started_ms = int(time.time() * 1000)
    proxy.client_id = b"tests-timeout"
    with Publisher(
        tenant=tenant, client_id="tests-timeout", delivery_timeout_s=3, linger_ms=0, kafka=kafka
    ) as pub:
        proxy.drop_produce_acks.set()
        try:
            with pytest.raises(PublisherError) as failed:
                pub.publish(tx, event_id=event_id, timeout=10)
        finally:
            proxy.drop_produce_acks.clear()
    assert possibly_written(failed.value), repr(failed.value)
    found = find_event(kafka, tenant, str(tx["account_id"]), event_id, started_ms - 5_000, "t")
    assert found is not None
    assert found[0] == REGISTRY.topic("transactions", tenant)
    assert ce_ids(broker, tenant, str(tx["transaction_id"])) == [event_id]
    missing = find_event(kafka, tenant, str(tx["account_id"]), "no-such", started_ms, "t")
    assert missing is None
