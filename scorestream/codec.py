"""The batch codec: a consumed batch of CloudEvents records → envelopes and dead letters.

Every consuming service decodes through it (the processor's decode step). Per record, the common
case takes a fast path: the headers are read as bytes from librdkafka's list (no per-header text
conversion), the record's ``ce_time`` is parsed once per batch (a producer stamps a batch with
one time), the payload goes through the contract's generated fast decoder
(:mod:`schemas.fast`: msgspec in C plus the model's own validators, the result an instance of the
pydantic contract), and the envelope and raw record are built without a dataclass ``__init__``.

Anything unusual — a missing, empty or ``None`` header, another spec version or content type,
an unknown type, no ``ce_time``, a payload the fast decoder declines,
a key that is not the event's — takes the reference path, :func:`scorestream.serde.decode_message`
(pydantic), which accepts it or raises the very :class:`~schemas.errors.DecodeError` it always
raised. So a malformed record goes to the DLQ with the same reason and message as before, with its
raw bytes; the rest of the batch proceeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from confluent_kafka import Message

from schemas.cloudevents import (
    CONTENT_TYPE_B,
    SPEC_VERSION_B,
    TRACE_HEADERS,
    Envelope,
    new_envelope,
    parse_ce_time,
)
from schemas.errors import DecodeError, Headers, RawRecord, new_raw_record
from schemas.events import Contract
from schemas.fast import Decline, FastDecoder, fast_decoder
from scorestream.dlq import DeadLetter
from scorestream.serde import decode_message

_PLAIN_HEADERS = frozenset(
    {
        "ce_specversion",
        "ce_id",
        "ce_type",
        "ce_source",
        "ce_time",
        "content-type",
        "traceparent",
        "tracestate",
    }
)
"""The CloudEvents headers the fast path reads; ``ce_<name>`` others are extensions."""


class BatchDecoder:
    """Decodes batches for one consumer: the contracts it accepts, those whose key is checked."""

    def __init__(
        self,
        accept: Iterable[type[Contract]],
        *,
        keyed: Iterable[type[Contract]] = (),
        fast: bool = True,
    ) -> None:
        self.accept = tuple(accept)
        self.keyed = tuple(keyed)
        self._by_type: dict[bytes, tuple[type[Contract], FastDecoder[Any], bool]] = {}
        if fast:
            for contract in self.accept:
                dec = fast_decoder(contract)
                if dec is not None:
                    self._by_type[contract.ce_type.encode()] = (
                        contract,
                        dec,
                        contract in self.keyed,
                    )
        self._times: dict[bytes, datetime] = {}
        """``ce_time`` values parsed by :meth:`decode_one` (a few per producer batch; cleared
        when it grows past a thousand)."""
        self.fast_decoded = 0
        """Records decoded on the fast path (the rest took the reference path)."""
        self.reference_decoded = 0

    def decode(
        self, messages: Sequence[Message]
    ) -> tuple[list[Envelope[Any]], list[DeadLetter], list[int]]:
        """(envelopes, dead letters, the position in ``messages`` of each envelope)."""
        envelopes: list[Envelope[Any]] = []
        dead: list[DeadLetter] = []
        positions: list[int] = []
        by_type = self._by_type
        times: dict[bytes, datetime] = {}
        fast = 0
        for i, msg in enumerate(messages):
            env = self._fast(msg, by_type, times) if by_type else None
            if env is None:
                try:
                    env = decode_message(msg, accept=self.accept, keyed=self.keyed)
                except DecodeError as exc:
                    dead.append(DeadLetter.from_decode_error(exc))
                    continue
            else:
                fast += 1
            envelopes.append(env)
            positions.append(i)
        self.fast_decoded += fast
        self.reference_decoded += len(messages) - fast
        return envelopes, dead, positions

    def decode_one(self, msg: Message) -> Envelope[Any]:
        """One record (a consumer that handles records one by one): the envelope, or the
        :class:`~schemas.errors.DecodeError` the reference decoder raises."""
        if len(self._times) > 1000:
            self._times.clear()
        env = self._fast(msg, self._by_type, self._times) if self._by_type else None
        if env is not None:
            self.fast_decoded += 1
            return env
        self.reference_decoded += 1
        return decode_message(msg, accept=self.accept, keyed=self.keyed)

    @staticmethod
    def _fast(
        msg: Message,
        by_type: dict[bytes, tuple[type[Contract], FastDecoder[Any], bool]],
        times: dict[bytes, datetime],
    ) -> Envelope[Any] | None:
        """The envelope, or ``None`` when the record needs the reference path."""
        headers = cast("Headers | None", msg.headers())
        if not headers or not isinstance(headers, list):
            return None
        h = dict(headers)
        attrs = _attributes(h, by_type, times)
        value = msg.value()
        if attrs is None or not value:
            return None
        (contract, decoder, keyed), ce_id, source, time, trace, extensions = attrs
        try:
            event = decoder.decode(value)
        except Decline:
            return None
        key = msg.key()
        if keyed and key != event.partition_key().encode():
            return None
        raw = new_raw_record(key, value, headers, msg.topic(), msg.partition(), msg.offset())
        return new_envelope(event, ce_id, source, time, contract.ce_type, trace, extensions, raw)


_Attributes = tuple[
    tuple[type[Contract], FastDecoder[Any], bool],
    str,
    str,
    datetime,
    dict[str, str],
    dict[str, str],
]


_SOURCES: dict[bytes, str] = {}
"""``ce_source`` values read (a handful of producers), as text."""


def _extensions(h: dict[str, bytes | None]) -> dict[str, str] | None:
    """The CloudEvents extensions as the reference reads them: ``ce_<lower-case alphanumeric>``
    headers other than the core attributes (plain headers here); other headers are not the
    event's. ``None`` when one is ``None`` (the reference skips it: an earlier value may stand)."""
    extensions: dict[str, str] = {}
    for name, value in h.items():
        if name.startswith("ce_") and name not in _PLAIN_HEADERS:
            ext = name[3:]
            if ext.isalnum() and ext.islower():
                if value is None:
                    return None
                extensions[ext] = value.decode("utf-8", "replace")
    return extensions


