"""The kernel's keyed state store without a broker.

The store's Kafka side is small: the restore reader (``watermarks`` → ``assign`` → ``consume`` →
``position``) and ``list_topics`` for the partition check. Both are played here by stand-ins
that hold a changelog in memory; tests/integration exercises the same paths on a real broker
(read_committed over aborted transactions, compaction, the restore timeout on a hanging
transaction).
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from scorestream import state as state_module
from scorestream.settings import KafkaSettings
from scorestream.state import (
    CHECKPOINT_MAGIC,
    ChangelogRecord,
    PartitionCountMismatchError,
    PartitionStore,
    StateError,
    StateStore,
)

SOURCE = "acme.transactions"
CHANGELOG = "acme.enricher.state"


class ListCodec:
    """Values are lists of ints (mutable, like the feature states), JSON on the changelog."""

    def encode(self, value: list[int]) -> bytes:
        return json.dumps(value).encode()

    def decode(self, data: bytes) -> list[int]:
        value = json.loads(data)  # JSONDecodeError is a ValueError
        if not isinstance(value, list):
            raise ValueError(f"not a list: {value!r}")
        return value


# -- an in-memory changelog and the restore reader that reads it ----------------------------------
@dataclass
class FakeMessage:
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _error: KafkaError | None = None

    def error(self) -> KafkaError | None:
        return self._error

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:

        return (1, 1_764_000_000_000)  # TIMESTAMP_CREATE_TIME, a fixed time

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


@dataclass
class FakeChangelog:
    """Per partition, the records from offset ``low`` on (what a compacted topic still holds)."""

    records: dict[int, list[tuple[bytes, bytes | None]]] = field(default_factory=dict)
    low: dict[int, int] = field(default_factory=dict)
    readers: list[FakeReader] = field(default_factory=list)

    def append(self, p: int, key: str, value: bytes | None) -> None:
        self.records.setdefault(p, []).append((key.encode(), value))

    def high(self, p: int) -> int:
        return self.low.get(p, 0) + len(self.records.get(p, []))

    def reader(self, conf: dict[str, Any]) -> FakeReader:
        assert conf["isolation.level"] == "read_committed"
        reader = FakeReader(self)
        self.readers.append(reader)
        return reader


@dataclass
class FakeReader:
    log: FakeChangelog
    positions: dict[int, int] = field(default_factory=dict)
    closed: bool = False
    eof_sent: set[int] = field(default_factory=set)

    def get_watermark_offsets(
        self, tp: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        assert tp.topic == CHANGELOG
        return self.log.low.get(tp.partition, 0), self.log.high(tp.partition)

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            assert tp.topic == CHANGELOG
            assert tp.offset >= self.log.low.get(tp.partition, 0), "assigned below the low mark"
            self.positions[tp.partition] = tp.offset

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        out: list[FakeMessage] = []
        for p, start in self.positions.items():
            pos = start
            low = self.log.low.get(p, 0)
            records = self.log.records.get(p, [])
            while pos < self.log.high(p) and len(out) < num_messages:
                key, value = records[pos - low]
                out.append(FakeMessage(p, pos, key, value))
                pos += 1
            self.positions[p] = pos
            if pos == self.log.high(p) and p not in self.eof_sent:
                self.eof_sent.add(p)  # enable.partition.eof style event: skipped by the store
                out.append(FakeMessage(p, pos, None, None, KafkaError(KafkaError._PARTITION_EOF)))
        return out

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get(tp.partition, -1001))
            for tp in partitions
        ]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def changelog(monkeypatch: pytest.MonkeyPatch) -> FakeChangelog:
    log = FakeChangelog()
    monkeypatch.setattr(state_module, "Consumer", log.reader)
    return log


@pytest.fixture
def no_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(conf: dict[str, Any]) -> None:
        raise AssertionError("this path must not open a Kafka client")

    monkeypatch.setattr(state_module, "Consumer", refuse)


def make_store(
    checkpoint_dir: Path | None = None, *, values_mutable: bool = True, **kw: Any
) -> StateStore[list[int]]:
    return StateStore(
        "accounts",
        source=SOURCE,
        changelog=CHANGELOG,
        codec=ListCodec(),
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        group_id="acme.enricher",
        checkpoint_dir=checkpoint_dir,
        values_mutable=values_mutable,
        **kw,
    )


def assigned(store: StateStore[list[int]], *partitions: int) -> StateStore[list[int]]:
    """Partitions assigned with nothing to restore (what ``restore`` does on an empty log)."""
    for p in partitions:
        store.partitions[p] = PartitionStore(p)
    return store


def committed(store: PartitionStore[list[int]]) -> dict[str, list[int]]:
    return dict(store.committed_items())


# -- PartitionStore: the batch overlay -------------------------------------------------------------
def test_get_sees_the_batch_writes_before_commit() -> None:
    s: PartitionStore[list[int]] = PartitionStore(3)
    s.load("a", [1])
    s.put("a", [2])
    s.put("b", [3])
    assert s.get("a") == [2]
    assert s.get("b") == [3]
    assert s.get("missing") is None
    assert committed(s) == {"a": [1]}
    assert len(s) == 1, "len counts committed keys only"
    assert list(s.keys()) == ["a"], "the batch's new keys are listed once it commits"
    assert s.dirty


def test_delete_hides_a_committed_key_until_rollback() -> None:
    s: PartitionStore[list[int]] = PartitionStore(0)
    s.load("a", [1])
    s.delete("a")
    assert s.get("a") is None
    assert committed(s) == {"a": [1]}
    s.rollback()
    assert s.get("a") == [1]
    assert not s.dirty


def test_put_after_delete_and_delete_after_put_keep_the_last_write() -> None:
    s: PartitionStore[list[int]] = PartitionStore(0)
    s.load("a", [1])
    s.load("b", [2])
    s.delete("a")
    s.put("a", [10])
    s.put("b", [20])
    s.delete("b")
    assert (s.get("a"), s.get("b")) == ([10], None)
    assert dict(s.changes()) == {"a": [10], "b": None}
    s.commit()
    assert committed(s) == {"a": [10]}


def test_commit_merges_the_batch_and_clears_it() -> None:
    s: PartitionStore[list[int]] = PartitionStore(0)
    s.load("keep", [0])
    s.load("gone", [0])
    s.put("new", [1])
    s.put("keep", [2])
    s.delete("gone")
    s.delete("never-existed")
    s.commit()
    assert committed(s) == {"keep": [2], "new": [1]}
    assert not s.dirty
    assert list(s.changes()) == []


def test_rollback_drops_the_batch() -> None:
    s: PartitionStore[list[int]] = PartitionStore(0)
    s.load("a", [1])
    s.put("a", [2])
    s.put("b", [3])
    s.rollback()
    assert (s.get("a"), s.get("b")) == ([1], None)
    assert committed(s) == {"a": [1]}
    assert not s.dirty


def test_load_none_removes_a_committed_key() -> None:
    s: PartitionStore[list[int]] = PartitionStore(0)
    s.load("a", [1])
    s.load("a", None)
    s.load("b", None)  # removing a missing key is fine (a tombstone of an unknown key)
    assert len(s) == 0


# -- StateStore: the processor's side --------------------------------------------------------------
def test_changelog_records_one_per_changed_key_with_the_codec() -> None:
    store = assigned(make_store(), 0, 1, 2)
    p0, p1 = store.partition(0), store.partition(1)
    p0.load("old", [0])
    p0.put("a", [1])
    p0.put("a", [1, 2])  # written twice: one record, the last value
    p0.delete("old")
    p1.put("b", [7])
    records = store.changelog_records()
    assert sorted(records, key=lambda r: (r.partition, r.key)) == [
        ChangelogRecord(CHANGELOG, 0, b"a", b"[1, 2]"),
        ChangelogRecord(CHANGELOG, 0, b"old", None),  # a tombstone
        ChangelogRecord(CHANGELOG, 1, b"b", b"[7]"),
    ]
    assert all(r.partition != 2 for r in records), "a clean partition writes nothing"


def test_changelog_keys_are_utf8() -> None:
    store = assigned(make_store(), 0)
    store.partition(0).put("Zürich-42", [1])
    (record,) = store.changelog_records()
    assert record.key == "Zürich-42".encode()


def test_commit_merges_every_partition_and_leaves_nothing_to_write() -> None:
    store = assigned(make_store(), 0, 1)
    store.partition(0).put("a", [1])
    store.partition(1).put("b", [2])
    store.commit()
    assert store.changelog_records() == []
    assert committed(store.partition(0)) == {"a": [1]}
    assert committed(store.partition(1)) == {"b": [2]}
    assert len(store) == 2


def test_rollback_of_frozen_values_only_drops_the_batch(no_kafka: None) -> None:
    store = assigned(make_store(values_mutable=False), 0, 1)
    store.partition(0).load("a", [1])
    before = store.partition(0)
    store.partition(0).put("a", [2])
    store.partition(1).put("b", [3])
    store.partition(1).delete("zzz")
    store.rollback()
    assert store.partition(0) is before, "the partition is kept, not rebuilt"
    assert store.partition(0).get("a") == [1]
    assert store.partition(1).get("b") is None
    assert store.changelog_records() == []


def test_rollback_of_mutable_values_rebuilds_the_touched_partitions(
    changelog: FakeChangelog,
) -> None:
    """A handler changed a committed value in place and put it back; the transaction aborted.
    Dropping the batch would keep the in-place change: the partition is read again from the
    changelog, where the aborted write never became visible."""
    changelog.append(0, "a", b"[1]")
    changelog.append(1, "b", b"[5]")
    store = make_store()
    store.restore([0, 1])
    untouched = store.partition(1)
    value = store.partition(0).get("a")
    assert value == [1]
    assert value is not None
    value.append(2)  # in place, as the feature engine does
    store.partition(0).put("a", value)
    store.rollback()
    assert store.partition(0).get("a") == [1]
    assert store.partition(1) is untouched, "a partition the batch did not write is kept"
    assert store.changelog_records() == []
    assert all(r.closed for r in changelog.readers)


def test_rollback_without_writes_reads_nothing(no_kafka: None) -> None:
    store = assigned(make_store(), 0)
    store.rollback()
    assert store.partition(0).get("x") is None


def test_partition_not_assigned_here_raises_state_error() -> None:
    store = assigned(make_store(), 0)
    with pytest.raises(StateError, match=r"partition 5 of acme\.transactions is not assigned"):
        store.partition(5)


def test_released_partitions_are_forgotten(no_kafka: None) -> None:
    store = assigned(make_store(), 0, 1)
    store.partition(0).put("a", [1])
    store.commit()
    store.release([0, 7], checkpoint=False)  # 7 was never here: ignored
    assert list(store.partitions) == [1]
    with pytest.raises(StateError):
        store.partition(0)


# -- checkpoints -----------------------------------------------------------------------------------
def checkpoint_file(tmp_path: Path, p: int) -> Path:
    return tmp_path / CHANGELOG / f"{p}.ckpt"


def write_checkpoint(
    tmp_path: Path, p: int, items: dict[str, list[int]], offset: int
) -> StateStore[list[int]]:
    store = make_store(tmp_path)
    source: PartitionStore[list[int]] = PartitionStore(p)
    for key, value in items.items():
        source.load(key, value)
    store._write_checkpoint(p, source, offset)
    return store


def load_checkpoint(
    store: StateStore[list[int]], p: int, low: int, high: int
) -> tuple[int, dict[str, list[int]]]:
    target: PartitionStore[list[int]] = PartitionStore(p)
    offset = store._load_checkpoint(target, low, high)
    return offset, committed(target)


ITEMS = {"acc-1": [1, 2, 3], "acc-2": [], "Zürich": [42]}


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    store = write_checkpoint(tmp_path, 4, ITEMS, offset=120)
    path = checkpoint_file(tmp_path, 4)
    assert path.read_bytes().startswith(CHECKPOINT_MAGIC)
    assert not list(path.parent.glob("*.tmp")), "written to a temporary file, then renamed"
    assert load_checkpoint(store, 4, low=100, high=150) == (120, ITEMS)
    assert not path.exists(), "a checkpoint is used once: after processing it is stale"


def test_checkpoint_of_an_empty_partition(tmp_path: Path) -> None:
    store = write_checkpoint(tmp_path, 0, {}, offset=0)
    assert load_checkpoint(store, 0, low=0, high=0) == (0, {})


@pytest.mark.parametrize("offset", [100, 150])
def test_checkpoint_at_either_end_of_the_changelog_is_used(tmp_path: Path, offset: int) -> None:
    store = write_checkpoint(tmp_path, 0, ITEMS, offset=offset)
    assert load_checkpoint(store, 0, low=100, high=150) == (offset, ITEMS)


@pytest.mark.parametrize("offset", [99, 151])
def test_checkpoint_outside_the_changelog_is_ignored(tmp_path: Path, offset: int) -> None:
    """Below the low mark (records it covers are gone) or beyond the end (a recreated topic)."""
    store = write_checkpoint(tmp_path, 0, ITEMS, offset=offset)
    assert load_checkpoint(store, 0, low=100, high=150) == (100, {})
    assert not checkpoint_file(tmp_path, 0).exists()


def _set_written(path: Path, written: float) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into(">d", data, len(CHECKPOINT_MAGIC) + 8, written)
    path.write_bytes(bytes(data))


def test_checkpoint_older_than_the_max_age_is_ignored(tmp_path: Path) -> None:
    store = write_checkpoint(tmp_path, 0, ITEMS, offset=10)
    assert store.checkpoint_max_age_s == 12 * 3600
    _set_written(checkpoint_file(tmp_path, 0), time.time() - 12 * 3600 - 60)
    assert load_checkpoint(store, 0, low=0, high=20) == (0, {})
    assert not checkpoint_file(tmp_path, 0).exists()


def test_checkpoint_just_within_the_max_age_is_used(tmp_path: Path) -> None:
    store = write_checkpoint(tmp_path, 0, ITEMS, offset=10)
    _set_written(checkpoint_file(tmp_path, 0), time.time() - 12 * 3600 + 60)
    assert load_checkpoint(store, 0, low=0, high=20) == (10, ITEMS)


def _corrupt_truncated(data: bytes) -> bytes:
    return data[:-3]  # inside the last value: the keys before it were loaded already


def _corrupt_magic(data: bytes) -> bytes:
    return b"SSCK2\n" + data[len(CHECKPOINT_MAGIC) :]


def _corrupt_header(data: bytes) -> bytes:
    return data[: len(CHECKPOINT_MAGIC) + 10]


def _corrupt_value(data: bytes) -> bytes:
    return data.replace(b"[42]", b"{42}")  # same length, not decodable by the codec


def _corrupt_count(data: bytes) -> bytes:
    head = len(CHECKPOINT_MAGIC) + 16
    return data[:head] + struct.pack(">q", len(ITEMS) + 1) + data[head + 8 :]


@pytest.mark.parametrize(
    "corrupt",
    [
        _corrupt_truncated,
        _corrupt_magic,
        _corrupt_header,
        _corrupt_value,
        _corrupt_count,
        lambda data: b"",
    ],
    ids=["truncated", "wrong-magic", "short-header", "undecodable-value", "count-too-big", "empty"],
)
def test_a_corrupt_checkpoint_is_ignored_and_leaves_the_store_empty(
    tmp_path: Path, corrupt: Any
) -> None:
    store = write_checkpoint(tmp_path, 2, ITEMS, offset=10)
    path = checkpoint_file(tmp_path, 2)
    path.write_bytes(corrupt(path.read_bytes()))
    assert load_checkpoint(store, 2, low=3, high=20) == (3, {})
    assert not path.exists()


def test_no_checkpoint_means_the_low_offset(tmp_path: Path) -> None:
    assert load_checkpoint(make_store(tmp_path), 0, low=7, high=9) == (7, {})
    assert load_checkpoint(make_store(None), 0, low=7, high=9) == (7, {})


def test_checkpoints_are_per_changelog_and_partition(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, 0, {"p0": [0]}, offset=1)
    write_checkpoint(tmp_path, 1, {"p1": [1]}, offset=1)
    other = StateStore(
        "merchants",
        source="acme.merchant-activity",
        changelog="acme.merchant.state",
        codec=ListCodec(),
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        group_id="acme.merchant",
        checkpoint_dir=tmp_path,
    )
    assert load_checkpoint(other, 0, low=0, high=5) == (0, {})
    store = make_store(tmp_path)
    assert load_checkpoint(store, 1, low=0, high=5) == (1, {"p1": [1]})
    assert load_checkpoint(store, 0, low=0, high=5) == (1, {"p0": [0]})


# -- restore, release and close through the stand-in reader ---------------------------------------
def test_restore_from_the_changelog_alone(changelog: FakeChangelog) -> None:
    changelog.append(0, "a", b"[1]")
    changelog.append(0, "b", b"[2]")
    changelog.append(0, "a", b"[3]")
    changelog.append(0, "b", None)
    changelog.append(1, "c", b"[4]")
    store = make_store()
    store.restore([0, 1, 2])
    assert committed(store.partition(0)) == {"a": [3]}
    assert committed(store.partition(1)) == {"c": [4]}
    assert committed(store.partition(2)) == {}
    assert store.restored_records == 5
    assert all(r.closed for r in changelog.readers)


def test_restore_skips_partitions_already_here(changelog: FakeChangelog) -> None:
    store = make_store()
    store.restore([0])
    mine = store.partition(0)
    mine.put("a", [1])
    mine.commit()
    changelog.append(0, "a", b"[9]")
    store.restore([0])
    assert store.partition(0) is mine
    assert mine.get("a") == [1]


def test_release_checkpoints_and_restore_continues_from_it(
    changelog: FakeChangelog, tmp_path: Path
) -> None:
    changelog.low[0] = 5
    changelog.append(0, "a", b"[1]")
    changelog.append(0, "b", b"[2]")
    first = make_store(tmp_path)
    first.restore([0])
    first.release([0], checkpoint=True)
    assert checkpoint_file(tmp_path, 0).exists()
    # meanwhile another instance owned the partition: the changelog moved on, and compaction
    # removed the records before the checkpoint
    changelog.append(0, "b", None)
    changelog.append(0, "c", b"[3]")
    del changelog.records[0][:2]
    changelog.low[0] = 7
    again = make_store(tmp_path)
    again.restore([0])
    assert committed(again.partition(0)) == {"a": [1], "c": [3]}
    assert again.restored_records == 2, "only the tail after the checkpoint is read"
    assert not checkpoint_file(tmp_path, 0).exists()


def test_uncommitted_writes_are_never_checkpointed(
    changelog: FakeChangelog, tmp_path: Path
) -> None:
    store = make_store(tmp_path)
    store.restore([0, 1])
    store.partition(0).put("a", [1])
    store.partition(1).put("b", [2])
    store.partition(1).commit()
    store.close()
    assert not checkpoint_file(tmp_path, 0).exists()
    assert checkpoint_file(tmp_path, 1).exists()
    assert store.partitions == {}


def test_release_without_checkpoint_writes_no_file(
    changelog: FakeChangelog, tmp_path: Path
) -> None:
    store = make_store(tmp_path)
    store.restore([0])
    store.release([0], checkpoint=False)  # partitions lost: state may be stale
    assert not (tmp_path / CHANGELOG).exists()


def test_an_unreadable_changelog_record_is_a_state_error(changelog: FakeChangelog) -> None:
    changelog.append(0, "a", b"[1]")
    changelog.append(0, "acc-9", b"not json")
    store = make_store()
    with pytest.raises(StateError, match=r"'acc-9' at acme\.enricher\.state\[0\]@1"):
        store.restore([0])
    with pytest.raises(StateError):
        store.partition(0)


def test_restore_that_never_reaches_the_end_times_out(
    changelog: FakeChangelog, monkeypatch: pytest.MonkeyPatch
) -> None:
    changelog.append(0, "a", b"[1]")

    def stuck(self: FakeReader, num_messages: int, timeout: float) -> list[FakeMessage]:
        return []  # e.g. an open transaction holds read_committed back

    monkeypatch.setattr(FakeReader, "consume", stuck)
    store = make_store(restore_timeout_s=0.05)
    with pytest.raises(StateError, match=r"took longer than 0\.05s"):
        store.restore([0])
    assert changelog.readers[-1].closed


# -- the partition check ---------------------------------------------------------------------------
@dataclass
class TopicMeta:
    partitions: dict[int, object]
    error: object = None


@dataclass
class Metadata:
    topics: dict[str, TopicMeta]


@dataclass
class MetadataConsumer:
    counts: dict[str, int]
    asked: list[str] = field(default_factory=list)

    def list_topics(self, topic: str, timeout: float) -> Metadata:
        self.asked.append(topic)
        n = self.counts.get(topic)
        return Metadata({} if n is None else {topic: TopicMeta(dict.fromkeys(range(n)))})


def test_check_partitions_accepts_equal_counts() -> None:
    consumer = MetadataConsumer({SOURCE: 6, CHANGELOG: 6})
    make_store().check_partitions(consumer)  # type: ignore[arg-type]
    assert consumer.asked == [SOURCE, CHANGELOG]


def test_check_partitions_names_the_counts_and_the_remedy() -> None:
    consumer = MetadataConsumer({SOURCE: 12, CHANGELOG: 6})
    with pytest.raises(PartitionCountMismatchError) as info:
        make_store().check_partitions(consumer)  # type: ignore[arg-type]
    message = str(info.value)
    assert "acme.transactions has 12 partitions" in message
    assert "acme.enricher.state has 6" in message
    assert "scorestream state rescale" in message
    assert "--store accounts" in message


@pytest.mark.parametrize("missing", [SOURCE, CHANGELOG])
def test_check_partitions_refuses_a_missing_topic(missing: str) -> None:
    consumer = MetadataConsumer({SOURCE: 3, CHANGELOG: 3})
    del consumer.counts[missing]
    with pytest.raises(StateError, match=f"{missing} does not exist") as info:
        make_store().check_partitions(consumer)  # type: ignore[arg-type]
    assert not isinstance(info.value, PartitionCountMismatchError)


def test_check_partitions_refuses_a_topic_with_an_error() -> None:
    class Erroring(MetadataConsumer):
        def list_topics(self, topic: str, timeout: float) -> Metadata:
            meta = super().list_topics(topic, timeout)
            meta.topics[topic].error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
            return meta

    with pytest.raises(StateError, match="does not exist"):
        make_store().check_partitions(Erroring({SOURCE: 3, CHANGELOG: 3}))  # type: ignore[arg-type]


def test_keys_is_a_snapshot_safe_to_mutate_under() -> None:
    s: PartitionStore[list[int]] = PartitionStore(0)
    for i in range(5):
        s.load(f"k{i}", [i])
    snapshot = s.keys()
    for key in snapshot:
        s.load(key, None)  # what a rejected checkpoint does
    assert list(s.keys()) == []
