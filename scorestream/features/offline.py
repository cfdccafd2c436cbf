"""The offline path: features of historical transactions, as the live pipeline serves them.

Replays history through the same :class:`~scorestream.features.engine.Engine` the enricher and
the merchant stage run:

* account features: each account's transactions in event-time order (ties in the given order,
  i.e. publish order), through :meth:`Engine.account_values`, duplicates counted once;
* merchant features: every transaction and fraud label of the merchant (a label counts from its
  ``labelled_at``), evaluated at each transaction's as-of: the one the enricher served (read back
  from the enriched event or the audit record) when given, else the spec's rule
  ``floor((t - lag) / step) * step`` — what a fresh merchant table serves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt

from schemas.events import LabelEvent, TransactionEvent
from scorestream.features.engine import Engine, MerchantState, id_hash

AsOf = datetime | int | None
"""A served as-of: a datetime, epoch milliseconds, or ``None`` (no merchant table)."""
RULE = object()
"""``as_of`` marker: apply the spec's rule (a fresh table)."""


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def merchant_states(
    engine: Engine, transactions: Iterable[TransactionEvent], labels: Iterable[LabelEvent]
) -> dict[str, MerchantState]:
    """Every merchant's complete history (no pruning: any as-of can be evaluated)."""
    step = engine.step_ms
    states: dict[str, MerchantState] = {}
    ordered = sorted(transactions, key=lambda tx: tx.timestamp)
    for tx in ordered:
        state = states.setdefault(tx.merchant_id, MerchantState())
        state.observe_transaction(
            _ms(tx.timestamp), id_hash(tx.transaction_id), step, engine.merchant_max_ids
        )
    for label in labels:
        if label.is_fraud:
            state = states.setdefault(label.merchant_id, MerchantState())
            state.observe_fraud(
                _ms(label.transaction_time),
                _ms(label.labelled_at),
                id_hash(label.transaction_id),
                step,
            )
    return states


def compute_offline(
    transactions: Iterable[TransactionEvent],
    labels: Iterable[LabelEvent] = (),
    *,
    as_of: Sequence[AsOf] | None = None,
    engine: Engine | None = None,
) -> npt.NDArray[np.float32]:
    """The feature matrix of ``transactions`` (rows in the given order).

    ``as_of``: per transaction, the merchant as-of the enricher served (``None`` = it had no
    merchant table); omitted: the spec's rule for every row."""
    from scorestream.features import ENGINE  # noqa: PLC0415  (the package's default engine)

    eng = engine or ENGINE
    txs = list(transactions)
    if as_of is not None and len(as_of) != len(txs):
        raise ValueError(f"{len(as_of)} as-of values for {len(txs)} transactions")
    merchants = merchant_states(eng, txs, labels)
    accounts: dict[str, object] = {}
    rows = np.empty((len(txs), len(eng.names)), dtype=np.float32)
    for i in sorted(range(len(txs)), key=lambda k: txs[k].timestamp):
        tx = txs[i]
        account = accounts.get(tx.account_id)
        if account is None:
            account = accounts[tx.account_id] = eng.new_account()
        acc, _ = eng.account_values(account, tx)  # type: ignore[arg-type]
        if as_of is None:
            a: int | None = eng.target_as_of_ms(_ms(tx.timestamp))
        else:
            given = as_of[i]
            a = _ms(given) if isinstance(given, datetime) else given
        mer = eng.merchant_values(merchants.get(tx.merchant_id), a)
        values = eng.assemble(eng.transform_values(tx), acc, mer)
        rows[i] = [values[name] for name in eng.names]
    return rows


def feature_dicts(
    transactions: Iterable[TransactionEvent],
    labels: Iterable[LabelEvent] = (),
    *,
    engine: Engine | None = None,
) -> list[dict[str, float]]:
    """:func:`compute_offline` as name → value mappings (what an enriched event carries)."""
    from scorestream.features import ENGINE  # noqa: PLC0415

    eng = engine or ENGINE
    rows = compute_offline(transactions, labels, engine=eng)
    return [dict(zip(eng.names, map(float, row), strict=True)) for row in rows]
