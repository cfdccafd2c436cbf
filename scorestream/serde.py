"""Typed serializers: contracts ⇄ Kafka records, on top of the CloudEvents codec.

The services never touch header lists or JSON themselves; they hand a contract to
:class:`EventProducer` and get an :class:`~schemas.cloudevents.Envelope` (or a typed
:class:`~schemas.errors.DecodeError` keeping the raw record) from :func:`decode_message`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, Message, Producer

from schemas.cloudevents import Envelope, decode, encode
from schemas.errors import FieldError, KeyMismatchError, RawRecord
from schemas.events import Contract
from scorestream import tracing
from scorestream.errors import DeliveryError
from scorestream.kafka_config import ClientConfig

C = TypeVar("C", bound=Contract)


def raw_from_message(msg: Message) -> RawRecord:
    """A consumed message as a :class:`RawRecord` (bytes and headers untouched).

    A consumer returns headers as a list of ``(str, bytes | None)``: kept as it is, no copy per
    record on the hot path (every reader of ``RawRecord.headers`` copies before changing it). A
    dict (test doubles, other clients) is turned into that list."""
    raw_headers = msg.headers() or []
    headers: list[tuple[str, bytes | None]]
    if isinstance(raw_headers, list):
        headers = raw_headers  # type: ignore[assignment]  # consumed values are bytes or None
    else:
        headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in raw_headers.items()]
    return RawRecord(
        key=msg.key(),
        value=msg.value(),
        headers=headers,
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        timestamp_ms=timestamp_ms(msg),
    )


def timestamp_ms(msg: Message) -> int | None:
    """The record's Kafka timestamp (ms since the epoch); None when it has none."""
    kind, ms = msg.timestamp()
    return ms if kind != TIMESTAMP_NOT_AVAILABLE and ms >= 0 else None


MAX_KEY_IN_ERROR = 64
"""Bytes of a mismatched key quoted in the error (keys are ids; a huge one is cut)."""


def check_key(env: Envelope[C], keyed: Iterable[type[Contract]]) -> None:
    """Raise :class:`~schemas.errors.KeyMismatchError` when ``env`` is of a contract in ``keyed``
    and its record's key is not the event's :meth:`~schemas.events.Contract.partition_key`
    (e.g. an enriched transaction keyed by anything but its account id). An envelope without
    its raw record (built in-process) passes."""
    raw = env.raw
    event = env.event
    if raw is None or type(event) not in keyed:
        return
    expected = event.partition_key().encode()
    if raw.key == expected:
        return
    got = raw.key if raw.key is None else raw.key[:MAX_KEY_IN_ERROR]
    more = "…" if raw.key is not None and len(raw.key) > MAX_KEY_IN_ERROR else ""
    raise KeyMismatchError(
        f"key {got!r}{more} is not the {type(event).__name__}'s key {expected!r}",
        raw,
        (FieldError("key", "key_mismatch", "the record key must equal the event's key"),),
    )


def decode_message(
    msg: Message,
    accept: Iterable[type[C]] | None = None,
    *,
    keyed: Iterable[type[Contract]] = (),
) -> Envelope[C]:
    """Decode a consumed message; raises a :class:`~schemas.errors.DecodeError` subclass.

    ``keyed``: contracts whose record key must equal the event's key (:func:`check_key`)."""
    env = decode(raw_from_message(msg), accept)
    if keyed:
        check_key(env, keyed)
    return env


class EventProducer:
    """Publishes contracts as CloudEvents with delivery confirmation.

    ``send`` queues (blocking briefly when librdkafka's bounded queue is full); ``flush`` waits
    for every acknowledgement and raises :class:`DeliveryError` listing any record the broker
    did not accept, so no failure is only logged.
    """

    def __init__(self, config: ClientConfig, *, source: str) -> None:
        self._producer = Producer(config)
        self._source = source
        self._lock = threading.Lock()
        self._failures: list[str] = []
        self.delivered = 0

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is not None:
                self._failures.append(f"{msg.topic()} key={msg.key()!r}: {err.str()}")
            else:
                self.delivered += 1

    def send(
        self,
        topic: str,
        event: Contract,
        *,
        trace: Mapping[str, str] | None = None,
        event_id: str | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> None:
        # a send span (child of ``trace``'s context, else of the current span) whose context
        # the record carries; with tracing off the given headers pass through unchanged
        parent = tracing.parent_of(trace) if trace else None
        with tracing.send_span(topic, parent=parent, key=event.partition_key()) as sent:
            message = encode(
                event,
                source=self._source,
                event_id=event_id,
                trace=sent or trace,
                extensions=extensions,
            )
            headers: list[tuple[str, str | bytes | None]] = list(message.headers)
            while True:
                try:
                    self._producer.produce(
                        topic,
                        value=message.value,
                        key=message.key,
                        headers=headers,
                        on_delivery=self._on_delivery,
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)  # queue full: serve delivery reports, then retry
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for all acknowledgements; returns how many were delivered in total."""
        remaining = self._producer.flush(timeout)
        with self._lock:
            failures, self._failures = self._failures, []
        if remaining:
            failures.append(f"{remaining} record(s) still unacknowledged after {timeout}s")
        if failures:
            raise DeliveryError("; ".join(failures[:10]) + (" ..." if len(failures) > 10 else ""))
        return self.delivered

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.flush()
