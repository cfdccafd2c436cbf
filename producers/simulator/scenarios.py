"""The fraud scenarios (:mod:`producers.simulator`): the injected ones (card testing, cross-border)
and the codes of the handbook's three, applied to all transactions."""

from __future__ import annotations

import math

import numpy as np

from producers.simulator.config import SimulatorConfig
from producers.simulator.tables import (
    _AMOUNT_THRESHOLD,
    _CARD_TESTING,
    _COMPROMISED_CARD,
    _COMPROMISED_TERMINAL,
    _CROSS_BORDER,
    _DAY_S,
    _ECOMMERCE,
    _I64,
    _Bool,
)
from producers.simulator.traffic import _Batch, _foreign_country, _sample_channels
from producers.simulator.world import _Customers, _Terminals


def _card_testing(
    config: SimulatorConfig, rng: np.random.Generator, terminals: _Terminals
) -> _Batch:
    """Scenario 4: bursts of tiny e-commerce payments, seconds apart, at one online terminal."""
    customer: list[int] = []
    terminal: list[int] = []
    second: list[int] = []
    amount: list[float] = []
    low, high = config.card_testing_burst_size
    a_low, a_high = config.card_testing_amount_range
    for day in range(config.days):
        for _ in range(int(rng.poisson(config.card_testing_bursts_per_day))):
            c = int(rng.integers(config.n_customers))
            t = int(terminals.online[int(rng.integers(terminals.online.size))])
            size = int(rng.integers(low, high + 1))
            at = day * _DAY_S + int(rng.integers(0, _DAY_S - 3600))
            gaps = 1 + rng.exponential(config.card_testing_gap_mean_s, size).astype(np.int64)
            gaps[0] = 0
            local = rng.uniform(a_low, a_high, size)
            customer.extend([c] * size)
            terminal.extend([t] * size)
            second.extend((at + np.cumsum(gaps)).tolist())
            amount.extend((local / terminals.fx[t]).tolist())
    n = len(customer)
    return _Batch(
        customer=np.array(customer, dtype=np.int64),
        terminal=np.array(terminal, dtype=np.int64),
        second=np.array(second, dtype=np.int64),
        amount_eur=np.array(amount, dtype=np.float64),
        channel=np.full(n, _ECOMMERCE, dtype=np.int64),
        scenario=np.full(n, _CARD_TESTING, dtype=np.int64),
    )


def _cross_border(
    config: SimulatorConfig,
    rng: np.random.Generator,
    customers: _Customers,
    terminals: _Terminals,
    weekend: _Bool,
) -> _Batch:
    """Scenario 5: a card suddenly pays larger amounts in a far-away country."""
    rows: list[tuple[int, int, int, float]] = []  # customer, terminal, second, amount
    low, high = config.cross_border_tx_range
    f_low, f_high = config.cross_border_amount_factor
    for day in range(config.days):
        for _ in range(int(rng.poisson(config.cross_border_events_per_day))):
            c = int(rng.integers(config.n_customers))
            pool = terminals.foreign_by_country[_foreign_country(rng, customers.country[c])]
            at = day * _DAY_S + int(rng.integers(6 * 3600, 20 * 3600))
            for _ in range(int(rng.integers(low, high + 1))):
                t = int(pool[int(rng.integers(pool.size))])
                amount = float(customers.mean_amount[c] * rng.uniform(f_low, f_high))
                rows.append((c, t, at, amount))
                at += 600 + int(rng.exponential(1800.0))
    customer = np.array([r[0] for r in rows], dtype=np.int64)
    terminal = np.array([r[1] for r in rows], dtype=np.int64)
    second = np.array([r[2] for r in rows], dtype=np.int64)
    channel = _sample_channels(
        rng,
        terminals.mix[terminal],
        weekend[np.minimum(second // _DAY_S, config.days - 1)],
        config.weekend_in_person_boost,
    )
    return _Batch(
        customer=customer,
        terminal=terminal,
        second=second,
        amount_eur=np.array([r[3] for r in rows], dtype=np.float64),
        channel=channel,
        scenario=np.full(len(rows), _CROSS_BORDER, dtype=np.int64),
    )


def _per_day(rate: float, day: int) -> int:
    """How many of a ``rate`` per day happen on ``day``: exactly ``rate`` a day if integral."""
    return math.floor((day + 1) * rate) - math.floor(day * rate)


def _apply_scenarios(
    config: SimulatorConfig, rng: np.random.Generator, batch: _Batch, terminals: _Terminals
) -> _I64:
    """Scenario codes of every transaction; multiplies compromised cards' amounts in place."""
    injected = batch.scenario
    organic = injected == 0
    day = batch.second // _DAY_S
    code = np.zeros(injected.size, dtype=np.int64)
    code[batch.amount_eur > config.amount_threshold] = _AMOUNT_THRESHOLD
    for d in range(config.days):
        chosen = rng.choice(
            terminals.on_grid,
            size=min(_per_day(config.compromised_terminals_per_day, d), terminals.on_grid.size),
            replace=False,
        )
        window = (day >= d) & (day < d + config.compromised_terminal_days)
        code[window & np.isin(batch.terminal, chosen)] = _COMPROMISED_TERMINAL
    for d in range(config.days):
        chosen = rng.choice(
            config.n_customers,
            size=min(_per_day(config.compromised_customers_per_day, d), config.n_customers),
            replace=False,
        )
        window = (day >= d) & (day < d + config.compromised_customer_days)
        candidates = np.flatnonzero(
            window & organic & (code != _COMPROMISED_CARD) & np.isin(batch.customer, chosen)
        )
        k = int(candidates.size * config.compromised_customer_fraction)
        hit = rng.choice(candidates, size=k, replace=False)
        code[hit] = _COMPROMISED_CARD
        batch.amount_eur[hit] *= config.compromised_amount_factor
    code[~organic] = injected[~organic]
    return code
