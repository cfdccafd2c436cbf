"""``scorestream dlq list|show|redrive`` on dead letters a real decision service wrote (issue 17).

The runbook (docs/slo.md) told operators to use ``scorestream dlq``, which did not exist. Here a
real decision process dead-letters predictions of another tenant (``unknown_tenant``), challenger
scores (``not_champion``) and a malformed record carrying secrets (``malformed_payload``); the
operator lists them by reason, shows one (secrets redacted), dry-runs a re-drive (nothing moves),
re-drives (the originals' key, value and headers back on ``<tenant>.predictions`` with
``dlq.redrive.count``, exactly once: a second run moves nothing), and a record already re-driven
the maximum number of times is refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer

from schemas.cloudevents import encode
from schemas.events import ModelAlias, PredictionEvent
from scorestream.cli import main
from tests.consumer_support import headers, predictions, start_service
from tests.kafka_helpers import produce_raw, read_messages
from tests.worker_support import Tenant, new_tenant, wait_until

pytestmark = pytest.mark.integration

SCORESTREAM = Path(sys.executable).with_name("scorestream")
SECRET_KEY = "sk-live-Zq81Vw3Rt6"  # noqa: S105  (a canary: must not be shown)
SECRET_TOKEN = "Tok3nB3arer9xQ"  # noqa: S105
PAN = "4111 1111 1111 1111"
HOOK = "https://hookuser:hookpw77@hooks.example.com/t/abc123?sig=deadbeef"


@pytest.fixture
def tenant(kafka_bootstrap: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    t = new_tenant(tmp_path)
    yield t
    t.stop_all()


def _records(
    events: list[PredictionEvent], **extra: bytes
) -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    out = []
    for event in events:
        enc = encode(event, source="tests/upstream")
        hdrs = [(k, v) for k, v in enc.headers if v is not None]
        out.append((enc.key, enc.value, [*hdrs, *extra.items()]))
    return out


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["dlq", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _count_line(out: str, topic: str, reason: str) -> int | None:
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == topic and parts[1] == reason:
            return int(parts[2])
    return None


def _on_topic(bootstrap: str, topic: str, n: int, settle: float = 0) -> list[Message]:
    return read_messages(bootstrap, topic, n, timeout=max(settle, 10.0))


@pytest.mark.slow  # ~30 s: the decision service runs twice
def test_list_show_redrive_exactly_once(
    kafka_bootstrap: str, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    t = tenant.name
    preds_topic, dlq_topic = tenant.topic("predictions"), tenant.topic("predictions.dlq")
    proc = start_service(tenant, "consumers.decision", "d-1")

    good = predictions(t, 5, prefix="ok")
    foreign = predictions("someone-else", 3, prefix="wt")
    challengers = [
        p.model_copy(update={"alias": ModelAlias.CHALLENGER})
        for p in predictions(t, 2, prefix="ch")
    ]
    spent = predictions("someone-else", 1, prefix="spent")  # re-driven 3 times already
    garbage = json.dumps({"api_key": SECRET_KEY, "card": PAN, "hook": HOOK})[:-1].encode()
    bad_headers = [(k, v) for k, v in _records(good[:1])[0][2]] + [
        ("authorization", f"Bearer {SECRET_TOKEN}".encode())
    ]
    foreign_records = _records(foreign)
    originals = [
        *_records(good),
        *foreign_records,
        *_records(challengers),
        *_records(spent, **{"dlq.redrive.count": b"3"}),
        (b"acc-garbage", garbage, bad_headers),
    ]
    produce_raw(kafka_bootstrap, preds_topic, originals)
    wait_until(
        lambda: len(read_messages(kafka_bootstrap, dlq_topic, 7, timeout=2)) >= 7,
        60,
        "7 dead letters",
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0  # re-driven records stay on the input for this test to read

    # list, as a user runs it: the installed command in a subprocess
    run = subprocess.run(
        [str(SCORESTREAM), "dlq", "list", "--tenant", t],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert _count_line(run.stdout, dlq_topic, "unknown_tenant") == 4
    assert _count_line(run.stdout, dlq_topic, "not_champion") == 2
    assert _count_line(run.stdout, dlq_topic, "malformed_payload") == 1
    assert "7 dead letters" in run.stdout

    code, out, _ = _cli(capsys, "list", "--tenant", t, "--reason", "not_champion")
    assert code == 0
    assert _count_line(out, dlq_topic, "not_champion") == 2
    assert _count_line(out, dlq_topic, "unknown_tenant") is None
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    code, out, _ = _cli(capsys, "list", "--tenant", t, "--since", later)
    assert code == 0
    assert "0 dead letters" in out

    # show: headers and payload, secrets redacted
    code, out, _ = _cli(capsys, "show", "--tenant", t, "--reason", "malformed_payload")
    assert code == 0
    assert "dlq.reason: malformed_payload" in out
    assert "dlq.source.topic: " + preds_topic in out
    for secret in (SECRET_KEY, SECRET_TOKEN, PAN, "hookpw77", "abc123", "deadbeef"):
        assert secret not in out, secret
    assert "411111******1111" in out
    assert "https://hooks.example.com/***" in out

    # errors: unknown tenant / topic, nothing matched
    code, _, err = _cli(capsys, "list", "--tenant", "nosuchtenant0")
    assert code == 2
    assert "unknown tenant" in err
    code, _, err = _cli(capsys, "list", "--tenant", t, "--topic", "nosuch")
    assert code == 2
    assert "nosuch" in err
    code, _, err = _cli(capsys, "show", "--tenant", t, "--reason", "no_such_reason")
    assert code == 2
    assert "nothing matched" in err

    # dry run: prints what would move, produces and commits nothing
    before = len(_on_topic(kafka_bootstrap, preds_topic, len(originals)))
    assert before == len(originals)
    code, out, _ = _cli(capsys, "redrive", "--tenant", t, "--reason", "unknown_tenant", "--dry-run")
    assert code == 0
    assert "would re-drive 3" in out
    assert "refused 1" in out
    # redrive for real: the three foreign predictions, the spent one refused
    code, out, _ = _cli(capsys, "redrive", "--tenant", t, "--reason", "unknown_tenant")
    assert code == 0, out
    assert "re-drove 3" in out
    assert "refused 1" in out
    after = _on_topic(kafka_bootstrap, preds_topic, len(originals) + 4, settle=3)
    assert len(after) == len(originals) + 3  # the dry run moved nothing, the refused stays
    moved = [m for m in after if headers(m).get("dlq.redrive.count") == "1"]
    assert len(moved) == 3
    by_value = {value: (key, hdrs) for key, value, hdrs in foreign_records}
    assert sorted(m.value() or b"" for m in moved) == sorted(by_value)
    for m in moved:
        key, hdrs = by_value[m.value() or b""]
        assert m.key() == key
        got = [(k, v) for k, v in (m.headers() or [])]
        assert got == [*hdrs, ("dlq.redrive.count", b"1")]

    # exactly once: a second run moves nothing (the moved range is committed)
    code, out, _ = _cli(capsys, "redrive", "--tenant", t, "--reason", "unknown_tenant")
    assert code == 0
    assert "nothing to re-drive" in out
    # the other reasons are still there to move; then everything has been moved once
    code, out, _ = _cli(capsys, "redrive", "--tenant", t)
    assert code == 0
    assert "re-drove 3" in out
    code, out, _ = _cli(capsys, "redrive", "--tenant", t)
    assert "nothing to re-drive" in out
    final = _on_topic(kafka_bootstrap, preds_topic, len(originals) + 7, settle=3)
    assert len(final) == len(originals) + 6

    # a re-driven record that fails again comes back with its count and is counted up
    start_service(tenant, "consumers.decision", "d-2")
    wait_until(
        lambda: len(read_messages(kafka_bootstrap, dlq_topic, 13, timeout=2)) >= 13,
        60,
        "the re-driven records dead-lettered again",
    )
    tenant.stop_all()
    code, out, _ = _cli(capsys, "redrive", "--tenant", t, "--reason", "unknown_tenant")
    assert "re-drove 3" in out
    again = _on_topic(kafka_bootstrap, preds_topic, len(originals) + 9, settle=3)
    twice = [m for m in again if headers(m).get("dlq.redrive.count") == "2"]
    assert len(twice) == 3
    assert sorted(m.value() or b"" for m in twice) == sorted(by_value)
    assert all(
        not k.startswith("dlq.") or k == "dlq.redrive.count" for m in twice for k in headers(m)
    )


POINTER_BYTES = 1_047_500
"""Accepted on the input (1,048,588) but too large to copy with the dead-letter headers: the
decision service writes a pointer (issue 15 item 2)."""


def test_a_pointer_is_shown_as_one_and_re_driven_from_its_original(
    kafka_bootstrap: str, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    preds_topic, dlq_topic = tenant.topic("predictions"), tenant.topic("predictions.dlq")
    proc = start_service(tenant, "consumers.decision", "d-1")
    [(key, _, hdrs)] = _records(predictions(tenant.name, 1, prefix="big"))
    value = b"x" * POINTER_BYTES
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "message.max.bytes": 1_048_588,
            "compression.type": "none",
        }
    )
    producer.produce(preds_topic, key=key, value=value, headers=[*hdrs, ("x-big", b"1")])
    assert producer.flush(30) == 0
    [pointer] = read_messages(kafka_bootstrap, dlq_topic, 1, timeout=60)
    assert headers(pointer)["dlq.pointer"] == "true"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    src = f"{preds_topic} --partition {headers(pointer)['dlq.source.partition']} --offset 0"

    code, out, _ = _cli(capsys, "show", "--tenant", tenant.name)
    assert code == 0
    assert "pointer: the original" in out
    assert f"kafka-console-consumer --topic {src}" in out
    assert "xxxxxxxxxx" not in out  # the payload is not in the DLQ, only its coordinates

    code, out, _ = _cli(capsys, "redrive", "--tenant", tenant.name)
    assert code == 0, out
    assert "re-drove 1" in out
    both = read_messages(kafka_bootstrap, preds_topic, 2, timeout=20)
    [again] = [m for m in both if "dlq.redrive.count" in headers(m)]
    assert len(both) == 2
    assert (again.key(), again.value()) == (key, value)
    assert [(k, v) for k, v in again.headers() or []] == [
        *hdrs,
        ("x-big", b"1"),
        ("dlq.redrive.count", b"1"),
    ]
