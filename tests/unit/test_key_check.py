"""The kernel's decode step checks a record's key against the event's own key (issue 15 #11)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from schemas.cloudevents import decode, encode
from schemas.errors import KeyMismatchError, RawRecord
from schemas.events import EnrichedTransaction, PredictionEvent, TransactionEvent
from scorestream.dlq import DeadLetter
from scorestream.serde import check_key, decode_message
from tests.factories import every_contract, transaction


@dataclass
class FakeMessage:
    """The parts of a consumed ``confluent_kafka.Message`` that decoding reads."""

    _key: bytes | None
    _value: bytes | None
    _headers: list[tuple[str, bytes | None]] = field(default_factory=list)

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._headers

    def topic(self) -> str:
        return "t.transactions.enriched"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41

    def timestamp(self) -> tuple[int, int]:

        return (1, 1_764_000_000_000)  # TIMESTAMP_CREATE_TIME, a fixed time


def _enriched() -> EnrichedTransaction:
    return next(e for e in every_contract() if isinstance(e, EnrichedTransaction))


def _message(event: EnrichedTransaction | TransactionEvent, key: bytes | None) -> FakeMessage:
    m = encode(event, source="tests/unit")
    return FakeMessage(key, m.value, [(k, v) for k, v in m.headers])


def test_a_record_keyed_by_its_account_passes() -> None:
    event = _enriched()
    env = decode_message(
        _message(event, event.transaction.account_id.encode()),  # type: ignore[arg-type]
        accept=[EnrichedTransaction],
        keyed=(EnrichedTransaction,),
    )
    assert env.event == event


@pytest.mark.parametrize("key", [b"another-account", b"", None, b"x" * 5000])
def test_a_mis_keyed_record_is_a_key_mismatch_with_its_raw_record(key: bytes | None) -> None:
    event = _enriched()
    msg = _message(event, key)
    with pytest.raises(KeyMismatchError) as caught:
        decode_message(msg, accept=[EnrichedTransaction], keyed=(EnrichedTransaction,))  # type: ignore[arg-type]
    exc = caught.value
    assert exc.reason == "key_mismatch"
    assert exc.raw.key == key
    assert exc.raw.value == msg.value()
    assert (exc.raw.topic, exc.raw.partition, exc.raw.offset) == ("t.transactions.enriched", 2, 41)
    assert event.transaction.account_id in str(exc)
    assert len(str(exc)) < 400  # a huge key is cut in the message
    dl = DeadLetter.from_decode_error(exc)
    assert dict(dl.headers("worker"))["dlq.reason"] == "key_mismatch"


def test_only_declared_contracts_are_checked() -> None:
    event = _enriched()
    msg = _message(event, b"another-account")
    # no declaration: decoded as before (the service's own choice)
    assert decode_message(msg, accept=[EnrichedTransaction]).event == event  # type: ignore[arg-type]
    assert decode_message(msg, keyed=(PredictionEvent,)).event == event  # type: ignore[arg-type]


def test_check_key_uses_each_contracts_own_key() -> None:
    tx = transaction(account_id="acc-7")
    good = decode(
        RawRecord(b"acc-7", encode(tx, source="t").value, list(encode(tx, source="t").headers))
    )
    check_key(good, (TransactionEvent,))
    bad = decode(
        RawRecord(
            b"acc-8", good.raw.value if good.raw else None, list(encode(tx, source="t").headers)
        )
    )
    with pytest.raises(KeyMismatchError):
        check_key(bad, (TransactionEvent,))
