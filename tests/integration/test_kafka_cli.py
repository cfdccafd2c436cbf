"""The genuine Kafka CLI, run through ``scorestream kafka``, works against the same broker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from schemas import TransactionEvent
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer
from scorestream.settings import KafkaSettings
from tests.factories import transaction

pytestmark = pytest.mark.integration


def scorestream(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scorestream", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_console_consumer_prints_the_json(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("cli", partitions=1)
    sent = transaction(transaction_id="tx-cli-1")
    with EventProducer(producer_config(KafkaSettings()), source="tests/cli") as producer:
        producer.send(topic, sent)
    proc = scorestream(
        "kafka",
        "kafka-console-consumer",
        "--topic",
        topic,
        "--from-beginning",
        "--max-messages",
        "1",
        "--timeout-ms",
        "60000",
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    assert TransactionEvent.model_validate_json(lines[0]) == sent
    assert json.loads(lines[0])["transaction_id"] == "tx-cli-1"


def test_topics_list_and_describe(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic("cli-list", partitions=2)
    listed = scorestream("kafka", "kafka-topics", "--list")
    assert listed.returncode == 0, listed.stderr
    assert topic in listed.stdout.split()
    described = scorestream("kafka", "kafka-topics.sh", "--describe", "--topic", topic)
    assert described.returncode == 0, described.stderr
    assert "PartitionCount: 2" in described.stdout


def test_console_producer_then_get_offsets(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic("cli-produce", partitions=1)
    proc = subprocess.run(
        [sys.executable, "-m", "scorestream", "kafka", "kafka-console-producer", "--topic", topic],
        input="one\ntwo\nthree\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    offsets = scorestream("kafka", "kafka-get-offsets", "--topic", topic)
    assert offsets.returncode == 0, offsets.stderr
    assert offsets.stdout.strip() == f"{topic}:0:3"


def test_unknown_tool_is_a_clear_error() -> None:
    proc = scorestream("kafka", "kafka-frobnicate")
    assert proc.returncode == 2
    assert "unknown Kafka tool" in proc.stderr
