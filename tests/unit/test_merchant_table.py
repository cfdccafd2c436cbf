"""The merchant table between the merchant stage and the enricher, without Kafka.

* :func:`consumers.merchant.closed_time`: the event time before which every input partition has
  delivered what it holds (what a partition's clock is made from);
* :class:`consumers.merchant.MerchantStoreCodec`: the merchant stage's store values (merchant
  states and the per-partition ``Sources``) on its changelog;
* :class:`consumers.enricher.MerchantTable`: the enricher's replica of the table, fed record by
  record (here: stand-in messages), serving features as of ``min(target as-of, closed time)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import pytest
import yaml
from confluent_kafka import Message
from prometheus_client import REGISTRY

from consumers.enricher import CLOCK_KEY, MerchantTable
from consumers.merchant import MerchantStoreCodec, Sources, closed_time
from scorestream.features import Engine, MerchantState, id_hash, parse_spec

HOUR = 3_600_000
T0 = int(datetime(2026, 11, 2, 12, 0, tzinfo=UTC).timestamp() * 1000)
TENANT = "unit-merchant-table"

SPEC = """
name: table
version: 1
merchant: {step: 1h, retain: 1d}
features:
  - {name: amount, transform: amount}
  - {name: m_count_2h, entity: merchant, aggregate: count, window: 2h}
  - {name: m_frauds_2h, entity: merchant, aggregate: fraud_count, window: 2h}
"""


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(parse_spec(yaml.safe_load(SPEC)))


# -- closed_time -----------------------------------------------------------------------------------
TX0, TX1, LB0 = "acme.transactions/0", "acme.transactions/1", "acme.labels/0"
EXPECTED = {TX0, TX1, LB0}


def test_closed_time_is_none_without_expected_inputs() -> None:
    assert closed_time({TX0: [5, False]}, set()) is None


def test_closed_time_waits_for_every_expected_input_to_report() -> None:
    assert closed_time({TX0: [100, False], TX1: [200, False]}, EXPECTED) is None


def test_closed_time_is_the_slowest_input_not_caught_up() -> None:
    sources = {TX0: [300, False], TX1: [200, False], LB0: [50, True]}
    assert closed_time(sources, EXPECTED) == 200, "an idle input does not hold it back"


def test_closed_time_with_every_input_caught_up_is_the_latest_time_seen() -> None:
    sources = {TX0: [300, True], TX1: [200, True], LB0: [-1, True]}
    assert closed_time(sources, EXPECTED) == 300


def test_closed_time_is_none_while_an_input_reads_without_a_record_yet() -> None:
    sources = {TX0: [300, False], TX1: [-1, False], LB0: [50, True]}
    assert closed_time(sources, EXPECTED) is None


def test_closed_time_of_inputs_that_never_had_a_record() -> None:
    assert closed_time({TX0: [-1, True], TX1: [-1, True], LB0: [-1, True]}, EXPECTED) is None
    assert closed_time({TX0: [-1, True], TX1: [70, False], LB0: [-1, True]}, EXPECTED) == 70


def test_closed_time_ignores_inputs_it_does_not_expect() -> None:
    """A partition of a topic that shrank from the metadata, or another tenant's leftovers."""
    sources = {TX0: [300, False], TX1: [200, True], LB0: [250, False], "old/9": [1, False]}
    assert closed_time(sources, EXPECTED) == 250


# -- the merchant stage's store codec --------------------------------------------------------------
def sample_state() -> MerchantState:
    """Transactions at 12:00, 13:00 and 14:00; the one of 13:00 confirmed as fraud at 14:30."""
    state = MerchantState()
    for i in range(3):
        state.observe_transaction(T0 + i * HOUR, id_hash(f"tx-{i}"), HOUR, 256)
    state.observe_fraud(T0 + HOUR, T0 + 2 * HOUR + 30 * 60_000, id_hash("tx-1"), HOUR)
    return state


def test_store_codec_round_trips_a_merchant_state() -> None:
    codec = MerchantStoreCodec()
    state = sample_state()
    back = codec.decode(codec.encode(state))
    assert isinstance(back, MerchantState)
    assert (back.tiles, back.frauds, back.ids) == (state.tiles, state.frauds, state.ids)


@pytest.mark.parametrize("clock", [None, T0])
def test_store_codec_round_trips_sources(clock: int | None) -> None:
    codec = MerchantStoreCodec()
    sources = Sources({TX0: [T0 + 5, False], LB0: [-1, True]}, clock)
    back = codec.decode(codec.encode(sources))
    assert back == sources
    assert isinstance(back, Sources)


