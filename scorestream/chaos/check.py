"""The invariants ``scorestream chaos`` checks after the faults, and its report.

Everything is read back with ``read_committed`` consumers from the start of each topic to its
end, so aborted transactions of killed instances are invisible, as they are to the services.
The checks:

* every input transaction id has exactly one enriched record, prediction, decision and audit
  record (lost = missing from any stream, duplicated = more than one in any stream);
* within a partition, the outputs of one account come in the order its transactions were sent
  (every stage: the enricher is one hop on the account's own partition, with no repartition);
* the merchant stage re-keyed every transaction and every fraud label exactly once
  (``merchant-activity``), and its table (``merchant-features``, the last snapshot of each
  merchant) counts exactly the transactions and frauds that were sent to each merchant, in the
  tiles it keeps, with a clock on every partition: lost or doubled state after a SIGKILL,
  restore or rebalance shows up here;
* the DLQs hold exactly the deliberately bad records, once per service that consumes the
  transactions (the enricher and the merchant stage each dead-letter them), each with a
  ``dlq.reason``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message

from consumers.enricher import CLOCK_KEY
from schemas.errors import DecodeError
from schemas.events import (
    AuditRecord,
    AuditStatus,
    DecisionEvent,
    EnrichedTransaction,
    MerchantActivity,
    PredictionEvent,
    latest_revisions,
)
from scorestream.features import ENGINE, Engine, MerchantState, id_hash
from scorestream.serde import decode_message
from scorestream.topics import REGISTRY

OUTPUTS: dict[str, tuple[type[Any], str | None]] = {
    "transactions.enriched": (EnrichedTransaction, None),
    "predictions": (PredictionEvent, "transactions.enriched"),
    "decisions": (DecisionEvent, "predictions"),
    "audit": (AuditRecord, "decisions"),
}
"""Output stream → (contract, the stream whose order it must keep; None: the send order)."""
ACTIVITY = "merchant-activity"
TABLE = "merchant-features"
DLQ_SERVICES: tuple[str, ...] = REGISTRY.get("transactions").consumers
"""The bad records go to the transactions: each service that consumes them dead-letters them."""


def read_all(bootstrap: str, topic: str, *, timeout: float = 300.0) -> list[Message]:
    """Every committed record of ``topic``, partition by partition in offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-check-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.subscribe([topic])
        at_end: set[int] = set()
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(at_end) < len(partitions) and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition() or 0)
                        continue
                    raise RuntimeError(f"consume error on {topic}: {err}")
                at_end.discard(msg.partition() or 0)
                out.append(msg)
        if len(at_end) < len(partitions):
            raise RuntimeError(f"{topic}: did not reach the end within {timeout}s")
    finally:
        consumer.close()
    return out


@dataclass
class Inputs:
    """What was sent: transaction id → (account, position in the send order); bad record keys."""

    order: dict[str, tuple[str, int]] = field(default_factory=dict)
    bad: dict[str, str] = field(default_factory=dict)
    """key of a deliberately bad record → the kind of damage."""
    labels: int = 0
    merchants: dict[str, tuple[str, int]] = field(default_factory=dict)
    """transaction id → (merchant id, event time in ms)."""
    frauds: dict[str, tuple[str, int]] = field(default_factory=dict)
    """transaction id of a fraud label → (merchant id, the transaction's time in ms)."""


@dataclass
class StreamCheck:
    records: int
    lost: int
    duplicated: int
    unexpected: int
    reorderings: int
    undecodable: int
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    """Up to ten duplicated transaction ids → where each copy is (``p<partition>@<offset>``
    and its ``ce_id``): what a failing run needs for ``kafka-dump-log`` on the kept data."""


@dataclass
class TableCheck:
    """The merchant table at the end of the run against what was sent."""

    merchants: int
    """Merchants sent or in the table."""
    wrong: int
    """Merchants whose last snapshot is missing or counts other transactions or frauds."""
    partitions: int
    clocks: int
    """Partitions of the table with a clock record."""
    examples: dict[str, str] = field(default_factory=dict)
    """Up to ten wrong merchants → what differs."""

    @property
    def ok(self) -> bool:
        return self.wrong == 0 and self.clocks == self.partitions