def _attributes(
    h: dict[str, bytes | None],
    by_type: dict[bytes, tuple[type[Contract], FastDecoder[Any], bool]],
    times: dict[bytes, datetime],
) -> _Attributes | None:
    """(contract, id, source, time, trace, extensions) from headers the fast path understands,
    else None."""
    if h.get("ce_specversion") != SPEC_VERSION_B:
        return None
    extensions = {} if _PLAIN_HEADERS.issuperset(h) else _extensions(h)
    if extensions is None:
        return None
    if h.get("content-type", CONTENT_TYPE_B) != CONTENT_TYPE_B:
        return None
    found = by_type.get(h.get("ce_type") or b"")
    ce_id = h.get("ce_id")
    source = h.get("ce_source")
    ce_time = h.get("ce_time")
    if found is None or not ce_id or not source or not ce_time:
        return None
    time = times.get(ce_time)
    if time is None:
        try:
            time = parse_ce_time(ce_time)
        except ValueError:
            return None
        times[ce_time] = time
    trace: dict[str, str] = {}
    for name in TRACE_HEADERS:
        if name in h:
            carried = h[name]
            if carried is None:  # the reference reader skips None values: let it decide
                return None
            trace[name] = carried.decode("utf-8", "replace")
    source_text = _SOURCES.get(source)
    if source_text is None:
        if len(_SOURCES) > 1000:
            _SOURCES.clear()
        source_text = _SOURCES[source] = source.decode("utf-8", "replace")
    return found, ce_id.decode("utf-8", "replace"), source_text, time, trace, extensions


def decode_raw_batch(
    raws: Sequence[RawRecord], decoder: BatchDecoder
) -> tuple[list[Envelope[Any]], list[DeadLetter]]:
    """:meth:`BatchDecoder.decode` of records already read (tools, tests, benchmarks)."""
    envelopes, dead, _ = decoder.decode([_RawMessage(r) for r in raws])  # type: ignore[misc]
    return envelopes, dead


class _RawMessage:
    """The accessors of a consumed message, over a :class:`RawRecord`."""

    __slots__ = ("_r",)

    def __init__(self, raw: RawRecord) -> None:
        self._r = raw

    def key(self) -> bytes | None:
        return self._r.key

    def value(self) -> bytes | None:
        return self._r.value

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._r.headers

    def topic(self) -> str | None:
        return self._r.topic

    def partition(self) -> int | None:
        return self._r.partition

    def offset(self) -> int | None:
        return self._r.offset


__all__ = ["BatchDecoder", "decode_raw_batch"]
