"""A whole simulation (:mod:`producers.simulator`): the world, its transactions and frauds in time
order, and the delayed labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta

import numpy as np

from producers.simulator.config import SimulatorConfig
from producers.simulator.scenarios import _apply_scenarios, _card_testing, _cross_border
from producers.simulator.tables import _CHANNELS, _I64, SCENARIOS
from producers.simulator.traffic import _concat, _regular, _travel, _weekend_days
from producers.simulator.world import _make_customers, _make_terminals
from schemas.events import LabelEvent, LabelSource, TransactionEvent


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
