"""The gateway's data plane: publish a request's transaction once (claimed in the idempotency
log first), wait for its decision on this replica's reply partition, replay and resolve what is
already known. Nothing here knows routes; :mod:`producers.gateway.app` maps HTTP onto it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from confluent_kafka import KafkaException
from fastapi.responses import JSONResponse

from producers.gateway.bodies import (
    accepted_response,
    decided_response,
    done_entry,
    from_entry,
    key_reused,
    open_outcome,
    parse_transaction,
    pending_response,
    stored_response,
    transaction_reused,
    unacknowledged_response,
)
from producers.gateway.http import (
    IDEMPOTENT,
    SYNC,
    SYNC_SECONDS,
    Lookup,
    StoredResponse,
    fingerprint,
)
from producers.gateway.idempotency import (
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
from producers.gateway.replies import REQUEST_ID, ReplyRouter, find_decision
from producers.gateway.settings import GatewaySettings
from producers.gateway.v2 import (
    serving_version,
)
from producers.publisher import (
    DeliveryReport,
    Publisher,
    PublisherError,
    PublisherSettings,
    QueueFullError,
    child_traceparent,
)
from schemas.events import DecisionEvent, TransactionEvent
from scorestream import tracing
from scorestream.settings import KafkaSettings

log = logging.getLogger("scorestream.gateway")

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

        The request's entries in the durable store (:mod:`producers.gateway.idempotency`) decide:
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
                    return self._open(tx.transaction_id, 503)
                SYNC.labels(self.settings.tenant, "unacknowledged").inc()
                attempt.add_done_callback(lambda a: self._persist_when_done(txk, a))
                return stored_response(
                    unacknowledged_response(
                        tx, deadline_s, retry_after_s=self.settings.retry_after_s
                    )
                )
            outcome = self._outcome(attempt, tx.transaction_id)
            if isinstance(outcome, JSONResponse):
                return outcome  # lost the claim to an earlier request, or no answer yet
            if deadline_s is None or future is None:
                return stored_response(outcome)
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
            return stored_response(outcome)
        SYNC.labels(self.settings.tenant, "decided").inc()
        latency = max(0.0, time.monotonic() - started)
        SYNC_SECONDS.labels(self.settings.tenant).observe(latency)
        decided = decided_response(
            str(outcome.body["event_id"]), str(outcome.body.get("trace_id", "")), decision
        )
        self._remember(txk, decided)
        return stored_response(decided)

    def _outcome(
        self, attempt: asyncio.Future[StoredResponse | JSONResponse], transaction_id: str
    ) -> StoredResponse | JSONResponse:
        """A finished attempt's answer; a definite PublisherError is a 503, as before."""
        try:
            return attempt.result()
        except IdempotencyStoreError as exc:
            log.warning("request not recorded: %s", exc)
            return self._open(transaction_id, 503)
        except PublisherError as exc:
            if not possibly_written(exc):
                raise
            return self._open(transaction_id, 503)  # being looked up in the topic

    async def _known(
        self, fp: str, txk: str, kk: str | None, deadline_s: float | None
    ) -> JSONResponse | None:
        """The answer that what is already known about this request's key and transaction id
        gives, or None: nothing is known, the request may claim them."""
        by_key = self.store.get(kk) if kk is not None else None
        if by_key is not None and by_key.state != RELEASED and by_key.fingerprint != fp:
            IDEMPOTENT.labels(Lookup.MISMATCH.value).inc()
            return key_reused()
        entry = self.store.get(txk)
        if entry is not None and entry.state != RELEASED and entry.fingerprint != fp:
            IDEMPOTENT.labels("transaction_id_reused").inc()
            return transaction_reused()
        if (kk is not None and kk in self._inflight) or txk in self._inflight:
            IDEMPOTENT.labels(Lookup.CONFLICT.value).inc()
            return self._open(entry.transaction_id if entry else None, 409)
        if entry is None or entry.state == RELEASED:
            return None
        if entry.state in (PENDING, UNKNOWN):
            IDEMPOTENT.labels(Lookup.CONFLICT.value).inc()
            self._maybe_resolve(txk, entry)
            return self._open(entry.transaction_id, 409)
        IDEMPOTENT.labels(Lookup.REPLAY.value).inc()
        stored = from_entry(entry)
        if stored.awaiting_decision and deadline_s is not None:
            stored = await self.resume(entry, stored, deadline_s)
            if not stored.awaiting_decision:
                self._remember(txk, stored)
        return stored_response(stored, replayed=True)

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
            return known or self._open(tx.transaction_id, 409)
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
            pending_response(report.event_id, tx.transaction_id, report.trace_id, 0.0)
            if reply
            else accepted_response(report)
        )
        # in the table at once (a retry here replays it), in Kafka soon: should this replica die
        # first, the claim stays pending and another replica resolves it from the topic
        done = done_entry(claim, stored, seq=2)
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
            asyncio.ensure_future(self._record(txk, done_entry(entry, stored, seq=entry.seq + 1)))
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
                pending_response(report.event_id, entry.transaction_id, report.trace_id, 0.0)
                if entry.route == "score"
                else accepted_response(report)
            )
            log.info("event %s was written at %s/%d@%d", entry.event_id, topic, partition, offset)
            await self.store.record(txk, done_entry(entry, stored, seq=entry.seq + 1))
        except Exception:
            log.exception("resolving %s failed; a later retry tries again", txk)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)  # the event loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    def _open(self, transaction_id: str | None, status: int) -> JSONResponse:
        return open_outcome(transaction_id, status, retry_after_s=self.settings.retry_after_s)

    def _forget(self, attempt: asyncio.Future[Any], txk: str, kk: str | None) -> None:
        for k in (txk, kk):
            if k is not None and self._inflight.get(k) is attempt:
                del self._inflight[k]

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

    async def _wait(
        self, future: asyncio.Future[DecisionEvent], seconds: float
    ) -> DecisionEvent | None:
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(0.0, seconds))
        except TimeoutError:
            return None

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
        return decided_response(
            str(stored.body["event_id"]), str(stored.body.get("trace_id", "")), decision
        )
