"""The enricher's replica of ``<tenant>.merchant-features`` (the GlobalKTable pattern: read
whole by every instance, followed between batches), looked up as of a time."""

from __future__ import annotations

import logging

from confluent_kafka import Message

from consumers.enricher.settings import CACHE_MAX, CLOCK_KEY, TABLE_AS_OF
from scorestream.features import (
    Engine,
    MerchantState,
)

log = logging.getLogger("scorestream.enricher")


# -- the merchant table ---------------------------------------------------------------------------
class MerchantTable:
    """Every merchant's latest aggregates and, per partition, the time up to which they are
    complete (the merchant stage's clock). Features are read as of
    ``min(the spec's target as-of, the table's closed time)``."""

    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine = engine
        self.states: dict[str, MerchantState] = {}
        self.clocks: dict[int, int] = {}
        self.partitions = 0
        self.bad_records = 0
        self._cache: dict[str, dict[int, dict[str, float]]] = {}
        """merchant → as-of → values (invalidated per merchant when its state changes)."""
        self._cached = 0
        self._as_of_gauge = TABLE_AS_OF.labels(tenant)

    def apply(self, msg: Message) -> None:
        key = (msg.key() or b"").decode(errors="replace")
        value = msg.value()
        if key == CLOCK_KEY:
            if value is not None:
                try:
                    as_of = int(value)
                except ValueError:
                    self.bad_records += 1
                    return
                p = msg.partition() or 0
                self.clocks[p] = max(as_of, self.clocks.get(p, as_of))
                closed = self.closed_ms()
                if closed is not None:
                    self._as_of_gauge.set(closed / 1000)
            return
        if value is None:
            self.states.pop(key, None)
        else:
            try:
                self.states[key] = MerchantState.from_bytes(value, self.engine.step_ms)
            except ValueError as exc:
                self.bad_records += 1  # the merchant's last good state stays
                log.warning("unreadable merchant table record %r: %s", key, exc)
                return
        dropped = self._cache.pop(key, None)
        if dropped:
            self._cached -= len(dropped)

    def closed_ms(self) -> int | None:
        """All merchant activity before this is in the table (None: not every partition has
        reported yet)."""
        if not self.partitions or len(self.clocks) < self.partitions:
            return None
        return min(self.clocks.values())

    def values(self, merchant: str, t_ms: int) -> tuple[dict[str, float], int | None]:
        closed = self.closed_ms()
        if closed is None:
            return self.engine.merchant_values(None, None), None
        as_of = min(self.engine.target_as_of_ms(t_ms), closed)
        per_merchant = self._cache.get(merchant)
        if per_merchant is None:
            per_merchant = self._cache[merchant] = {}
        cached = per_merchant.get(as_of)
        if cached is None:
            if self._cached >= CACHE_MAX:
                self._cache.clear()
                self._cached = 0
                per_merchant = self._cache[merchant] = {}
            cached = self.engine.merchant_values(self.states.get(merchant), as_of)
            per_merchant[as_of] = cached
            self._cached += 1
        return cached, as_of
