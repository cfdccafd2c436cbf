"""The decision service as a real process against the real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from consumers.policy import evaluate, parse_policy
from schemas.cloudevents import encode
from schemas.events import DecisionEvent, ModelAlias
from tests.consumer_support import headers, predictions, publish, read_events, start_service
from tests.kafka_helpers import produce_raw, read_messages
from tests.worker_support import Tenant, free_port, http_get, new_tenant, wait_until

pytestmark = pytest.mark.integration

POLICY_V1 = """
version: "v1"
thresholds: {review: 0.5, decline: 0.9}
rules:
  - name: legacy-model
    outcome: review
    when: {model_versions: ["1"]}
"""
POLICY_V2 = """
version: "v2"
thresholds: {review: 0.2, decline: 0.4}
"""


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _metric(port: int, line: str) -> bool:
    return line in http_get(port, "/metrics")[1]


def test_decisions_exactly_once_with_reasons_versions_replies_and_reload(
    kafka_bootstrap: str, tenant: Tenant, tmp_path: Path
) -> None:
    t = tenant.name
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY_V1)
    port = free_port()
    proc = start_service(
        tenant,
        "consumers.decision",
        "d-1",
        "--health-port",
        str(port),
        SCORESTREAM_DECISION_POLICY_FILE=str(policy_file),
    )

    preds = predictions(t, 600)
    wrong_tenant = predictions("someone-else", 1, prefix="wt")[0]
    challenger = predictions(t, 1, prefix="ch")[0].model_copy(
        update={"alias": ModelAlias.CHALLENGER}
    )
    batch = [*preds, wrong_tenant, challenger]
    replies = {i: {"replyto": f"{t}.replies/{(2, 5)[i % 2]}"} for i in range(0, 600, 7)}
    replies[1] = {"replyto": "not-a-reply-topic/1"}  # ignored: decided, but no reply copy
    publish(tenant.topic("predictions"), batch, extensions=replies)

    got = read_events(kafka_bootstrap, tenant.topic("decisions"), len(preds), DecisionEvent)
    dlq = read_messages(kafka_bootstrap, tenant.topic("predictions.dlq"), 2, timeout=30)
    reply_msgs = read_events(
        kafka_bootstrap, tenant.topic("replies"), len(replies) - 1, DecisionEvent
    )
    v1 = parse_policy(POLICY_V1, tenant=t)
    by_id = {p.transaction_id: (i, p) for i, p in enumerate(preds)}
    seen = Counter(d.transaction_id for _, d in got)
    assert set(seen) == set(by_id)
    assert max(seen.values()) == 1  # exactly one decision per transaction
    assert len(got) + len(dlq) == len(batch)  # in = out + dlq
    for msg, d in got:
        i, p = by_id[d.transaction_id]
        verdict = evaluate(v1, p)
        assert (d.outcome, d.reasons, d.policy_version) == (verdict.outcome, verdict.reasons, "v1")
        assert (d.score, d.model_version, d.event_time) == (p.score, p.model_version, p.event_time)
        assert msg.key() == p.account_id.encode()
        h = headers(msg)
        assert h["traceparent"] == f"00-0af7651916cd43dd8448eb211c80319c-{i + 1:016x}-01"
        assert h.get("ce_replyto") == replies.get(i, {}).get("replyto")
        assert h["ce_source"] == "scorestream/decision"
    assert {o.value for _, d in got for o in [d.outcome]} == {"approve", "review", "decline"}
    assert any("rule:legacy-model" in d.reasons for _, d in got)

    # request-reply: each reply on exactly the partition it named, same decision as published
    decided = {d.transaction_id: d for _, d in got}
    assert sorted(d.transaction_id for _, d in reply_msgs) == sorted(
        preds[i].transaction_id for i in replies if i != 1
    )
    for msg, d in reply_msgs:
        i, _ = by_id[d.transaction_id]
        assert msg.partition() == (2, 5)[i % 2]
        assert d == decided[d.transaction_id]
    assert {headers(m)["dlq.reason"] for m in dlq} == {"unknown_tenant", "not_champion"}
    for m in dlq:
        assert headers(m)["dlq.service"] == "decision"
    assert _metric(port, f'scorestream_decision_replies_total{{result="invalid",tenant="{t}"}} 1.0')

    # a ce_* header that is no valid extension name is dropped, not fatal on re-encoding
    odd = predictions(t, 1, prefix="odd")[0]
    enc = encode(odd, source="tests/upstream", extensions={"replyto": f"{t}.replies/0"})
    hdrs = [(k, v) for k, v in enc.headers if v is not None] + [("ce_Bad-Name", b"x")]
    produce_raw(kafka_bootstrap, tenant.topic("predictions"), [(enc.key, enc.value, hdrs)])
    [odd_msg] = [
        msg
        for msg, d in read_events(
            kafka_bootstrap, tenant.topic("replies"), len(replies), DecisionEvent
        )
        if d.transaction_id == odd.transaction_id
    ]
    assert odd_msg.partition() == 0
    assert "ce_Bad-Name" not in headers(odd_msg)
    assert headers(odd_msg)["ce_replyto"] == f"{t}.replies/0"

    # reload: a new version takes effect between batches ...
    _write(policy_file, POLICY_V2)
    wait_until(
        lambda: _metric(port, f'scorestream_decision_policy_loaded{{tenant="{t}",version="v2"}} 1'),
        15,
        "policy v2 loaded",
    )
    more = predictions(t, 100, seed=2)
    publish(tenant.topic("predictions"), more)
    # ... and a broken file keeps it
    _write(policy_file, 'version: "v3"\nthresholds: {review: [\n')
    wait_until(
        lambda: _metric(
            port, f'scorestream_decision_policy_reloads_total{{result="error",tenant="{t}"}} 1.0'
        ),
        15,
        "failed reload counted",
    )
    last = predictions(t, 100, seed=3)
    publish(tenant.topic("predictions"), last)
    total = len(preds) + 1 + len(more) + len(last)
    everything = read_events(
        kafka_bootstrap, tenant.topic("decisions"), total, DecisionEvent, settle=1.0
    )
    assert len(everything) == total  # nothing more than one per transaction
    v2 = parse_policy(POLICY_V2, tenant=t)
    later = {p.transaction_id: p for p in [*more, *last]}
    for _, d in everything:
        if d.transaction_id in later:
            assert d.policy_version == "v2"
            assert d.outcome == evaluate(v2, later[d.transaction_id]).outcome
    assert "policy reload failed" in tenant.worker_logs()
    code, body = http_get(port, "/readyz")
    assert code == 200
    assert "policy v2 (last reload failed" in body
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0  # drains and exits


def test_exactly_once_across_a_crash(kafka_bootstrap: str, tenant: Tenant) -> None:
    """SIGKILL mid-stream; the restarted instance (same transactional id) fences the zombie."""
    preds = predictions(tenant.name, 3000, seed=5)
    proc = start_service(tenant, "consumers.decision", "d-crash", "--max-batch", "50")
    publish(tenant.topic("predictions"), preds[:1500])
    wait_until(
        lambda: (
            len(read_messages(kafka_bootstrap, tenant.topic("decisions"), 300, timeout=1)) >= 300
        ),
        30,
        "first decisions",
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    publish(tenant.topic("predictions"), preds[1500:])
    start_service(tenant, "consumers.decision", "d-crash", "--max-batch", "50")
    got = read_events(
        kafka_bootstrap, tenant.topic("decisions"), len(preds), DecisionEvent, settle=1.0
    )
    seen = Counter(d.transaction_id for _, d in got)
    assert set(seen) == {p.transaction_id for p in preds}
    assert max(seen.values()) == 1
    assert len(got) == len(preds)


def test_an_invalid_policy_file_stops_the_service_at_startup(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: v1\nthresholds: {review: 0.9, decline: 0.5}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "consumers.decision", "--tenant", "acme", "--policy-file", str(bad)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert b"review (0.9) must not exceed decline (0.5)" in proc.stderr
