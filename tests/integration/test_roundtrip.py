"""Every contract through the real broker with CloudEvents headers: decoded equals sent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas import CONTRACTS
from scorestream.kafka_config import producer_config
from scorestream.serde import EventProducer, decode_message
from scorestream.settings import KafkaSettings
from tests.factories import every_contract
from tests.kafka_helpers import read_messages

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34e0ea8d8aae41f1a4d1b-00f067aa0ba902b7-01"


def test_every_contract_round_trips(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic("roundtrip")
    sent = every_contract()
    with EventProducer(producer_config(KafkaSettings()), source="tests/roundtrip") as producer:
        for i, event in enumerate(sent):
            producer.send(topic, event, event_id=f"evt-{i}", trace={"traceparent": TRACEPARENT})
    messages = read_messages(kafka_bootstrap, topic, len(sent))
    assert len(messages) == len(sent)
    decoded = {}
    for msg in messages:
        env = decode_message(msg, accept=CONTRACTS)
        assert env.source == "tests/roundtrip"
        assert env.trace == {"traceparent": TRACEPARENT}
        assert msg.key() == env.event.partition_key().encode()
        headers = dict(msg.headers() or [])
        assert headers["ce_specversion"] == b"1.0"
        assert headers["content-type"] == b"application/json"
        decoded[env.id] = env.event
    assert [decoded[f"evt-{i}"] for i in range(len(sent))] == sent


def test_same_account_keeps_order_on_one_partition(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    from producers.generator import generate_transactions  # noqa: PLC0415

    topic = make_topic("ordering", partitions=6)
    events = list(generate_transactions(400, tenant="acme", seed=3, accounts=20))
    with EventProducer(producer_config(KafkaSettings()), source="tests/order") as producer:
        for e in events:
            producer.send(topic, e)
    messages = read_messages(kafka_bootstrap, topic, len(events))
    seen: dict[str, tuple[int, list[str]]] = {}
    for msg in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        event = decode_message(msg).event
        partition, ids = seen.setdefault(event.partition_key(), (msg.partition() or 0, []))
        assert msg.partition() == partition
        ids.append(event.transaction_id)  # type: ignore[attr-defined]
    for account, (_, ids) in seen.items():
        expected = [e.transaction_id for e in events if e.account_id == account]
        assert ids == expected
