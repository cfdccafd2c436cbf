"""What a re-drive publishes for a dead letter, or why it refuses it (:mod:`scorestream.ops.dlq`);
the groups, transactional id and ACLs it runs under."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from scorestream import dlq
from scorestream.deploy.acl import AclRule
from scorestream.ops.dlq.selection import dlq_streams
from scorestream.ops.dlq.views import DeadLetterView, Headers, redrive_count

MAX_REFUSED_LISTED = 50

REDIRECTS: dict[str, tuple[str, str]] = {
    "alerts.retry": ("decisions", "retry."),
}
"""Streams whose dead letters are re-driven elsewhere: source stream → (target stream, header
prefix to drop). A notifier retry record that spent its rounds is sent to ``decisions`` again
(webhook and alert), never back to the retry topic, whose spent ``retry.*`` headers would send
it straight back to the DLQ (docs/operations.md, "Webhook outages")."""


# -- redrive -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Refusal:
    coordinates: str
    reason: str
    why: str


@dataclass(slots=True)
class RedriveReport:
    dry_run: bool
    moved: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """(DLQ topic, reason, target topic) → records (would be) re-driven."""
    refused: list[Refusal] = field(default_factory=list)
    refused_count: int = 0
    already: int = 0
    """Matching dead letters at positions a previous re-drive already moved past."""
    transactions: int = 0
    committed: int = 0
    """Records re-driven by the transactions committed so far."""
    skipped_offsets: int = 0
    """Offsets not read at all because every selected reason's group is past them."""

    @property
    def moved_total(self) -> int:
        return sum(self.moved.values())

    @property
    def matched(self) -> int:
        return self.moved_total + self.refused_count + self.already

    def refuse(self, view: DeadLetterView, why: str) -> None:
        self.refused_count += 1
        if len(self.refused) < MAX_REFUSED_LISTED:
            self.refused.append(Refusal(view.coordinates, view.reason, why))


def redrive_group(tenant: str, reason: str) -> str:
    """The consumer group holding how far ``reason``'s dead letters of ``tenant`` were moved."""
    return f"{tenant}.dlq-redrive.{re.sub(r'[^A-Za-z0-9_.-]', '_', reason)[:100]}"


def transactional_id(tenant: str) -> str:
    return f"{tenant}.dlq-redrive"


def operator_acl_rules(tenant: str) -> list[AclRule]:
    """What a principal needs to run ``scorestream dlq`` for ``tenant`` (and nothing of another
    tenant): read the DLQs and their source streams (a pointer dead letter is re-driven from the
    original's coordinates), write the streams back (``decisions`` for the retry topic's), the
    tool's groups and its transactional id."""
    dlqs = [f"{tenant}.{s}" for s in dlq_streams()]
    sources = sorted({t.removesuffix(".dlq") for t in dlqs})
    targets = sorted({_target(tenant, t.removesuffix(".dlq"))[0] for t in dlqs})
    rules = [AclRule("topic", t, "literal", ("Read", "Describe")) for t in (*dlqs, *sources)]
    rules += [AclRule("topic", t, "literal", ("Write", "Describe")) for t in targets]
    rules.append(AclRule("group", f"{tenant}.dlq-", "prefix", ("Read",)))
    rules.append(
        AclRule("transactionalId", transactional_id(tenant), "prefix", ("Write", "Describe"))
    )
    return rules


@dataclass(frozen=True, slots=True)
class Planned:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


def _expected_source(dlq_topic: str) -> str:
    return dlq_topic.removesuffix(".dlq")


def _target(tenant: str, source: str) -> tuple[str, str | None]:
    stream = source.removeprefix(f"{tenant}.")
    if stream in REDIRECTS:
        target, drop = REDIRECTS[stream]
        return f"{tenant}.{target}", drop
    return source, None


def plan(
    view: DeadLetterView,
    tenant: str,
    max_redrives: int,
    fetch: Callable[[str, int, int], DeadLetterView | None],
    report: RedriveReport,
) -> Planned | None:
    """The record to re-publish for ``view``, or None (refused, reported)."""
    expected = _expected_source(view.topic)
    source, _, _ = view.source()
    if source != expected:
        report.refuse(view, f"its source topic is {source!r}, not {expected} (the DLQ's stream)")
        return None
    count = redrive_count(view.headers)
    key, value, headers = view.key, view.value, view.headers
    if view.pointer:
        target = view.pointer_target()
        if target is None or target[0] != expected:
            report.refuse(view, "pointer value unreadable or naming another topic")
            return None
        orig = fetch(*target)
        if orig is None:
            report.refuse(view, f"the original {target[0]}/{target[1]}@{target[2]} is gone")
            return None
        key, value, headers = orig.key, orig.value, orig.headers
        count = max(count, redrive_count(orig.headers))
    if count >= max_redrives:
        report.refuse(view, f"re-driven {count} times already (max {max_redrives})")
        return None
    topic, drop = _target(tenant, source)
    kept = [
        (n, v)
        for n, v in headers
        if not n.startswith(dlq.PREFIX) and not (drop and n.startswith(drop))
    ]
    return Planned(topic, key, value, [*kept, (dlq.REDRIVE_COUNT, str(count + 1).encode())])
