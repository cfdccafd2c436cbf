"""Every service as a real process: simulated traffic end to end, restarts, sync and V2 paths."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from producers.simulate_cli import interleaved
from producers.simulator import SimulatorConfig, simulate
from schemas.events import AuditRecord, AuditStatus, DecisionEvent, PredictionEvent
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from scorestream.supervisor import Supervisor
from scorestream.topics import REGISTRY
from scorestream.up import up
from tests.kafka_helpers import read_messages
from tests.worker_support import Tenant, free_port, http_get, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    tenant = Tenant(f"e{uuid.uuid4().hex[:9]}", tmp_path / "models")
    monkeypatch.setenv("SCORESTREAM_MODELS_URL", str(tenant.repo_dir))
    monkeypatch.setenv("SCORESTREAM_AUDIT_JOIN_TIMEOUT_S", "600")
    from scorestream.admin import ensure_tenant_topics  # noqa: PLC0415

    ensure_tenant_topics(tenant.name)
    tenant.publish_model("1")
    tenant.promote("1")
    port = free_port()
    supervisor = up(tenant.name, gateway_port=port)
    try:
        ports = supervisor.ports()
        for name, p in ports.items():
            wait_until(lambda p=p: http_get(p, "/readyz")[0] == 200, 90, f"{name} ready")
        yield tenant, supervisor, ports
    finally:
        supervisor.stop()


def _send(tenant: str, items: list, rate: float) -> None:  # type: ignore[type-arg]
    producer = EventProducer(producer_config(KafkaSettings()), source="tests/e2e")
    start = time.perf_counter()
    for i, (stream, event) in enumerate(items):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        producer.send(
            REGISTRY.topic(stream, tenant), event.model_copy(update={"tenant_id": tenant})
        )
    producer.flush(60)


def test_every_transaction_gets_one_prediction_decision_and_audit_record(
    kafka_bootstrap: str, stack: tuple[Tenant, Supervisor, dict[str, int]]
) -> None:
    tenant, supervisor, ports = stack
    sim = simulate(
        SimulatorConfig(seed=5, tenant="acme", n_customers=500, n_terminals=1000, days=12)
    )
    items = [(s, e) for s, e in interleaved(sim)][:10300]
    ids = {e.transaction_id for s, e in items if s == "transactions"}
    sender = threading.Thread(target=_send, args=(tenant.name, items, 2000.0))
    sender.start()
    # restart every Kafka-consuming service once, mid-stream, at different moments
    for name in ("enricher", "worker", "decision", "audit"):
        time.sleep(1.0)
        supervisor.restart(name)
    sender.join(120)
    n = len(ids)

    def one_each(stream: str, contract: type) -> Counter[str]:  # type: ignore[type-arg]
        msgs = read_messages(kafka_bootstrap, REGISTRY.topic(stream, tenant.name), n, timeout=240)
        return Counter(decode_message(m, accept=[contract]).event.transaction_id for m in msgs)

    predictions = one_each("predictions", PredictionEvent)
    decisions = one_each("decisions", DecisionEvent)
    assert set(predictions) == ids
    assert set(decisions) == ids
    assert max(predictions.values()) == 1
    assert max(decisions.values()) == 1
    audits = read_messages(kafka_bootstrap, REGISTRY.topic("audit", tenant.name), n, timeout=240)
    records = [decode_message(m, accept=[AuditRecord]).event for m in audits]
    by_id = Counter(r.transaction_id for r in records)
    assert set(by_id) == ids
    assert max(by_id.values()) == 1
    assert all(r.status is AuditStatus.COMPLETE for r in records)
    complete = records[0]
    assert complete.features
    assert complete.model_version == "1"
    assert complete.outcome is not None
    labels = sum(1 for s, _ in items if s == "labels")
    assert labels > 0
    for name in ("enricher", "worker", "decision", "notifier", "audit", "monitor"):
        _, metrics = http_get(ports[name], "/metrics")
        assert "scorestream_" in metrics


def test_sync_scoring_and_the_v2_protocol(
    kafka_bootstrap: str, stack: tuple[Tenant, Supervisor, dict[str, int]]
) -> None:
    import httpx  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import tritonclient.http as triton  # noqa: PLC0415

    tenant, _, ports = stack
    body = {
        "transaction_id": f"sync-{uuid.uuid4().hex[:8]}",
        "tenant_id": tenant.name,
        "account_id": "acc-1",
        "merchant_id": "mer-1",
        "amount_minor": 4200,
        "currency": "EUR",
        "timestamp": "2026-11-24T12:00:00Z",
        "channel": "ecommerce",
        "country": "DE",
        "mcc": "5411",
    }
    from scorestream.up import dev_api_key  # noqa: PLC0415

    auth = {"Authorization": f"Bearer {dev_api_key(tenant.name)[0]}"}  # up's key (gateway.auth)
    r = httpx.post(
        f"http://127.0.0.1:{ports['gateway']}/v1/transactions:score",
        json=body,
        timeout=10,
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["decision"] in ("approve", "review", "decline")
    assert r.json()["model_version"] == "1"

    client = triton.InferenceServerClient(url=f"127.0.0.1:{ports['gateway']}")
    assert client.is_server_ready()
    n = 3
    inputs = []
    fields = {
        "transaction_id": [f"v2-{uuid.uuid4().hex[:8]}-{i}" for i in range(n)],
        "account_id": [f"acc-{i}" for i in range(n)],
        "merchant_id": ["mer-1"] * n,
        "currency": ["EUR"] * n,
        "channel": ["ecommerce"] * n,
        "country": ["DE"] * n,
        "mcc": ["5411"] * n,
    }
    for name, values in fields.items():
        inp = triton.InferInput(name, [n], "BYTES")
        inp.set_data_from_numpy(np.array([v.encode() for v in values], dtype=object))
        inputs.append(inp)
    amount = triton.InferInput("amount_minor", [n], "INT64")
    amount.set_data_from_numpy(np.array([1000, 50000, 900000], dtype=np.int64))
    inputs.append(amount)
    result = client.infer("fraud-gbt", inputs, headers=auth)
    scores = result.as_numpy("score")
    decisions = result.as_numpy("decision")
    assert scores is not None
    assert scores.shape == (n,)
    assert decisions is not None
    assert len(decisions) == n


def test_one_account_through_the_gateway_and_the_java_console_producer(
    kafka_bootstrap: str, stack: tuple[Tenant, Supervisor, dict[str, int]]
) -> None:
    """An account's transactions published alternately through the gateway (librdkafka,
    murmur2_random) and Kafka's own kafka-console-producer (Java, its default partitioner): all
    land on one partition, so every one is enriched with the others counted, scored and decided."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    from schemas.events import EnrichedTransaction  # noqa: PLC0415
    from scorestream.up import dev_api_key  # noqa: PLC0415

    tenant, _, ports = stack
    account = f"acc-java-{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    auth = {"Authorization": f"Bearer {dev_api_key(tenant.name)[0]}"}
    topic = REGISTRY.topic("transactions", tenant.name)
    ids = []
    for i in range(6):
        tx_id = f"mix-{uuid.uuid4().hex[:8]}-{i}"
        ids.append(tx_id)
        body = {
            "transaction_id": tx_id,
            "tenant_id": tenant.name,
            "account_id": account,
            "merchant_id": "mer-1",
            "amount_minor": 1000 + i,
            "currency": "EUR",
            "timestamp": (start + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            "channel": "ecommerce",
            "country": "DE",
            "mcc": "5411",
        }
        if i % 2 == 0:
            r = httpx.post(
                f"http://127.0.0.1:{ports['gateway']}/v1/transactions",
                json=body,
                timeout=10,
                headers=auth,
            )
            assert r.status_code == 202, r.text
            continue
        import json  # noqa: PLC0415

        headers = ",".join(
            f"{k}:{v}"
            for k, v in (
                ("ce_specversion", "1.0"),
                ("ce_id", f"java-{tx_id}"),
                ("ce_source", "tests/java-console-producer"),
                ("ce_type", "scorestream.transaction.v1"),
                ("content-type", "application/json"),
            )
        )
        line = f"{headers}\t{account}|{json.dumps(body)}\n"
        done = subprocess.run(
            [
                *(sys.executable, "-m", "scorestream", "kafka", "kafka-console-producer"),
                *("--bootstrap-server", kafka_bootstrap, "--topic", topic),
                *("--property", "parse.key=true", "--property", "key.separator=|"),
                *("--property", "parse.headers=true"),
            ],
            input=line,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    inputs = read_messages(kafka_bootstrap, topic, 6, timeout=60)
    mine = [m for m in inputs if m.key() == account.encode()]
    assert len(mine) == 6
    assert len({m.partition() for m in mine}) == 1, "both clients hash the account alike"
    enriched = read_messages(
        kafka_bootstrap, REGISTRY.topic("transactions.enriched", tenant.name), 6, timeout=120
    )
    events = [decode_message(m, accept=[EnrichedTransaction]).event for m in enriched]
    counts = {e.transaction.transaction_id: e.features["acc_count_1h"] for e in events}
    assert counts == {tx_id: float(i + 1) for i, tx_id in enumerate(ids)}
    decisions = read_messages(
        kafka_bootstrap, REGISTRY.topic("decisions", tenant.name), 6, timeout=120
    )
    decided = {decode_message(m, accept=[DecisionEvent]).event.transaction_id for m in decisions}
    assert decided == set(ids)
