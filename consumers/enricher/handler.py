"""The enricher's logic on domain objects (unit-tested without Kafka): a batch of decoded
transactions in, enriched events, dead letters and moved records out; the account store and its
changelog codec."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from consumers.enricher.merchant_table import MerchantTable
from consumers.enricher.settings import (
    ACCOUNTS,
    COPIES,
    DUPLICATES,
    FRESHNESS,
    NO_TABLE,
    REROUTED,
    REROUTED_HEADER,
)
from schemas.cloudevents import Envelope
from schemas.events import EnrichedTransaction, TransactionEvent
from scorestream import metrics
from scorestream.dlq import DeadLetter
from scorestream.event_time import REASON as EVENT_TIME
from scorestream.event_time import EventTimeSettings, out_of_window
from scorestream.features import (
    FEATURE_SPEC,
    AccountState,
    Engine,
    id_hash,
)
from scorestream.partitioning import partition_for
from scorestream.processor import Emit, OutRecord, Result
from scorestream.state import StateStore
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.enricher")


class AccountCodec:
    """The account store's values on the changelog (tile groups named by hop and filter)."""

    def __init__(self, engine: Engine) -> None:
        self.signatures = engine.signatures

    def encode(self, value: AccountState) -> bytes:
        return value.to_bytes(self.signatures)

    def decode(self, data: bytes) -> AccountState:
        return AccountState.from_bytes(data, self.signatures)


@lru_cache(maxsize=4096)
def _utc_ms(ms: int) -> datetime:
    """Epoch milliseconds as an aware datetime (as-of values repeat: cached)."""
    return datetime.fromtimestamp(ms / 1000, UTC)


@lru_cache(maxsize=4096)
def _iso_ms(ms: int) -> bytes:
    """Epoch milliseconds as a quoted JSON timestamp, as pydantic writes one."""
    return b'"' + _utc_ms(ms).isoformat().replace("+00:00", "Z").encode() + b'"'


