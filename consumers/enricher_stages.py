"""The enricher's stages as pure functions: decode, account stage, merchant stage, output.

The Quix Streams topology in :mod:`consumers.enricher` only wires these together and keeps
their state in its keyed stores; everything that decides a feature value or a record's bytes is
here, testable without Kafka. Records travel between the stages as JSON-serialisable dicts
(they cross a repartition topic), and each stage's state is the JSON form of the per-key part of
:class:`scorestream.features.FeatureState` (:class:`~scorestream.features.AccountWindows`,
:class:`~scorestream.features.MerchantWindows`), so the arithmetic is the training path's.

Record kinds (``kind``): ``"tx"`` — a transaction with its raw payload, the fields the windows
need and what its output carries on (trace context, CloudEvents extensions); ``"label"`` — a
fraud label reduced to what the merchant windows need. Records that cannot be processed become
an :class:`Outgoing` dead letter for the input's DLQ instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.cloudevents import decode as decode_record
from schemas.cloudevents import encode
from schemas.errors import DecodeError, RawRecord
from schemas.events import EnrichedTransaction, LabelEvent, TransactionEvent
from scorestream.dlq import DeadLetter
from scorestream.features import (
    FEATURE_SPEC,
    MAX_WINDOW_S,
    AccountWindows,
    MerchantWindows,
    stateless_features,
)

Record = dict[str, Any]
"""A JSON-serialisable record between stages."""
Json = dict[str, Any]

SOURCE = "scorestream/enricher"
"""The CloudEvents source of enriched records (``scorestream/<service>`` like every service)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A record to produce as is: key, value and headers, bytes decided here."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]]
    reason: str | None = None
    """For dead letters: the ``dlq.reason`` (metrics label)."""


def dead_letter(letter: DeadLetter, service: str) -> Outgoing:
    """The DLQ record: original key, value and headers plus the ``dlq.*`` headers."""
    return Outgoing(letter.raw.key, letter.raw.value, letter.headers(service), letter.reason)


def raw_record(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, str | bytes | None]] | None,
    *,
    topic: str,
    partition: int,
    offset: int,
) -> RawRecord:
    """The consumed record as :func:`scorestream.serde.raw_from_message` would copy it."""
    return RawRecord(
        key=key,
        value=value,
        headers=[(k, v.encode() if isinstance(v, str) else v) for k, v in headers or ()],
        topic=topic,
        partition=partition,
        offset=offset,
    )


def decode_input(
    raw: RawRecord, *, tenant: str, accept: type[TransactionEvent] | type[LabelEvent]
) -> Record | DeadLetter:
    """Decode one input record into a stage record, or the reason it goes to the DLQ.

    Transactions must be keyed by their account (the contract's key): the account stage keeps
    its windows per Kafka key, so a record keyed otherwise would land in another account's
    state; it is refused (``key_mismatch``) rather than given wrong features.
    """
    try:
        env = decode_record(raw, [accept])
    except DecodeError as exc:
        return DeadLetter.from_decode_error(exc)
    event = env.event
    if event.tenant_id != tenant:
        return DeadLetter(
            raw,
            "unknown_tenant",
            "TenantMismatch",
            f"tenant {event.tenant_id!r} on a topic of tenant {tenant!r}",
        )
    if isinstance(event, LabelEvent):
        return {
            "kind": "label",
            "merchant": event.merchant_id,
            "tx_id": event.transaction_id,
            "is_fraud": event.is_fraud,
            "tx_time": event.transaction_time.timestamp(),
            "known_at": event.labelled_at.timestamp(),
        }
    if raw.key != event.account_id.encode():
        return DeadLetter(
            raw,
            "key_mismatch",
            "KeyMismatch",
            f"key {raw.key!r} is not the account id {event.account_id!r}",
        )
    payload = raw.value or b""  # decoded, so there was a payload
    return {
        "kind": "tx",
        "account": event.account_id,
        "merchant": event.merchant_id,
        "ts": event.timestamp.timestamp(),
        "amount": event.amount_minor / 100.0,
        "payload": payload.decode(),
        "trace": env.trace,
        # the transaction's own ce_time travels on, so the audit can measure the enrich hop
        "ext": {**env.extensions, "ingesttime": env.time.isoformat()},
    }


def _tx(record: Record) -> TransactionEvent:
    return TransactionEvent.model_validate_json(record["payload"])


