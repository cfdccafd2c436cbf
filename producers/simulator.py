"""A seeded synthetic card-transaction simulator with labelled fraud scenarios.

Modelled on the simulator of the handbook *Reproducible Machine Learning for Credit Card Fraud
Detection* (Le Borgne, Siblini, Lebichot, Bontempi), chapter "Transaction data simulator", and
extended:

* **Customers** live at a uniform random point of a 100 x 100 grid and have a spending profile
  (handbook): mean amount ~ U(5, 100), standard deviation = mean / 2, mean number of
  transactions per day ~ U(0, 4). Their home country is the country of the grid region they live
  in (vertical strips whose widths weight the countries, mostly DE/FR/ES/IT/NL), which is also
  the transactions' ``card_country``.
* **Terminals** (merchants) are of three kinds: *physical* ones at a grid point, in the country of
  their region; *online* ones, also at a grid point (the handbook's locality model) but in an
  e-commerce hub country (NL, IE, LU, ...); and *foreign* ones, off the grid in far-away
  countries, used only by travelling customers and by the cross-border fraud scenario. Each has
  an ISO 18245 MCC and its own channel mix (a Dirichlet draw around a base mix of its kind).
* A customer uses the on-grid terminals within ``radius`` of home (handbook: 5), the nearest one
  if there is none.
* **Transactions**: per customer and day a Poisson number (rate x ``weekend_volume_factor`` on
  Saturdays and Sundays); time of day from a mixture of the handbook's normal around noon
  (std 20000 s) and a smaller evening peak, draws outside the day dropped (as in the handbook);
  amount ~ normal(mean, std), a negative draw replaced by U(0, 2 x mean) (handbook). Amounts are
  drawn in EUR and converted with a fixed rate to the terminal country's currency, stored in
  integer minor units. The channel comes from the terminal's mix, with card-present and
  contactless weighted up at weekends. A few customers a day also travel and pay, legitimately,
  at foreign terminals.

**Fraud scenarios** (a transaction carries the name of the one that made it fraudulent; where
several apply, the later in this list wins, as in the handbook):

1. ``amount_threshold`` (handbook): every transaction above ``amount_threshold`` EUR.
2. ``compromised_terminal`` (handbook): each day ``compromised_terminals_per_day`` on-grid
   terminals are compromised; all their transactions of the next ``compromised_terminal_days``
   days are fraud.
3. ``compromised_card`` (handbook): each day ``compromised_customers_per_day`` customers are
   compromised; over the next ``compromised_customer_days`` days a fraction
   ``compromised_customer_fraction`` of their transactions get their amount multiplied by
   ``compromised_amount_factor`` and are fraud.
4. ``card_testing``: on average ``card_testing_bursts_per_day`` times a day a card makes a burst of
   ``card_testing_burst_size`` tiny e-commerce payments (0.5-3 major units of the terminal's
   currency) seconds apart at one online terminal.
5. ``cross_border``: on average ``cross_border_events_per_day`` times a day a card suddenly pays
   one to three times, within a few hours, in a far-away country, ``cross_border_amount_factor``
   times its usual mean amount.

The handbook's scale (5000 customers, 10 000 terminals, 2 terminals and 3 customers compromised
a day, over 183 days) is rescaled to the default 2000 customers and 4000 terminals (about one
transaction per terminal and day, as in the handbook). Its per-terminal and per-customer rates
would give a fraud rate above 1 % over a 60-day window, so the defaults compromise one terminal
every other day and one customer a day. The default configuration yields about 245 000
transactions and a fraud rate of about 0.65 % (seeds 1-3 and 42: 0.59 %-0.68 %); for seed 42:
0.06 % amount_threshold, 0.30 % compromised_terminal, 0.20 % compromised_card, 0.07 %
card_testing and 0.06 % cross_border. About 13 % of the transactions are cross-border (online
merchants abroad, shops across a nearby border, travel).

**Labels** arrive late: every fraud is confirmed by the customer (a share
``customer_confirmed_share``, after hours) or by a chargeback (after days), both with lognormal
delays; a fraction ``legit_label_fraction`` of legitimate transactions is reviewed by an analyst
and labelled ``is_fraud=False`` about a day later.

Everything is a function of ``SimulatorConfig``: the same seed gives identical output.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.events import Channel, LabelEvent, LabelSource, TransactionEvent

_F64 = npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]
_Bool = npt.NDArray[np.bool_]

_TENANT_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
_DAY_S: Final = 86_400
_GRID: Final = 100.0

SCENARIOS: Final = (
    "amount_threshold",
    "compromised_terminal",
    "compromised_card",
    "card_testing",
    "cross_border",
)
"""Fraud scenario names, in precedence order (a later one wins when several apply)."""

_AMOUNT_THRESHOLD, _COMPROMISED_TERMINAL, _COMPROMISED_CARD, _CARD_TESTING, _CROSS_BORDER = range(
    1, 6
)

_CHANNELS: Final = (
    Channel.CARD_PRESENT,
    Channel.CONTACTLESS,
    Channel.ECOMMERCE,
    Channel.MOBILE_WALLET,
    Channel.ATM,
)
_IN_PERSON: Final = np.array([0, 1], dtype=np.int64)  # card_present, contactless mix columns
_ECOMMERCE: Final = 2

# Home regions: vertical strips of the grid, widths (in grid units, summing to 100) weight them.
_REGIONS: Final = (
    ("GB", 5),
    ("ES", 13),
    ("FR", 21),
    ("BE", 4),
    ("NL", 8),
    ("DE", 27),
    ("AT", 4),
    ("IT", 12),
    ("PL", 6),
)
# Countries of online merchants, with weights.
_ONLINE_HUBS: Final = (("NL", 20), ("IE", 20), ("LU", 15), ("DE", 15), ("GB", 10), ("FR", 10))
_ONLINE_HUBS_US: Final = ("US", 10)
# Far-away countries of foreign terminals.
_FAR_AWAY: Final = ("US", "BR", "TH", "ZA", "AE", "MX", "IN", "TR", "ID")
# Country -> (ISO 4217 currency, units per EUR; a fixed approximate rate). Every currency used has
# two decimal minor units in ISO 4217.
_CURRENCY: Final[dict[str, tuple[str, float]]] = {
    **{c: ("EUR", 1.0) for c in ("ES", "FR", "BE", "NL", "DE", "AT", "IT", "IE", "LU")},
    "GB": ("GBP", 0.85),
    "PL": ("PLN", 4.3),
    "US": ("USD", 1.08),
    "BR": ("BRL", 5.9),
    "TH": ("THB", 38.0),
    "ZA": ("ZAR", 20.0),
    "AE": ("AED", 4.0),
    "MX": ("MXN", 19.0),
    "IN": ("INR", 90.0),
    "TR": ("TRY", 35.0),
    "ID": ("IDR", 17_000.0),
}
# ISO 18245 merchant category codes with weights, per terminal kind.
_ATM_MCC: Final = "6011"  # automated cash disbursements
_PHYSICAL_MCCS: Final = (
    ("5411", 22),  # grocery stores, supermarkets
    ("5812", 12),  # eating places, restaurants
    ("5814", 10),  # fast food restaurants
    ("5541", 8),  # service stations
    ("5912", 6),  # drug stores and pharmacies
    ("5311", 5),  # department stores
    ("5651", 6),  # family clothing stores
    ("5732", 3),  # electronics stores
    ("5999", 8),  # miscellaneous and specialty retail
    ("4111", 6),  # local and suburban commuter transport
    ("4121", 3),  # taxicabs and limousines
    ("5813", 4),  # bars, taverns, nightclubs
    ("7011", 2),  # hotels, motels, resorts
    (_ATM_MCC, 5),
)
_ONLINE_MCCS: Final = (
    ("5964", 15),  # direct marketing, catalogue merchants
    ("5969", 10),  # direct marketing, other
    ("5815", 10),  # digital goods: media
    ("5816", 8),  # digital goods: games
    ("5817", 8),  # digital goods: applications
    ("5818", 10),  # digital goods: large merchants
    ("4722", 8),  # travel agencies and tour operators
    ("4814", 6),  # telecommunication services
    ("4899", 6),  # cable, satellite and other pay television
    ("5732", 9),  # electronics
    ("5999", 10),  # miscellaneous and specialty retail
)
_FOREIGN_MCCS: Final = (
    ("7011", 15),
    ("5812", 20),
    ("5814", 8),
    ("5411", 10),
    ("4121", 8),
    ("5999", 10),
    ("5944", 5),  # jewellery and watch stores
    ("5311", 5),
    ("5732", 7),
    (_ATM_MCC, 12),
)
# Base channel mixes (card_present, contactless, ecommerce, mobile_wallet, atm) per terminal kind.
_PHYSICAL_MIX: Final = (0.50, 0.33, 0.02, 0.15, 0.0)
_ONLINE_MIX: Final = (0.0, 0.0, 0.85, 0.15, 0.0)
_ATM_MIX: Final = (0.0, 0.0, 0.0, 0.0, 1.0)
_MIX_CONCENTRATION: Final = 30.0  # Dirichlet concentration around the base mix

_PHYSICAL, _ONLINE, _FOREIGN = 0, 1, 2


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Every parameter of a simulation; the defaults give a 0.3 %-1 % fraud rate."""

    seed: int = 42
    tenant: str = "demo"
    n_customers: int = 2000
    n_terminals: int = 4000
    """All terminals; about one transaction per terminal and day, as in the handbook."""
    days: int = 60
    start: datetime = datetime(2026, 9, 1, tzinfo=UTC)
    """Midnight UTC of day 0; times of day are offsets from it."""

    # Customers and terminals (handbook values unless noted).
    radius: float = 5.0
    """A customer uses the on-grid terminals within this distance of home."""
    mean_amount_range: tuple[float, float] = (5.0, 100.0)
    """A customer's mean amount (EUR) ~ U(range); its standard deviation is half of it."""
    tx_per_day_range: tuple[float, float] = (0.0, 4.0)
    """A customer's mean number of transactions per day ~ U(range)."""
    online_terminal_share: float = 0.15
    """Share of terminals that are online merchants (e-commerce)."""
    online_domestic_share: float = 0.5
    """Share of online merchants in their region's country; the others are in e-commerce hubs."""
    border_radius_factor: float = 0.5
    """A customer uses physical terminals of another country only within this fraction of
    ``radius``: people shop across a border only when it is close."""
    foreign_terminal_share: float = 0.03
    """Share of terminals in far-away countries (at least one per country)."""

    # Rhythms.
    time_of_day_mean_s: float = 43_200.0
    time_of_day_std_s: float = 20_000.0
    evening_share: float = 0.15
    """Share of transactions from an evening peak instead of the handbook's noon normal."""
    evening_mean_s: float = 70_200.0
    """19:30."""
    evening_std_s: float = 7_200.0
    weekend_volume_factor: float = 1.2
    """Transactions per day on Saturdays and Sundays, relative to weekdays."""
    weekend_in_person_boost: float = 1.5
    """Weight multiplier of card-present and contactless in a terminal's mix at weekends."""
    travel_events_per_day: float = 1.0
    """Poisson rate of customers paying, legitimately, 1-4 times in a far-away country a day."""

    # Fraud scenarios.
    amount_threshold: float = 220.0
    """Scenario 1: every transaction above this (EUR) is fraud (handbook)."""
    compromised_terminals_per_day: float = 0.5
    """Scenario 2: terminals compromised a day (handbook: 2 of 10 000 terminals).

    A fractional rate is spread evenly: day ``d`` gets ``floor((d+1)r) - floor(dr)``.
    """
    compromised_terminal_days: int = 28
    compromised_customers_per_day: float = 1.0
    """Scenario 3: customers compromised a day (handbook: 3 of 5000); may be fractional."""
    compromised_customer_days: int = 14
    compromised_customer_fraction: float = 1 / 3
    compromised_amount_factor: float = 5.0
    card_testing_bursts_per_day: float = 0.3
    """Scenario 4: Poisson rate of card-testing bursts a day."""
    card_testing_burst_size: tuple[int, int] = (5, 15)
    """Inclusive range of the number of payments of one burst."""
    card_testing_amount_range: tuple[float, float] = (0.5, 3.0)
    """Major units of the terminal's currency."""
    card_testing_gap_mean_s: float = 30.0
    """Mean of the exponential gap between the payments of a burst (plus one second)."""
    cross_border_events_per_day: float = 1.0
    """Scenario 5: Poisson rate of cards turning up in a far-away country a day."""
    cross_border_tx_range: tuple[int, int] = (1, 3)
    cross_border_amount_factor: tuple[float, float] = (3.0, 8.0)
    """Amount = the customer's mean amount x U(range)."""

    # Labels.
    customer_confirmed_share: float = 0.35
    """Share of frauds confirmed by the customer; the others come back as chargebacks."""
    customer_confirmed_delay_median_h: float = 6.0
    customer_confirmed_delay_sigma: float = 0.8
    chargeback_delay_median_h: float = 72.0
    chargeback_delay_sigma: float = 0.6
    legit_label_fraction: float = 0.02
    """Share of legitimate transactions an analyst labels ``is_fraud=False``."""
    legit_label_delay_median_h: float = 24.0
    legit_label_delay_sigma: float = 0.5
    min_label_delay_s: int = 60

    def __post_init__(self) -> None:
        if not _TENANT_RE.match(self.tenant):
            raise ValueError(f"invalid tenant id {self.tenant!r}")
        if self.n_customers < 1 or self.days < 1:
            raise ValueError("n_customers and days must be >= 1")
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if not 0.0 <= self.online_terminal_share + self.foreign_terminal_share < 1.0:
            raise ValueError("online and foreign terminal shares must sum to less than 1")
        n_online, n_foreign = _terminal_kind_counts(self)
        if self.n_terminals - n_online - n_foreign < 1:
            raise ValueError(f"n_terminals={self.n_terminals} leaves no physical terminal")
        if self.radius <= 0:
            raise ValueError("radius must be > 0")
        low, high = self.card_testing_burst_size
        if not 1 <= low <= high:
            raise ValueError("card_testing_burst_size must be an increasing range of >= 1")
        low, high = self.cross_border_tx_range
        if not 1 <= low <= high:
            raise ValueError("cross_border_tx_range must be an increasing range of >= 1")
        for name in (
            "online_domestic_share",
            "border_radius_factor",
            "customer_confirmed_share",
            "legit_label_fraction",
            "evening_share",
            "compromised_customer_fraction",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class SimulatedTransaction:
    event: TransactionEvent
    is_fraud: bool
    scenario: str | None
    """``None`` for a legitimate transaction, else one of ``SCENARIOS``."""


@dataclass(frozen=True, slots=True)
class Simulation:
    config: SimulatorConfig
    transactions: tuple[SimulatedTransaction, ...]
    """Sorted by ``event.timestamp``; transaction ids are unique and numbered in that order."""
    labels: tuple[LabelEvent, ...]
    """Sorted by ``labelled_at``."""

    def fraud_rate(self) -> float:
        if not self.transactions:
            return 0.0
        return sum(t.is_fraud for t in self.transactions) / len(self.transactions)

    def scenario_counts(self) -> dict[str, int]:
        """Number of fraudulent transactions per scenario (every scenario, zeros included)."""
        counts = dict.fromkeys(SCENARIOS, 0)
        for t in self.transactions:
            if t.scenario is not None:
                counts[t.scenario] += 1
        return counts


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


def _terminal_kind_counts(config: SimulatorConfig) -> tuple[int, int]:
    n_online = max(1, round(config.online_terminal_share * config.n_terminals))
    n_foreign = max(len(_FAR_AWAY), round(config.foreign_terminal_share * config.n_terminals))
    return n_online, n_foreign


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


def _lognormal_seconds(
    rng: np.random.Generator, size: int, median_h: float, sigma: float, minimum: int
) -> _I64:
    delay = rng.lognormal(np.log(median_h * 3600.0), sigma, size)
    return np.maximum(np.rint(delay), minimum).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Public API


def simulate(config: SimulatorConfig) -> Simulation:
    """Simulate ``config.days`` days of transactions and their delayed labels."""
    rng = np.random.default_rng(config.seed)
    terminals = _make_terminals(config, rng)
    customers = _make_customers(config, rng, terminals)
    weekend = _weekend_days(config)
    batch = _concat(
        [
            _regular(config, rng, customers, terminals, weekend),
            _travel(config, rng, customers, terminals, weekend),
            _card_testing(config, rng, terminals),
            _cross_border(config, rng, customers, terminals, weekend),
        ]
    )
    code = _apply_scenarios(config, rng, batch, terminals)

    order = np.argsort(batch.second, kind="stable")
    customer, terminal = batch.customer[order], batch.terminal[order]
    second, code, channel = batch.second[order], code[order], batch.channel[order]
    amount_minor = np.maximum(
        1, np.rint(batch.amount_eur[order] * terminals.fx[terminal] * 100.0)
    ).astype(np.int64)

    start = config.start.astimezone(UTC)
    account_ids = [f"acc-{c:06d}" for c in range(config.n_customers)]
    merchant_ids = [f"term-{t:05d}" for t in range(config.n_terminals)]
    tenant = config.tenant
    transactions: list[SimulatedTransaction] = []
    for n, (c, t, s, a, ch, sc) in enumerate(
        zip(
            customer.tolist(),
            terminal.tolist(),
            second.tolist(),
            amount_minor.tolist(),
            channel.tolist(),
            code.tolist(),
            strict=True,
        )
    ):
        event = TransactionEvent.model_validate(
            {
                "transaction_id": f"{tenant}-tx-{n:09d}",
                "tenant_id": tenant,
                "account_id": account_ids[c],
                "merchant_id": merchant_ids[t],
                "amount_minor": a,
                "currency": terminals.currency[t],
                "timestamp": start + timedelta(seconds=s),
                "channel": _CHANNELS[ch],
                "country": terminals.country[t],
                "mcc": terminals.mcc[t],
                "card_country": customers.country[c],
            }
        )
        transactions.append(SimulatedTransaction(event, sc != 0, SCENARIOS[sc - 1] if sc else None))

    labels = _labels(config, rng, transactions, second, code)
    return Simulation(config=config, transactions=tuple(transactions), labels=labels)


def _labels(
    config: SimulatorConfig,
    rng: np.random.Generator,
    transactions: Sequence[SimulatedTransaction],
    second: _I64,
    code: _I64,
) -> tuple[LabelEvent, ...]:
    fraud = np.flatnonzero(code != 0)
    confirmed = rng.random(fraud.size) < config.customer_confirmed_share
    fraud_delay = np.where(
        confirmed,
        _lognormal_seconds(
            rng,
            fraud.size,
            config.customer_confirmed_delay_median_h,
            config.customer_confirmed_delay_sigma,
            config.min_label_delay_s,
        ),
        _lognormal_seconds(
            rng,
            fraud.size,
            config.chargeback_delay_median_h,
            config.chargeback_delay_sigma,
            config.min_label_delay_s,
        ),
    )
    legit = np.flatnonzero(code == 0)
    reviewed = legit[rng.random(legit.size) < config.legit_label_fraction]
    legit_delay = _lognormal_seconds(
        rng,
        reviewed.size,
        config.legit_label_delay_median_h,
        config.legit_label_delay_sigma,
        config.min_label_delay_s,
    )
    index = np.concatenate([fraud, reviewed])
    delay = np.concatenate([fraud_delay, legit_delay])
    source = np.concatenate(
        [np.where(confirmed, 1, 0), np.full(reviewed.size, 2)]
    )  # 0 chargeback, 1 customer confirmed, 2 analyst
    order = np.lexsort((index, second[index] + delay))
    sources = (LabelSource.CHARGEBACK, LabelSource.CUSTOMER_CONFIRMED, LabelSource.ANALYST)
    labels: list[LabelEvent] = []
    for i, d, s in zip(
        index[order].tolist(), delay[order].tolist(), source[order].tolist(), strict=True
    ):
        tx = transactions[i]
        labels.append(
            LabelEvent.model_validate(
                {
                    "transaction_id": tx.event.transaction_id,
                    "tenant_id": tx.event.tenant_id,
                    "account_id": tx.event.account_id,
                    "merchant_id": tx.event.merchant_id,
                    "is_fraud": tx.is_fraud,
                    "source": sources[s],
                    "transaction_time": tx.event.timestamp,
                    "labelled_at": tx.event.timestamp + timedelta(seconds=d),
                }
            )
        )
    return tuple(labels)


TRANSACTIONS_JSONL: Final = "transactions.jsonl"
LABELS_JSONL: Final = "labels.jsonl"
TRANSACTIONS_PARQUET: Final = "transactions.parquet"
LABELS_PARQUET: Final = "labels.parquet"


def write_jsonl(sim: Simulation, directory: Path) -> tuple[Path, Path]:
    """Write transactions.jsonl (one TransactionEvent JSON per line) and labels.jsonl."""
    directory.mkdir(parents=True, exist_ok=True)
    tx_path, label_path = directory / TRANSACTIONS_JSONL, directory / LABELS_JSONL
    with tx_path.open("w", encoding="utf-8", newline="\n") as out:
        out.writelines(t.event.model_dump_json() + "\n" for t in sim.transactions)
    with label_path.open("w", encoding="utf-8", newline="\n") as out:
        out.writelines(label.model_dump_json() + "\n" for label in sim.labels)
    return tx_path, label_path


def read_jsonl(directory: Path) -> tuple[list[TransactionEvent], list[LabelEvent]]:
    """The events written by ``write_jsonl``, validated."""
    with (directory / TRANSACTIONS_JSONL).open(encoding="utf-8") as lines:
        transactions = [
            TransactionEvent.model_validate_json(line) for line in lines if line.strip()
        ]
    with (directory / LABELS_JSONL).open(encoding="utf-8") as lines:
        labels = [LabelEvent.model_validate_json(line) for line in lines if line.strip()]
    return transactions, labels


_TS: Final = pa.timestamp("us", tz="UTC")
_TRANSACTION_SCHEMA: Final = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("tenant_id", pa.string()),
        ("account_id", pa.string()),
        ("merchant_id", pa.string()),
        ("amount_minor", pa.int64()),
        ("currency", pa.string()),
        ("timestamp", _TS),
        ("channel", pa.string()),
        ("country", pa.string()),
        ("mcc", pa.string()),
        ("card_country", pa.string()),
        ("is_fraud", pa.bool_()),
        ("scenario", pa.string()),
    ]
)
_LABEL_SCHEMA: Final = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("tenant_id", pa.string()),
        ("account_id", pa.string()),
        ("merchant_id", pa.string()),
        ("is_fraud", pa.bool_()),
        ("source", pa.string()),
        ("transaction_time", _TS),
        ("labelled_at", _TS),
    ]
)