@dataclass
class Verdict:
    streams: dict[str, StreamCheck]
    dlq_records: int
    dlq_expected: int
    dlq_unexpected: list[str]
    dlq_missing: list[str]
    dlq_duplicated: list[str]
    dlq_without_reason: int
    dlq_reasons: dict[str, int]
    incomplete_audit: int
    versions: dict[str, int]
    merchant_table: TableCheck

    @property
    def lost(self) -> int:
        return max(s.lost for s in self.streams.values())

    @property
    def duplicated(self) -> int:
        return max(s.duplicated for s in self.streams.values())

    @property
    def reorderings(self) -> int:
        """An account's records out of their upstream order (0 when the invariant holds)."""
        return sum(s.reorderings for s in self.streams.values())

    def failures(self) -> list[str]:
        out = []
        for name, s in self.streams.items():
            for what in ("lost", "duplicated", "unexpected", "reorderings", "undecodable"):
                n = getattr(s, what)
                if n:
                    out.append(f"{name}: {n} {what}")
            for txid, copies in s.duplicates.items():
                out.append(f"{name}: {txid} {len(copies)} times: {'; '.join(copies)}")
        table = self.merchant_table
        if table.wrong:
            out.append(f"merchant table: {table.wrong} of {table.merchants} merchants wrong")
            out += [f"merchant table: {m}: {why}" for m, why in table.examples.items()]
        if table.clocks != table.partitions:
            out.append(f"merchant table: {table.clocks} of {table.partitions} partitions clocked")
        if self.dlq_unexpected:
            out.append(f"DLQ: {len(self.dlq_unexpected)} records that were not sent as bad")
        if self.dlq_missing:
            out.append(f"DLQ: {len(self.dlq_missing)} bad records missing: {self.dlq_missing}")
        if self.dlq_duplicated:
            out.append(f"DLQ: {len(self.dlq_duplicated)} bad records more than once")
        if self.dlq_records != self.dlq_expected:
            out.append(f"DLQ: {self.dlq_records} records, {self.dlq_expected} expected")
        if self.dlq_without_reason:
            out.append(f"DLQ: {self.dlq_without_reason} records without dlq.reason")
        if self.incomplete_audit:
            out.append(f"audit: {self.incomplete_audit} records not COMPLETE")
        return out


def _txid(event: Any) -> str:
    if isinstance(event, EnrichedTransaction):
        return event.transaction.transaction_id
    return str(event.transaction_id)


@dataclass(frozen=True, slots=True)
class Read:
    partition: int
    offset: int
    event_id: str
    event: Any


def _decoded(messages: list[Message], contract: type[Any]) -> tuple[list[Read], int]:
    """Decoded records in read order (offset order within a partition), undecodable count."""
    out = []
    bad = 0
    for msg in messages:
        try:
            env = decode_message(msg, accept=[contract])
        except DecodeError:
            bad += 1
            continue
        out.append(Read(msg.partition() or 0, msg.offset() or 0, env.id, env.event))
    return out, bad


def latest_audit(events: list[Read]) -> list[Read]:
    """An amended audit record has revisions (see docs/audit.md): only the latest counts, so a
    transaction whose late part wrote revision 2 is neither lost nor duplicated."""
    latest = {id(r) for r in latest_revisions(e.event for e in events)}
    return [e for e in events if id(e.event) in latest]


def _check_stream(
    events: list[Read], undecodable: int, inputs: Inputs, before: dict[str, int]
) -> StreamCheck:
    """Exactly once against the sent ids; order against ``before`` (txid → position upstream):
    within a partition, an account's records must come in their upstream order."""
    seen: Counter[str] = Counter()
    where: dict[str, list[str]] = {}
    last: dict[tuple[int, str], int] = {}
    reorderings = 0
    for read in events:
        partition, event = read.partition, read.event
        txid = _txid(event)
        seen[txid] += 1
        where.setdefault(txid, []).append(f"p{partition}@{read.offset} {read.event_id}")
        sent = inputs.order.get(txid)
        position = before.get(txid)
        if sent is None or position is None or seen[txid] > 1:
            continue
        key = (partition, sent[0])
        if position < last.get(key, -1):
            reorderings += 1
        last[key] = max(position, last.get(key, -1))
    ids = set(inputs.order)
    return StreamCheck(
        records=len(events) + undecodable,
        lost=len(ids - set(seen)),
        duplicated=sum(1 for n in seen.values() if n > 1),
        unexpected=len(set(seen) - ids),
        reorderings=reorderings,
        undecodable=undecodable,
        duplicates={t: where[t] for t in [t for t, n in seen.items() if n > 1][:10]},
    )


