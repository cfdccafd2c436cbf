"""Keyed state stores: a local store per input partition plus a compacted changelog topic.

The pattern of Kafka Streams' state stores, written once for every stateful service:

* a store is partitioned like the input topic it is keyed by (its *source*): the state of key
  ``k`` lives in the partition of the record that carried ``k``, so the instance that owns input
  partition *p* owns store partition *p* and nobody else touches it;
* reads see the committed state plus the current batch's writes; the processor writes every key
  changed by a batch **once** (its last value, or a tombstone) to the changelog partition *p*
  **in the batch's Kafka transaction**, together with the outputs and the input offsets. A batch
  that aborts rolls the local writes back, so local state, outputs and offsets move together;
* when partitions are assigned, their state is rebuilt before any of their records is processed:
  from a local checkpoint (written on a clean revoke or shutdown, with the changelog offset it
  covers) plus the changelog from that offset, or from the changelog alone (``read_committed``);
* the changelog must have the source's partition count; if it does not (the input topic grew),
  :class:`PartitionCountMismatchError` says so and names the remedy (``scorestream state rescale``).

Values are held decoded in memory and encoded with the store's :class:`Codec` only for the
changelog. Bound what a key holds in the value type itself (the feature stores keep fixed tiles).
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, TopicPartition

from scorestream import metrics
from scorestream.errors import KafkaClientError
from scorestream.kafka_config import consumer_config
from scorestream.reader import watermarks
from scorestream.settings import KafkaSettings

log = logging.getLogger("scorestream.state")

V = TypeVar("V")

CHECKPOINT_MAGIC = b"SSCK1\n"
"""The first bytes of a checkpoint file (format version 1)."""


class StateError(KafkaClientError):
    """A state store cannot be restored or used (unreadable changelog, restore too slow)."""


class PartitionCountMismatchError(StateError):
    """The state changelog and the topic it is keyed by have different partition counts."""


class Codec(Protocol[V]):
    """How a store's values travel on its changelog (and in checkpoints)."""

    def encode(self, value: V) -> bytes: ...

    def decode(self, data: bytes) -> V: ...


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    """One changelog write of a batch: ``value=None`` is a tombstone."""

    topic: str
    partition: int
    key: bytes
    value: bytes | None


_DELETED = object()


class PartitionStore(Generic[V]):
    """The state of one partition: committed values plus the current batch's writes.

    A value may be changed in place: ``put`` it (before or after changing it) so that the batch
    writes it to the changelog and an abort rebuilds the partition."""

    __slots__ = ("_data", "_dirty", "partition")

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self._data: dict[str, V] = {}
        self._dirty: dict[str, object] = {}

    def get(self, key: str) -> V | None:
        dirty = self._dirty.get(key, None)
        if dirty is not None:
            return None if dirty is _DELETED else dirty  # type: ignore[return-value]
        return self._data.get(key)

    def put(self, key: str, value: V) -> None:
        self._dirty[key] = value

    def delete(self, key: str) -> None:
        self._dirty[key] = _DELETED

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> Iterator[str]:
        """Committed keys (the batch's new keys are not listed until it commits)."""
        return iter(list(self._data))

    def load(self, key: str, value: V | None) -> None:
        """Restore: set the committed value directly (``None`` removes it)."""
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value

    def committed_items(self) -> Iterator[tuple[str, V]]:
        return iter(self._data.items())

    def changes(self) -> Iterator[tuple[str, V | None]]:
        for key, value in self._dirty.items():
            yield key, (None if value is _DELETED else value)  # type: ignore[misc]

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def commit(self) -> None:
        for key, value in self._dirty.items():
            if value is _DELETED:
                self._data.pop(key, None)
            else:
                self._data[key] = value  # type: ignore[assignment]
        self._dirty.clear()

    def rollback(self) -> None:
        self._dirty.clear()