@pytest.mark.parametrize(
    "data", [b"", b"{", b"[]", b"42", b'{"v": 2}', b'{"v": 1}', b'{"sources": 5}']
)
def test_store_codec_refuses_garbage_with_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (the state store turns it into a StateError)
        MerchantStoreCodec().decode(data)


SHORT_LISTS = [
    b'{"v": 1, "t": [5], "f": [], "i": []}',
    b'{"v": 1, "t": [], "f": [1, 2], "i": []}',
]


@pytest.mark.parametrize("data", SHORT_LISTS, ids=["tiles", "frauds"])
def test_store_codec_refuses_truncated_lists_with_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        MerchantStoreCodec().decode(data)


# -- the enricher's replica ------------------------------------------------------------------------
@dataclass
class Record:
    """What MerchantTable.apply reads of a confluent_kafka.Message."""

    _key: bytes | None
    _value: bytes | None
    _partition: int | None = 0

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int | None:
        return self._partition


def clock(p: int, at: int) -> Record:
    return Record(CLOCK_KEY.encode(), str(at).encode(), p)


def put(merchant: str, state: MerchantState, p: int = 0) -> Record:
    return Record(merchant.encode(), state.to_bytes(), p)


def feed(t: MerchantTable, *records: Record) -> None:
    for r in records:
        t.apply(cast("Message", r))


def table(engine: Engine, partitions: int = 2, *records: Record) -> MerchantTable:
    t = MerchantTable(engine, TENANT)
    t.partitions = partitions
    feed(t, *records)
    return t


def as_of_gauge() -> float | None:
    return REGISTRY.get_sample_value("scorestream_merchant_table_as_of_seconds", {"tenant": TENANT})


def test_closed_only_once_every_partition_has_a_clock(engine: Engine) -> None:
    t = table(engine, 3, clock(0, T0), clock(2, T0 + HOUR))
    assert t.closed_ms() is None
    feed(t, clock(1, T0 + 2 * HOUR))
    assert t.closed_ms() == T0, "the partition furthest behind decides"
    assert as_of_gauge() == T0 / 1000


def test_closed_is_none_before_the_partition_count_is_known(engine: Engine) -> None:
    t = table(engine, 0, clock(0, T0))
    assert t.closed_ms() is None


def test_a_partition_clock_never_goes_back(engine: Engine) -> None:
    t = table(engine, 1, clock(0, T0 + HOUR), clock(0, T0))
    assert t.closed_ms() == T0 + HOUR
    feed(t, Record(CLOCK_KEY.encode(), None, 0))  # a tombstone of the clock: ignored
    feed(t, clock(0, T0 + 2 * HOUR))
    assert t.closed_ms() == T0 + 2 * HOUR


def test_clock_without_a_partition_number_counts_as_partition_0(engine: Engine) -> None:
    t = table(engine, 1, Record(CLOCK_KEY.encode(), str(T0).encode(), None))
    assert t.clocks == {0: T0}


def test_no_closed_time_serves_zeros_and_no_as_of(engine: Engine) -> None:
    t = table(engine, 2, put("mer-1", sample_state()), clock(0, T0 + 5 * HOUR))
    assert t.values("mer-1", T0 + 5 * HOUR) == ({"m_count_2h": 0.0, "m_frauds_2h": 0.0}, None)


def test_values_are_as_of_the_transactions_step_when_the_table_is_ahead(engine: Engine) -> None:
    t = table(engine, 1, put("mer-1", sample_state()), clock(0, T0 + 10 * HOUR))
    # a transaction at 14:30 asks for as of 14:00: the tiles of 12:00 and 13:00
    features, as_of = t.values("mer-1", T0 + 2 * HOUR + 30 * 60_000)
    assert as_of == T0 + 2 * HOUR
    assert features == {"m_count_2h": 2.0, "m_frauds_2h": 0.0}  # the fraud is known at 14:30
    features, as_of = t.values("mer-1", T0 + 3 * HOUR)
    assert (features, as_of) == ({"m_count_2h": 2.0, "m_frauds_2h": 1.0}, T0 + 3 * HOUR)


def test_values_are_as_of_the_closed_time_when_the_table_is_behind(engine: Engine) -> None:
    t = table(engine, 2, put("mer-1", sample_state()), clock(0, T0 + 2 * HOUR))
    feed(t, clock(1, T0 + HOUR))
    features, as_of = t.values("mer-1", T0 + 3 * HOUR)
    assert as_of == T0 + HOUR, "not past what every partition has complete"
    assert features == {"m_count_2h": 1.0, "m_frauds_2h": 0.0}


