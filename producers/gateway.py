"""The gateway: HTTP in, Kafka out — asynchronous intake, synchronous scoring, KServe V2.

* ``POST /v1/transactions`` → 202 once the event is durably in Kafka (acks=all).
* ``POST /v1/transactions:score`` → publishes with ``replyto=<tenant>.replies/<P>`` and a random
  ``requestid`` extension, waits for the decision that carries this request id on reply
  partition ``P`` (:mod:`producers.gateway_replies`; never matched by ``transaction_id``) and
  returns it; on the deadline (``Prefer: wait=<s>``, default 2 s) 504 with the event id — the
  event still completes asynchronously, and a retry of the same request waits for it again. The
  deadline bounds the wait for Kafka's acknowledgement too: 504 ``unacknowledged``.
* One publish per request, on every replica and across restarts
  (:mod:`producers.gateway_idempotency`, the compacted ``<tenant>.gateway.idempotency`` topic):
  the ``transaction_id`` and the ``Idempotency-Key`` are claimed in Kafka before publishing. The
  same request again replays the first answer (``Idempotent-Replayed: true``); the same
  transaction id with another body (or on the other endpoint) → 409 ``transaction_id_reused``;
  the same key with another body → 422; a request whose outcome is still open (being published,
  or Kafka's answer was a timeout and the gateway is looking the event up in the topic) → 409 +
  ``Retry-After``. The event id is derived from the request (tenant + key or transaction id +
  body), so a copy carries the same ``ce_id``.
* ``/v2/...``: the Open Inference Protocol (:mod:`producers.gateway_v2`), routed through Kafka;
  every route also under ``/v2/models/<m>/versions/<v>``; every error body under ``/v2`` is the
  protocol's ``{"error": "..."}`` (the middlewares' and the handlers' alike, via
  :func:`producers.gateway_http.error_body`); ``/v2/health/ready`` and the model readiness are
  true only while a model serves the tenant (``/readyz`` does not wait for one: ``/v1`` intake
  works without a model).
* ``/docs``, ``/livez``, ``/readyz``, ``/metrics``; body limit → 413; invalid → 422 with the
  fields; more than ``max_in_flight`` requests → 503 + ``Retry-After``, more than
  ``max_in_flight_per_key`` of one API key → 429 for that key; an unknown method → 501, a body
  that is not JSON → 415, headers or body not received in time → 408 (docs/gateway-limits.md).

The gateway never calls another service: it publishes through :class:`producers.publisher.Publisher`
and reads its reply partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from types import FrameType
from typing import Annotated, Any, Literal

from confluent_kafka import KafkaException
from fastapi import FastAPI, Header, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from producers import gateway_json
from producers.gateway_auth import ApiKeyMiddleware, GatewayAuthSettings, auth_store
from producers.gateway_http import (
    IDEMPOTENT,
    SYNC,
    SYNC_SECONDS,
    BodyLimitMiddleware,
    ContentTypeMiddleware,
    InFlightLimitMiddleware,
    Lookup,
    MethodFilterMiddleware,
    MetricsMiddleware,
    StoredResponse,
    error_body,
    fingerprint,
    is_v2,
    parse_deadline,
)
from producers.gateway_idempotency import (
    ALIAS,
    DONE,
    PENDING,
    RELEASED,
    UNKNOWN,
    Entry,
    IdempotencyStore,
    IdempotencyStoreError,
    derive_event_id,
    find_event,
    key_key,
    possibly_written,
    tx_key,
)
from producers.gateway_replies import REQUEST_ID, ReplyRouter, find_decision
from producers.gateway_v2 import (
    HEADER_LENGTH,
    V2RequestError,
    encode_infer_response,
    model_metadata,
    parse_infer_request,
    serving_version,
)
from producers.publisher import (
    ContractViolationError,
    DeliveryReport,
    Publisher,
    PublisherError,
    PublisherSettings,
    QueueFullError,
    child_traceparent,
    validate_transaction,
)
from schemas.events import DecisionEvent, TransactionEvent
from scorestream import tracing
from scorestream.event_time import REASON as EVENT_TIME
from scorestream.event_time import EventTimeSettings, out_of_window
from scorestream.settings import KafkaSettings

log = logging.getLogger("scorestream.gateway")
SERVICE = "gateway"


def _default_instance() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()


class GatewaySettings(BaseSettings):
    """Env: ``SCORESTREAM_GATEWAY_*`` (Kafka: ``SCORESTREAM_KAFKA_*``)."""

    model_config = SettingsConfigDict(
        env_prefix="SCORESTREAM_GATEWAY_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    host: str = "127.0.0.1"
    """Bind address; ``0.0.0.0`` in a container."""
    port: int = Field(default=8000, ge=0, le=65535)
    reply_partition: int = Field(default=0, ge=0, le=10_000)
    """The partition of ``<tenant>.replies`` this replica owns; unique per replica (StatefulSet
    ordinal)."""
    deadline_s: float = Field(default=2.0, gt=0)
    """Default wait for a synchronous decision; ``Prefer: wait=<s>`` overrides it per request."""
    max_deadline_s: float = Field(default=30.0, gt=0)
    publish_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """How long the producer tries to get a record acknowledged before the request fails."""
    max_in_flight: int = Field(default=512, ge=1)
    retry_after_s: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=256)
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    """From connecting (or the previous response) until a request's headers are complete; then
    408 and the connection is closed (:mod:`producers.gateway_server`)."""
    body_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """From a request's headers until its body is complete; then 408 and closed."""
    max_infer_rows: int = Field(default=1000, ge=1)
    idempotency_ttl_s: float = Field(default=3600.0, gt=0, le=6 * 86400)
    """The idempotency horizon: how long a transaction id or Idempotency-Key is remembered (on
    every replica, read back from ``<tenant>.gateway.idempotency`` at start). Below the topic's
    7-day retention."""
    idempotency_max_entries: int = Field(default=50_000, ge=1)
    """Entries kept in memory per replica (oldest dropped first): size it to the requests of one
    horizon (two entries per request with an Idempotency-Key, one without)."""
    max_pending: int = Field(default=20_000, ge=1)
    """Publisher queue bound (records awaiting acknowledgement)."""
    linger_ms: int = Field(default=1, ge=0, le=1000)
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The HTTP server's event loop: uvloop (less CPU per request) or the standard library's."""
    model_name: str = Field(default="fraud-gbt", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    """The model name the V2 endpoints answer to (what the workers serve)."""
    instance_id: str = Field(default_factory=_default_instance, min_length=1, max_length=200)
    source: str = Field(default="scorestream/gateway", min_length=1)


# -- request and response bodies ---------------------------------------------------------------


class RequestInvalid(Exception):  # noqa: N818  (an HTTP outcome, mapped to 422)
    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail


@functools.cache
def _event_time_settings() -> EventTimeSettings:
    return EventTimeSettings()


def parse_transaction(
    body: bytes, tenant: str, *, window: EventTimeSettings | None = None
) -> TransactionEvent:
    """The request body as a ``TransactionEvent`` of ``tenant``; RequestInvalid lists the fields.

    Strict JSON (a repeated key or absurd nesting is refused, :mod:`producers.gateway_json`) and
    an event time inside ``window`` (default: :class:`EventTimeSettings` from the environment).
    """
    try:
        data = gateway_json.loads(body)
    except gateway_json.JsonBodyError as exc:
        loc = ["body", exc.key] if exc.key is not None else ["body"]
        raise RequestInvalid([{"loc": loc, "msg": str(exc), "type": exc.kind}]) from exc
    if not isinstance(data, dict):
        raise RequestInvalid(
            [{"loc": ["body"], "msg": "Input should be a JSON object", "type": "dict_type"}]
        )
    data.setdefault("tenant_id", tenant)
    try:
        tx = validate_transaction(data, tenant=tenant)
    except ContractViolationError as exc:
        raise RequestInvalid(
            [
                {"loc": ["body", *e.path.split(".")], "msg": e.message, "type": e.code}
                for e in exc.errors
            ]
            or [{"loc": ["body"], "msg": str(exc), "type": "value_error"}]
        ) from exc
    why = out_of_window(tx.timestamp, datetime.now(UTC), window or _event_time_settings())
    if why is not None:
        raise RequestInvalid([{"loc": ["body", "timestamp"], "msg": why, "type": EVENT_TIME}])
    return tx


class Accepted(BaseModel):
    event_id: str
    transaction_id: str
    status: str = "accepted"
    topic: str
    partition: int
    offset: int
    trace_id: str


class Scored(BaseModel):
    event_id: str
    transaction_id: str
    decision: str = Field(description="approve, review or decline")
    score: float
    model_name: str
    model_version: str
    policy_version: str
    reasons: list[str]
    trace_id: str


class Pending(BaseModel):
    event_id: str
    transaction_id: str
    status: str = "pending"
    detail: str


class Unacknowledged(BaseModel):
    transaction_id: str
    status: str = "unacknowledged"
    detail: str


class Problem(BaseModel):
    detail: Any


def _transaction_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    schema = TransactionEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    schema["title"] = "TransactionRequest"
    schema["description"] = (
        "A scorestream.transaction.v1 event. tenant_id may be left out: it defaults to the "
        "gateway's tenant (and must equal it if given)."
    )
    schema["required"] = [f for f in schema.get("required", []) if f != "tenant_id"]
    return schema, defs


_TX_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TransactionRequest"}}
        },
    }
}
_V2_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _stored(response: StoredResponse, *, replayed: bool = False) -> JSONResponse:
    headers = dict(response.headers)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(response.body, status_code=response.status, headers=headers)


def _key_reused() -> JSONResponse:
    return JSONResponse(
        {
            "detail": [
                {
                    "loc": ["header", "Idempotency-Key"],
                    "msg": "this key was already used with a different request body",
                    "type": "idempotency_key_reused",
                }
            ]
        },
        status_code=422,
    )


def _transaction_reused() -> JSONResponse:
    return JSONResponse(
        {
            "detail": [
                {
                    "loc": ["body", "transaction_id"],
                    "msg": "this transaction_id was already submitted with a different body (or "
                    "to the other endpoint); a transaction id names one transaction",
                    "type": "transaction_id_reused",
                }
            ]
        },
        status_code=409,
    )


def _done(entry: Entry, stored: StoredResponse, *, seq: int) -> Entry:
    return replace(
        entry,
        state=DONE,
        seq=seq,
        updated=time.time(),
        response={
            "status": stored.status,
            "body": stored.body,
            "headers": stored.headers,
            "awaiting": stored.awaiting_decision,
        },
    )


def _from_entry(entry: Entry) -> StoredResponse:
    r = entry.response or {}
    return StoredResponse(
        int(r.get("status", 500)),
        dict(r.get("body") or {}),
        headers=dict(r.get("headers") or {}),
        transaction_id=entry.transaction_id,
        awaiting_decision=bool(r.get("awaiting", False)),
    )


# -- the service -------------------------------------------------------------------------------


class Gateway:
    """State shared by the routes: publisher, reply router, idempotency cache."""

    LOOKUPS = 4
    """Decision look-ups in ``<tenant>.decisions`` at once (retries that reached this replica
    for another's request); beyond that a retry only waits on this replica's own replies."""

    def __init__(self, settings: GatewaySettings, kafka: KafkaSettings | None = None) -> None:
        self.settings = settings
        self.kafka = kafka or KafkaSettings()
        self.publisher: Publisher | None = None
        self.router = ReplyRouter(
            kafka=self.kafka,
            tenant=settings.tenant,
            partition=settings.reply_partition,
            model_name=settings.model_name,
            client_id=f"{settings.tenant}.gateway.{settings.instance_id}",
        )
        self.store = IdempotencyStore(
            kafka=self.kafka,
            tenant=settings.tenant,
            client_id=f"{settings.tenant}.gateway.{settings.instance_id}",
            horizon_s=settings.idempotency_ttl_s,
            max_entries=settings.idempotency_max_entries,
        )
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._lookups = asyncio.Semaphore(self.LOOKUPS)
        """Entries whose request runs on this replica (a retry gets 409 before any Kafka I/O)."""
        self._resolving: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self.started = False
        self.draining = False

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self.publisher = Publisher(
            PublisherSettings(
                tenant=s.tenant,
                source=s.source,
                max_pending=s.max_pending,
                delivery_timeout_s=s.publish_timeout_s,
                linger_ms=s.linger_ms,
                client_id=f"{s.tenant}.gateway.{s.instance_id}",
            ),
            kafka=self.kafka,
        )
        await asyncio.to_thread(self.publisher.check_topic)
        await asyncio.to_thread(self.router.start, asyncio.get_running_loop())
        await asyncio.to_thread(self.store.start, asyncio.get_running_loop())
        self.started = True
        log.info(
            "gateway ready: publishing to %s, replies on %s",
            self.publisher.topic,
            self.router.replyto,
        )

    async def stop(self) -> None:
        self.draining = True
        self.router.stop()
        self.store.stop()
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.close, 10.0)

    def live(self) -> tuple[bool, str]:
        if not self.started:
            return True, "starting"
        if self.publisher is None or not self.publisher.alive():
            fatal = self.publisher.fatal if self.publisher else None
            return False, f"publisher failed: {fatal}"
        if not self.router.alive():
            return False, f"reply consumer failed: {self.router.error}"
        if not self.store.alive():
            return False, f"idempotency store failed: {self.store.error}"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.started or not self.router.assigned:
            return False, "starting"
        ok, detail = self.live()
        if not ok:
            return ok, detail
        return True, f"replies on {self.router.replyto}"

    def serving_version(self) -> str | None:
        """The champion version serving this tenant (``model-events``), or None."""
        return serving_version(self.router.models, self.settings.tenant, self.settings.model_name)

    def model_ready(self) -> bool:
        """V2 readiness: this replica is ready and a model serves the tenant."""
        return self.ready()[0] and self.serving_version() is not None

    def _pub(self) -> Publisher:
        if self.publisher is None:
            raise QueueFullError("the gateway is still starting")
        return self.publisher

    # -- handlers -------------------------------------------------------------------------------
    async def submit(
        self,
        route: str,
        key: str | None,
        body: bytes,
        traceparent: str | None,
        tracestate: str | None,
        deadline_s: float | None,
    ) -> JSONResponse:
        """``/v1/transactions`` (``deadline_s`` None) or ``:score``: at most one publish per
        transaction id and per Idempotency-Key, on every replica and across restarts.

        The request's entries in the durable store (:mod:`producers.gateway_idempotency`) decide:
        the same Idempotency-Key with another body → 422; the same transaction id with another
        body (or endpoint) → 409; the same request again → the first one's answer (``:score``
        waits again for its decision); its outcome still open → 409 + ``Retry-After``.
        """
        tx = parse_transaction(body, self.settings.tenant)
        fp = fingerprint(route, body)
        txk = tx_key(tx.transaction_id)
        kk = key_key(key) if key is not None else None
        known = await self._known(fp, txk, kk, deadline_s)
        if known is not None:
            return known
        request_id = uuid.uuid4().hex
        event_id = derive_event_id(self.settings.tenant, key, tx.transaction_id, fp)
        claim = Entry(
            claim=request_id,
            state=PENDING,
            fingerprint=fp,
            created=time.time(),
            transaction_id=tx.transaction_id,
            route=route,
            event_id=event_id,
            request_id=request_id,
            account_id=tx.account_id,
        )
        started = time.monotonic()
        future = self.router.register(request_id) if deadline_s is not None else None
        attempt = asyncio.ensure_future(
            self._attempt(tx, claim, txk, kk, traceparent, tracestate, reply=future is not None)
        )
        self._keep(attempt)
        for k in (txk, kk):
            if k is not None:
                self._inflight[k] = attempt
        attempt.add_done_callback(lambda _: self._forget(attempt, txk, kk))
        unrecorded = False  # a :score's published outcome, not yet written to the store
        try:
            wait_s = self.settings.publish_timeout_s + 2.0 if deadline_s is None else deadline_s
            done, _ = await asyncio.wait({attempt}, timeout=max(0.0, wait_s))
            if not done:
                IDEMPOTENT.labels("unacknowledged").inc()
                if deadline_s is None:
                    return self._open_outcome(tx.transaction_id, 503)
                SYNC.labels(self.settings.tenant, "unacknowledged").inc()
                attempt.add_done_callback(lambda a: self._persist_when_done(txk, a))
                return _stored(self._unacknowledged(tx, deadline_s))
            outcome = self._outcome(attempt, tx.transaction_id)
            if isinstance(outcome, JSONResponse):
                return outcome  # lost the claim to an earlier request, or no answer yet
            if deadline_s is None or future is None:
                return _stored(outcome)
            assert deadline_s is not None  # noqa: S101
            unrecorded = True
            decision = await self._wait(future, deadline_s - (time.monotonic() - started))
        except BaseException:
            if unrecorded:
                self._persist(txk)  # cancelled (the client went away) while waiting
            raise
        finally:
            if future is not None:
                self.router.unregister(request_id, future)
        if decision is None:
            SYNC.labels(self.settings.tenant, "deadline").inc()
            self._persist(txk)
            return _stored(outcome)
        SYNC.labels(self.settings.tenant, "decided").inc()
        latency = max(0.0, time.monotonic() - started)
        SYNC_SECONDS.labels(self.settings.tenant).observe(latency)
        decided = self._decided(
            str(outcome.body["event_id"]), str(outcome.body.get("trace_id", "")), decision
        )
        self._remember(txk, decided)
        return _stored(decided)

    def _outcome(
        self, attempt: asyncio.Future[StoredResponse | JSONResponse], transaction_id: str
    ) -> StoredResponse | JSONResponse:
        """A finished attempt's answer; a definite PublisherError is a 503, as before."""
        try:
            return attempt.result()
        except IdempotencyStoreError as exc:
            log.warning("request not recorded: %s", exc)
            return self._open_outcome(transaction_id, 503)
        except PublisherError as exc:
            if not possibly_written(exc):
                raise
            return self._open_outcome(transaction_id, 503)  # being looked up in the topic

    async def _known(
        self, fp: str, txk: str, kk: str | None, deadline_s: float | None
    ) -> JSONResponse | None:
        """The answer that what is already known about this request's key and transaction id
        gives, or None: nothing is known, the request may claim them."""
        by_key = self.store.get(kk) if kk is not None else None
        if by_key is not None and by_key.state != RELEASED and by_key.fingerprint != fp:
            IDEMPOTENT.labels(Lookup.MISMATCH.value).inc()
            return _key_reused()
        entry = self.store.get(txk)
        if entry is not None and entry.state != RELEASED and entry.fingerprint != fp:
            IDEMPOTENT.labels("transaction_id_reused").inc()
            return _transaction_reused()
        if (kk is not None and kk in self._inflight) or txk in self._inflight:
            IDEMPOTENT.labels(Lookup.CONFLICT.value).inc()
            return self._open_outcome(entry.transaction_id if entry else None, 409)
        if entry is None or entry.state == RELEASED:
            return None
        if entry.state in (PENDING, UNKNOWN):
            IDEMPOTENT.labels(Lookup.CONFLICT.value).inc()
            self._maybe_resolve(txk, entry)
            return self._open_outcome(entry.transaction_id, 409)
        IDEMPOTENT.labels(Lookup.REPLAY.value).inc()
        stored = _from_entry(entry)
        if stored.awaiting_decision and deadline_s is not None:
            stored = await self.resume(entry, stored, deadline_s)
            if not stored.awaiting_decision:
                self._remember(txk, stored)
        return _stored(stored, replayed=True)

    async def _attempt(
        self,
        tx: TransactionEvent,
        claim: Entry,
        txk: str,
        kk: str | None,
        traceparent: str | None,
        tracestate: str | None,
        *,
        reply: bool,
    ) -> StoredResponse | JSONResponse:
        """Claim the request's entries, publish if they are ours, record the outcome."""
        claims = {txk: claim}
        known_key = self.store.get(kk) if kk is not None else None
        if kk is not None and (known_key is None or known_key.state == RELEASED):
            claims[kk] = replace(claim, state=ALIAS)
        won = await self.store.claim(claims)
        # the transaction id's entry decides who publishes; the key's entry only refuses another
        # body (the same body under the same key names the same transaction: equivalent claims)
        owner = won[txk]
        alias = won.get(kk) if kk is not None and kk in claims else None
        lost_tx = owner is None or owner.claim != claim.claim
        lost_key = (
            kk is not None
            and kk in claims
            and (alias is None or alias.fingerprint != claim.fingerprint)
        )
        if lost_tx or lost_key:
            for k, e in won.items():  # give back what we won
                if e is not None and e.claim == claim.claim:
                    await self.store.record(k, replace(e, state=RELEASED, seq=e.seq + 1))
            known = await self._known(claim.fingerprint, txk, kk, None)
            return known or self._open_outcome(tx.transaction_id, 409)
        try:
            report = await self.publish(
                tx,
                traceparent,
                tracestate,
                reply=reply,
                event_id=claim.event_id,
                request_id=claim.request_id,
            )
        except PublisherError as exc:
            if possibly_written(exc):
                log.warning(
                    "transaction %s: Kafka's answer is not known (%s); its entry stays locked "
                    "until the topic shows whether event %s was written",
                    tx.transaction_id,
                    exc,
                    claim.event_id,
                )
                unknown = replace(claim, state=UNKNOWN, seq=1, updated=time.time())
                await self.store.record(txk, unknown)
                self._start_resolve(txk, unknown, takeover=False)
            else:
                await self.store.record(txk, replace(claim, state=RELEASED, seq=1))
            raise
        stored = (
            self._pending(report.event_id, tx.transaction_id, report.trace_id, 0.0)
            if reply
            else self._accepted(report)
        )
        # in the table at once (a retry here replays it), in Kafka soon: should this replica die
        # first, the claim stays pending and another replica resolves it from the topic
        done = _done(claim, stored, seq=2)
        self.store.table.apply(txk, done)
        if not reply:  # a :score records once: its decision, or this at its deadline (submit)
            self._keep(asyncio.ensure_future(self._record(txk, done)))
        return stored

    def _persist(self, txk: str) -> None:
        """Write the table's resolved entry of ``txk`` (a ``:score`` that got no decision in
        time: later replays on any replica answer its pending response)."""
        entry = self.store.get(txk)
        if entry is not None and entry.state == DONE:
            self._keep(asyncio.ensure_future(self._record(txk, entry)))

    def _persist_when_done(self, txk: str, attempt: asyncio.Future[Any]) -> None:
        ok = not attempt.cancelled() and attempt.exception() is None
        if ok and isinstance(attempt.result(), StoredResponse):
            self._persist(txk)

    def _remember(self, txk: str, stored: StoredResponse) -> None:
        """A decided ``:score``: replays answer the decision from now on (on every replica)."""
        entry = self.store.get(txk)
        if entry is None or entry.state != DONE:
            return
        self._keep(
            asyncio.ensure_future(self._record(txk, _done(entry, stored, seq=entry.seq + 1)))
        )

    async def _record(self, key: str, entry: Entry) -> None:
        try:
            await self.store.record(key, entry)
        except IdempotencyStoreError as exc:
            log.warning("cannot record %s: %s", key, exc)

    def _maybe_resolve(self, txk: str, entry: Entry) -> None:
        """An open outcome: find out from the transactions topic whether the event was written.

        The replica that published resolves its own ``unknown`` entries at once; any replica
        takes over a ``pending`` or ``unknown`` entry nobody updated for longer than the
        publisher's own timeout (its replica died or lost Kafka mid-request)."""
        age = time.time() - (entry.updated or entry.created)
        if txk in self._inflight or age < self.settings.publish_timeout_s + 5.0:
            return
        self._start_resolve(txk, entry, takeover=True)

    def _start_resolve(self, txk: str, entry: Entry, *, takeover: bool) -> None:
        if txk in self._resolving:
            return
        task = asyncio.ensure_future(self._resolve(txk, entry, takeover=takeover))
        self._resolving[txk] = task
        self._keep(task)
        task.add_done_callback(lambda _: self._resolving.pop(txk, None))

    async def _resolve(self, txk: str, entry: Entry, *, takeover: bool) -> None:
        try:
            if takeover:
                mine = Entry(
                    claim=uuid.uuid4().hex,
                    prev=entry.claim,
                    state=UNKNOWN,
                    fingerprint=entry.fingerprint,
                    created=entry.created,
                    updated=time.time(),
                    transaction_id=entry.transaction_id,
                    route=entry.route,
                    event_id=entry.event_id,
                    request_id=entry.request_id,
                    account_id=entry.account_id,
                )
                won = (await self.store.claim({txk: mine}))[txk]
                if won is None or won.claim != mine.claim:
                    return  # someone else updated or resolved it meanwhile
                entry = mine
            else:
                # the producer gave up; a request still in a broker's socket lands meanwhile
                await asyncio.sleep(min(self.settings.publish_timeout_s, 5.0))
            delay = 0.5
            while not self.draining:
                try:
                    found = await asyncio.to_thread(
                        find_event,
                        self.kafka,
                        self.settings.tenant,
                        entry.account_id,
                        entry.event_id,
                        int(entry.created * 1000) - 5_000,
                        f"{self.settings.tenant}.gateway.{self.settings.instance_id}",
                    )
                    break
                except KafkaException as exc:
                    log.warning("cannot look for event %s yet: %s", entry.event_id, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            else:
                return
            if found is None:
                log.info("event %s was never written: %s released", entry.event_id, txk)
                await self.store.record(txk, replace(entry, state=RELEASED, seq=entry.seq + 1))
                return
            topic, partition, offset, traceparent = found
            report = DeliveryReport(
                event_id=entry.event_id,
                transaction_id=entry.transaction_id,
                topic=topic,
                partition=partition,
                offset=offset,
                traceparent=traceparent,
                latency_s=0.0,
            )
            stored = (
                self._pending(report.event_id, entry.transaction_id, report.trace_id, 0.0)
                if entry.route == "score"
                else self._accepted(report)
            )
            log.info("event %s was written at %s/%d@%d", entry.event_id, topic, partition, offset)
            await self.store.record(txk, _done(entry, stored, seq=entry.seq + 1))
        except Exception:
            log.exception("resolving %s failed; a later retry tries again", txk)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)  # the event loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    def _forget(self, attempt: asyncio.Future[Any], txk: str, kk: str | None) -> None:
        for k in (txk, kk):
            if k is not None and self._inflight.get(k) is attempt:
                del self._inflight[k]

    def _open_outcome(self, transaction_id: str | None, status: int) -> JSONResponse:
        return JSONResponse(
            {
                "detail": "a request with this Idempotency-Key or transaction_id is still being "
                "processed, or Kafka's answer to it is not known yet; retry later with the same "
                "request",
                "transaction_id": transaction_id,
            },
            status_code=status,
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )

    async def publish(
        self,
        tx: TransactionEvent,
        traceparent: str | None,
        tracestate: str | None,
        *,
        reply: bool,
        event_id: str | None = None,
        request_id: str | None = None,
    ) -> DeliveryReport:
        pub = self._pub()
        extensions: dict[str, str] = {}
        if reply:
            extensions["replyto"] = self.router.replyto
        if request_id is not None:
            extensions[REQUEST_ID] = request_id
        # a producer span under the request's server span (when tracing is on): its context is
        # the record's traceparent, so the first consumer's span is its child
        with tracing.send_span(pub.topic, key=tx.partition_key()) as sent:
            return await pub.apublish(
                tx,
                traceparent=sent.get("traceparent") or child_traceparent(traceparent),
                tracestate=sent.get("tracestate", tracestate) if sent else tracestate,
                event_id=event_id,
                extensions=extensions or None,
                timeout=self.settings.publish_timeout_s + 2.0,
            )

    def _accepted(self, report: DeliveryReport) -> StoredResponse:
        return StoredResponse(
            202,
            Accepted(
                event_id=report.event_id,
                transaction_id=report.transaction_id,
                topic=report.topic,
                partition=report.partition,
                offset=report.offset,
                trace_id=report.trace_id,
            ).model_dump(),
            transaction_id=report.transaction_id,
        )

    def _decided(self, report_event_id: str, trace_id: str, d: DecisionEvent) -> StoredResponse:
        return StoredResponse(
            200,
            Scored(
                event_id=report_event_id,
                transaction_id=d.transaction_id,
                decision=d.outcome.value,
                score=d.score,
                model_name=d.model_name,
                model_version=d.model_version,
                policy_version=d.policy_version,
                reasons=list(d.reasons),
                trace_id=trace_id,
            ).model_dump(),
            transaction_id=d.transaction_id,
        )

    def _pending(
        self, event_id: str, transaction_id: str, trace_id: str, waited: float
    ) -> StoredResponse:
        return StoredResponse(
            504,
            Pending(
                event_id=event_id,
                transaction_id=transaction_id,
                detail=(
                    "no decision before the deadline; the transaction is accepted and will be "
                    "decided asynchronously (retry the same request to wait again)"
                ),
            ).model_dump()
            | {"trace_id": trace_id},
            transaction_id=transaction_id,
            awaiting_decision=True,
        )

    async def _wait(
        self, future: asyncio.Future[DecisionEvent], seconds: float
    ) -> DecisionEvent | None:
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, seconds))
        except TimeoutError:
            return None

    def _unacknowledged(self, tx: TransactionEvent, deadline_s: float) -> StoredResponse:
        """The deadline passed before Kafka acknowledged: say so now (the client's deadline bounds
        the request, not ``publish_timeout_s``); the attempt goes on and records its outcome."""
        return StoredResponse(
            504,
            Unacknowledged(
                transaction_id=tx.transaction_id,
                detail=(
                    f"Kafka had not acknowledged the transaction within {deadline_s:.3g}s, so its "
                    "outcome is not known yet; retry with the same request: 409 until Kafka "
                    "answers, then the decision (or a new attempt if it never got there)"
                ),
            ).model_dump(),
            headers={"Retry-After": str(self.settings.retry_after_s)},
            transaction_id=tx.transaction_id,
        )

    async def resume(
        self, entry: Entry, stored: StoredResponse, deadline_s: float
    ) -> StoredResponse:
        """A retried ``:score`` whose first attempt hit its deadline: wait again, no publish.

        The reply comes to this replica's partition only if this replica published the request;
        a retry that reached another replica (or this one restarted with another partition) looks
        for the decision in ``<tenant>.decisions`` meanwhile (at most ``LOOKUPS`` at once)."""
        request_id = entry.request_id
        future = self.router.register(request_id)
        stop = threading.Event()
        lookup: asyncio.Future[DecisionEvent | None] | None = None
        if not self._lookups.locked() and entry.account_id:
            await self._lookups.acquire()
            lookup = asyncio.ensure_future(
                asyncio.to_thread(
                    find_decision,
                    self.kafka,
                    self.settings.tenant,
                    entry.account_id,
                    request_id,
                    since_ms=int((entry.created - 60.0) * 1000),  # clock skew between replicas
                    until=time.monotonic() + deadline_s,
                    stop=stop,
                    client_id=f"{self.settings.tenant}.gateway.{self.settings.instance_id}",
                )
            )
            lookup.add_done_callback(lambda _: self._lookups.release())
        try:
            waiting: set[asyncio.Future[Any]] = {asyncio.shield(future)}
            if lookup is not None:
                waiting.add(lookup)
            decision: DecisionEvent | None = None
            deadline = time.monotonic() + deadline_s
            while waiting and decision is None:
                done, waiting = await asyncio.wait(
                    waiting,
                    timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    break
                for f in done:
                    if not f.cancelled() and f.exception() is None and f.result() is not None:
                        decision = f.result()
        finally:
            stop.set()
            self.router.unregister(request_id, future)
        if decision is None:
            return stored
        SYNC.labels(self.settings.tenant, "decided").inc()
        return self._decided(
            str(stored.body["event_id"]), str(stored.body.get("trace_id", "")), decision
        )

    async def infer(
        self,
        model: str,
        body: bytes,
        header_length: int | None,
        traceparent: str | None,
        deadline_s: float,
    ) -> Response:
        started = time.monotonic()
        s = self.settings
        if model != s.model_name:
            return JSONResponse({"error": f"unknown model '{model}'"}, status_code=404)
        try:
            request = parse_infer_request(body, header_length)
            if len(request.rows) > s.max_infer_rows:
                raise V2RequestError(
                    f"{len(request.rows)} rows exceed the limit of {s.max_infer_rows}"
                )
            txs = [self._row(i, row) for i, row in enumerate(request.rows)]
        except V2RequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        ids = [tx.transaction_id for tx in txs]
        if len(set(ids)) != len(ids):
            return JSONResponse({"error": "transaction_id values must be unique"}, status_code=400)
        for i, tid in enumerate(ids):
            # a transaction id /v1 already accepted names that transaction: never a second one
            # (V2 rows are not claimed themselves: docs/gateway.md, limits)
            entry = self.store.get(tx_key(tid))
            if entry is not None and entry.state != RELEASED:
                IDEMPOTENT.labels("transaction_id_reused").inc()
                return JSONResponse(
                    {
                        "error": f"input 'transaction_id'[{i}]: this transaction id was already "
                        "submitted; a transaction id names one transaction"
                    },
                    status_code=409,
                )
        if request.timeout_s is not None:
            deadline_s = min(request.timeout_s, s.max_deadline_s)
        request_ids = [uuid.uuid4().hex for _ in txs]
        futures = [self.router.register(rid) for rid in request_ids]
        try:
            reports = await asyncio.gather(
                *(
                    self.publish(tx, traceparent, None, reply=True, request_id=rid)
                    for tx, rid in zip(txs, request_ids, strict=True)
                )
            )
            left = deadline_s - (time.monotonic() - started)
            try:
                decisions = await asyncio.wait_for(
                    asyncio.gather(*(asyncio.shield(f) for f in futures)), max(0.0, left)
                )
            except TimeoutError:
                SYNC.labels(s.tenant, "deadline").inc(len(txs))
                return JSONResponse(
                    {
                        "error": f"not every decision arrived within {deadline_s:.3g}s; the "
                        "transactions are accepted and will be decided asynchronously",
                        "event_ids": [r.event_id for r in reports],
                    },
                    status_code=504,
                )
        finally:
            for rid, future in zip(request_ids, futures, strict=True):
                self.router.unregister(rid, future)
        SYNC.labels(s.tenant, "decided").inc(len(txs))
        versions = {d.model_version for d in decisions}
        version = versions.pop() if len(versions) == 1 else (self.router.champion_version() or "")
        content, headers = encode_infer_response(
            model_name=model,
            model_version=version,
            request_id=request.id,
            outputs=request.outputs,
            decisions=decisions,
        )
        return Response(content, status_code=200, headers=headers)

    def _row(self, i: int, row: dict[str, Any]) -> TransactionEvent:
        try:
            tx = validate_transaction(
                row | {"tenant_id": self.settings.tenant}, tenant=self.settings.tenant
            )
        except ContractViolationError as exc:
            detail = "; ".join(f"input '{e.path}'[{i}]: {e.message}" for e in exc.errors)
            raise V2RequestError(detail or str(exc)) from exc
        why = out_of_window(tx.timestamp, datetime.now(UTC), _event_time_settings())
        if why is not None:
            raise V2RequestError(f"input 'timestamp'[{i}]: {why}")
        return tx


# -- the app -----------------------------------------------------------------------------------

IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
]
TraceParent = Annotated[str | None, Header(description="W3C trace context")]
TraceState = Annotated[str | None, Header(description="W3C trace context")]
Prefer = Annotated[str | None, Header(description="`wait=<seconds>` (RFC 7240): the sync deadline")]


