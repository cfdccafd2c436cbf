"""The enricher's event-time window on domain objects (issue 15 item 17): a transaction outside
``[now - max_event_age, now + max_event_skew]`` is a dead letter with its reason, the rest of the
batch is enriched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scorestream.event_time import EventTimeSettings
from tests.unit.test_enricher_handler import envelope, handler, tx


def test_event_times_outside_the_window_are_dead_letters() -> None:
    h = handler()
    h.window = EventTimeSettings(max_event_age=timedelta(days=30), max_event_skew=timedelta(0))
    now = datetime.now(UTC)
    batch = [
        tx(1, timestamp=now - timedelta(days=29)),
        tx(2, timestamp=datetime(1900, 1, 1, tzinfo=UTC)),
        tx(3, timestamp=now + timedelta(minutes=1)),
        tx(4, timestamp=now - timedelta(days=31)),
        tx(5, timestamp=now - timedelta(seconds=1)),
    ]
    result = h.handle([envelope(t) for t in batch])
    assert [e.event.transaction.transaction_id for e in result.emits] == ["tx-1", "tx-5"]
    letters = {d.raw.value: d for d in result.dead_letters}
    assert len(letters) == 3
    for d in result.dead_letters:
        assert d.reason == "event_time_out_of_window"
        assert d.error == "EventTimeOutOfWindow"
        assert d.raw.key == b"acc-1"  # the raw record is kept
    messages = sorted(d.message for d in result.dead_letters)
    assert messages[0].startswith("event time 1900-01-01T00:00:00+00:00 is more than 30 days")
    assert sum("in the future" in m for m in messages) == 1
    # the account counted only the two accepted transactions
    assert result.emits[1].event.features["acc_count_30d"] == 2.0
