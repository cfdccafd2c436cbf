"""``:score``'s deadline bounds the wait for Kafka's acknowledgement too.

A private broker (the shared one must never be frozen) is SIGSTOPped under a running gateway: the
request answers 504 ``unacknowledged`` at its deadline instead of after ``publish_timeout_s``; a
retry with the same Idempotency-Key gets 409 while the outcome is open; once the broker is back and
has acknowledged, the retry replays the accepted transaction (504 ``pending``: no decision service
runs here) and the transaction is in Kafka exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scorestream.admin import ensure_tenant_topics
from scorestream.dev.broker import BrokerState
from scorestream.serde import raw_from_message
from scorestream.topics import REGISTRY
from tests.factories import transaction_json
from tests.gateway_process import gateway_process
from tests.kafka_helpers import private_local_broker, read_messages
from tests.worker_support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BrokerState]:
    local = private_local_broker(tmp_path / "broker")
    state = local.start()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", state.bootstrap)
    try:
        yield state
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state.pid, signal.SIGCONT)  # never leave it frozen
        local.stop()


@pytest.fixture
def gateway(broker: BrokerState, tmp_path: Path) -> Iterator[tuple[str, str]]:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    ensure_tenant_topics(tenant)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "SCORESTREAM_GATEWAY_INSTANCE_ID": "gw-unacked",
        "SCORESTREAM_GATEWAY_AUTH_MODE": "disabled",
    }
    with gateway_process(tenant, tmp_path / "gateway.log", env=env) as gw:
        yield gw.base, tenant


def test_the_deadline_bounds_the_wait_for_kafka_and_the_key_settles_afterwards(
    broker: BrokerState, gateway: tuple[str, str]
) -> None:
    base, tenant = gateway
    data = transaction_json(transaction_id=f"tx-{uuid.uuid4().hex[:12]}")
    data.pop("tenant_id")
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}", "Prefer": "wait=1"}
    url = f"{base}/v1/transactions:score"
    os.killpg(broker.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        first = httpx.post(url, json=data, headers=key, timeout=30)
        took = time.monotonic() - started
        conflict = httpx.post(url, json=data, headers=key, timeout=30)
    finally:
        os.killpg(broker.pid, signal.SIGCONT)
    assert first.status_code == 504, first.text
    assert first.json()["status"] == "unacknowledged"
    assert first.json()["transaction_id"] == data["transaction_id"]
    assert first.headers["retry-after"] == "1"
    assert took < 5, f"answered after {took:.1f}s, not at its 1 s deadline"
    assert conflict.status_code == 409, conflict.text

    def settled() -> bool:
        return httpx.post(url, json=data, headers=key, timeout=30).status_code != 409

    wait_until(settled, 30, "the key to settle once Kafka acknowledged")
    replay = httpx.post(url, json=data, headers=key, timeout=30)
    assert replay.status_code == 504, replay.text  # no decision service runs: still pending
    assert replay.json()["status"] == "pending"
    assert replay.headers["idempotent-replayed"] == "true"
    event_id = replay.json()["event_id"]

    topic = REGISTRY.topic("transactions", tenant)
    msgs = read_messages(broker.bootstrap, topic, 10, timeout=10)
    txid = data["transaction_id"]
    ours = [m for m in msgs if json.loads(m.value() or b"{}")["transaction_id"] == txid]
    ce_ids = [(dict(raw_from_message(m).headers)["ce_id"] or b"").decode() for m in ours]
    assert ce_ids == [event_id]  # published once: the retries replayed, never re-sent