def create_app(
    settings: GatewaySettings,
    *,
    kafka: KafkaSettings | None = None,
    auth: GatewayAuthSettings | None = None,
) -> FastAPI:
    auth = auth or GatewayAuthSettings()
    keys = auth_store(settings.tenant, auth)  # API keys (producers.gateway_auth); fails closed
    _event_time_settings()  # a bad SCORESTREAM_MAX_EVENT_* fails at start, not on a request
    gw = Gateway(settings, kafka)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    app = FastAPI(
        title="scorestream gateway",
        version="1",
        description=(
            f"Tenant `{settings.tenant}`: transactions in, decisions out, through Kafka. "
            "Idempotency-Key (and transaction_id) deduplicate retries on every replica."
        ),
        lifespan=lifespan,
    )
    app.state.gateway = gw

    @app.exception_handler(RequestInvalid)
    async def _invalid(_: Request, exc: RequestInvalid) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = redacted_errors(exc.errors())
        if is_v2(request.url.path):
            message = "; ".join(
                f"{'.'.join(str(part) for part in e.get('loc', ()))}: {e.get('msg', '')}"
                for e in errors
            )
            return JSONResponse({"error": message or "invalid request"}, status_code=422)
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """The router's 404/405 (a path or method V2 does not have) as V2 error objects."""
        if not is_v2(request.url.path):
            return await http_exception_handler(request, exc)
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(PublisherError)
    async def _unavailable(request: Request, exc: PublisherError) -> JSONResponse:
        log.warning("publish failed: %s", exc)
        return JSONResponse(
            error_body(request.url.path, f"not accepted: {exc}"),
            status_code=503,
            headers={"Retry-After": str(settings.retry_after_s)},
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, _: Exception) -> JSONResponse:
        """An unexpected failure: a JSON 500 (logged by the server), never a traceback."""
        return JSONResponse(error_body(request.url.path, "internal server error"), 500)

    _routes_v1(app, gw)
    _routes_v2(app, gw)
    _routes_ops(app, gw)
    _install_openapi(app)

    def limited(path: str) -> bool:
        return path.startswith("/v1/") or path.endswith("/infer")

    def media_types(path: str) -> frozenset[str | None] | None:
        if path.startswith("/v1/"):
            return JSON_ONLY
        if path.startswith("/v2/") and path.endswith("/infer"):
            return V2_MEDIA_TYPES
        return None

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ContentTypeMiddleware, media_types=media_types)  # before any body read
    if keys is not None:  # outside the body limit: no body is read for a request without a key
        app.add_middleware(
            ApiKeyMiddleware,
            tenant=settings.tenant,
            store=keys,
            rate_per_s=auth.rate_limit_per_s,
            burst=auth.rate_limit_burst,
            max_in_flight=auth.max_in_flight_per_key,
            retry_after_s=settings.retry_after_s,
        )
    app.add_middleware(
        InFlightLimitMiddleware,
        limit=settings.max_in_flight,
        retry_after_s=settings.retry_after_s,
        exempt=lambda p: not limited(p),
    )
    app.add_middleware(MetricsMiddleware, routes=lambda: app.routes)
    app.add_middleware(tracing.ServerSpanMiddleware)  # 413/503 get a span too
    app.add_middleware(MethodFilterMiddleware)  # outermost: a made-up method costs nothing
    return app


