"""Reusable constrained field types of the event contracts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pycountry
from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


_CURRENCIES = frozenset(c.alpha_3 for c in pycountry.currencies)
_COUNTRIES = frozenset(c.alpha_2 for c in pycountry.countries)


def _iso4217(code: str) -> str:
    if code not in _CURRENCIES:
        raise ValueError(f"unknown ISO 4217 currency code {code!r}")
    return code


def _iso3166(code: str) -> str:
    if code not in _COUNTRIES:
        raise ValueError(f"unknown ISO 3166-1 alpha-2 country code {code!r}")
    return code


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware timestamp, normalised to UTC. Naive timestamps are rejected."""

MAX_EVENT_TIME_AHEAD = timedelta(days=366)
"""How far ahead of the validating clock an event time may lie. Beyond it the record is a schema
violation and goes to the DLQ: a year-9999 timestamp is corrupt data, not a payment. The bound is
loose on purpose: simulations and tests legitimately produce dates some weeks ahead, and the
check must not depend on clock skew between services."""


def _not_far_future(value: datetime) -> datetime:
    limit = _event_time_limit()
    if value > limit:
        raise ValueError(
            f"event time {value.isoformat()} is more than {MAX_EVENT_TIME_AHEAD} in the future"
        )
    return value


EventTime = Annotated[UtcDatetime, AfterValidator(_not_far_future)]
"""When an upstream event happened: a :data:`UtcDatetime` at most a year ahead of this clock."""

PURE_VALIDATORS: frozenset[object] = frozenset({_to_utc, _iso4217, _iso3166})
"""The validators above whose result depends on their argument alone: the contracts' fast path
(:mod:`schemas.fast`) remembers their results per value. One that reads the clock or any other
state (:func:`_not_far_future`) must not be listed: it runs for every event."""


def _event_time_limit() -> datetime:
    return datetime.now(UTC) + MAX_EVENT_TIME_AHEAD


CLOCK_BOUNDS: dict[object, Callable[[], datetime]] = {_not_far_future: _event_time_limit}
"""Impure validators that refuse exactly the values above a bound that never decreases (it moves
with the clock), and that bound: the fast path runs the validator only for a value above the
bound it read last (:mod:`schemas.fast`)."""

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
]
"""An opaque identifier: letters, digits and ``_ . : -``, 1-128 characters."""

TenantId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")]
"""A tenant id; it prefixes topic names, so it is lower case, digits and dashes."""

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_iso4217)]
"""An ISO 4217 alphabetic currency code (``EUR``)."""

Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_iso3166)]
"""An ISO 3166-1 alpha-2 country code (``DE``)."""

Mcc = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
"""An ISO 18245 merchant category code, four digits as a string (``5411``)."""

AmountMinor = Annotated[int, Field(ge=0, le=10**15)]
"""Money in integer minor units (cents); never a float."""

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]

Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

ModelName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]

ModelVersion = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
