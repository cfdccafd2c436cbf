"""The simulated world (:mod:`producers.simulator`): terminals (physical, online, foreign) and
customers on the handbook's grid, each customer with the terminals near home."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from producers.simulator.config import SimulatorConfig, _terminal_kind_counts
from producers.simulator.tables import (
    _ATM_MCC,
    _ATM_MIX,
    _CHANNELS,
    _CURRENCY,
    _F64,
    _FAR_AWAY,
    _FOREIGN,
    _FOREIGN_MCCS,
    _GRID,
    _I64,
    _MIX_CONCENTRATION,
    _ONLINE,
    _ONLINE_HUBS,
    _ONLINE_HUBS_US,
    _ONLINE_MCCS,
    _ONLINE_MIX,
    _PHYSICAL,
    _PHYSICAL_MCCS,
    _PHYSICAL_MIX,
    _REGIONS,
)

# --------------------------------------------------------------------------------------------
# World: terminals and customers


@dataclass(frozen=True, slots=True)
class _Terminals:
    x: _F64
    y: _F64
    kind: _I64
    country: list[str]
    currency: list[str]
    mcc: list[str]
    fx: _F64
    mix: _F64  # (n, 5) channel weights
    on_grid: _I64  # indices of physical and online terminals
    online: _I64
    foreign_by_country: dict[str, _I64] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Customers:
    x: _F64
    y: _F64
    country: list[str]
    mean_amount: _F64
    std_amount: _F64
    tx_per_day: _F64
    avail_start: _I64  # terminals of customer c: avail[avail_start[c]:avail_start[c + 1]]
    avail: _I64


def _weighted_choice(
    rng: np.random.Generator, options: Sequence[tuple[str, int]], size: int
) -> list[str]:
    weights = np.array([w for _, w in options], dtype=np.float64)
    picks = rng.choice(len(options), size=size, p=weights / weights.sum())
    return [options[i][0] for i in picks.tolist()]


def _region_of(x: _F64) -> list[str]:
    edges = np.cumsum([w for _, w in _REGIONS], dtype=np.float64)[:-1]
    idx = np.searchsorted(edges, x, side="right")
    return [_REGIONS[i][0] for i in idx.tolist()]


def _make_terminals(config: SimulatorConfig, rng: np.random.Generator) -> _Terminals:
    n = config.n_terminals
    n_online, n_foreign = _terminal_kind_counts(config)
    kinds = np.full(n, _PHYSICAL, dtype=np.int64)
    kinds[:n_online] = _ONLINE
    kinds[n_online : n_online + n_foreign] = _FOREIGN
    kind = rng.permutation(kinds)
    x = rng.uniform(0.0, _GRID, n)
    y = rng.uniform(0.0, _GRID, n)
    x[kind == _FOREIGN] = np.nan
    y[kind == _FOREIGN] = np.nan

    region = _region_of(np.nan_to_num(x))
    hubs = _weighted_choice(rng, (*_ONLINE_HUBS, _ONLINE_HUBS_US), n)
    online_domestic = rng.random(n) < config.online_domestic_share
    physical_mcc = _weighted_choice(rng, _PHYSICAL_MCCS, n)
    online_mcc = _weighted_choice(rng, _ONLINE_MCCS, n)
    foreign_mcc = _weighted_choice(rng, _FOREIGN_MCCS, n)
    physical_mix = rng.dirichlet(_MIX_CONCENTRATION * np.array(_PHYSICAL_MIX[:4]), n)
    online_mix = rng.dirichlet(_MIX_CONCENTRATION * np.array(_ONLINE_MIX[2:4]), n)

    country: list[str] = []
    mcc: list[str] = []
    mix = np.zeros((n, len(_CHANNELS)), dtype=np.float64)
    foreign_seen = 0
    for i, k in enumerate(kind.tolist()):
        if k == _ONLINE:
            country.append(region[i] if online_domestic[i] else hubs[i])
            mcc.append(online_mcc[i])
            mix[i, 2:4] = online_mix[i]
            continue
        if k == _FOREIGN:
            # Cycle through the countries so that each one has terminals.
            country.append(_FAR_AWAY[foreign_seen % len(_FAR_AWAY)])
            foreign_seen += 1
            mcc.append(foreign_mcc[i])
        else:
            country.append(region[i])
            mcc.append(physical_mcc[i])
        if mcc[-1] == _ATM_MCC:
            mix[i] = _ATM_MIX
        else:
            mix[i, :4] = physical_mix[i]
    currency = [_CURRENCY[c][0] for c in country]
    fx = np.array([_CURRENCY[c][1] for c in country], dtype=np.float64)
    country_arr = np.array(country)
    foreign_by_country = {
        c: np.flatnonzero((kind == _FOREIGN) & (country_arr == c)).astype(np.int64)
        for c in _FAR_AWAY
    }
    return _Terminals(
        x=x,
        y=y,
        kind=kind,
        country=country,
        currency=currency,
        mcc=mcc,
        fx=fx,
        mix=mix,
        on_grid=np.flatnonzero(kind != _FOREIGN).astype(np.int64),
        online=np.flatnonzero(kind == _ONLINE).astype(np.int64),
        foreign_by_country=foreign_by_country,
    )


def _make_customers(
    config: SimulatorConfig, rng: np.random.Generator, terminals: _Terminals
) -> _Customers:
    n = config.n_customers
    x = rng.uniform(0.0, _GRID, n)
    y = rng.uniform(0.0, _GRID, n)
    mean_amount = rng.uniform(*config.mean_amount_range, n)
    tx_per_day = rng.uniform(*config.tx_per_day_range, n)
    country = _region_of(x)
    grid = terminals.on_grid
    tx, ty = terminals.x[grid], terminals.y[grid]
    t_country = np.array([terminals.country[t] for t in grid.tolist()])
    t_online = terminals.kind[grid] == _ONLINE
    r2 = config.radius**2
    border_r2 = (config.radius * config.border_radius_factor) ** 2
    parts: list[_I64] = []
    starts = np.zeros(n + 1, dtype=np.int64)
    for c in range(n):
        d2 = (tx - x[c]) ** 2 + (ty - y[c]) ** 2
        usable = t_online | (t_country == country[c]) | (d2 < border_r2)
        near = np.flatnonzero((d2 < r2) & usable)
        if near.size == 0:
            near = np.array([int(np.argmin(d2))])
        parts.append(grid[near])
        starts[c + 1] = starts[c] + near.size
    return _Customers(
        x=x,
        y=y,
        country=country,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2.0,
        tx_per_day=tx_per_day,
        avail_start=starts,
        avail=np.concatenate(parts).astype(np.int64),
    )
