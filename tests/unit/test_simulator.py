"""The fraud simulator: determinism, fraud rate and scenarios, rhythms, labels, file formats.

Two simulations are shared by the module: the default configuration (about 240 000 transactions,
~5 s), for the statistical properties the defaults are tuned for (fraud rate, every scenario,
rhythms), and a small one (300 customers x 30 days), for determinism and round trips. The fraud
scenarios compromise a fixed number of terminals and cards a day, so a small population has a
much higher fraud rate: the rate is checked on the default configuration only.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from producers.simulator import (
    SCENARIOS,
    Simulation,
    SimulatorConfig,
    read_jsonl,
    read_parquet,
    simulate,
    write_jsonl,
    write_parquet,
)
from schemas.events import Channel, LabelSource, TransactionEvent

SMALL = SimulatorConfig(seed=7, tenant="sim-test", n_customers=300, n_terminals=600, days=30)
_IN_PERSON = {Channel.CARD_PRESENT, Channel.CONTACTLESS}


@pytest.fixture(scope="module")
def default_sim() -> Simulation:
    return simulate(SimulatorConfig())


@pytest.fixture(scope="module")
def small_sim() -> Simulation:
    return simulate(SMALL)


def test_same_seed_gives_identical_output(small_sim: Simulation) -> None:
    again = simulate(SMALL)
    assert again.transactions == small_sim.transactions
    assert again.labels == small_sim.labels
    other = simulate(SimulatorConfig(seed=8, n_customers=300, n_terminals=600, days=30))
    assert [t.event.amount_minor for t in other.transactions[:100]] != [
        t.event.amount_minor for t in small_sim.transactions[:100]
    ]


def test_default_fraud_rate_is_realistic(default_sim: Simulation) -> None:
    assert len(default_sim.transactions) > 200_000
    assert 0.003 <= default_sim.fraud_rate() <= 0.01


def test_every_scenario_occurs_and_names_every_fraud(default_sim: Simulation) -> None:
    counts = default_sim.scenario_counts()
    assert set(counts) == set(SCENARIOS)
    assert all(n > 0 for n in counts.values()), counts
    for t in default_sim.transactions:
        assert t.is_fraud == (t.scenario is not None)
    assert sum(counts.values()) == sum(t.is_fraud for t in default_sim.transactions)


def test_transactions_are_valid_sorted_and_uniquely_numbered(small_sim: Simulation) -> None:
    events = [t.event for t in small_sim.transactions]
    assert [e.transaction_id for e in events] == [
        f"sim-test-tx-{n:09d}" for n in range(len(events))
    ]
    assert all(a.timestamp <= b.timestamp for a, b in pairwise(events))
    start = SMALL.start
    assert start <= events[0].timestamp
    assert all(e.tenant_id == "sim-test" for e in events)
    assert all(type(e.amount_minor) is int and e.amount_minor > 0 for e in events)
    assert all(re.fullmatch(r"acc-\d{6}", e.account_id) for e in events)
    assert all(re.fullmatch(r"term-\d{5}", e.merchant_id) for e in events)
    assert all(e.timestamp.utcoffset() == timedelta(0) for e in events)
    # A sample survives a full validation round trip.
    for e in events[::997]:
        assert TransactionEvent.model_validate(e.model_dump()) == e


def test_currency_follows_the_terminal_country(default_sim: Simulation) -> None:
    currencies: dict[str, set[str]] = {}
    for t in default_sim.transactions:
        currencies.setdefault(t.event.country, set()).add(t.event.currency)
    assert all(len(c) == 1 for c in currencies.values()), currencies
    assert currencies["DE"] == currencies["FR"] == {"EUR"}
    assert currencies["GB"] == {"GBP"}
    assert currencies["PL"] == {"PLN"}
    assert currencies["US"] == {"USD"}
    homes = Counter(t.event.card_country for t in default_sim.transactions)
    assert {c for c, _ in homes.most_common(5)} <= {"DE", "FR", "ES", "IT", "NL", "PL", "GB"}
    cross = sum(t.event.country != t.event.card_country for t in default_sim.transactions)
    assert 0.02 < cross / len(default_sim.transactions) < 0.25


def test_scenarios_have_their_signature(default_sim: Simulation) -> None:
    by_scenario: dict[str | None, list[TransactionEvent]] = {}
    for t in default_sim.transactions:
        by_scenario.setdefault(t.scenario, []).append(t.event)
    testing = by_scenario["card_testing"]
    assert all(e.channel is Channel.ECOMMERCE and e.amount_minor <= 300 for e in testing)
    crossing = by_scenario["cross_border"]
    assert all(e.country != e.card_country for e in crossing)
    assert all(e.country not in {"DE", "FR", "ES", "IT", "NL"} for e in crossing)
    assert all(
        e.amount_minor >= 22_000 for e in by_scenario["amount_threshold"] if e.currency == "EUR"
    )
    legit_mean = sum(e.amount_minor for e in by_scenario[None]) / len(by_scenario[None])
    card = [e.amount_minor for e in by_scenario["compromised_card"] if e.currency == "EUR"]
    assert sum(card) / len(card) > 3 * legit_mean


def test_labels_refer_to_transactions_and_come_later(default_sim: Simulation) -> None:
    by_id = {t.event.transaction_id: t for t in default_sim.transactions}
    labels = default_sim.labels
    assert all(a.labelled_at <= b.labelled_at for a, b in pairwise(labels))
    assert len({label.transaction_id for label in labels}) == len(labels)
    for label in labels:
        tx = by_id[label.transaction_id]
        assert label.is_fraud == tx.is_fraud
        assert label.transaction_time == tx.event.timestamp
        assert label.labelled_at > label.transaction_time
        assert (label.account_id, label.merchant_id) == (tx.event.account_id, tx.event.merchant_id)
        expected = (
            {LabelSource.ANALYST}
            if not tx.is_fraud
            else {
                LabelSource.CHARGEBACK,
                LabelSource.CUSTOMER_CONFIRMED,
            }
        )
        assert label.source in expected
    fraud_ids = {t.event.transaction_id for t in default_sim.transactions if t.is_fraud}
    assert fraud_ids == {label.transaction_id for label in labels if label.is_fraud}
    legit = len(default_sim.transactions) - len(fraud_ids)
    assert 0.015 < sum(not label.is_fraud for label in labels) / legit < 0.025


def test_label_delays_are_realistic(default_sim: Simulation) -> None:
    delays: dict[LabelSource, list[float]] = {}
    for label in default_sim.labels:
        hours = (label.labelled_at - label.transaction_time).total_seconds() / 3600
        delays.setdefault(label.source, []).append(hours)

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    assert 2 < median(delays[LabelSource.CUSTOMER_CONFIRMED]) < 12
    assert 48 < median(delays[LabelSource.CHARGEBACK]) < 96
    assert 16 < median(delays[LabelSource.ANALYST]) < 32


def test_daily_rhythm(default_sim: Simulation) -> None:
    hours = Counter(t.event.timestamp.hour for t in default_sim.transactions)
    assert hours[12] > 3 * hours[3]
    assert hours[12] > 4 * hours[0]
    assert min(hours[11], hours[12], hours[13]) > max(hours[h] for h in range(6))


def test_weekend_has_more_and_more_in_person_payments(default_sim: Simulation) -> None:
    per_day = Counter(t.event.timestamp.date() for t in default_sim.transactions)
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    ratio = (sum(weekend) / len(weekend)) / (sum(weekday) / len(weekday))
    assert 1.1 < ratio < 1.3

    def in_person_share(weekend: bool) -> float:
        channels = [
            t.event.channel
            for t in default_sim.transactions
            if (t.event.timestamp.weekday() >= 5) == weekend
        ]
        return sum(c in _IN_PERSON for c in channels) / len(channels)

    assert in_person_share(weekend=True) > in_person_share(weekend=False) + 0.02


def test_jsonl_round_trip(small_sim: Simulation, tmp_path: Path) -> None:
    tx_path, label_path = write_jsonl(small_sim, tmp_path)
    assert (tx_path.name, label_path.name) == ("transactions.jsonl", "labels.jsonl")
    lines = tx_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(small_sim.transactions)
    first = json.loads(lines[0])
    assert set(first) == set(TransactionEvent.model_fields)  # the event, nothing else
    transactions, labels = read_jsonl(tmp_path)
    assert transactions == [t.event for t in small_sim.transactions]
    assert labels == list(small_sim.labels)


def test_parquet_round_trip(small_sim: Simulation, tmp_path: Path) -> None:
    tx_path, label_path = write_parquet(small_sim, tmp_path)
    schema = pq.read_schema(tx_path)
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("amount_minor").type) == "int64"
    assert str(pq.read_schema(label_path).field("labelled_at").type) == "timestamp[us, tz=UTC]"
    transactions, labels = read_parquet(tmp_path)
    assert transactions == list(small_sim.transactions)
    assert labels == list(small_sim.labels)


def test_handbook_rates_raise_the_fraud_rate() -> None:
    base = SimulatorConfig(n_customers=200, n_terminals=400, days=20)
    handbook = SimulatorConfig(
        n_customers=200,
        n_terminals=400,
        days=20,
        compromised_terminals_per_day=2,
        compromised_customers_per_day=3,
    )
    base_counts = simulate(base).scenario_counts()
    handbook_counts = simulate(handbook).scenario_counts()
    assert handbook_counts["compromised_terminal"] > base_counts["compromised_terminal"]
    assert handbook_counts["compromised_card"] > base_counts["compromised_card"]


@pytest.mark.parametrize(
    "changes",
    [
        {"tenant": "Not A Tenant"},
        {"start": datetime(2026, 9, 1)},  # naive on purpose
        {"n_customers": 0},
        {"n_terminals": 5},
        {"card_testing_burst_size": (5, 2)},
        {"legit_label_fraction": 1.5},
    ],
)
def test_invalid_configs_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        SimulatorConfig(**changes)  # type: ignore[arg-type]


def test_start_in_another_timezone_is_normalised() -> None:
    cet = datetime(2026, 9, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    sim = simulate(SimulatorConfig(n_customers=20, n_terminals=100, days=2, start=cet))
    assert all(t.event.timestamp.tzinfo is UTC for t in sim.transactions[:10])