def account_stage(record: Record, state: Json | None) -> tuple[Record, Json]:
    """Stage 1, keyed by account: the account features of a transaction; the new state."""
    windows = AccountWindows.from_json(state)
    record = {**record, "acc": windows.features_at(record["ts"], record["amount"])}
    return record, windows.to_json()


def merchant_stage(
    record: Record, state: Json | None, labelled: dict[str, float] | None
) -> tuple[Record | None, Json | None, dict[str, float] | None]:
    """Stage 2, keyed by merchant: a label updates the windows (no output), a transaction gets
    its merchant features. Returns the record (or None), then the new windows and labelled ids,
    each None when unchanged (no store write, no changelog record).

    ``labelled`` maps each counted fraud's transaction id to its transaction time, so a
    redelivered label counts once; ids older than the largest window are forgotten (a label
    that old could not count anyway: the windows prune it before counting).
    """
    seen = labelled or {}
    if record["kind"] == "label":
        if not record["is_fraud"] or record["tx_id"] in seen:
            return None, None, None
        windows = MerchantWindows.from_json(state)
        windows.observe_fraud_at(record["tx_time"], record["known_at"])
        return None, windows.to_json(), {**seen, record["tx_id"]: record["tx_time"]}
    windows = MerchantWindows.from_json(state)
    merchant = windows.features_at(record["ts"])
    horizon = record["ts"] - MAX_WINDOW_S
    kept = {tx_id: t for tx_id, t in seen.items() if t > horizon}
    return {**record, "mer": merchant}, windows.to_json(), (kept if len(kept) < len(seen) else None)


def enriched_output(record: Record, *, now: datetime | None = None) -> Outgoing:
    """The ``transactions.enriched`` record: the contract, keyed by account, as a binary-mode
    CloudEvent with the input's trace context and extensions (incl. ``ingesttime``)."""
    tx = _tx(record)
    features = stateless_features(tx) | record["acc"] | record["mer"]
    enriched = EnrichedTransaction(
        transaction=tx,
        features=features,
        feature_spec_hash=FEATURE_SPEC.hash,
        enriched_at=now or datetime.now(UTC),
    )
    message = encode(enriched, source=SOURCE, trace=record["trace"], extensions=record["ext"])
    return Outgoing(message.key, message.value, list(message.headers))


def with_sequence(record: Record, next_seq: int | None) -> tuple[Record, int]:
    """Stage 1, keyed by account: number the account's transactions 0, 1, 2, … in input order
    (its partition order = publish order); returns the record with ``seq`` and the next number.

    Only transactions that reach stage 1 are numbered — dead letters are split off before it —
    so every number is followed by exactly one record reaching the reorder stage, which
    therefore never waits for a number that will not come."""
    seq = next_seq or 0
    return {**record, "seq": seq}, seq + 1


def reorder_stage(
    record: Record, expected: int | None, pending: dict[str, Record] | None
) -> tuple[list[Record], int | None, dict[str, Record] | None]:
    """Stage 3, keyed by account: emit an account's records strictly in ``seq`` order.

    The merchant stage writes each record when its merchant's partition is processed, so a
    later record of an account can arrive here before an earlier one; it is held in ``pending``
    (by its seq, as a JSON key) until every earlier one has been emitted. Returns the records to
    emit now (0..n, in order), then the new expected seq and pending map, each None when
    unchanged (no store write). A record without ``seq`` (written by an enricher version before
    numbering, still in flight in the repartition topic) passes straight through. A seq below
    ``expected`` was already emitted: under exactly-once it cannot occur, and it is dropped
    rather than emitted twice.
    """
    if "seq" not in record:
        return [record], None, None
    nxt = expected or 0
    seq = int(record["seq"])
    held = pending or {}
    if seq < nxt or str(seq) in held:
        return [], None, None
    if seq > nxt:
        return [], None, {**held, str(seq): record}
    out = [record]
    nxt += 1
    rest = dict(held)
    while rest and str(nxt) in rest:
        out.append(rest.pop(str(nxt)))
        nxt += 1
    return out, nxt, (rest if len(rest) < len(held) else None)


def sampled(trace: dict[str, str] | None) -> bool:
    """Whether the input's trace may be recorded: not a ``traceparent`` whose sampled flag is
    off (nobody records such a trace, so the enricher only passes its context on and spends no
    span work on it — the processor's rule). No context at all: a new trace, the sampler
    decides."""
    tp = (trace or {}).get("traceparent")
    if not tp or len(tp) != 55:
        return True
    try:
        return bool(int(tp[53:], 16) & 1)
    except ValueError:
        return True
