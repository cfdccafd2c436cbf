"""Re-score the features recorded in the audit trail and report how the scores differ.

``scorestream audit replay --tenant T --from ISO --to ISO [--model VERSION]`` reads the
``<tenant>.audit`` records of the transactions whose timestamp is in ``[from, to)``, scores
their features *as served* with ``VERSION`` (default: the version that scored each record, a
reproducibility check) and prints: how many records, max and mean ``|Δscore|`` against the
recorded score, and how many decisions would flip at ``--threshold`` (default 0.5).

Finding the window does not scan the topic: the audit service stamps each record with the
transaction's timestamp, so ``offsets_for_times(from)`` gives, per partition, the first record
at or after ``from`` (every earlier offset is earlier). Records are appended in the order joins
complete, not strictly by transaction time, so reading a partition stops at its end or at the
first record stamped ``to + lateness`` or later (``--lateness-s``, default 600 s: more than the
join timeout plus the pipeline's delay). Nothing joins a consumer group or commits offsets.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from confluent_kafka import Message

from inference_worker.model import ServingModel, load_serving_model
from pipelines.repository import ModelRepository
from schemas.errors import DecodeError
from schemas.events import AuditRecord, ModelAlias, latest_revisions
from scorestream.errors import ConfigError, ScorestreamError
from scorestream.kafka_config import consumer_config
from scorestream.reader import read_ranges, time_window_ranges
from scorestream.serde import decode_message
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY


def parse_time(text: str) -> datetime:
    """ISO 8601; ``Z`` or an offset is honoured, a naive value is taken as UTC."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"not an ISO 8601 date-time: {text!r}") from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def read_window(
    kafka: KafkaSettings,
    topic: str,
    start: datetime,
    end: datetime,
    *,
    lateness_s: float = 600.0,
    timeout: float = 60.0,
) -> Iterator[Message]:
    """Records of ``topic`` stamped in ``[start, end)``, found with ``offsets_for_times``."""
    start_ms, end_ms = _ms(start), _ms(end)
    stop_ms = end_ms + int(lateness_s * 1000)  # a late record may follow one past the window
    conf = consumer_config(kafka, group_id="scorestream-audit-replay", client_id="audit-replay")
    ranges = time_window_ranges(conf, topic, since_ms=start_ms, until_ms=stop_ms, timeout=timeout)
    for msg in read_ranges(conf, ranges, timeout=timeout):
        if start_ms <= msg.timestamp()[1] < end_ms:
            yield msg


@dataclass(slots=True)
class Report:
    tenant: str
    start: datetime
    end: datetime
    model: str | None
    threshold: float
    records: int = 0
    rescored: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    max_abs_delta: float = 0.0
    mean_abs_delta: float = 0.0
    decisions_changed: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    """Model versions that re-scored, with how many records each."""
    largest: list[tuple[str, float, float]] = field(default_factory=list)
    """The largest differences: (transaction id, recorded score, new score)."""

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "model": self.model,
            "threshold": self.threshold,
            "records": self.records,
            "rescored": self.rescored,
            "skipped": self.skipped,
            "max_abs_delta": self.max_abs_delta,
            "mean_abs_delta": self.mean_abs_delta,
            "decisions_changed": self.decisions_changed,
            "versions": self.versions,
            "largest": [{"transaction_id": t, "recorded": r, "new": n} for t, r, n in self.largest],
        }

    def text(self) -> str:
        lines = [
            f"audit replay {self.tenant} [{self.start.isoformat()}, {self.end.isoformat()})"
            f" with model {self.model or 'as recorded'}",
            f"  records             {self.records}",
            f"  re-scored           {self.rescored}"
            + (f" ({', '.join(f'v{v}: {n}' for v, n in sorted(self.versions.items()))})"),
            f"  max |Δscore|        {self.max_abs_delta:.6g}",
            f"  mean |Δscore|       {self.mean_abs_delta:.6g}",
            f"  decisions changed   {self.decisions_changed} (at threshold {self.threshold})",
        ]
        for reason, n in sorted(self.skipped.items()):
            lines.append(f"  skipped ({reason}) {n}")
        for txid, recorded, new in self.largest:
            lines.append(f"  {txid}: {recorded:.6f} -> {new:.6f}")
        return "\n".join(lines)


