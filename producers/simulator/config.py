"""Every parameter of a simulation (:mod:`producers.simulator`), checked on creation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from producers.simulator.tables import _FAR_AWAY

_TENANT_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


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


def _terminal_kind_counts(config: SimulatorConfig) -> tuple[int, int]:
    n_online = max(1, round(config.online_terminal_share * config.n_terminals))
    n_foreign = max(len(_FAR_AWAY), round(config.foreign_terminal_share * config.n_terminals))
    return n_online, n_foreign