JSON_ONLY: frozenset[str | None] = frozenset({"application/json"})
V2_MEDIA_TYPES: frozenset[str | None] = frozenset(
    {"application/json", "application/octet-stream", None}
)
"""KServe clients (tritonclient) send infer requests without a Content-Type."""


def redacted_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """FastAPI's validation errors without the offending values: a header, path or query
    error names its parameter but never echoes what was sent (it may be a secret pasted in the
    wrong header, or a megabyte of junk)."""
    out = []
    for error in errors:
        item = {k: v for k, v in dict(error).items() if k not in ("input", "url", "ctx")}
        ctx = error.get("ctx") if isinstance(error, dict) else None
        if isinstance(ctx, dict):  # limits such as max_length are safe and useful
            item["ctx"] = {k: v for k, v in ctx.items() if isinstance(v, int | float | bool)}
        out.append(item)
    return out


def _routes_v1(app: FastAPI, gw: Gateway) -> None:
    settings = gw.settings

    @app.post(
        "/v1/transactions",
        status_code=202,
        openapi_extra=_TX_BODY,
        responses={
            202: {"model": Accepted, "description": "durably in Kafka (acks=all)"},
            409: {"model": Problem, "description": "same Idempotency-Key still in progress"},
            422: {"model": Problem},
            503: {"model": Problem, "description": "overloaded or Kafka unavailable"},
        },
    )
    async def post_transaction(
        request: Request,
        idempotency_key: IdempotencyKey = None,
        traceparent: TraceParent = None,
        tracestate: TraceState = None,
    ) -> JSONResponse:
        """Publish a transaction; 202 once Kafka has it."""
        body = await request.body()
        return await gw.submit("accept", idempotency_key, body, traceparent, tracestate, None)

    @app.post(
        "/v1/transactions:score",
        openapi_extra=_TX_BODY,
        responses={
            200: {"model": Scored, "description": "the transaction's decision"},
            409: {"model": Problem},
            422: {"model": Problem},
            503: {"model": Problem},
            504: {
                "model": Pending,
                "description": "accepted; no decision before the deadline (or, with status "
                "`unacknowledged` and no event id, Kafka had not acknowledged it yet)",
            },
        },
    )
    async def score_transaction(
        request: Request,
        idempotency_key: IdempotencyKey = None,
        traceparent: TraceParent = None,
        tracestate: TraceState = None,
        prefer: Prefer = None,
    ) -> JSONResponse:
        """Publish a transaction and wait for its decision (default 2 s)."""
        body = await request.body()
        deadline = parse_deadline(
            prefer, default_s=settings.deadline_s, max_s=settings.max_deadline_s
        )
        return await gw.submit("score", idempotency_key, body, traceparent, tracestate, deadline)


