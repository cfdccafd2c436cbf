"""The inference worker as a real process against the real broker."""

from __future__ import annotations

import json
import signal
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from schemas.cloudevents import encode
from schemas.events import ModelAlias, ModelPromoted
from scorestream.model_events import publish_model_event, read_model_events
from tests.kafka_helpers import produce_raw, read_messages
from tests.worker_support import (
    Tenant,
    enriched_events,
    exactly_once,
    free_port,
    http_get,
    new_tenant,
    publish_enriched,
    read_predictions,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def test_readiness_scoring_headers_and_metrics(kafka_bootstrap: str, tenant: Tenant) -> None:
    port = free_port()
    proc = tenant.start_worker("w-basic", health_port=port)
    wait_until(lambda: http_get(port, "/livez")[0] == 200, 30, "/livez")
    code, body = http_get(port, "/readyz")
    assert code == 503
    assert "no champion" in body
    tenant.publish_model("1")
    tenant.promote("1")
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, 60, "/readyz after promotion")

    events = list(enriched_events(tenant.name, 2000))
    publish_enriched(tenant, events)
    preds = read_predictions(kafka_bootstrap, tenant, len(events))
    assert exactly_once(preds, {e.transaction.transaction_id for e in events}) == (0, 0, 0)
    by_id = {e.transaction.transaction_id: e for e in events}
    for msg, p in preds:
        source = by_id[p.transaction_id].transaction
        assert msg.key() == source.account_id.encode()  # same key: same partitioning
        assert (p.model_name, p.model_version, p.alias) == ("fraud-gbt", "1", ModelAlias.CHAMPION)
        assert p.feature_spec_hash == by_id[p.transaction_id].feature_spec_hash
        assert 0.0 <= p.score <= 1.0
        assert p.event_time == source.timestamp
        assert 1 <= p.timings.batch_size <= 200
        assert dict(msg.headers() or [])["traceparent"].startswith(b"00-0af7651916cd43dd")
    _, metrics = http_get(port, "/metrics")
    assert (
        f'scorestream_events_in_total{{service="worker",tenant="{tenant.name}"}} 2000.0' in metrics
    )
    assert 'scorestream_model_loaded{alias="champion",model="fraud-gbt"' in metrics
    assert "scorestream_inference_seconds_bucket" in metrics
    assert "scorestream_consumer_lag_records" in metrics
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0  # drains and exits within 10 s


