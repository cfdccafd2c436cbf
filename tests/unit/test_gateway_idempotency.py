"""The gateway's durable idempotency table, without Kafka: the log-order rule every replica
applies, its bounds, the derived event ids and which publish failures leave the outcome open."""

from __future__ import annotations

from dataclasses import replace

import pytest

from producers.gateway.idempotency import (
    ALIAS,
    DONE,
    PENDING,
    RELEASED,
    UNKNOWN,
    Entry,
    IdempotencyTable,
    apply_record,
    derive_event_id,
    key_key,
    possibly_written,
)
from producers.publisher import (
    ContractViolationError,
    DeliveryFailedError,
    PublisherClosedError,
    PublishTimeoutError,
    QueueFullError,
)

HORIZON = 3600.0


def claim(name: str, at: float = 1000.0, fp: str = "fp") -> Entry:
    return Entry(claim=name, state=PENDING, fingerprint=fp, created=at, transaction_id="tx-1")


def test_the_first_claim_in_the_log_wins_whatever_replica_reads_it() -> None:
    a, b = claim("a"), claim("b", at=1000.5)
    for first, second in ((a, b), (b, a)):
        entry, applied = apply_record(None, first, horizon_s=HORIZON)
        assert applied
        entry, applied = apply_record(entry, second, horizon_s=HORIZON)
        assert not applied
        assert entry is first


def test_the_owner_updates_in_sequence_and_nobody_else_does() -> None:
    a = claim("a")
    done = replace(a, state=DONE, seq=2, response={"status": 202})
    unknown = replace(a, state=UNKNOWN, seq=1)
    entry, _ = apply_record(a, done, horizon_s=HORIZON)
    entry, applied = apply_record(entry, unknown, horizon_s=HORIZON)  # older: read late
    assert not applied
    assert entry is not None
    assert entry.state == DONE
    stranger = replace(claim("b"), state=RELEASED, seq=9)
    assert apply_record(entry, stranger, horizon_s=HORIZON) == (entry, False)


def test_a_takeover_names_the_claim_it_replaces() -> None:
    a = replace(claim("a"), state=UNKNOWN, seq=1)
    takeover = replace(claim("r", at=5000.0), state=UNKNOWN, prev="a")
    entry, applied = apply_record(a, takeover, horizon_s=HORIZON)
    assert applied
    assert entry is not None
    assert (entry.claim, entry.created) == ("r", a.created)  # the horizon counts from the claim
    late = replace(claim("x"), state=UNKNOWN, prev="a")
    assert apply_record(entry, late, horizon_s=HORIZON) == (entry, False)


def test_released_or_expired_entries_can_be_claimed_again() -> None:
    released = replace(claim("a"), state=RELEASED, seq=1)
    entry, applied = apply_record(released, claim("b", at=1001.0), horizon_s=HORIZON)
    assert applied
    assert entry is not None
    assert entry.claim == "b"
    old = replace(claim("a"), state=DONE, seq=2)
    later = claim("c", at=1000.0 + HORIZON)
    assert apply_record(old, later, horizon_s=HORIZON) == (later, True)
    assert apply_record(old, None, horizon_s=HORIZON) == (None, True)  # a tombstone


def test_the_table_is_bounded_by_count_and_age() -> None:
    table = IdempotencyTable(horizon_s=HORIZON, max_entries=3)
    for i in range(5):
        table.apply(f"tx/{i}", claim(f"c{i}", at=1000.0 + i))
    assert len(table) == 3
    assert table.get("tx/0", now=1001.0) is None  # evicted (oldest first)
    assert table.get("tx/4", now=1001.0) is not None
    assert table.get("tx/4", now=1004.0 + HORIZON) is None  # past the horizon


def test_records_survive_their_json_round_trip() -> None:
    entry = replace(
        claim("a"),
        state=DONE,
        seq=3,
        route="score",
        event_id="e",
        request_id="r",
        account_id="acc",
        response={"status": 200, "body": {"decision": "approve"}},
        updated=1002.5,
        prev="z",
    )
    back = Entry.from_json(entry.to_json())
    assert back == entry
    assert back.prev == "z"
    alias = replace(claim("a"), state=ALIAS)
    assert Entry.from_json(alias.to_json()).state == ALIAS
    with pytest.raises(ValueError, match="not an idempotency record"):
        Entry.from_json(b'{"s": "bogus", "c": "a"}')


def test_event_ids_are_the_requests_own() -> None:
    one = derive_event_id("acme", "key-1", "tx-1", "fp")
    assert one == derive_event_id("acme", "key-1", "tx-1", "fp")
    assert one != derive_event_id("other", "key-1", "tx-1", "fp")  # tenant
    assert one != derive_event_id("acme", "key-1", "tx-1", "fp2")  # another body
    assert one != derive_event_id("acme", None, "tx-1", "fp")  # no key: the transaction id
    assert derive_event_id("acme", None, "tx-1", "fp") != derive_event_id("acme", None, "t2", "fp")


def test_the_stored_key_is_a_hash_of_the_idempotency_key() -> None:
    assert "secret-key" not in key_key("secret-key")
    assert key_key("secret-key") == key_key("secret-key")


@pytest.mark.parametrize(
    ("error", "open_outcome"),
    [
        (PublishTimeoutError("no report"), True),
        (PublisherClosedError("closed with records in flight"), True),
        (DeliveryFailedError("timed out", code="_MSG_TIMED_OUT", retriable=True), True),
        (DeliveryFailedError("down", code="_TRANSPORT", retriable=True), True),
        (DeliveryFailedError("too big", code="MSG_SIZE_TOO_LARGE", retriable=False), False),
        (DeliveryFailedError("denied", code="TOPIC_AUTHORIZATION_FAILED", retriable=False), False),
        (QueueFullError("full"), False),
        (ContractViolationError("bad"), False),
    ],
)
def test_which_failures_leave_the_outcome_open(error: Exception, open_outcome: bool) -> None:
    assert possibly_written(error) is open_outcome  # type: ignore[arg-type]