class StateStore(Generic[V]):
    """A keyed store partitioned like ``source``, backed by the compacted topic ``changelog``.

    The processor drives it (:meth:`restore` on assignment, :meth:`changelog_records` into each
    transaction, :meth:`commit` / :meth:`rollback` after it, :meth:`release` on revocation); the
    service's handler only calls :meth:`partition` and reads and writes keys.
    """

    def __init__(
        self,
        name: str,
        *,
        source: str,
        changelog: str,
        codec: Codec[V],
        kafka: KafkaSettings,
        group_id: str,
        checkpoint_dir: Path | None = None,
        restore_timeout_s: float = 120.0,
        checkpoint_max_age_s: float = 12 * 3600.0,
        values_mutable: bool = True,
    ) -> None:
        self.name = name
        self.source = source
        self.changelog = changelog
        self.codec = codec
        self.kafka = kafka
        self.group_id = group_id
        self.checkpoint_dir = checkpoint_dir
        self.restore_timeout_s = restore_timeout_s
        self.checkpoint_max_age_s = checkpoint_max_age_s
        """A checkpoint older than this is ignored: the changelog's tombstones are kept only
        ``delete.retention.ms`` (1 day), so an old checkpoint could resurrect a deleted key."""
        self.values_mutable = values_mutable
        """False: values are never changed in place (frozen objects), so an abort only has to
        drop the batch's writes instead of rebuilding the partitions it touched."""
        self.partitions: dict[int, PartitionStore[V]] = {}
        self.restored_records = 0
        self.restore_seconds = 0.0

    # -- the handler's side ----------------------------------------------------------------------
    def partition(self, p: int) -> PartitionStore[V]:
        store = self.partitions.get(p)
        if store is None:
            raise StateError(
                f"store {self.name}: partition {p} of {self.source} is not assigned here "
                "(a record of a partition this instance does not own)"
            )
        return store

    def __len__(self) -> int:
        return sum(len(s) for s in self.partitions.values())

    # -- the processor's side --------------------------------------------------------------------
    def changelog_records(self) -> list[ChangelogRecord]:
        out: list[ChangelogRecord] = []
        encode = self.codec.encode
        for p, store in self.partitions.items():
            if not store.dirty:
                continue
            for key, value in store.changes():
                data = None if value is None else encode(value)
                out.append(ChangelogRecord(self.changelog, p, key.encode(), data))
        return out

    def commit(self) -> None:
        for store in self.partitions.values():
            store.commit()

    def rollback(self) -> None:
        """The batch's transaction aborted. Handlers may change values in place (a value from
        :meth:`PartitionStore.get` is ``put`` back), so the partitions the batch wrote are
        rebuilt from the changelog, where the aborted writes never became visible (Kafka
        Streams wipes a task's stores after an abort under exactly-once the same way)."""
        if not self.values_mutable:
            for store in self.partitions.values():
                store.rollback()
            return
        touched = [p for p, s in self.partitions.items() if s.dirty]
        for p in touched:
            del self.partitions[p]
        if touched:
            log.warning("store %s: rebuilding partitions %s after an abort", self.name, touched)
            self.restore(touched)

    def check_partitions(self, consumer: Consumer) -> None:
        """Refuse to run when the changelog is partitioned unlike the source."""
        counts = {}
        for topic in (self.source, self.changelog):
            meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
            if meta is None or meta.error is not None:
                raise StateError(
                    f"store {self.name}: topic {topic} does not exist "
                    "(run `scorestream topics create`)"
                )
            counts[topic] = len(meta.partitions)
        if counts[self.source] != counts[self.changelog]:
            raise PartitionCountMismatchError(
                f"store {self.name}: {self.source} has {counts[self.source]} partitions but its "
                f"state changelog {self.changelog} has {counts[self.changelog]}; the state of a "
                "key lives in the partition of its records, so it must be moved first. Stop every "
                "instance of the service, then run `scorestream state rescale --tenant <tenant> "
                f"--store {self.name}` (docs/operations.md, 'Adding partitions')"
            )

    def release(self, partitions: list[int], *, checkpoint: bool) -> None:
        """Partitions leave this instance: checkpoint them (clean revoke) and forget them."""
        if checkpoint and self.checkpoint_dir is not None:
            self._checkpoint([p for p in partitions if p in self.partitions])
        for p in partitions:
            self.partitions.pop(p, None)

    def close(self) -> None:
        """Clean shutdown after the last commit: checkpoint every partition."""
        self.release(list(self.partitions), checkpoint=True)

    def restore(self, partitions: list[int]) -> None:
        """Rebuild ``partitions`` from checkpoint + changelog (``read_committed``) to its end."""
        wanted = [p for p in partitions if p not in self.partitions]
        if not wanted:
            return
        started = time.perf_counter()
        stores = {p: PartitionStore[V](p) for p in wanted}
        conf = consumer_config(
            self.kafka, group_id=f"{self.group_id}.restore", client_id=f"{self.group_id}-restore"
        )
        reader = Consumer(conf)
        records = 0
        try:
            ends: dict[int, int] = {}
            assignment: list[TopicPartition] = []
            for p in wanted:
                tp = TopicPartition(self.changelog, p)
                low, high = watermarks(reader, tp, timeout=self.restore_timeout_s)
                start = self._load_checkpoint(stores[p], low, high)
                if high > start:
                    ends[p] = high
                    assignment.append(TopicPartition(self.changelog, p, start))
            records = self._read(reader, assignment, ends, stores)
        finally:
            reader.close()
        self.partitions.update(stores)
        seconds = time.perf_counter() - started
        self.restored_records += records
        self.restore_seconds += seconds
        metrics.STATE_RESTORE_SECONDS.labels(self.name).observe(seconds)
        metrics.STATE_RESTORED_RECORDS.labels(self.name).inc(records)
        log.info(
            "restored store %s partitions %s: %d changelog records, %d keys in %.2fs",
            self.name,
            wanted,
            records,
            sum(len(s) for s in stores.values()),
            seconds,
        )

    def _read(
        self,
        reader: Consumer,
        assignment: list[TopicPartition],
        ends: dict[int, int],
        stores: dict[int, PartitionStore[V]],
    ) -> int:
        if not assignment:
            return 0
        reader.assign(assignment)
        deadline = time.monotonic() + self.restore_timeout_s
        records = 0
        decode = self.codec.decode
        while ends:
            if time.monotonic() > deadline:
                raise StateError(
                    f"restoring {self.changelog} partitions {sorted(ends)} took longer than "
                    f"{self.restore_timeout_s}s (an open transaction of a dead instance holds "
                    "read_committed readers back until transaction.timeout.ms)"
                )
            for msg in reader.consume(num_messages=5000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise StateError(f"reading {self.changelog}: {err}")
                store = stores[msg.partition() or 0]
                key = (msg.key() or b"").decode()
                value = msg.value()
                try:
                    store.load(key, None if value is None else decode(value))
                except ValueError as exc:
                    raise StateError(
                        f"unreadable state {key!r} at {self.changelog}[{msg.partition()}]"
                        f"@{msg.offset()}: {exc}"
                    ) from exc
                records += 1
            for tp in reader.position([TopicPartition(self.changelog, p) for p in ends]):
                if tp.offset >= ends[tp.partition]:
                    ends.pop(tp.partition)
        return records

    # -- checkpoints -------------------------------------------------------------------------------
    def _checkpoint_path(self, p: int) -> Path:
        assert self.checkpoint_dir is not None  # noqa: S101  (callers check)
        return self.checkpoint_dir / self.changelog / f"{p}.ckpt"

    def _checkpoint(self, partitions: list[int]) -> None:
        """Write each partition's committed state with the changelog offset it covers (the end
        of the changelog now: this instance is its only writer and has just committed)."""
        if not partitions:
            return
        conf = consumer_config(
            self.kafka, group_id=f"{self.group_id}.restore", client_id=f"{self.group_id}-ckpt"
        )
        reader = Consumer(conf)
        try:
            for p in partitions:
                store = self.partitions[p]
                if store.dirty:
                    continue  # never checkpoint uncommitted writes
                try:
                    _, high = watermarks(reader, TopicPartition(self.changelog, p), timeout=10)
                except Exception as exc:  # noqa: BLE001  (a checkpoint is an optimisation)
                    log.warning("no checkpoint of %s[%d]: %s", self.changelog, p, exc)
                    continue
                self._write_checkpoint(p, store, high)
        finally:
            reader.close()

    def _write_checkpoint(self, p: int, store: PartitionStore[V], offset: int) -> None:
        path = self._checkpoint_path(p)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        encode = self.codec.encode
        with tmp.open("wb") as out:
            out.write(CHECKPOINT_MAGIC)
            out.write(struct.pack(">qdq", offset, time.time(), len(store)))
            for key, value in store.committed_items():
                k, v = key.encode(), encode(value)
                out.write(struct.pack(">II", len(k), len(v)))
                out.write(k)
                out.write(v)
        os.replace(tmp, path)
        log.info("checkpointed %s[%d]: %d keys at offset %d", self.changelog, p, len(store), offset)

    def _load_checkpoint(self, store: PartitionStore[V], low: int, high: int) -> int:
        """Load a usable checkpoint of ``store``'s partition; returns the offset to read from.
        The file is removed once read: after this instance processes anything it is stale."""
        if self.checkpoint_dir is None:
            return low
        path = self._checkpoint_path(store.partition)
        if not path.exists():
            return low
        try:
            offset = self._read_checkpoint(path, store, low, high)
        except (OSError, ValueError, struct.error) as exc:
            log.warning("ignoring checkpoint %s: %s", path, exc)
            for key in list(store.keys()):
                store.load(key, None)
            offset = low
        path.unlink(missing_ok=True)
        return offset

    def _read_checkpoint(self, path: Path, store: PartitionStore[V], low: int, high: int) -> int:
        decode = self.codec.decode
        with path.open("rb") as f:
            if f.read(len(CHECKPOINT_MAGIC)) != CHECKPOINT_MAGIC:
                raise ValueError("not a checkpoint file")
            offset, written, n = struct.unpack(">qdq", f.read(24))
            age = time.time() - written
            if not -60.0 <= age <= self.checkpoint_max_age_s:  # NaN fails too
                raise ValueError(f"{age:.0f}s old (max {self.checkpoint_max_age_s:.0f}s)")
            if not low <= offset <= high:
                raise ValueError(
                    f"offset {offset} outside the changelog's [{low}, {high}] (recreated topic?)"
                )
            for _ in range(n):
                klen, vlen = struct.unpack(">II", f.read(8))
                key = f.read(klen).decode()
                store.load(key, decode(f.read(vlen)))
        return int(offset)
