"""Garbage campaign: raw bad records through the real Kafka CLI and bad requests at the gateway.

Every service of a tenant runs as a process (``scorestream up``). Garbage goes into the tenant's
input topics with Kafka's own ``kafka-console-producer`` (``scorestream kafka ...``, headers and
keys parsed from the line): random text, truncated JSON, a huge value, a null value, wrong and
missing CloudEvents headers, a wrong content type, an unknown ``ce_type``, NaN / Infinity, a
far-future timestamp. Good transactions are mixed in. Then: no service crashed (every process
alive and ready), every bad record is in the input's DLQ once per consuming service with a
``dlq.reason``, and in = out + DLQ for the transactions topic. The gateway gets the HTTP
equivalents and must answer each with a 4xx (never a 5xx) and stay ready.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Message

from schemas.cloudevents import encode
from schemas.events import EnrichedTransaction, TransactionEvent
from scorestream.chaos.check import read_all
from scorestream.dev.supervisor import Supervisor
from scorestream.dev.up import dev_api_key, up
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY
from tests.factories import transaction, transaction_json
from tests.kafka_helpers import read_messages
from tests.worker_support import Tenant, free_port, http_get, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = 40
FAR_FUTURE = "9999-12-31T23:59:59Z"


@pytest.fixture
def stack(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Tenant, Supervisor, dict[str, int]]]:
    tenant = Tenant(f"g{uuid.uuid4().hex[:9]}", tmp_path / "models")
    monkeypatch.setenv("SCORESTREAM_MODELS_URL", str(tenant.repo_dir))
    from scorestream.admin import ensure_tenant_topics  # noqa: PLC0415

    ensure_tenant_topics(tenant.name)
    tenant.publish_model("1")
    tenant.promote("1")
    supervisor = up(tenant.name, gateway_port=free_port())
    try:
        ports = supervisor.ports()

        def ready() -> bool:
            # a start-up crash is restarted, as Kubernetes would (the enricher can lose a race
            # with its own internal topics on a loaded broker); garbage comes only after this
            for name in supervisor.dead():
                supervisor.restart(name)
            return all(http_get(p, "/readyz")[0] == 200 for p in ports.values())

        wait_until(ready, 240, "every service ready", 2.0)
        yield tenant, supervisor, ports
    finally:
        supervisor.stop()


def _headers(tenant: str, **changes: str | None) -> dict[str, str]:
    event = transaction().model_copy(update={"tenant_id": tenant})
    headers = {
        k: v.decode() if isinstance(v, bytes) else str(v)
        for k, v in encode(event, source="tests/garbage").headers
    }
    for field, value in changes.items():
        name = "content-type" if field == "content_type" else field
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


def _tx_json(tenant: str, **overrides: object) -> dict[str, object]:
    return transaction_json(tenant_id=tenant, **overrides) | {
        "transaction_id": f"bad-{uuid.uuid4().hex[:10]}"
    }


def _amount(valid_json: str, literal: str) -> str:
    """The JSON text with ``amount_minor`` replaced by a bare literal (NaN, Infinity)."""
    data = json.loads(valid_json)
    marker = "__AMOUNT__"
    data["amount_minor"] = marker
    text = json.dumps(data).replace(f'"{marker}"', literal)
    assert literal in text
    return text


def garbage(tenant: str) -> dict[str, tuple[dict[str, str], str]]:
    """case → (headers, value line); values never contain a tab or a newline (line format).
    The account (the key) of each record is ``garbage-<case>``, so a record is refused for its
    content, not for a key that differs from its account."""
    rng = random.Random(5)

    def tx(case: str, **overrides: object) -> dict[str, object]:
        return _tx_json(tenant, account_id=f"garbage-{case}", **overrides)

    def valid(case: str) -> str:
        return json.dumps(tx(case))

    noise = "".join(chr(rng.choice([*range(0x21, 0x7F), *range(0xA1, 0x2FF)])) for _ in range(200))
    return {
        "random-text": (_headers(tenant), noise),
        "truncated-json": (_headers(tenant), valid("truncated-json")[:60]),
        "huge-value": (_headers(tenant), json.dumps(tx("huge-value", merchant_id="m" * 600_000))),
        "null-value": (_headers(tenant), "<NULL>"),
        "no-ce-headers": ({}, valid("no-ce-headers")),
        "wrong-specversion": (_headers(tenant, ce_specversion="0.3"), valid("wrong-specversion")),
        "wrong-content-type": (
            _headers(tenant, content_type="text/plain"),
            valid("wrong-content-type"),
        ),
        "unknown-ce-type": (
            _headers(tenant, ce_type="scorestream.bogus.v1"),
            valid("unknown-ce-type"),
        ),
        "bad-ce-time": (_headers(tenant, ce_time="yesterday"), valid("bad-ce-time")),
        "nan-amount": (_headers(tenant), _amount(valid("nan-amount"), "NaN")),
        "inf-amount": (_headers(tenant), _amount(valid("inf-amount"), "Infinity")),
        "far-future": (_headers(tenant), json.dumps(tx("far-future", timestamp=FAR_FUTURE))),
        "other-tenant": (
            _headers(tenant),
            json.dumps(_tx_json("someone-else", account_id="garbage-other-tenant")),
        ),
    }


def console_produce(topic: str, lines: list[str]) -> None:
    """Kafka's ConsoleProducer: ``h1:v1,h2:v2<TAB>key<TAB>value`` per line."""
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "scorestream", "kafka", "kafka-console-producer"),
            *("--topic", topic, "--producer-property", "max.request.size=2000000"),
            *("--reader-property", "parse.key=true", "--reader-property", "parse.headers=true"),
            *("--reader-property", "null.marker=<NULL>"),
        ],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def _line(case: str, headers: dict[str, str], value: str) -> str:
    fields = [f"x-case:{case}", *(f"{k}:{v}" for k, v in headers.items())]
    return f"{','.join(fields)}\tgarbage-{case}\t{value}"


