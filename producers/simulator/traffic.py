"""Legitimate transactions, as columns (:mod:`producers.simulator`): the handbook's daily
rhythm, amounts and channels, and customers travelling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from producers.simulator.config import SimulatorConfig
from producers.simulator.tables import (
    _CHANNELS,
    _DAY_S,
    _F64,
    _FAR_AWAY,
    _I64,
    _IN_PERSON,
    _Bool,
)
from producers.simulator.world import _Customers, _Terminals

# --------------------------------------------------------------------------------------------
# Transactions, as columns


@dataclass(slots=True)
class _Batch:
    customer: _I64
    terminal: _I64
    second: _I64  # seconds since config.start
    amount_eur: _F64
    channel: _I64
    scenario: _I64  # 0 or an injected scenario code


def _concat(batches: Sequence[_Batch]) -> _Batch:
    return _Batch(
        customer=np.concatenate([b.customer for b in batches]).astype(np.int64),
        terminal=np.concatenate([b.terminal for b in batches]).astype(np.int64),
        second=np.concatenate([b.second for b in batches]).astype(np.int64),
        amount_eur=np.concatenate([b.amount_eur for b in batches]).astype(np.float64),
        channel=np.concatenate([b.channel for b in batches]).astype(np.int64),
        scenario=np.concatenate([b.scenario for b in batches]).astype(np.int64),
    )


def _weekend_days(config: SimulatorConfig) -> _Bool:
    return np.array(
        [(config.start + timedelta(days=d)).weekday() >= 5 for d in range(config.days)],
        dtype=np.bool_,
    )


def _handbook_amounts(rng: np.random.Generator, mean: _F64, std: _F64) -> _F64:
    amount = rng.normal(mean, std)
    negative = amount < 0
    amount[negative] = rng.uniform(0.0, 2.0 * mean[negative])
    return amount


def _sample_channels(
    rng: np.random.Generator, mix: _F64, weekend: _Bool, in_person_boost: float
) -> _I64:
    weights = mix.copy()
    weights[np.ix_(np.flatnonzero(weekend), _IN_PERSON)] *= in_person_boost
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cumulative[:, -1]
    picked: _I64 = np.count_nonzero(cumulative <= u[:, None], axis=1).astype(np.int64)
    return np.minimum(picked, len(_CHANNELS) - 1)


def _regular(
    config: SimulatorConfig,
    rng: np.random.Generator,
    customers: _Customers,
    terminals: _Terminals,
    weekend: _Bool,
) -> _Batch:
    day_factor = np.where(weekend, config.weekend_volume_factor, 1.0)
    counts = rng.poisson(customers.tx_per_day[:, None] * day_factor[None, :]).ravel()
    cells = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    customer = cells // config.days
    day = cells % config.days
    evening = rng.random(cells.size) < config.evening_share
    seconds = np.where(
        evening,
        rng.normal(config.evening_mean_s, config.evening_std_s, cells.size),
        rng.normal(config.time_of_day_mean_s, config.time_of_day_std_s, cells.size),
    )
    keep = (seconds >= 0) & (seconds < _DAY_S)  # the handbook drops draws outside the day
    customer, day, seconds = customer[keep], day[keep], seconds[keep]
    n_avail = np.diff(customers.avail_start)[customer]
    pick = customers.avail_start[customer] + (rng.random(customer.size) * n_avail).astype(np.int64)
    terminal = customers.avail[np.minimum(pick, customers.avail_start[customer + 1] - 1)]
    amount = _handbook_amounts(rng, customers.mean_amount[customer], customers.std_amount[customer])
    channel = _sample_channels(
        rng, terminals.mix[terminal], weekend[day], config.weekend_in_person_boost
    )
    return _Batch(
        customer=customer,
        terminal=terminal,
        second=day * _DAY_S + seconds.astype(np.int64),
        amount_eur=amount,
        channel=channel,
        scenario=np.zeros(customer.size, dtype=np.int64),
    )


def _foreign_country(rng: np.random.Generator, home: str) -> str:
    options = [c for c in _FAR_AWAY if c != home]
    return options[int(rng.integers(len(options)))]


def _travel(
    config: SimulatorConfig,
    rng: np.random.Generator,
    customers: _Customers,
    terminals: _Terminals,
    weekend: _Bool,
) -> _Batch:
    """Legitimate payments of travelling customers in far-away countries."""
    rows: list[tuple[int, int, int]] = []  # customer, terminal, second
    for day in range(config.days):
        for _ in range(int(rng.poisson(config.travel_events_per_day))):
            c = int(rng.integers(config.n_customers))
            pool = terminals.foreign_by_country[_foreign_country(rng, customers.country[c])]
            for _ in range(int(rng.integers(1, 5))):
                t = int(pool[int(rng.integers(pool.size))])
                rows.append((c, t, day * _DAY_S + int(rng.integers(8 * 3600, 22 * 3600))))
    customer = np.array([r[0] for r in rows], dtype=np.int64)
    terminal = np.array([r[1] for r in rows], dtype=np.int64)
    second = np.array([r[2] for r in rows], dtype=np.int64)
    amount = _handbook_amounts(rng, customers.mean_amount[customer], customers.std_amount[customer])
    channel = _sample_channels(
        rng, terminals.mix[terminal], weekend[second // _DAY_S], config.weekend_in_person_boost
    )
    return _Batch(customer, terminal, second, amount, channel, np.zeros(len(rows), np.int64))
