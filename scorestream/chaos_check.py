"""The invariants ``scorestream chaos`` checks after the faults, and its report.

Everything is read back with ``read_committed`` consumers from the start of each topic to its
end, so aborted transactions of killed instances are invisible, as they are to the services.
The checks: every input transaction id has exactly one prediction, one decision and one audit
record (lost = missing from any stream, duplicated = more than one in any stream); the DLQs hold
exactly the deliberately bad records, each once and with a ``dlq.reason``; within a partition,
the outputs of one account come in the order its transactions were sent.
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

from schemas.errors import DecodeError
from schemas.events import (
    AuditRecord,
    AuditStatus,
    DecisionEvent,
    EnrichedTransaction,
    PredictionEvent,
)
from scorestream.serde import decode_message
from scorestream.topics import REGISTRY

OUTPUTS: dict[str, tuple[type[Any], str | None]] = {
    "transactions.enriched": (EnrichedTransaction, None),
    "predictions": (PredictionEvent, "transactions.enriched"),
    "decisions": (DecisionEvent, "predictions"),
    "audit": (AuditRecord, "decisions"),
}
"""Output stream → (contract, the stream whose order it must keep; None: the send order)."""
ORDER_BY_DESIGN = ("transactions.enriched",)
"""Stages allowed to reorder an account's records: the enricher's merchant stage sits behind a
``group_by(merchant)`` repartition, so one account's transactions at different merchants leave
it in the order the merchant partitions are processed (docs/adr/0001-enricher-state.md). Their
reorderings are counted and reported, not failed; every later stage must keep its input order."""


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
class Verdict:
    streams: dict[str, StreamCheck]
    dlq_records: int
    dlq_expected: int
    dlq_unexpected: list[str]
    dlq_missing: list[str]
    dlq_without_reason: int
    dlq_reasons: dict[str, int]
    incomplete_audit: int
    versions: dict[str, int]

    @property
    def lost(self) -> int:
        return max(s.lost for s in self.streams.values())

    @property
    def duplicated(self) -> int:
        return max(s.duplicated for s in self.streams.values())

    @property
    def reorderings(self) -> int:
        """Reorderings by stages that must keep order (0 when the invariant holds)."""
        return sum(s.reorderings for n, s in self.streams.items() if n not in ORDER_BY_DESIGN)

    @property
    def reorderings_by_design(self) -> int:
        return sum(s.reorderings for n, s in self.streams.items() if n in ORDER_BY_DESIGN)

    def failures(self) -> list[str]:
        out = []
        for name, s in self.streams.items():
            for what in ("lost", "duplicated", "unexpected", "reorderings", "undecodable"):
                n = getattr(s, what)
                if n and not (what == "reorderings" and name in ORDER_BY_DESIGN):
                    out.append(f"{name}: {n} {what}")
            for txid, copies in s.duplicates.items():
                out.append(f"{name}: {txid} {len(copies)} times: {'; '.join(copies)}")
        if self.dlq_unexpected:
            out.append(f"DLQ: {len(self.dlq_unexpected)} records that were not sent as bad")
        if self.dlq_missing:
            out.append(f"DLQ: {len(self.dlq_missing)} bad records missing")
        if self.dlq_records != self.dlq_expected:
            out.append(f"DLQ: {self.dlq_records} records for {self.dlq_expected} bad ones")
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


def check(bootstrap: str, tenant: str, inputs: Inputs) -> Verdict:
    streams = {}
    decoded: dict[str, list[Read]] = {}
    sent_order = {txid: position for txid, (_, position) in inputs.order.items()}
    for stream, (contract, upstream) in OUTPUTS.items():
        events, bad = _decoded(read_all(bootstrap, REGISTRY.topic(stream, tenant)), contract)
        decoded[stream] = events
        if upstream is None:
            before = sent_order
        else:
            before = {}
            for i, read in enumerate(decoded[upstream]):
                before.setdefault(_txid(read.event), i)
        streams[stream] = _check_stream(events, bad, inputs, before)
    incomplete = sum(1 for r in decoded["audit"] if r.event.status is not AuditStatus.COMPLETE)
    versions = Counter(str(r.event.model_version) for r in decoded["predictions"])
    dlq_keys: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    without_reason = 0
    for spec in REGISTRY.tenant_streams():
        if not spec.is_dlq:
            continue
        for msg in read_all(bootstrap, spec.topic(tenant)):
            dlq_keys[(msg.key() or b"").decode(errors="replace")] += 1
            headers = dict(msg.headers() or [])
            reason = headers.get("dlq.reason")
            if not reason:
                without_reason += 1
            else:
                text = reason if isinstance(reason, str) else reason.decode(errors="replace")
                reasons[f"{spec.name}:{text}"] += 1
    return Verdict(
        streams=streams,
        dlq_records=sum(dlq_keys.values()),
        dlq_expected=len(inputs.bad),
        dlq_unexpected=sorted(k for k in dlq_keys if k not in inputs.bad)[:20],
        dlq_missing=sorted(k for k in inputs.bad if k not in dlq_keys)[:20],
        dlq_without_reason=without_reason,
        dlq_reasons=dict(sorted(reasons.items())),
        incomplete_audit=incomplete,
        versions=dict(sorted(versions.items())),
    )


def report_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The table ``scorestream chaos`` prints (and the README shows)."""
    return [
        ("faults injected", str(report["faults_injected"])),
        ("faults survived", str(report["faults_survived"])),
        ("  by kind", ", ".join(f"{k} {v}" for k, v in report["faults_by_kind"].items())),
        ("watchdog restarts", str(len(report["watchdog_restarts"]))),
        ("events in (transactions)", f"{report['events_in']:,}"),
        ("  + labels, bad records", f"{report['labels_in']:,}, {report['bad_in']:,}"),
        ("out (enriched/predictions/decisions/audit)", report["out"]),
        ("DLQ", f"{report['dlq']:,} (expected {report['bad_in']:,})"),
        ("lost", f"{report['lost']:,}"),
        ("duplicated", f"{report['duplicated']:,}"),
        ("reorderings (worker, decision, audit)", f"{report['reorderings']:,}"),
        (
            "  enricher reorderings (by design)",
            f"{report['reorderings_enricher_by_design']:,} (merchant repartition, ADR 0001)",
        ),
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
