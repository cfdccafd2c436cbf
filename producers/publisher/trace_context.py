"""W3C Trace Context, level 1 (:mod:`producers.publisher`): the ``traceparent`` a record is
sent with, passed through when valid, else a new trace."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

# -- trace context (W3C Trace Context, level 1) ------------------------------------------------

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    version: str
    trace_id: str
    span_id: str
    flags: str

    def __str__(self) -> str:
        return f"{self.version}-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | None) -> TraceParent | None:
    """The parsed header, or None when it is absent or invalid (W3C: then start a new trace)."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip())
    if m is None:
        return None
    version, trace_id, span_id, flags, rest = m.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if version == "00" and rest is not None:
        return None  # version 00 has exactly four fields
    return TraceParent("00", trace_id, span_id, flags)


def _random_hex(nbytes: int, zero: str) -> str:
    while True:
        value = secrets.token_hex(nbytes)
        if value != zero:
            return value


def new_traceparent(*, sampled: bool = True) -> str:
    """A new root context: ``00-<32 hex trace id>-<16 hex span id>-<01|00>``."""
    flags = "01" if sampled else "00"
    return f"00-{_random_hex(16, _ZERO_TRACE)}-{_random_hex(8, _ZERO_SPAN)}-{flags}"


def child_traceparent(parent: str | None) -> str:
    """A new span of ``parent``'s trace (same trace id and flags), or a new trace."""
    parsed = parse_traceparent(parent)
    if parsed is None:
        return new_traceparent()
    return f"00-{parsed.trace_id}-{_random_hex(8, _ZERO_SPAN)}-{parsed.flags}"


def trace_headers(traceparent: str | None, tracestate: str | None = None) -> dict[str, str]:
    """The trace headers to send: a valid ``traceparent`` as given, else a new one.

    ``tracestate`` is kept only with a valid ``traceparent`` (W3C: never parse it otherwise).
    """
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return {"traceparent": new_traceparent()}
    headers = {"traceparent": str(parsed)}
    if tracestate:
        headers["tracestate"] = tracestate.strip()
    return headers


def trace_id_of(traceparent: str) -> str:
    parsed = parse_traceparent(traceparent)
    return parsed.trace_id if parsed else ""
