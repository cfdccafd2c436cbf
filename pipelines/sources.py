"""Where training data comes from: the tenant's audit log joined with labels, or the simulator.

The audit log stores the features *exactly as served*; training on them (instead of recomputing)
removes any chance of train/serve skew. A fresh tenant has no audit history yet, so the simulator
provides it (``source="auto"`` falls back when the audit log is missing or too short).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from pipelines.training import Matrix
from schemas.errors import DecodeError
from schemas.events import (
    AuditRecord,
    AuditStatus,
    LabelEvent,
    TransactionEvent,
)
from scorestream.errors import ConfigError, KafkaClientError
from scorestream.features import FEATURE_SPEC, to_vector
from scorestream.kafka_config import common_config
from scorestream.reader import read_ranges, time_window_ranges
from scorestream.serde import decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY

MIN_AUDIT_DAYS = 42
DEFAULT_MAX_ROWS = 2_000_000
"""About 2 GiB with the transactions kept beside the float32 features."""
READ_TIMEOUT_S = 6 * 3600.0

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainingData:
    transactions: list[TransactionEvent]
    labels: list[LabelEvent]
    features: Matrix | None
    source: str
    report: str = ""
    """What was read and the memory it took (audit source)."""


def from_simulator(*, tenant: str, seed: int, days: int) -> TrainingData:
    from producers.simulator import SimulatorConfig, simulate  # noqa: PLC0415

    sim = simulate(SimulatorConfig(seed=seed, tenant=tenant, days=days))
    return TrainingData(
        transactions=[t.event for t in sim.transactions],
        labels=list(sim.labels),
        features=None,
        source=f"simulator(seed={seed}, days={days}, {len(sim.transactions):,} tx)",
    )


@dataclass(frozen=True, slots=True)
class AuditWindow:
    """Which part of the audit log to read, by Kafka record timestamp: ``[since, until)``.

    ``None`` bounds mean the start of the log / its end when the read starts. ``max_rows``
    caps the rows kept (the read stops there, and says so)."""

    since: datetime | None = None
    until: datetime | None = None
    max_rows: int = DEFAULT_MAX_ROWS

    def describe(self) -> str:
        lo = "the start" if self.since is None else f"{self.since:%Y-%m-%d %H:%M}"
        hi = "now" if self.until is None else f"{self.until:%Y-%m-%d %H:%M}"
        return f"[{lo}, {hi}) UTC"


@dataclass(slots=True)
class _Rows:
    """Feature rows streamed into one growing float32 array (no per-record Python lists), the
    transactions they belong to, and which rows a later revision withdrew."""

    features: Matrix = field(
        default_factory=lambda: np.empty((1024, len(FEATURE_SPEC)), dtype=np.float32)
    )
    transactions: list[TransactionEvent] = field(default_factory=list)
    alive: list[bool] = field(default_factory=list)
    slot: dict[tuple[str, str], int] = field(default_factory=dict)
    revision: dict[tuple[str, str], int] = field(default_factory=dict)
    superseded: int = 0
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.transactions)

    def add(self, record: AuditRecord, max_rows: int) -> bool:
        """Apply one record (the latest revision wins); ``False`` when the cap is reached."""
        key = (record.account_id, record.transaction_id)
        kept = self.revision.get(key)
        if kept is not None and record.revision < kept:
            self.superseded += 1
            return True
        self.revision[key] = record.revision
        usable = (
            record.status is AuditStatus.COMPLETE
            and record.transaction is not None
            and record.features is not None
            and record.feature_spec_hash == FEATURE_SPEC.hash
        )
        at = self.slot.get(key)
        if kept is not None:
            self.superseded += 1
        if not usable or record.transaction is None or record.features is None:
            self.skipped += 1
            if at is not None:
                self.alive[at] = False
            return True
        if at is None:
            if len(self) >= max_rows:
                return False
            at = len(self)
            if at == len(self.features):
                grown = np.empty((min(2 * at, max_rows), len(FEATURE_SPEC)), dtype=np.float32)
                grown[:at] = self.features
                self.features = grown
            self.slot[key] = at
            self.transactions.append(record.transaction)
            self.alive.append(True)
        else:
            self.transactions[at] = record.transaction
            self.alive[at] = True
        self.features[at] = to_vector(record.features)
        return True

    def result(self) -> tuple[list[TransactionEvent], Matrix]:
        keep = np.flatnonzero(np.array(self.alive, dtype=bool))
        return [self.transactions[i] for i in keep], self.features[keep]


def _ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def _peak_rss_mib() -> float:
    import resource  # noqa: PLC0415  (POSIX only; the retrain job runs on Linux)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def from_audit(
    tenant: str,
    kafka: KafkaSettings | None = None,
    *,
    window: AuditWindow | None = None,
    progress: Progress | None = None,
    progress_every_s: float = 5.0,
) -> TrainingData:
    """Complete audit records with features of the current spec, plus their labels.

    Only the records whose Kafka timestamp is in ``window`` are read: the broker's time index
    gives each partition's offset range (``offsets_for_times``), the reader stops at the
    range's end (``read_committed``), so a log kept forever is never read whole. Of a
    transaction whose record has revisions (an ``incomplete`` record amended by a late part),
    only the latest revision counts: each transaction is read once. Rows stream straight into
    the training arrays, at most ``window.max_rows`` of them. Labels are read from the
    window's start on (they arrive after their transaction), keeping only those of the rows.
    """
    window = window or AuditWindow()
    if window.max_rows < 1:
        raise ConfigError(f"max rows must be at least 1, not {window.max_rows}")
    if window.since and window.until and window.since >= window.until:
        raise ConfigError(f"empty window {window.describe()}: since must be before until")
    conf = common_config(kafka or KafkaSettings(), client_id="scorestream-retrain") | {
        "group.id": f"{tenant}.retrain",  # assign() only; matches the retrain KafkaUser ACL
        "isolation.level": "read_committed",
    }
    say = progress or (lambda _: None)
    since_ms, until_ms = _ms(window.since), _ms(window.until)
    topic = REGISTRY.topic("audit", tenant)
    ranges = time_window_ranges(conf, topic, since_ms=since_ms, until_ms=until_ms)
    total = sum(end - start for start, end in ranges.values())
    say(f"audit: {total:,} records in {topic} within {window.describe()}")
    rows = _Rows()
    read = outside = 0
    truncated: datetime | None = None
    started = last = time.monotonic()
    for msg in read_ranges(conf, ranges, timeout=READ_TIMEOUT_S):
        read += 1
        _, ts = msg.timestamp()
        if (since_ms is not None and ts < since_ms) or (until_ms is not None and ts >= until_ms):
            outside += 1  # producer-set timestamps need not be monotonic: the window is exact
            continue
        try:
            record = decode_message(msg, accept=[AuditRecord]).event
        except DecodeError:
            rows.skipped += 1
            continue
        if not rows.add(record, window.max_rows):
            truncated = datetime.fromtimestamp(ts / 1000, UTC)
            break
        now = time.monotonic()
        if now - last >= progress_every_s:
            last = now
            say(
                f"audit: read {read:,}/{total:,} records ({read / max(total, 1):.0%}), "
                f"{len(rows):,} rows, {read / (now - started):,.0f} records/s"
            )
    transactions, features = rows.result()
    wanted = {t.transaction_id for t in transactions}
    labels: list[LabelEvent] = []
    label_topic = REGISTRY.topic("labels", tenant)
    label_ranges = time_window_ranges(conf, label_topic, since_ms=since_ms, until_ms=None)
    for msg in read_ranges(conf, label_ranges, timeout=READ_TIMEOUT_S):
        try:
            label = decode_message(msg, accept=[LabelEvent]).event
        except DecodeError:
            continue
        if label.transaction_id in wanted:
            labels.append(label)
    cap = (
        f"; stopped at --max-rows {window.max_rows:,} (record time {truncated:%Y-%m-%d %H:%M})"
        if truncated
        else ""
    )
    report = (
        f"audit read: {read:,} records in window {window.describe()} → {len(transactions):,} rows "
        f"used ({rows.superseded:,} superseded revisions, {rows.skipped:,} skipped as "
        f"incomplete, other spec or undecodable, {outside:,} outside the window), "
        f"{len(labels):,} labels; memory: training arrays "
        f"{features.nbytes / 2**20:.1f} MiB, peak RSS {_peak_rss_mib():.0f} MiB{cap}"
    )
    return TrainingData(
        transactions,
        labels,
        features,
        f"audit log of {tenant} ({len(transactions):,} records, {window.describe()})",
        report,
    )


def _span_days(transactions: list[TransactionEvent]) -> float:
    if not transactions:
        return 0.0
    times = [t.timestamp for t in transactions]
    return (max(times) - min(times)).total_seconds() / 86400


def load_training_data(
    *,
    tenant: str,
    seed: int = 42,
    days: int = 60,
    source: str = "auto",
    window: AuditWindow | None = None,
    progress: Progress | None = None,
) -> TrainingData:
    """Training data from ``source``; the audit log is read within ``window`` (default: the
    last ``days`` days)."""
    if source not in ("auto", "audit", "simulator"):
        raise ConfigError(f"unknown training data source {source!r}: auto, audit or simulator")
    if source in ("auto", "audit"):
        try:
            audit = from_audit(
                tenant,
                window=window or AuditWindow(since=datetime.now(UTC) - timedelta(days=days)),
                progress=progress,
            )
        except KafkaClientError:
            if source == "audit":
                raise
        else:
            if source == "audit" or _span_days(audit.transactions) >= MIN_AUDIT_DAYS:
                return audit
    return from_simulator(tenant=tenant, seed=seed, days=days)
