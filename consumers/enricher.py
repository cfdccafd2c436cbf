"""The enricher: transactions in, transactions with their features out, in one exactly-once hop.

``<tenant>.transactions`` (key = account) → :meth:`Enricher.handle` → ``<tenant>.transactions
.enriched``, on the shared :class:`~scorestream.processor.Processor`: one Kafka transaction per
batch holds the enriched records, the dead letters, the state changelog writes and the input
offsets. No repartition on a transaction's path (docs/adr/0004-one-hop-feature-stage.md).

Features are the spec's (:mod:`scorestream.features`), computed by the engine training uses:

* **account** windows from the account's tiles, kept in the kernel's keyed state store
  (``<tenant>.enricher.state``, partitioned like ``transactions``); a transaction re-published
  with the same id counts once;
* **merchant** aggregates from the replicated merchant table (``<tenant>.merchant-features``,
  written by the merchant stage, :mod:`consumers.merchant`), read whole by every instance and
  followed between batches; the served as-of (``merchant_as_of``) travels with the record.

Nothing is dropped silently: a foreign tenant, a key that is not the account or an event time
outside the window around now (:mod:`scorestream.event_time`: a year-1900 timestamp from a
producer that is not the gateway would become a negative Kafka timestamp downstream) goes to the
DLQ with its reason; a record on a partition its key does not hash to (a producer that does not use
the Java partitioner) is moved, in the same transaction, to the partition its key belongs to,
and enriched there with the account's state.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import orjson
from confluent_kafka import Message, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import Counter, Gauge, Histogram
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas.cloudevents import Envelope
from schemas.events import EnrichedTransaction, TransactionEvent
from scorestream import metrics, tracing
from scorestream.admin import require_topics
from scorestream.dlq import DeadLetter
from scorestream.errors import ScorestreamError
from scorestream.event_time import REASON as EVENT_TIME
from scorestream.event_time import EventTimeSettings, out_of_window
from scorestream.features import (
    ENGINE,
    FEATURE_SPEC,
    AccountState,
    Engine,
    MerchantState,
    id_hash,
)
from scorestream.kafka_config import admin_config
from scorestream.partitioning import partition_for
from scorestream.processor import Emit, OutRecord, Processor, ProcessorConfig, Result
from scorestream.settings import KafkaSettings, ProcessingSettings
from scorestream.state import StateStore
from scorestream.table import GlobalTable
from scorestream.topics import REGISTRY

log = logging.getLogger("scorestream.enricher")
SERVICE = "enricher"
CLOCK_KEY = "__clock__"
"""The key of the merchant table's per-partition clock records (no merchant id starts with _)."""
REROUTED_HEADER = "scorestream.rerouted-from"
CACHE_MAX = 200_000
"""Merchant feature values cached per (merchant, as-of); the whole cache is dropped beyond."""

DUPLICATES = Counter(
    "scorestream_enricher_duplicates_total",
    "Transactions re-published with a recently seen id: enriched, not counted again",
    ["tenant"],
)
COPIES = Counter(
    "scorestream_enricher_copies_dropped_total",
    "Records with the transaction id and the event id (ce_id) of a recent one: copies of one "
    "publish, dropped (a re-publication under a new event id is enriched, see duplicates)",
    ["tenant"],
)
REROUTED = Counter(
    "scorestream_enricher_rerouted_total",
    "Transactions moved to the partition their key hashes to (producer without murmur2)",
    ["tenant"],
)
FRESHNESS = Histogram(
    "scorestream_enricher_merchant_freshness_seconds",
    "Event time of a transaction minus the as-of of the merchant features it was served",
    ["tenant"],
    buckets=(60, 300, 900, 1800, 3600, 2 * 3600, 6 * 3600, 86400, 7 * 86400),
)
NO_TABLE = Counter(
    "scorestream_enricher_merchant_table_missing_total",
    "Transactions served without merchant features (the merchant table is not complete yet)",
    ["tenant"],
)
TABLE_AS_OF = Gauge(
    "scorestream_merchant_table_as_of_seconds",
    "The time (epoch s) up to which the merchant table is complete, as this enricher sees it",
    ["tenant"],
)
ACCOUNTS = Gauge("scorestream_enricher_accounts", "Accounts in the local state store", ["tenant"])