def test_an_unknown_merchant_is_all_zero_with_the_as_of(engine: Engine) -> None:
    t = table(engine, 1, clock(0, T0))
    assert t.values("mer-new", T0 + HOUR) == ({"m_count_2h": 0.0, "m_frauds_2h": 0.0}, T0)


def test_a_merchant_update_invalidates_its_cached_values_only(engine: Engine) -> None:
    t = table(engine, 1, put("mer-1", sample_state()), put("mer-2", sample_state()))
    feed(t, clock(0, T0 + 10 * HOUR))
    at = T0 + 2 * HOUR
    before1, _ = t.values("mer-1", at)
    before2, _ = t.values("mer-2", at)
    assert t.values("mer-2", at)[0] is before2, "served from the cache"
    grown = sample_state()
    grown.observe_transaction(T0 + HOUR + 1, id_hash("tx-new"), HOUR, 256)
    feed(t, put("mer-1", grown))
    assert t.values("mer-1", at)[0] == {"m_count_2h": 3.0, "m_frauds_2h": 0.0}
    assert before1 == {"m_count_2h": 2.0, "m_frauds_2h": 0.0}, "a served dict is not changed"
    assert t.values("mer-2", at)[0] is before2, "another merchant's entry is kept"


def test_a_merchant_that_first_appears_is_no_longer_zero(engine: Engine) -> None:
    t = table(engine, 1, clock(0, T0 + 10 * HOUR))
    assert t.values("mer-1", T0 + 2 * HOUR)[0]["m_count_2h"] == 0.0
    feed(t, put("mer-1", sample_state()))
    assert t.values("mer-1", T0 + 2 * HOUR)[0]["m_count_2h"] == 2.0


def test_a_tombstone_removes_the_merchant(engine: Engine) -> None:
    t = table(engine, 1, put("mer-1", sample_state()), clock(0, T0 + 10 * HOUR))
    assert t.values("mer-1", T0 + 2 * HOUR)[0]["m_count_2h"] == 2.0
    feed(t, Record(b"mer-1", None))
    assert "mer-1" not in t.states
    assert t.values("mer-1", T0 + 2 * HOUR)[0]["m_count_2h"] == 0.0
    feed(t, Record(b"mer-never-seen", None))  # a tombstone of an unknown merchant: fine
    assert t.bad_records == 0


@pytest.mark.parametrize(
    "record",
    [
        Record(CLOCK_KEY.encode(), b"soon"),
        Record(CLOCK_KEY.encode(), b"\xff\xfe"),
        Record(b"mer-1", b"{not json"),
        Record(b"mer-1", b'{"v": 2, "t": [], "f": [], "i": []}'),
        Record(b"mer-1", b'{"v": 1}'),
        Record(b"mer-1", b"[1, 2]"),
        Record(b"mer-1", b'{"v": 1, "t": {"a": 1}, "f": [], "i": []}'),
    ],
    ids=[
        "clock-text",
        "clock-bytes",
        "not-json",
        "version",
        "missing-fields",
        "a-list",
        "tiles-mapping",
    ],
)
def test_garbage_is_counted_not_raised_and_keeps_the_last_good_state(
    engine: Engine, record: Record
) -> None:
    t = table(engine, 1, put("mer-1", sample_state()), clock(0, T0 + 10 * HOUR))
    before = t.values("mer-1", T0 + 2 * HOUR)
    feed(t, record)
    assert t.bad_records == 1
    assert t.closed_ms() == T0 + 10 * HOUR
    assert t.values("mer-1", T0 + 2 * HOUR) == before


def test_a_key_that_is_not_utf8_is_kept_under_a_replacement_name(engine: Engine) -> None:
    t = table(engine, 1, Record(b"mer-\xff", sample_state().to_bytes()))
    assert list(t.states) == ["mer-\ufffd"]
    assert t.bad_records == 0


@pytest.mark.parametrize("data", SHORT_LISTS, ids=["tiles", "frauds"])
def test_truncated_state_lists_are_counted_not_raised(engine: Engine, data: bytes) -> None:
    t = table(engine, 1)
    feed(t, Record(b"mer-1", data))
    assert t.bad_records == 1


def test_a_state_that_decodes_to_nonsense_is_refused_at_apply(engine: Engine) -> None:
    t = table(engine, 1, clock(0, T0 + 10 * HOUR))
    feed(t, Record(b"mer-1", b'{"v": 1, "t": "ab", "f": [], "i": []}'))
    assert t.bad_records == 1
    assert t.values("mer-1", T0 + 2 * HOUR)[0]["m_count_2h"] == 0.0