def _check_activity(messages: list[Message], inputs: Inputs) -> StreamCheck:
    """Exactly once: each sent transaction and each sent fraud label re-keyed by merchant
    (watermarks aside). The stream is keyed by merchant, so there is no account order to keep."""
    expected = {("transaction", t) for t in inputs.order} | {("fraud", t) for t in inputs.frauds}
    seen: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], list[str]] = {}
    undecodable = 0
    for msg in messages:
        try:
            env = decode_message(msg, accept=[MerchantActivity])
        except DecodeError:
            undecodable += 1
            continue
        act: MerchantActivity = env.event
        if act.kind == "watermark":
            continue
        key = (act.kind, act.transaction_id or "")
        seen[key] += 1
        where.setdefault(key, []).append(f"p{msg.partition()}@{msg.offset()} {env.id}")
    doubled = [k for k, n in seen.items() if n > 1]
    return StreamCheck(
        records=sum(seen.values()) + undecodable,
        lost=len(expected - set(seen)),
        duplicated=len(doubled),
        unexpected=len(set(seen) - expected),
        reorderings=0,
        undecodable=undecodable,
        duplicates={f"{k[0]} {k[1]}": where[k] for k in doubled[:10]},
    )


def _merchant_table(
    messages: list[Message], inputs: Inputs, partitions: int, engine: Engine = ENGINE
) -> TableCheck:
    """Each merchant's last snapshot against what was sent. The stage drops tiles older than its
    horizon (the partition's clock minus the spec's windows and retention), so only the tiles
    from the final clock's horizon on are compared: none of those can have been dropped."""
    last: dict[str, tuple[int, bytes | None]] = {}
    clocks: dict[int, int] = {}
    for msg in messages:
        p = msg.partition() or 0
        key = (msg.key() or b"").decode(errors="replace")
        value = msg.value()
        if key == CLOCK_KEY:
            if value is not None:
                clocks[p] = max(int(value), clocks.get(p, 0))
            continue
        last[key] = (p, value)
    step = engine.step_ms
    sent_tiles: dict[str, Counter[int]] = {}
    for merchant, t_ms in inputs.merchants.values():
        sent_tiles.setdefault(merchant, Counter())[t_ms // step] += 1
    sent_frauds: dict[str, dict[int, int]] = {}
    for txid, (merchant, t_ms) in inputs.frauds.items():
        sent_frauds.setdefault(merchant, {})[id_hash(txid)] = t_ms // step
    merchants = set(sent_tiles) | set(sent_frauds) | set(last)
    wrong: dict[str, str] = {}
    for merchant in sorted(merchants):
        p, value = last.get(merchant, (-1, None))
        if value is None:
            wrong[merchant] = "no snapshot in the table"
            continue
        try:
            state = MerchantState.from_bytes(value, step)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            wrong[merchant] = f"unreadable snapshot: {exc}"
            continue
        clock = clocks.get(p)
        horizon = -(2**62) if clock is None else clock // step - engine.merchant_horizon_steps
        tiles = {i: n for i, n in state.tiles.items() if i >= horizon}
        expect = {i: n for i, n in sent_tiles.get(merchant, Counter()).items() if i >= horizon}
        frauds = {h: e[0] for h, e in state.frauds.items() if e[0] >= horizon}
        expect_frauds = {h: i for h, i in sent_frauds.get(merchant, {}).items() if i >= horizon}
        if tiles != expect:
            got, want = sum(tiles.values()), sum(expect.values())
            wrong[merchant] = f"{got} transactions counted, {want} sent"
        elif frauds != expect_frauds:
            wrong[merchant] = f"{len(frauds)} frauds counted, {len(expect_frauds)} labelled"
    return TableCheck(
        merchants=len(merchants),
        wrong=len(wrong),
        partitions=partitions,
        clocks=len(clocks),
        examples=dict(list(wrong.items())[:10]),
    )


def check_merchant_table(
    bootstrap: str, tenant: str, inputs: Inputs, *, settle_s: float = 180.0
) -> TableCheck:
    """The merchant table once it has caught up: the stage is off the transactions' path and may
    still be aggregating when the last audit record is in, so a table that differs is read again
    every few seconds until it matches or ``settle_s`` has passed."""
    topic = REGISTRY.topic(TABLE, tenant)
    partitions = REGISTRY.get(TABLE).partitions
    deadline = time.monotonic() + settle_s
    while True:
        table = _merchant_table(read_all(bootstrap, topic), inputs, partitions)
        if table.ok or time.monotonic() > deadline:
            return table
        time.sleep(5.0)


def _check_dlqs(bootstrap: str, tenant: str) -> tuple[Counter[tuple[str, str]], Counter[str], int]:
    """Every DLQ record as (service, key), the reasons, records without a reason."""
    seen: Counter[tuple[str, str]] = Counter()
    reasons: Counter[str] = Counter()
    without_reason = 0
    for spec in REGISTRY.tenant_streams():
        if not spec.is_dlq:
            continue
        for msg in read_all(bootstrap, spec.topic(tenant)):
            headers = {k: _text(v) for k, v in dict(msg.headers() or []).items()}
            service = headers.get("dlq.service", "?")
            seen[(service, (msg.key() or b"").decode(errors="replace"))] += 1
            reason = headers.get("dlq.reason")
            if not reason:
                without_reason += 1
            else:
                reasons[f"{spec.name}:{service}:{reason}"] += 1
    return seen, reasons, without_reason


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def check(bootstrap: str, tenant: str, inputs: Inputs, *, settle_s: float = 180.0) -> Verdict:
    # the table first: once it counts everything, the merchant stage has re-keyed everything too
    table = check_merchant_table(bootstrap, tenant, inputs, settle_s=settle_s)
    streams = {}
    decoded: dict[str, list[Read]] = {}
    sent_order = {txid: position for txid, (_, position) in inputs.order.items()}
    for stream, (contract, upstream) in OUTPUTS.items():
        events, bad = _decoded(read_all(bootstrap, REGISTRY.topic(stream, tenant)), contract)
        if stream == "audit":
            events = latest_audit(events)
        decoded[stream] = events
        if upstream is None:
            before = sent_order
        else:
            before = {}
            for i, read in enumerate(decoded[upstream]):
                before.setdefault(_txid(read.event), i)
        streams[stream] = _check_stream(events, bad, inputs, before)
    streams[ACTIVITY] = _check_activity(
        read_all(bootstrap, REGISTRY.topic(ACTIVITY, tenant)), inputs
    )
    incomplete = sum(1 for r in decoded["audit"] if r.event.status is not AuditStatus.COMPLETE)
    versions = Counter(str(r.event.model_version) for r in decoded["predictions"])
    dlq, reasons, without_reason = _check_dlqs(bootstrap, tenant)
    expected = {(service, key) for key in inputs.bad for service in DLQ_SERVICES}
    return Verdict(
        streams=streams,
        dlq_records=sum(dlq.values()),
        dlq_expected=len(expected),
        dlq_unexpected=sorted(f"{s}:{k}" for s, k in dlq if (s, k) not in expected)[:20],
        dlq_missing=sorted(f"{s}:{k}" for s, k in expected if (s, k) not in dlq)[:20],
        dlq_duplicated=sorted(f"{s}:{k}" for (s, k), n in dlq.items() if n > 1)[:20],
        dlq_without_reason=without_reason,
        dlq_reasons=dict(sorted(reasons.items())),
        incomplete_audit=incomplete,
        versions=dict(sorted(versions.items())),
        merchant_table=table,
    )


def report_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The table ``scorestream chaos`` prints (and docs/reliability.md shows)."""
    return [
        ("faults injected", str(report["faults_injected"])),
        ("faults survived", str(report["faults_survived"])),
        ("  by kind", ", ".join(f"{k} {v}" for k, v in report["faults_by_kind"].items())),
        ("watchdog restarts", str(len(report["watchdog_restarts"]))),
        ("events in (transactions)", f"{report['events_in']:,}"),
        ("  + labels, bad records", f"{report['labels_in']:,}, {report['bad_in']:,}"),
        ("out (enriched/predictions/decisions/audit)", report["out"]),
        ("merchant activity (transactions + frauds)", f"{report['merchant_activity']:,}"),
        ("merchant table: merchants exact", report["merchant_table"]),
        (
            "DLQ",
            f"{report['dlq']:,} (expected {report['dlq_expected']:,}: each bad record once per "
            f"consuming service)",
        ),
        ("lost", f"{report['lost']:,}"),
        ("duplicated", f"{report['duplicated']:,}"),
        ("reorderings (enricher, worker, decision, audit)", f"{report['reorderings']:,}"),
        ("predictions per model version", report["versions"]),
        ("wall time", f"{report['wall_s']:.0f} s"),
        ("verdict", "PASS" if not report["failures"] else "FAIL"),
    ]


def format_table(report: dict[str, Any]) -> str:
    rows = report_rows(report)
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'chaos run':{width}} | {'':>10} |", f"|{'-' * (width + 2)}|{'-' * 12}|"]
    lines += [f"| {k:{width}} | {v} |" for k, v in rows]
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
