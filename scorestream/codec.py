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

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any, NamedTuple, cast

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE, Message

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
from scorestream.serde import decode_message, timestamp_ms

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
        attrs = _attributes(headers, by_type, times)
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
        raw = new_raw_record(
            key, value, headers, msg.topic(), msg.partition(), msg.offset(), timestamp_ms(msg)
        )
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

_REQUIRED = ("ce_specversion", "ce_type", "ce_id", "ce_source", "ce_time")


class _Layout(NamedTuple):
    """How to read the headers of one layout (the header names a producer writes, in order):
    which values the fast path reads and which headers are extensions. Computed once per
    layout."""

    take: Callable[[Mapping[str, bytes | None]], tuple[bytes | None, ...]]
    """Values: the five required attributes, then ``content-type`` when present, then the trace
    headers present, then the extensions."""
    content_type: bool
    trace: tuple[str, ...]
    extensions: tuple[str, ...]


def _layout(names: tuple[str, ...]) -> _Layout | None:
    """The plan for headers with these (distinct) names, or None: the reference decides."""
    if not all(isinstance(n, str) for n in names):
        return None
    if any(name not in names for name in _REQUIRED):
        return None
    trace = tuple(n for n in TRACE_HEADERS if n in names)
    # extensions as the reference reads them: ce_<lower-case alphanumeric> other than the core
    # attributes (plain headers here); other headers are not the event's
    extensions = tuple(
        n
        for n in names
        if n.startswith("ce_") and n not in _PLAIN_HEADERS and n[3:].isalnum() and n[3:].islower()
    )
    content_type = "content-type" in names
    wanted = (*_REQUIRED, *(("content-type",) if content_type else ()), *trace, *extensions)
    take: Callable[[Mapping[str, bytes | None]], tuple[bytes | None, ...]]
    take = itemgetter(*wanted)  # at least the five required: a tuple
    return _Layout(take, content_type, trace, tuple(n[3:] for n in extensions))


_LAYOUTS: dict[tuple[str, ...], _Layout | None] = {}
_UNSEEN: Any = object()


def _learn(names: tuple[str, ...]) -> _Layout | None:
    if len(_LAYOUTS) > 1000:
        _LAYOUTS.clear()
    layout = _LAYOUTS[names] = _layout(names)
    return layout


def _attributes(  # noqa: PLR0912  (inlined: a helper call per record costs more than branches)
    headers: Headers,
    by_type: dict[bytes, tuple[type[Contract], FastDecoder[Any], bool]],
    times: dict[bytes, datetime],
) -> _Attributes | None:
    """(contract, id, source, time, trace, extensions) from headers the fast path understands,
    else None. A ``None`` value among those read sends the record to the reference reader,
    which skips ``None`` values (an earlier occurrence may stand)."""
    try:
        h = dict(headers)  # the last occurrence of a name, as the reference (None aside)
        names = tuple(h)
        layout = _LAYOUTS.get(names, _UNSEEN)
    except (TypeError, ValueError):  # not a list of (name, value) pairs: the reference decides
        return None
    if layout is _UNSEEN:
        layout = _learn(names)
    if layout is None:
        return None
    got = layout.take(h)
    spec, ce_type, ce_id, source, ce_time = got[:5]
    if spec != SPEC_VERSION_B or not ce_id or not source or not ce_time:
        return None
    found = by_type.get(ce_type or b"")
    if found is None:
        return None
    i = 5
    if layout.content_type:
        if got[5] != CONTENT_TYPE_B:
            return None
        i = 6
    time = times.get(ce_time)
    if time is None:
        try:
            time = parse_ce_time(ce_time)
        except ValueError:
            return None
        times[ce_time] = time
    trace: dict[str, str] = {}
    extensions: dict[str, str] = {}
    if layout.trace:
        for name, value in zip(layout.trace, got[i:], strict=False):
            if value is None:
                return None
            trace[name] = value.decode("utf-8", "replace")
    if layout.extensions:
        for name, value in zip(layout.extensions, got[i + len(layout.trace) :], strict=False):
            if value is None:
                return None
            extensions[name] = value.decode("utf-8", "replace")
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

    def timestamp(self) -> tuple[int, int]:
        ms = self._r.timestamp_ms
        return (TIMESTAMP_NOT_AVAILABLE, -1) if ms is None else (TIMESTAMP_CREATE_TIME, ms)


__all__ = ["BatchDecoder", "decode_raw_batch"]
