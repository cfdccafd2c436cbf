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

Layout: :mod:`~producers.simulator.config` (:class:`SimulatorConfig`) and
:mod:`~producers.simulator.tables` (regions, currencies, MCCs, channel mixes) describe the world;
:mod:`~producers.simulator.world` draws its terminals and customers,
:mod:`~producers.simulator.traffic` their legitimate transactions,
:mod:`~producers.simulator.scenarios` the frauds; :mod:`~producers.simulator.simulation` runs it
all and adds the labels; :mod:`~producers.simulator.files` writes and reads JSON Lines and Parquet.
"""

from __future__ import annotations

from producers.simulator.config import SimulatorConfig
from producers.simulator.files import (
    LABELS_JSONL,
    LABELS_PARQUET,
    TRANSACTIONS_JSONL,
    TRANSACTIONS_PARQUET,
    read_jsonl,
    read_parquet,
    write_jsonl,
    write_parquet,
)
from producers.simulator.simulation import SimulatedTransaction, Simulation, simulate
from producers.simulator.tables import SCENARIOS

__all__ = [
    "LABELS_JSONL",
    "LABELS_PARQUET",
    "SCENARIOS",
    "TRANSACTIONS_JSONL",
    "TRANSACTIONS_PARQUET",
    "SimulatedTransaction",
    "Simulation",
    "SimulatorConfig",
    "read_jsonl",
    "read_parquet",
    "simulate",
    "write_jsonl",
    "write_parquet",
]