def write_parquet(sim: Simulation, directory: Path) -> tuple[Path, Path]:
    """transactions.parquet (event columns plus ``is_fraud`` and ``scenario``) and labels.parquet.

    Columns are flat; timestamps are ``timestamp[us, tz=UTC]``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    events = [t.event for t in sim.transactions]
    tx_columns: dict[str, list[Any]] = {
        "transaction_id": [e.transaction_id for e in events],
        "tenant_id": [e.tenant_id for e in events],
        "account_id": [e.account_id for e in events],
        "merchant_id": [e.merchant_id for e in events],
        "amount_minor": [e.amount_minor for e in events],
        "currency": [e.currency for e in events],
        "timestamp": [e.timestamp for e in events],
        "channel": [e.channel.value for e in events],
        "country": [e.country for e in events],
        "mcc": [e.mcc for e in events],
        "card_country": [e.card_country for e in events],
        "is_fraud": [t.is_fraud for t in sim.transactions],
        "scenario": [t.scenario for t in sim.transactions],
    }
    label_columns: dict[str, list[Any]] = {
        "transaction_id": [label.transaction_id for label in sim.labels],
        "tenant_id": [label.tenant_id for label in sim.labels],
        "account_id": [label.account_id for label in sim.labels],
        "merchant_id": [label.merchant_id for label in sim.labels],
        "is_fraud": [label.is_fraud for label in sim.labels],
        "source": [label.source.value for label in sim.labels],
        "transaction_time": [label.transaction_time for label in sim.labels],
        "labelled_at": [label.labelled_at for label in sim.labels],
    }
    tx_path, label_path = directory / TRANSACTIONS_PARQUET, directory / LABELS_PARQUET
    pq.write_table(pa.table(tx_columns, schema=_TRANSACTION_SCHEMA), tx_path, compression="zstd")
    pq.write_table(pa.table(label_columns, schema=_LABEL_SCHEMA), label_path, compression="zstd")
    return tx_path, label_path


def read_parquet(
    directory: Path,
) -> tuple[list[SimulatedTransaction], list[LabelEvent]]:
    """The transactions (with their ground truth) and labels written by ``write_parquet``."""
    columns = _read_columns(directory / TRANSACTIONS_PARQUET)
    columns["channel"] = [Channel(c) for c in columns["channel"]]
    names = [n for n in columns if n not in {"is_fraud", "scenario"}]
    transactions = [
        SimulatedTransaction(
            TransactionEvent.model_validate(dict(zip(names, values, strict=True))),
            is_fraud,
            scenario,
        )
        for *values, is_fraud, scenario in zip(
            *(columns[n] for n in names), columns["is_fraud"], columns["scenario"], strict=True
        )
    ]
    columns = _read_columns(directory / LABELS_PARQUET)
    columns["source"] = [LabelSource(s) for s in columns["source"]]
    labels = [
        LabelEvent.model_validate(dict(zip(columns, values, strict=True)))
        for values in zip(*columns.values(), strict=True)
    ]
    return transactions, labels


def _read_columns(path: Path) -> dict[str, list[Any]]:
    table = pq.read_table(path)
    return {name: table.column(name).to_pylist() for name in table.column_names}