def replay(
    records: Sequence[AuditRecord],
    repo: ModelRepository,
    *,
    tenant: str,
    start: datetime,
    end: datetime,
    model_version: str | None = None,
    model_name: str | None = None,
    threshold: float = 0.5,
    top: int = 10,
) -> Report:
    """Re-score ``records`` (pure but for loading models from ``repo``): the latest revision
    of each transaction's record, once."""
    records = latest_revisions(records)
    report = Report(tenant, start, end, model_version, threshold, records=len(records))
    models: dict[tuple[str, str], ServingModel] = {}
    groups: dict[tuple[str, str], list[AuditRecord]] = {}
    for record in records:
        if record.features is None or record.score is None:
            report.skip("no_features_or_score")
            continue
        name = model_name or record.model_name
        version = model_version or record.model_version
        if name is None or version is None:
            report.skip("no_model")
            continue
        groups.setdefault((name, version), []).append(record)
    deltas: list[float] = []
    diffs: list[tuple[float, str, float, float]] = []
    for (name, version), group in sorted(groups.items()):
        if (name, version) not in models:
            models[(name, version)] = load_serving_model(repo, name, version, ModelAlias.CHAMPION)
        model = models[(name, version)]
        rows: list[list[float]] = []
        kept: list[AuditRecord] = []
        for record in group:
            features = record.features or {}
            if record.feature_spec_hash not in (None, model.metadata.feature_spec_hash):
                report.skip("feature_spec_mismatch")
                continue
            try:
                rows.append([features[n] for n in model.metadata.feature_names])
            except KeyError:
                report.skip("missing_feature")
                continue
            kept.append(record)
        if not kept:
            continue
        scores = model.score(np.asarray(rows, dtype=np.float32))
        report.versions[version] = report.versions.get(version, 0) + len(kept)
        for record, new in zip(kept, scores.tolist(), strict=True):
            old = float(record.score or 0.0)
            delta = abs(float(new) - old)
            deltas.append(delta)
            diffs.append((delta, record.transaction_id, old, float(new)))
            if (old >= threshold) != (new >= threshold):
                report.decisions_changed += 1
    report.rescored = len(deltas)
    if deltas:
        report.max_abs_delta = max(deltas)
        report.mean_abs_delta = sum(deltas) / len(deltas)
    diffs.sort(reverse=True)
    report.largest = [(t, o, n) for d, t, o, n in diffs[:top] if d > 0]
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scorestream audit replay``."""
    from scorestream.logs import configure_logging  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="scorestream audit replay",
        description="Re-score the features recorded on <tenant>.audit for transactions in "
        "[--from, --to) and report the differences from the recorded scores.",
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--from", dest="start", required=True, help="ISO 8601, inclusive")
    parser.add_argument("--to", dest="end", required=True, help="ISO 8601, exclusive")
    parser.add_argument("--model", help="model version (default: the version each record had)")
    parser.add_argument("--model-name", help="model name (default: the name each record had)")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--lateness-s", type=float, default=600.0)
    parser.add_argument("--timeout-s", type=float, default=120.0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    configure_logging("audit-replay", args.tenant)
    try:
        start, end = parse_time(args.start), parse_time(args.end)
        if end <= start:
            raise ConfigError("--to must be later than --from")
        topic = REGISTRY.topic("audit", args.tenant)
        kafka = KafkaSettings()
        records: list[AuditRecord] = []
        undecodable = 0
        for msg in read_window(
            kafka, topic, start, end, lateness_s=args.lateness_s, timeout=args.timeout_s
        ):
            try:
                records.append(decode_message(msg, accept=[AuditRecord]).event)
            except DecodeError:
                undecodable += 1
        repo = ModelRepository.from_settings()
        report = replay(
            records,
            repo,
            tenant=args.tenant,
            start=start,
            end=end,
            model_version=args.model,
            model_name=args.model_name,
            threshold=args.threshold,
        )
        if undecodable:
            report.skipped["undecodable"] = undecodable
    except ScorestreamError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write((json.dumps(report.as_dict()) if args.json else report.text()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
