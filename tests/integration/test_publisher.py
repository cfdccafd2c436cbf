"""The publisher library against the real broker: reports match what consumers read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from producers.publisher import ContractViolationError, DeliveryReport, Publisher
from schemas.cloudevents import Envelope, decode
from schemas.events import TransactionEvent
from scorestream.serde import raw_from_message
from tests.factories import transaction
from tests.kafka_helpers import read_messages
from tests.worker_support import new_tenant

pytestmark = pytest.mark.integration

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_publish_publish_many_and_apublish(kafka_bootstrap: str, tmp_path: Path) -> None:
    tenant = new_tenant(tmp_path)
    topic = tenant.topic("transactions")

    def tx(i: int) -> TransactionEvent:
        return transaction(
            transaction_id=f"tx-{i}", tenant_id=tenant.name, account_id=f"acc-{i % 3}"
        )

    reports: list[DeliveryReport] = []
    with Publisher(tenant=tenant.name, source="tests/publisher") as pub:
        pub.check_topic()
        reports.append(pub.publish(tx(0), traceparent=TRACEPARENT, tracestate="k=v"))
        reports += pub.publish_many([tx(i) for i in range(1, 21)])
        reports.append(asyncio.run(pub.apublish(tx(21), extensions={"replyto": "x.replies/2"})))
        with pytest.raises(ContractViolationError):
            pub.publish_many([tx(22), transaction(tenant_id="someone-else")])
        assert pub.pending == 0
    assert [r.transaction_id for r in reports] == [f"tx-{i}" for i in range(22)]
    assert all(r.topic == topic and r.offset >= 0 for r in reports)
    assert reports[0].trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert len({r.trace_id for r in reports}) == 22  # without a parent, each starts a trace

    messages = read_messages(kafka_bootstrap, topic, 22, timeout=30)
    assert len(messages) == 22  # the rejected batch sent nothing
    by_position = {(m.partition(), m.offset()): m for m in messages}
    for report in reports:
        msg = by_position[(report.partition, report.offset)]
        env = decode(raw_from_message(msg), accept=[TransactionEvent])
        assert env.id == report.event_id
        assert env.event.transaction_id == report.transaction_id
        assert env.source == "tests/publisher"
        assert env.trace["traceparent"] == report.traceparent
        assert msg.key() == env.event.account_id.encode()
    first: Envelope[TransactionEvent] = decode(
        raw_from_message(by_position[(reports[0].partition, reports[0].offset)])
    )
    assert first.trace == {"traceparent": TRACEPARENT, "tracestate": "k=v"}
    last: Envelope[TransactionEvent] = decode(
        raw_from_message(by_position[(reports[-1].partition, reports[-1].offset)])
    )
    assert last.extensions == {"replyto": "x.replies/2"}
