"""A small, seeded generator of valid transaction events (for the demo and for tests).

Deterministic for a seed. The realistic fraud simulator (customer and terminal profiles, daily
rhythm, fraud scenarios, delayed labels) builds on the same contract in ``producers.simulator``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from schemas.events import Channel, TransactionEvent

_COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "GB", "US", "PL")
_MCCS = ("5411", "5812", "5999", "4111", "5732", "7011", "6011", "5541")
_CHANNEL_WEIGHTS = (
    (Channel.CARD_PRESENT, 40),
    (Channel.CONTACTLESS, 25),
    (Channel.ECOMMERCE, 25),
    (Channel.MOBILE_WALLET, 7),
    (Channel.ATM, 3),
)


def generate_transactions(
    n: int,
    *,
    tenant: str,
    seed: int = 7,
    accounts: int = 50,
    merchants: int = 20,
    start: datetime | None = None,
) -> Iterator[TransactionEvent]:
    """Yield ``n`` valid transactions, one every ~2 s of event time, for ``tenant``."""
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)  # noqa: S311 (simulation, not cryptography)
    home = {f"acc-{i:05d}": rng.choice(_COUNTRIES[:5]) for i in range(accounts)}
    merchant_info = {
        f"mer-{i:04d}": (rng.choice(_COUNTRIES), rng.choice(_MCCS)) for i in range(merchants)
    }
    channels = [c for c, _ in _CHANNEL_WEIGHTS]
    weights = [w for _, w in _CHANNEL_WEIGHTS]
    when = start or datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    account_ids = list(home)
    merchant_ids = list(merchant_info)
    for i in range(n):
        when += timedelta(seconds=rng.expovariate(0.5))
        account = rng.choice(account_ids)
        merchant = rng.choice(merchant_ids)
        country, mcc = merchant_info[merchant]
        channel = rng.choices(channels, weights)[0]
        amount = max(1, round(rng.lognormvariate(3.3, 1.0) * 100))
        yield TransactionEvent(
            transaction_id=f"tx-{seed}-{i:08d}",
            tenant_id=tenant,
            account_id=account,
            merchant_id=merchant,
            amount_minor=amount,
            currency="GBP" if country == "GB" else "USD" if country == "US" else "EUR",
            timestamp=when,
            channel=channel,
            country=country,
            mcc=mcc,
            card_country=country if rng.random() < 0.9 else home[account],
        )