class EnricherSettings(ProcessingSettings):
    """Env: ``SCORESTREAM_ENRICHER_*`` (plus ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_ENRICHER_", frozen=True, extra="ignore"
    )

    service: ClassVar[str] = "enricher"

    instance_id: str = "enricher-0"
    """Stable per instance: it is the transactional.id suffix that fences a previous instance."""
    state_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "scorestream" / "enricher-state"
    )
    """Where checkpoints of the account store are written on a clean shutdown (optional:
    without one, the store is rebuilt from its changelog)."""
    restore_timeout_s: float = Field(default=120.0, gt=0)
    table_timeout_s: float = Field(default=120.0, gt=0)
    """Reading the merchant table to its end at start."""


# -- the merchant table ---------------------------------------------------------------------------
class MerchantTable:
    """Every merchant's latest aggregates and, per partition, the time up to which they are
    complete (the merchant stage's clock). Features are read as of
    ``min(the spec's target as-of, the table's closed time)``."""

    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine = engine
        self.states: dict[str, MerchantState] = {}
        self.clocks: dict[int, int] = {}
        self.partitions = 0
        self.bad_records = 0
        self._cache: dict[str, dict[int, dict[str, float]]] = {}
        """merchant → as-of → values (invalidated per merchant when its state changes)."""
        self._cached = 0
        self._as_of_gauge = TABLE_AS_OF.labels(tenant)

    def apply(self, msg: Message) -> None:
        key = (msg.key() or b"").decode(errors="replace")
        value = msg.value()
        if key == CLOCK_KEY:
            if value is not None:
                try:
                    as_of = int(value)
                except ValueError:
                    self.bad_records += 1
                    return
                p = msg.partition() or 0
                self.clocks[p] = max(as_of, self.clocks.get(p, as_of))
                closed = self.closed_ms()
                if closed is not None:
                    self._as_of_gauge.set(closed / 1000)
            return
        if value is None:
            self.states.pop(key, None)
        else:
            try:
                self.states[key] = MerchantState.from_bytes(value, self.engine.step_ms)
            except ValueError as exc:
                self.bad_records += 1  # the merchant's last good state stays
                log.warning("unreadable merchant table record %r: %s", key, exc)
                return
        dropped = self._cache.pop(key, None)
        if dropped:
            self._cached -= len(dropped)

    def closed_ms(self) -> int | None:
        """All merchant activity before this is in the table (None: not every partition has
        reported yet)."""
        if not self.partitions or len(self.clocks) < self.partitions:
            return None
        return min(self.clocks.values())

    def values(self, merchant: str, t_ms: int) -> tuple[dict[str, float], int | None]:
        closed = self.closed_ms()
        if closed is None:
            return self.engine.merchant_values(None, None), None
        as_of = min(self.engine.target_as_of_ms(t_ms), closed)
        per_merchant = self._cache.get(merchant)
        if per_merchant is None:
            per_merchant = self._cache[merchant] = {}
        cached = per_merchant.get(as_of)
        if cached is None:
            if self._cached >= CACHE_MAX:
                self._cache.clear()
                self._cached = 0
                per_merchant = self._cache[merchant] = {}
            cached = self.engine.merchant_values(self.states.get(merchant), as_of)
            per_merchant[as_of] = cached
            self._cached += 1
        return cached, as_of


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


# -- the service ----------------------------------------------------------------------------------
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
        if tx.tenant_id != self.tenant:
            result.dead_letters.append(
                DeadLetter.for_envelope(
                    env,
                    "unknown_tenant",
                    "TenantMismatch",
                    f"tenant {tx.tenant_id!r} on a topic of tenant {self.tenant!r}",
                )
            )
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
        ext = {**env.extensions, "ingesttime": env.time.isoformat()}
        return Emit(self.out_topic, enriched, trace=env.trace, extensions=ext, value=value)

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


class Enricher:
    """The service: the handler on the shared processor, the account store, the merchant
    table followed between batches."""

    def __init__(
        self,
        settings: EnricherSettings,
        *,
        kafka: KafkaSettings | None = None,
        engine: Engine = ENGINE,
    ) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        t = settings.tenant
        self.tx_topic = REGISTRY.topic("transactions", t)
        require_topics(
            AdminClient(admin_config(self.kafka, client_id=settings.instance_id)),
            [self.tx_topic, REGISTRY.topic("transactions.enriched", t)]
            + [REGISTRY.topic(s, t) for s in ("enricher.state", "merchant-features")],
            tenant=t,
        )
        self.accounts: StateStore[AccountState] = StateStore(
            "accounts",
            source=self.tx_topic,
            changelog=REGISTRY.topic("enricher.state", t),
            codec=AccountCodec(engine),
            kafka=self.kafka,
            group_id=settings.group_id,
            checkpoint_dir=settings.state_dir / t / settings.instance_id,
            restore_timeout_s=settings.restore_timeout_s,
        )
        self.merchants = MerchantTable(engine, t)
        self.handler = EnrichHandler(
            tenant=t,
            engine=engine,
            accounts=self.accounts,
            merchants=self.merchants,
            partition_count=self._check_partition_count,
            window=EventTimeSettings(),
        )
        self.table = GlobalTable(
            REGISTRY.topic("merchant-features", t),
            self.merchants.apply,
            kafka=self.kafka,
            client_id=f"{settings.instance_id}-table",
            group_id=f"{settings.group_id}.table",
        )
        config = ProcessorConfig.for_service(
            settings,
            service=SERVICE,
            inputs=(self.tx_topic,),
            accept=(TransactionEvent,),
            dlq_topics={self.tx_topic: REGISTRY.dlq_topic("transactions", t)},
            keyed=(TransactionEvent,),  # key = account_id, checked in the decode step
        )
        self.processor = Processor(
            config,
            self.handler.handle,
            kafka=self.kafka,
            before_batch=self._before_batch,
            ready=self._ready,
            wait_until_ready=self._bootstrap,
            stores=(self.accounts,),
            on_assigned=self._on_assigned,
        )

    # -- lifecycle hooks -------------------------------------------------------------------------
    def _bootstrap(self, stopping: Any) -> bool:
        self.table.bootstrap(self.settings.table_timeout_s, stopping=stopping.is_set)
        self.merchants.partitions = self.table.partitions
        closed = self.merchants.closed_ms()
        log.info(
            "merchant table: %d merchants, complete up to %s",
            len(self.merchants.states),
            "nothing yet" if closed is None else datetime.fromtimestamp(closed / 1000, UTC),
        )
        return not stopping.is_set()

    def _before_batch(self) -> None:
        self.table.poll()

    def _ready(self) -> tuple[bool, str]:
        if not self.table.bootstrapped:
            return False, "reading the merchant table"
        closed = self.merchants.closed_ms()
        when = "incomplete" if closed is None else datetime.fromtimestamp(closed / 1000, UTC)
        return True, f"{len(self.accounts)} accounts; merchant table as of {when}"

    def _on_assigned(self, partitions: list[TopicPartition]) -> None:
        consumer = self.processor.consumer
        if consumer is not None and partitions:
            meta = consumer.list_topics(self.tx_topic, timeout=30).topics.get(self.tx_topic)
            if meta is not None:
                self.handler.input_partitions = len(meta.partitions)

    def _check_partition_count(self) -> None:
        """Raise :class:`PartitionCountMismatchError` when the input has grown since the store
        was restored (librdkafka notices new partitions only at its next metadata refresh)."""
        consumer = self.processor.consumer
        if consumer is not None:
            self.accounts.check_partitions(consumer)

    # -- run -------------------------------------------------------------------------------------
    def run(self, *, install_signals: bool = True) -> int:
        log.info(
            "starting: spec %s (%s), group %s, transactional.id %s, state %s",
            FEATURE_SPEC.hash,
            FEATURE_SPEC.source,
            self.settings.group_id,
            self.settings.transactional_id,
            self.accounts.changelog,
        )
        try:
            return self.processor.run(install_signals=install_signals)
        finally:
            self.table.close()

    def stop(self, *_: Any) -> None:
        self.processor.stop()


def main(argv: list[str] | None = None) -> int:
    from scorestream.logs import configure_logging  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="scorestream enricher",
        description="Serve features: <tenant>.transactions → <tenant>.transactions.enriched. "
        "Settings come from SCORESTREAM_ENRICHER_* / SCORESTREAM_KAFKA_* env; flags override.",
    )
    parser.add_argument("--tenant", help="the tenant whose topics to read and write")
    parser.add_argument("--instance-id", help="stable per instance (transactional.id suffix)")
    parser.add_argument("--max-batch", type=int, help="most input records per transaction")
    parser.add_argument(
        "--max-wait-ms", type=int, help="longest wait for the first record of a batch"
    )
    parser.add_argument("--health-port", type=int, help="/livez, /readyz, /metrics (0: off)")
    parser.add_argument("--state-dir", type=Path, help="where clean shutdowns checkpoint state")
    args = parser.parse_args(argv)
    settings = EnricherSettings(**{k: v for k, v in vars(args).items() if v is not None})
    configure_logging(SERVICE, settings.tenant)
    tracing.setup(SERVICE, settings.tenant)
    started = time.monotonic()
    try:
        return Enricher(settings).run()
    except ScorestreamError as exc:
        log.error("cannot run: %s", exc)
        return 2
    finally:
        log.info("stopped after %.0fs", time.monotonic() - started)
        tracing.shutdown()


if __name__ == "__main__":
    import sys

    sys.exit(main())