def _bad_records(tenant: Tenant) -> dict[str, tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    good = next(enriched_events(tenant.name, 1, seed=99))
    msg = encode(good, source="tests/poison")
    headers = list(msg.headers)
    data = good.model_dump(mode="json")

    def variant(**changes: object) -> bytes:
        d = json.loads(json.dumps(data))
        for path, value in changes.items():
            target = d
            *parents, leaf = path.split("__")
            for p in parents:
                target = target[p]
            target[leaf] = value
        return json.dumps(d).encode()

    missing_feature = json.loads(json.dumps(data))
    del missing_feature["features"]["amount"]
    missing_feature["transaction"]["account_id"] = "k7"
    # a record that decodes is keyed by its account (else it is refused as key_mismatch first)
    return {
        "malformed_payload": (b"k1", b"\x00\xffnot json", headers),
        "schema_violation": (b"k2", variant(transaction__amount_minor=-5), headers),
        "unknown_event_type": (
            b"k3",
            msg.value,
            [(k, v) for k, v in headers if k != "ce_type"] + [("ce_type", b"x.unknown.v1")],
        ),
        "missing_header": (b"k4", msg.value, [(k, v) for k, v in headers if k != "ce_id"]),
        "unknown_tenant": (
            b"k5",
            variant(transaction__tenant_id="someone-else", transaction__account_id="k5"),
            headers,
        ),
        "feature_spec_mismatch": (
            b"k6",
            variant(feature_spec_hash="deadbeefdeadbeef", transaction__account_id="k6"),
            headers,
        ),
        "missing_feature": (b"k7", json.dumps(missing_feature).encode(), headers),
        "non_finite_features": (
            b"k8",
            variant(features__amount=1e39, transaction__account_id="k8"),
            headers,
        ),
        # issue 15 item 11: a valid enriched transaction keyed by another account is refused in
        # the decode step (before, the worker scored it)
        "key_mismatch": (b"k9", msg.value, headers),
    }


def test_poison_records_go_to_the_dlq_and_counts_add_up(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    tenant.publish_model("1")
    tenant.promote("1")
    tenant.start_worker("w-poison")
    bad = _bad_records(tenant)
    valid = list(enriched_events(tenant.name, 600))
    publish_enriched(tenant, valid[:300])
    produce_raw(kafka_bootstrap, tenant.topic("transactions.enriched"), list(bad.values()))
    publish_enriched(tenant, valid[300:])
    preds = read_predictions(kafka_bootstrap, tenant, len(valid))
    dlq = read_messages(kafka_bootstrap, tenant.topic("transactions.enriched.dlq"), len(bad))
    assert exactly_once(preds, {e.transaction.transaction_id for e in valid}) == (0, 0, 0)
    assert len(preds) + len(dlq) == len(valid) + len(bad)  # in = out + dlq
    reasons = {}
    for msg in dlq:
        h = dict(msg.headers() or [])
        reasons[(msg.key() or b"").decode()] = h["dlq.reason"].decode()
        key = msg.key() or b""
        original = next(v for v in bad.values() if v[0] == key)
        assert msg.value() == original[1]  # original bytes, untouched
        assert h["dlq.source.topic"].decode() == tenant.topic("transactions.enriched")
        assert int(h["dlq.source.offset"]) >= 0
        assert h["dlq.service"] == b"worker"
        assert h["dlq.error"]
        assert h["dlq.message"]
    assert reasons == {v[0].decode(): k for k, v in bad.items()}


def test_hot_swap_under_load_then_a_corrupt_promotion_is_rejected(
    kafka_bootstrap: str, tenant: Tenant
) -> None:
    tenant.publish_model("1", seed=0)
    tenant.publish_model("2", seed=1)
    tenant.promote("1")
    port = free_port()
    tenant.start_worker("w-swap", health_port=port)
    events = list(enriched_events(tenant.name, 6000, accounts=300))
    # traffic keeps flowing until the worker reports v2 loaded, so every partition is scored
    # by both versions however fast the machine is
    swapped = threading.Event()

    def send() -> None:
        publish_enriched(tenant, events[:3000], rate=2000)
        swapped.wait(60)
        publish_enriched(tenant, events[3000:], rate=2000)

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(
        lambda: (
            len(read_messages(kafka_bootstrap, tenant.topic("predictions"), 500, timeout=2)) >= 500
        ),
        60,
        "first predictions",
    )
    tenant.promote("2")  # mid-stream
    wait_until(lambda: 'version="2"} 1.0' in http_get(port, "/metrics")[1], 60, "v2 loaded")
    swapped.set()
    sender.join(60)
    preds = read_predictions(kafka_bootstrap, tenant, len(events))
    assert exactly_once(preds, {e.transaction.transaction_id for e in events}) == (0, 0, 0)
    per_partition: dict[int, list[str]] = defaultdict(list)
    for msg, p in sorted(preds, key=lambda mp: (mp[0].partition(), mp[0].offset())):
        per_partition[msg.partition() or 0].append(p.model_version)
    for versions in per_partition.values():
        changes = [i for i in range(1, len(versions)) if versions[i] != versions[i - 1]]
        assert len(changes) <= 1, "the version changes at most once per partition"
        assert versions[-1] == "2"
        assert versions[0] in ("1", "2")
    assert any(v[0] == "1" for v in per_partition.values()), "v1 served before the swap"

    # a corrupt version promoted next (bypassing the CLI's own checks) is refused by the worker
    tenant.publish_model("3", seed=2)
    onnx = tenant.repo_dir / "fraud-gbt" / "3" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:100])
    from datetime import UTC, datetime  # noqa: PLC0415

    publish_model_event(
        ModelPromoted(
            tenant_id=tenant.name,
            model_name="fraud-gbt",
            model_version="3",
            alias=ModelAlias.CHAMPION,
            promoted_at=datetime.now(UTC),
        ),
        tenant=tenant.name,
    )
    wait_until(
        lambda: any(
            r.tenant_id == tenant.name and r.model_version == "3"
            for r in read_model_events(tenant.name).rejected
        ),
        30,
        "ModelRejected for version 3",
    )
    rejected = read_model_events(tenant.name).rejected
    assert "ModelIntegrityError" in rejected[0].reason
    assert rejected[0].instance == "w-swap"
    more = list(enriched_events(tenant.name, 300, seed=7))
    publish_enriched(tenant, more)
    later = read_predictions(kafka_bootstrap, tenant, len(events) + len(more))
    ids = {e.transaction.transaction_id for e in more}
    assert {p.model_version for _, p in later if p.transaction_id in ids} == {"2"}


def test_challenger_scores_in_shadow_only(kafka_bootstrap: str, tenant: Tenant) -> None:
    tenant.publish_model("1", seed=0)
    tenant.publish_model("2", seed=1)
    tenant.promote("1")
    tenant.promote("2", ModelAlias.CHALLENGER)
    tenant.start_worker("w-shadow")
    events = list(enriched_events(tenant.name, 500))
    publish_enriched(tenant, events)
    preds = read_predictions(kafka_bootstrap, tenant, 500)
    shadow = read_predictions(kafka_bootstrap, tenant, 500, stream="predictions.shadow")
    assert {p.model_version for _, p in preds} == {"1"}
    assert {(p.model_version, p.alias) for _, p in shadow} == {("2", ModelAlias.CHALLENGER)}
    assert {p.transaction_id for _, p in shadow} == {p.transaction_id for _, p in preds}


def test_at_least_once_mode_loses_nothing(kafka_bootstrap: str, tenant: Tenant) -> None:
    tenant.publish_model("1")
    tenant.promote("1")
    tenant.start_worker("w-alo", delivery="at_least_once")
    events = list(enriched_events(tenant.name, 1500))
    publish_enriched(tenant, events)
    preds = read_predictions(kafka_bootstrap, tenant, len(events))
    missing, _, unexpected = exactly_once(preds, {e.transaction.transaction_id for e in events})
    assert (missing, unexpected) == (0, 0)