class EnrichHandler:
    """The enricher's logic on domain objects: a batch of decoded transactions in, a
    :class:`Result` out (enriched events, dead letters, moved records), the account store and
    the merchant table updated. No Kafka: the service below wires it to the processor, and the
    unit tests call it directly."""

    def __init__(
        self,
        *,
        tenant: str,
        engine: Engine,
        accounts: StateStore[AccountState],
        merchants: MerchantTable,
        partition_count: Callable[[], None] = lambda: None,
        window: EventTimeSettings | None = None,
    ) -> None:
        self.tenant = tenant
        self.window = window or EventTimeSettings()
        """Event times outside ``[now - max_event_age, now + max_event_skew]`` go to the DLQ."""
        self._now = self._oldest = self._latest = datetime.now(UTC)
        self._window_at(self._now)
        self.engine = engine
        self.accounts = accounts
        self.merchants = merchants
        self.tx_topic = REGISTRY.topic("transactions", tenant)
        self.out_topic = REGISTRY.topic("transactions.enriched", tenant)
        self.input_partitions = 0
        """Partitions of the input, for the home partition of a key (0/1: no check)."""
        self.check_partition_count = partition_count
        """Raises when the input grew (called before moving a record)."""
        self._hash_b = FEATURE_SPEC.hash.encode()
        self._m_dup = DUPLICATES.labels(tenant)
        self._m_copies = COPIES.labels(tenant)
        self._m_rerouted = REROUTED.labels(tenant)
        self._m_fresh = FRESHNESS.labels(tenant)
        self._m_no_table = NO_TABLE.labels(tenant)
        self._m_accounts = ACCOUNTS.labels(tenant)
        self._freshness: list[float] = []
        self._no_table = 0
        self._copies = 0

    def handle(self, batch: list[Envelope[Any]]) -> Result:
        result = Result()
        self._freshness = []
        self._no_table = 0
        self._copies = 0
        now = datetime.now(UTC)  # one enriched_at per batch, like ce_time
        stamp = now.isoformat().replace("+00:00", "Z").encode()
        self._window_at(now)
        for env in batch:
            out = self.enrich(env, result, now=now, stamp=stamp)
            if out is not None:
                result.emits.append(out)
        freshness, no_table, copies = self._freshness, self._no_table, self._copies

        def count() -> None:  # once committed, one pass per batch
            metrics.observe_many(self._m_fresh, freshness)
            if no_table:
                self._m_no_table.inc(no_table)
            if copies:
                self._m_copies.inc(copies)
            self._m_accounts.set(len(self.accounts))

        result.on_commit = count
        return result

    def _window_at(self, now: datetime) -> None:
        self._now = now
        self._oldest = now - self.window.max_event_age
        self._latest = now + self.window.max_event_skew

    def _out_of_window(
        self, env: Envelope[Any], tx: TransactionEvent, now: datetime | None, result: Result
    ) -> bool:
        """True (and a dead letter) when the event time is outside the window around ``now``:
        two comparisons per record; the bounds move once per batch (``handle`` passes its
        ``now``), or per call when ``enrich`` is called alone."""
        if now is None:
            now = datetime.now(UTC)
        if now is not self._now:
            self._window_at(now)
        if self._oldest <= tx.timestamp <= self._latest:
            return False
        why = out_of_window(tx.timestamp, now, self.window) or "outside the window"
        result.dead_letters.append(
            DeadLetter.for_envelope(env, EVENT_TIME, "EventTimeOutOfWindow", why)
        )
        return True

    def _refused(
        self, env: Envelope[Any], tx: TransactionEvent, key: bytes, result: Result
    ) -> bool:
        """Another tenant's transaction, or one keyed by something else than its account (the
        processor's decode step checks the key too; ``enrich`` called alone checks it here)."""
        if (dead := DeadLetter.other_tenant(env, tx.tenant_id, self.tenant)) is not None:
            result.dead_letters.append(dead)
            return True
        if env.raw is not None and env.raw.key != key:
            result.dead_letters.append(
                DeadLetter.for_envelope(
                    env,
                    "key_mismatch",
                    "KeyMismatch",
                    f"key {env.raw.key!r} is not the account id {tx.account_id!r}",
                )
            )
            return True
        return False

    def enrich(
        self,
        env: Envelope[Any],
        result: Result,
        *,
        now: datetime | None = None,
        stamp: bytes | None = None,
    ) -> Emit | None:
        """One transaction: its features, or a dead letter / a move to its partition."""
        tx: TransactionEvent = env.event
        raw = env.raw
        key = tx.account_id.encode()
        if self._refused(env, tx, key, result) or self._out_of_window(env, tx, now, result):
            return None
        p = raw.partition if raw is not None and raw.partition is not None else 0
        if self.input_partitions > 1:
            home = partition_for(key, self.input_partitions)
            if home != p:
                self.check_partition_count()  # a grown topic moves keys: stop, don't reroute
                self._reroute(env, home, result)
                return None
        store = self.accounts.partition(p)
        state = store.get(tx.account_id)
        if state is None:
            state = self.engine.new_account()
        event_hash = id_hash(env.id)
        if self.engine.is_copy(state, tx, event_hash):
            # the same transaction under the same event id: a producer's retry written twice
            # (e.g. a delivery that timed out but was stored); it was enriched once already
            self._copies += 1
            return None
        acc, duplicate = self.engine.account_values(state, tx, event_hash=event_hash)
        if duplicate:
            self._m_dup.inc()
        else:
            store.put(tx.account_id, state)
        t_ms = int(tx.timestamp.timestamp() * 1000)
        mer, as_of = self.merchants.values(tx.merchant_id, t_ms)
        if as_of is None:
            self._no_table += 1
        else:
            self._freshness.append((t_ms - as_of) / 1000)
        features = self.engine.assemble(self.engine.transform_values(tx), acc, mer)
        if now is None:
            now = datetime.now(UTC)
            stamp = now.isoformat().replace("+00:00", "Z").encode()
        enriched = EnrichedTransaction.trusted(
            {
                "transaction": tx,
                "features": features,
                "feature_spec_hash": FEATURE_SPEC.hash,
                "enriched_at": now,
                "merchant_as_of": None if as_of is None else _utc_ms(as_of),
            }
        )
        value = None
        if raw is not None and raw.value and stamp is not None:
            # the transaction exactly as published, spliced in (tests/unit/test_enricher.py:
            # the bytes decode to this very event); serialising the model again cost ~10 µs
            value = b"".join(
                (
                    b'{"transaction":',
                    raw.value,
                    b',"features":',
                    orjson.dumps(features),
                    b',"feature_spec_hash":"',
                    self._hash_b,
                    b'","enriched_at":"',
                    stamp,
                    b'","merchant_as_of":',
                    b"null" if as_of is None else _iso_ms(as_of),
                    b"}",
                )
            )
        # the transaction's own ce_time travels on, so the audit can measure the enrich hop
        ext = {"ingesttime": env.time.isoformat()}
        return Emit.derived(self.out_topic, enriched, env, value=value, extensions=ext)

    def _reroute(self, env: Envelope[Any], home: int, result: Result) -> None:
        raw = env.raw
        assert raw is not None  # noqa: S101  (only decoded records are rerouted)
        if any(name == REROUTED_HEADER for name, _ in raw.headers):
            result.dead_letters.append(
                DeadLetter.for_envelope(
                    env,
                    "wrong_partition",
                    "WrongPartition",
                    f"on partition {raw.partition} after being moved once; its key belongs on "
                    f"{home} of {self.input_partitions}",
                )
            )
            return
        headers = [*raw.headers, (REROUTED_HEADER, f"{raw.partition}@{raw.offset}".encode())]
        too_large = DeadLetter.for_envelope(
            env,
            "too_large_to_move",
            "RecordTooLarge",
            f"on partition {raw.partition}, its key belongs on {home}: too large to be moved",
        )
        result.records.append(
            OutRecord(self.tx_topic, raw.key, raw.value, headers, home, fallback=too_large)
        )
        self._m_rerouted.inc()