def _dlq_entry(msg: Message) -> tuple[str, str, str]:
    """(key, service, reason) of a DLQ record."""
    headers = {k: (v or b"").decode(errors="replace") for k, v in msg.headers() or []}
    return (msg.key() or b"").decode(), headers.get("dlq.service", ""), headers["dlq.reason"]


def _dlq_entries(bootstrap: str, topic: str, expected: int) -> list[tuple[str, str, str]]:
    return [_dlq_entry(m) for m in read_messages(bootstrap, topic, expected, timeout=120)]


def test_garbage_in_topics_and_gateway_crashes_nothing_and_lands_in_dlqs(
    kafka_bootstrap: str, stack: tuple[Tenant, Supervisor, dict[str, int]]
) -> None:
    tenant, supervisor, ports = stack
    pids = supervisor.pids()
    cases = garbage(tenant.name)
    # good traffic before and after the garbage, so the services must keep processing
    good = [
        TransactionEvent.model_validate_json(
            json.dumps(_tx_json(tenant.name) | {"transaction_id": f"good-{i}"})
        )
        for i in range(GOOD)
    ]
    with EventProducer(producer_config(KafkaSettings()), source="tests/garbage") as producer:
        for event in good[: GOOD // 2]:
            producer.send(tenant.topic("transactions"), event)
    console_produce(tenant.topic("transactions"), [_line(c, h, v) for c, (h, v) in cases.items()])
    label_cases = {k: cases[k] for k in ("random-text", "truncated-json", "unknown-ce-type")}
    console_produce(tenant.topic("labels"), [_line(c, h, v) for c, (h, v) in label_cases.items()])
    pred_cases = {k: cases[k] for k in ("random-text", "no-ce-headers", "nan-amount")}
    console_produce(
        tenant.topic("predictions"), [_line(c, h, v) for c, (h, v) in pred_cases.items()]
    )
    with EventProducer(producer_config(KafkaSettings()), source="tests/garbage") as producer:
        for event in good[GOOD // 2 :]:
            producer.send(tenant.topic("transactions"), event)

    gateway_codes = _gateway_garbage(ports["gateway"], tenant.name)

    # in = out + dlq on the transactions topic for the enricher; its other consumer, the
    # merchant stage, refuses exactly the same records (each lands once per service)
    bad_keys = {f"garbage-{c}" for c in cases}
    records_in = GOOD + len(cases)
    seen: dict[str, list[Message]] = {}

    def by(service: str) -> list[tuple[str, str, str]]:
        return [e for e in map(_dlq_entry, seen["transactions.dlq"]) if e[1] == service]

    def accounted() -> bool:
        for stream in ("transactions.enriched", "transactions.dlq"):
            seen[stream] = read_all(kafka_bootstrap, tenant.topic(stream))
        enricher = len(seen["transactions.enriched"]) + len(by("enricher"))
        return enricher >= records_in and len(by("merchant")) >= len(by("enricher"))

    wait_until(accounted, 240, "every transaction record enriched or dead-lettered", 2.0)
    enriched = seen["transactions.enriched"]
    dlq = by("enricher")
    out_ids = Counter(
        decode_message(m, accept=[EnrichedTransaction]).event.transaction.transaction_id
        for m in enriched
    )
    print(f"transactions: {records_in} in, {len(enriched)} enriched, {len(dlq)} DLQ: {dlq}")
    assert {f"good-{i}" for i in range(GOOD)} <= set(out_ids)
    assert max(out_ids.values()) == 1
    dlq_keys = Counter(key for key, _, _ in dlq)
    assert max(dlq_keys.values()) == 1, dlq_keys
    assert set(dlq_keys) <= bad_keys
    assert all(reason for _, _, reason in dlq)
    assert records_in == len(enriched) + len(dlq), (len(enriched), sorted(dlq_keys))
    missing = bad_keys - set(dlq_keys)
    assert not missing, f"bad records neither in the DLQ: {missing}"
    merchant = sorted((key, reason) for key, _, reason in by("merchant"))
    assert merchant == sorted((key, reason) for key, _, reason in dlq), "the same refusals"
    # labels and predictions: one DLQ record per consuming service
    for stream, sent in (("labels", label_cases), ("predictions", pred_cases)):
        consumers = set(REGISTRY.get(stream).consumers) - {"retrain", "operator"}
        entries = _dlq_entries(
            kafka_bootstrap, tenant.topic(f"{stream}.dlq"), len(sent) * len(consumers)
        )
        by = Counter((key, service) for key, service, _ in entries)
        assert max(by.values()) == 1, (stream, by)
        assert {key for key, _ in by} == {f"garbage-{c}" for c in sent}, (stream, by)
    # nothing crashed: the same processes, all ready
    assert supervisor.pids() == pids
    assert set(supervisor.running()) == set(pids)
    for name, port in ports.items():
        assert http_get(port, "/readyz")[0] == 200, name
    assert all(400 <= code < 500 for code in gateway_codes.values()), gateway_codes


def _gateway_garbage(port: int, tenant: str) -> dict[str, int]:
    key, _ = dev_api_key(tenant)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}
    rng = random.Random(9)
    valid = json.dumps(transaction_json() | {"transaction_id": "gw-bad"})
    bodies: dict[str, tuple[bytes, dict[str, str]]] = {
        "random-bytes": (rng.randbytes(300), {}),
        "truncated-json": (valid[: len(valid) // 2].encode(), {}),
        "huge-body": (b"{" + b" " * 2_000_000 + b"}", {}),
        "not-an-object": (b"[1, 2, 3]", {}),
        "nan": (_amount(valid, "NaN").encode(), {}),
        "inf": (_amount(valid, "Infinity").encode(), {}),
        "wrong-content-type": (b"amount=12", {"content-type": "application/x-www-form-urlencoded"}),
        "wrong-tenant": (
            json.dumps(transaction_json(tenant_id="someone-else")).encode(),
            {},
        ),
    }
    codes = {}
    with httpx.Client(base_url=base, timeout=30) as client:
        for case, (body, headers) in bodies.items():
            for route in ("/v1/transactions", "/v1/transactions:score"):
                r = client.post(
                    route,
                    content=body,
                    headers={"content-type": "application/json"} | headers | auth,
                )
                codes[f"{route} {case}"] = r.status_code
        for case, body in (("random", rng.randbytes(200)), ("empty", b""), ("json", b"{}")):
            r = client.post("/v2/models/fraud-gbt/infer", content=body, headers=auth)
            codes[f"v2 {case}"] = r.status_code
        assert client.get("/readyz").status_code == 200
    return codes