def _routes_v2(app: FastAPI, gw: Gateway) -> None:
    """The Open Inference Protocol (KServe V2) REST endpoints."""
    settings = gw.settings

    @app.get("/v2", tags=["v2"])
    async def v2_server_metadata() -> dict[str, Any]:
        return {"name": "scorestream", "version": "1", "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live", tags=["v2"])
    async def v2_live() -> JSONResponse:
        ok, _ = gw.live()
        return JSONResponse({"live": ok}, status_code=200 if ok else 503)

    @app.get("/v2/health/ready", tags=["v2"])
    async def v2_ready() -> JSONResponse:
        """Ready for inference: this replica is ready and a model serves the tenant."""
        ok = gw.model_ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    def unknown(model: str, version: str | None) -> JSONResponse | None:
        """404 ``{"error": ...}`` for a model, or a version of it, that does not serve here."""
        if model != settings.model_name:
            return JSONResponse({"error": f"unknown model '{model}'"}, status_code=404)
        serving = gw.serving_version()
        if version is not None and version != serving:
            now = (
                f"version '{serving}' serves"
                if serving
                else f"no version serves tenant {settings.tenant} yet"
            )
            return JSONResponse(
                {"error": f"model '{model}' has no version '{version}' ({now})"},
                status_code=404,
            )
        return None

    async def metadata(model: str, version: str | None) -> JSONResponse:
        refused = unknown(model, version)
        if refused is not None:
            return refused
        serving = gw.serving_version()
        return JSONResponse(model_metadata(model, [serving] if serving else []))

    async def model_ready(model: str, version: str | None) -> JSONResponse:
        refused = unknown(model, version)
        if refused is not None:
            return refused
        ready = gw.model_ready()
        return JSONResponse({"name": model, "ready": ready}, status_code=200 if ready else 503)

    async def infer(
        model: str,
        version: str | None,
        request: Request,
        traceparent: str | None,
        prefer: str | None,
    ) -> Response:
        refused = unknown(model, version)
        if refused is not None:
            return refused
        body = await request.body()
        raw_length = request.headers.get(HEADER_LENGTH)
        try:
            header_length = int(raw_length) if raw_length is not None else None
        except ValueError:
            return JSONResponse({"error": f"invalid {HEADER_LENGTH}"}, status_code=400)
        deadline = parse_deadline(
            prefer, default_s=settings.deadline_s, max_s=settings.max_deadline_s
        )
        return await gw.infer(model, body, header_length, traceparent, deadline)

    @app.get("/v2/models/{model}", tags=["v2"])
    async def v2_model(model: str) -> JSONResponse:
        """Model metadata; ``versions`` is the version serving the tenant (none: empty)."""
        return await metadata(model, None)

    @app.get("/v2/models/{model}/versions/{version}", tags=["v2"])
    async def v2_model_version(model: str, version: str) -> JSONResponse:
        return await metadata(model, version)

    @app.get("/v2/models/{model}/ready", tags=["v2"])
    async def v2_model_ready(model: str) -> JSONResponse:
        return await model_ready(model, None)

    @app.get("/v2/models/{model}/versions/{version}/ready", tags=["v2"])
    async def v2_model_version_ready(model: str, version: str) -> JSONResponse:
        return await model_ready(model, version)

    @app.post("/v2/models/{model}/infer", tags=["v2"], openapi_extra=_V2_BODY)
    async def v2_infer(
        model: str,
        request: Request,
        traceparent: TraceParent = None,
        prefer: Prefer = None,
    ) -> Response:
        """Score N transactions given as named input tensors (see producers.gateway_v2)."""
        return await infer(model, None, request, traceparent, prefer)

    @app.post("/v2/models/{model}/versions/{version}/infer", tags=["v2"], openapi_extra=_V2_BODY)
    async def v2_infer_version(
        model: str,
        version: str,
        request: Request,
        traceparent: TraceParent = None,
        prefer: Prefer = None,
    ) -> Response:
        """Infer on this version: 404 unless it is the version serving the tenant."""
        return await infer(model, version, request, traceparent, prefer)


