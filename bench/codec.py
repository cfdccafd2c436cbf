"""The contracts' codec alone, one core, no broker: what every hop pays per event for JSON.

What the worker does per event whatever the model: decode an ``EnrichedTransaction`` CloudEvent
(headers + payload) and encode a ``PredictionEvent`` CloudEvent. Measured side by side, in one
process, on the same records (real CloudEvents made by the tests' generator), each figure the
best of ``passes`` passes of CPU time (``time.thread_time``: other processes on the machine do
not count, their cache pressure does):

* ``paths``: the two complete paths —
  ``pydantic`` (the reference: ``scorestream.serde.decode_message`` per record, pydantic's
  ``model_validate_json``, and ``encode`` writing ``model_dump_json``) and
  ``fast`` (what the services run: the kernel's batch codec ``scorestream.codec.BatchDecoder``
  over the batch, and the processor's ``encode_many`` writing with ``schemas.fast.dump_json``);
* ``candidates``: payload decode alone with each candidate considered for the fast path
  (pydantic per record; one pydantic ``TypeAdapter(list[...])`` call per batch; orjson +
  ``TypeAdapter.validate_python``; a msgspec struct with the structure only — a floor, it skips
  the patterns and validators the contract requires; ``schemas.fast``, the chosen one), and
  payload encode alone (pydantic, orjson, msgspec).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import msgspec
import orjson
from pydantic import TypeAdapter

from bench import data as bd
from schemas.cloudevents import encode, encode_many, utc_time
from schemas.events import EnrichedTransaction, PredictionEvent
from schemas.fast import _GEN, dump_json, fast_decoder, reset_memos
from scorestream.codec import BatchDecoder
from scorestream.serde import decode_message

BATCH = 500
"""Records per batch handed to the batch codec (the worker's default ``max_batch``)."""


class RawMessage:
    """The accessors of a consumed message over preloaded bytes (no broker needed)."""

    __slots__ = ("_h", "_k", "_o", "_v")

    def __init__(self, p: bd.Payload, offset: int) -> None:
        self._k, self._v, self._o = p.key, p.value, offset
        self._h = [(k, v.encode() if isinstance(v, str) else v) for k, v in p.headers]

    def key(self) -> bytes:
        return self._k

    def value(self) -> bytes:
        return self._v

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._h

    def topic(self) -> str:
        return "bench"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:

        return (1, 1_764_000_000_000)  # TIMESTAMP_CREATE_TIME, a fixed time

    def error(self) -> None:
        return None


def _best_us(fn: Callable[[], object], n: int, passes: int, seconds: float) -> float:
    """µs of CPU per item: the best of ``passes`` passes, each repeating ``fn`` (``n`` items)
    for at least ``seconds``."""
    best = float("inf")
    for _ in range(passes):
        t0, reps = time.thread_time(), 0
        while True:
            fn()
            reps += 1
            spent = time.thread_time() - t0
            if spent >= seconds:
                break
        best = min(best, spent / (reps * n) * 1e6)
    return round(best, 3)


def _predictions(messages: Sequence[RawMessage]) -> list[tuple[PredictionEvent, dict[str, str]]]:
    """A prediction per record, as the worker builds them (trusted, from the decoded event)."""
    decoder = BatchDecoder([EnrichedTransaction], keyed=[EnrichedTransaction])
    envelopes, _, _ = decoder.decode(cast("Any", messages))
    now = utc_time()
    out = []
    for env in envelopes:
        tx = env.event.transaction
        event = PredictionEvent.model_validate(
            {
                "transaction_id": tx.transaction_id,
                "tenant_id": tx.tenant_id,
                "account_id": tx.account_id,
                "score": 0.125,
                "model_name": bd.MODEL_NAME,
                "model_version": "1",
                "model_sha256": "0" * 64,
                "feature_spec_hash": env.event.feature_spec_hash,
                "event_time": tx.timestamp,
                "predicted_at": now,
                "timings": {"queue_ms": 1.5, "inference_ms": 0.25, "batch_size": BATCH},
            }
        )
        out.append((event, env.trace))
    return out


def _batches(messages: Sequence[RawMessage]) -> list[Sequence[RawMessage]]:
    return [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]


def run(payloads: Sequence[bd.Payload], *, seconds: float, passes: int = 3) -> dict[str, Any]:
    """Every figure of this module (see its docstring), µs per event and events/s per core."""
    messages = [RawMessage(p, i) for i, p in enumerate(payloads)]
    n = len(messages)
    batches = _batches(messages)
    preds = _predictions(messages)
    values = [m.value() for m in messages]
    source = bd.WORKER_SOURCE
    accept = [EnrichedTransaction]
    fast_batch = BatchDecoder(accept, keyed=accept)

    def fast_decode() -> None:
        reset_memos()  # each pass meets the records' values for the first time, as a stream does
        for b in batches:
            fast_batch.decode(cast("Any", b))

    def pydantic_decode() -> None:
        for m in messages:
            decode_message(cast("Any", m), accept=accept, keyed=accept)

    def pydantic_encode() -> None:
        when = utc_time()
        for event, trace in preds:
            encode(
                event,
                source=source,
                time=when,
                trace=trace,
                value=event.model_dump_json().encode(),
            )

    def fast_encode() -> None:
        encode_many(((e, t, None, None) for e, t in preds), source=source, time=utc_time())

    per = {"seconds": seconds / 16, "passes": passes}
    # as a service does at start-up (scorestream.processor.freeze_startup_heap): the records and
    # outputs prepared above are not garbage the collector should walk at every collection
    gc.collect()
    gc.freeze()
    paths: dict[str, dict[str, float]] = {}
    for name, dec, enc in (
        ("pydantic", pydantic_decode, pydantic_encode),
        ("fast", fast_decode, fast_encode),
    ):
        d = _best_us(dec, n, passes, per["seconds"])
        e = _best_us(enc, n, passes, per["seconds"])
        paths[name] = {
            "decode_us_per_event": d,
            "encode_us_per_event": e,
            "events_per_s_one_core": round(1e6 / (d + e), 1),
        }
    if fast_batch.reference_decoded:
        raise RuntimeError("codec bench: records left the fast path")
    try:
        candidates = _candidates(values, [p for p, _ in preds], per)
    finally:
        gc.unfreeze()
    return {
        "events": n,
        "batch": BATCH,
        "timer": "time.thread_time (CPU of this thread), best of passes",
        "gc": "collected and frozen after the set-up, as the services do at start-up",
        "paths": paths,
        "speedup": round(
            paths["fast"]["events_per_s_one_core"] / paths["pydantic"]["events_per_s_one_core"],
            2,
        ),
        "candidates": candidates,
    }


def _candidates(
    values: list[bytes], events: list[PredictionEvent], per: dict[str, float]
) -> dict[str, dict[str, float]]:
    model = EnrichedTransaction
    adapter = TypeAdapter(list[EnrichedTransaction])
    fast = fast_decoder(model)
    if fast is None:
        raise RuntimeError("no fast path for EnrichedTransaction")
    floor = msgspec.json.Decoder(_structure_only(model)).decode
    joined = [b"[" + b",".join(values[i : i + BATCH]) + b"]" for i in range(0, len(values), BATCH)]
    decode_candidates: dict[str, Callable[[], object]] = {
        "pydantic model_validate_json per record": lambda: [
            model.model_validate_json(v) for v in values
        ],
        "pydantic TypeAdapter(list) per batch (unsafe: one bad record fails the batch)": lambda: [
            adapter.validate_json(j) for j in joined
        ],
        "orjson + TypeAdapter.validate_python per batch (lax: not the contract's rules)": lambda: [
            adapter.validate_python([orjson.loads(v) for v in values[i : i + BATCH]], strict=False)
            for i in range(0, len(values), BATCH)
        ],
        "msgspec struct, structure only (floor: no patterns, no validators)": lambda: [
            floor(v) for v in values
        ],
        "schemas.fast (msgspec + the contract's validators → pydantic instance)": lambda: [
            fast.decode(v) for v in _fresh(values)
        ],
    }
    encode_candidates: dict[str, Callable[[], object]] = {
        "pydantic model_dump_json": lambda: [e.model_dump_json() for e in events],
        "orjson.dumps(__dict__)": lambda: [
            orjson.dumps(e.__dict__, default=_orjson_default) for e in events
        ],
        "schemas.fast.dump_json (msgspec)": lambda: [dump_json(e) for e in events],
    }
    out: dict[str, dict[str, float]] = {"decode_us_per_event": {}, "encode_us_per_event": {}}
    for name, fn in decode_candidates.items():
        out["decode_us_per_event"][name] = _best_us(
            fn, len(values), int(per["passes"]), per["seconds"]
        )
    for name, fn in encode_candidates.items():
        out["encode_us_per_event"][name] = _best_us(
            fn, len(events), int(per["passes"]), per["seconds"]
        )
    return out


def _fresh(values: list[bytes]) -> list[bytes]:
    """``values``, with the fast path's memos forgotten (see ``reset_memos``)."""
    reset_memos()
    return values


def _orjson_default(obj: object) -> object:
    if hasattr(obj, "__dict__"):
        return obj.__dict__
    raise TypeError(type(obj).__name__)


def _structure_only(model: type[EnrichedTransaction]) -> Any:
    """The generated struct's shape without what runs in Python (the floor of any decoder)."""
    fast_decoder(model)
    return _GEN.structs[model]
