"""The value checks the generated ``finish`` functions call (:mod:`schemas.fast`): patterns and
``AfterValidator`` chains of strings, timestamps, finite floats; each memoised per value where
that is safe, each raising :class:`Decline` where it does not vouch for a value."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from schemas.types import CLOCK_BOUNDS, PURE_VALIDATORS

MEMO_MAX = 4096
"""Values remembered per memoised field check; the memo is cleared when it grows past this
(a few hundred KiB per field: repeated values recur within a batch or two)."""

_COMMON_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?Z")
"""The timestamp shapes every scorestream producer writes; ``datetime.fromisoformat`` reads them
exactly as pydantic does. Any other shape is declined (pydantic decides)."""


class Decline(Exception):  # noqa: N818  (a control-flow signal, not an error of ours)
    """The fast path does not vouch for this payload; ``path`` is pydantic-style (``a.b.0``,
    ``<root>``). Not a :class:`~scorestream.errors.ScorestreamError`: it never leaves the codec,
    whose caller turns a decline into pydantic's verdict."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _non_finite_key(values: dict[str, float]) -> str:
    """The first key whose value is not finite (a sum that overflowed: the first large one)."""
    for k, x in values.items():
        if x - x != 0.0:
            return k
    return next(iter(values))


class _StringCheck:
    """A string field's pattern and ``AfterValidator`` chain; memoised per value when every
    validator is pure (:data:`schemas.types.PURE_VALIDATORS`: the ISO code look-ups)."""

    __slots__ = ("memo", "pattern", "pure", "validators")

    def __init__(self, pattern: str | None, validators: tuple[Callable[[Any], Any], ...]) -> None:
        # pydantic's patterns use Rust regex semantics; the contracts' are plain character
        # classes and anchors, where ``re.search`` agrees (the property test covers them)
        self.pattern = re.compile(pattern) if pattern is not None else None
        self.validators = validators
        self.pure = all(v in PURE_VALIDATORS for v in validators)
        self.memo: dict[str, str] = {}
        """Stays empty when a validator is impure: the check then runs for every value."""

    def __call__(self, value: str, path: str) -> str:
        if self.pattern is not None and self.pattern.search(value) is None:
            raise Decline(path, "string_pattern_mismatch")
        out: str = _run(self.validators, value, path)
        if self.pure:
            memo = self.memo
            if len(memo) >= MEMO_MAX:
                memo.clear()
            memo[value] = out
        return out


def _run(validators: tuple[Callable[[Any], Any], ...], value: Any, path: str) -> Any:
    for check in validators:
        try:
            value = check(value)
        except ValueError as exc:
            raise Decline(path, "value_error") from exc
    return value


def _split_pure(
    validators: tuple[Callable[[Any], Any], ...],
) -> tuple[tuple[Callable[[Any], Any], ...], tuple[Callable[[Any], Any], ...]]:
    """(the leading pure validators, the rest)."""
    n = 0
    while n < len(validators) and validators[n] in PURE_VALIDATORS:
        n += 1
    return validators[:n], validators[n:]


class _TimeParser:
    """An aware timestamp parsed as pydantic parses it, then the field's validators. The parse
    and the leading pure validators are memoised per text (a batch shares its stamps, which then
    are one object); the others (one reads the clock) run for every event (:meth:`rest`), or,
    when they only refuse values above a clock bound (:data:`schemas.types.CLOCK_BOUNDS`), for
    the values above the bound last read (the bound never decreases, so an old one is only
    stricter; :meth:`rest` reads it again)."""

    __slots__ = ("bound", "bounds", "impure", "memo", "pure")

    def __init__(self, validators: tuple[Callable[[Any], Any], ...]) -> None:
        self.pure, self.impure = _split_pure(validators)
        self.memo: dict[str, datetime] = {}
        self.bounds = [CLOCK_BOUNDS.get(v) for v in self.impure]
        self.bound: list[datetime] | None = None
        """``[the smallest bound last read]``, when every impure validator has one."""
        if self.impure and all(b is not None for b in self.bounds):
            self.bound = [datetime.min.replace(tzinfo=UTC)]

    def __call__(self, text: str, path: str) -> datetime:
        if _COMMON_TIME.fullmatch(text) is None:
            raise Decline(path, "datetime_shape")
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise Decline(path, "datetime_parsing") from exc
        value = cast("datetime", _run(self.pure, value, path))
        memo = self.memo
        if len(memo) >= MEMO_MAX:
            memo.clear()
        memo[text] = value
        return value

    def rest(self, value: datetime, path: str) -> datetime:
        if self.bound is not None:  # read the bounds before the validators: never too late
            self.bound[0] = min(cast("Callable[[], datetime]", b)() for b in self.bounds)
        return cast("datetime", _run(self.impure, value, path))