def _routes_ops(app: FastAPI, gw: Gateway) -> None:
    """Probes and metrics: exempt from the in-flight bound."""

    @app.get("/livez", include_in_schema=False)
    async def livez() -> JSONResponse:
        ok, detail = gw.live()
        return JSONResponse(
            {"status": "ok" if ok else "fail", "detail": detail}, 200 if ok else 503
        )

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok, detail = gw.ready()
        return JSONResponse(
            {"status": "ok" if ok else "fail", "detail": detail}, 200 if ok else 503
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _install_openapi(app: FastAPI) -> None:
    """``/docs``: the transaction body is read raw (strict JSON validation, tenant default), so
    its schema is declared here instead of being inferred from a parameter."""
    request_schema, defs = _transaction_schema()

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(defs)
            components["TransactionRequest"] = request_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class _DropColorMessage(logging.Filter):
    """uvicorn adds an ANSI-coloured copy of some messages as ``extra``: noise in JSON logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


def _server(config: Any) -> Any:
    import uvicorn  # noqa: PLC0415

    class DrainingServer(uvicorn.Server):
        """SIGTERM/SIGINT: stop accepting, finish in-flight requests, flush, exit 0.

        (uvicorn re-raises the captured signal after a graceful shutdown, which makes the exit
        status -15; supervisors and Kubernetes read a drained shutdown as success.)
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self._drain) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

        def _drain(self, sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: do not wait any longer
            self.should_exit = True

    return DrainingServer(config)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scorestream gateway`` and of the container."""
    import argparse  # noqa: PLC0415

    from producers.gateway_server import server_config  # noqa: PLC0415
    from scorestream.logs import configure_logging  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="scorestream gateway")
    parser.add_argument("--tenant")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--reply-partition", type=int)
    parser.add_argument("--deadline-s", type=float)
    parser.add_argument("--max-in-flight", type=int)
    parser.add_argument("--max-body-bytes", type=int)
    parser.add_argument("--instance-id")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = GatewaySettings(**overrides)
    configure_logging(SERVICE, settings.tenant)
    tracing.setup(SERVICE, settings.tenant)
    logging.getLogger("uvicorn.error").addFilter(_DropColorMessage())
    app = create_app(settings)
    config = server_config(
        app,
        host=settings.host,
        port=settings.port,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        graceful_shutdown_s=int(settings.max_deadline_s) + 5,
        event_loop=settings.event_loop,
    )
    server = _server(config)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
