"""What ``scorestream dlq`` works on (:mod:`scorestream.ops.dlq`): a tenant's DLQ topics, the
reasons and the time to start from."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from scorestream.errors import ConfigError
from scorestream.topics import REGISTRY, validate_tenant


class NothingMatchedError(ConfigError):
    """No dead letter matches the selection."""


# -- selection -----------------------------------------------------------------------------------
def dlq_streams() -> list[str]:
    """Names of the DLQ streams of the registry (``predictions.dlq``, ...), tenant-scoped ones."""
    return [s.name for s in REGISTRY.tenant_streams() if s.is_dlq]


def resolve_topics(tenant: str, names: Sequence[str] | None) -> list[str]:
    """DLQ topic names of ``tenant``: all of them, or the named ones (``predictions``,
    ``predictions.dlq`` or ``<tenant>.predictions.dlq``)."""
    validate_tenant(tenant)
    streams = dlq_streams()
    if not names:
        return [f"{tenant}.{s}" for s in streams]
    out: list[str] = []
    for name in names:
        stream = name.removeprefix(f"{tenant}.")
        if not stream.endswith(".dlq"):
            stream += ".dlq"
        if stream not in streams:
            raise ConfigError(
                f"no DLQ topic {name!r} for tenant {tenant}: one of "
                f"{', '.join(s.removesuffix('.dlq') for s in streams)}"
            )
        topic = f"{tenant}.{stream}"
        if topic not in out:
            out.append(topic)
    return out


_RELATIVE = re.compile(r"^(\d+)([smhd])$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (no offset: UTC) or an age such as ``30m``, ``2h``, ``7d``."""
    m = _RELATIVE.match(text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: use an ISO 8601 time (2026-12-05T04:00:00Z) or an age (30m, 2h, 7d)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


@dataclass(frozen=True, slots=True)
class Selection:
    tenant: str
    topics: tuple[str, ...]
    reasons: frozenset[str] = frozenset()
    since: datetime | None = None
    explicit: bool = False
    """Topics named by the operator (a missing one is an error, not skipped)."""

    @classmethod
    def of(
        cls,
        tenant: str,
        topics: Sequence[str] | None = None,
        reasons: Sequence[str] | None = None,
        since: str | datetime | None = None,
    ) -> Selection:
        when = parse_since(since) if isinstance(since, str) else since
        return cls(
            tenant,
            tuple(resolve_topics(tenant, topics)),
            frozenset(reasons or ()),
            when,
            explicit=bool(topics),
        )

    def matches(self, reason: str) -> bool:
        return not self.reasons or reason in self.reasons


def describe(sel: Selection) -> str:
    parts = [f"tenant {sel.tenant}", f"topics {', '.join(sel.topics)}"]
    if sel.reasons:
        parts.append(f"reason {', '.join(sorted(sel.reasons))}")
    if sel.since:
        parts.append(f"since {sel.since.isoformat()}")
    return "; ".join(parts)
