"""A simulation in files (:mod:`producers.simulator`): JSON Lines and Parquet, written and read
back."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from producers.simulator.simulation import SimulatedTransaction, Simulation
from schemas.events import Channel, LabelEvent, LabelSource, TransactionEvent

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
