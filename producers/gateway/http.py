"""HTTP plumbing of the gateway: idempotency cache, body limit, in-flight bound, metrics.

The middlewares are plain ASGI (no request objects, no per-request tasks) and order matters:
method filter (outermost: an unknown method costs nothing, not even a metric series) → tracing →
metrics (so every 413/503 is counted) → in-flight bound → API key (and its per-key bound) →
content type → body limit → the app. Header and body *read timeouts* live one level lower, in
the HTTP protocol (:mod:`producers.gateway.server`): a request whose headers never complete
never reaches ASGI.

Every metric label here has a bounded set of values: methods are the standard ones or
``_OTHER``, routes are templates or ``unmatched``, statuses are three-digit codes, reasons and
outcomes are fixed words.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from starlette.routing import Match, Route

from scorestream.metrics import LATENCY_BUCKETS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# -- metrics -------------------------------------------------------------------------------------

REQUESTS = Counter(
    "scorestream_gateway_requests_total",
    "HTTP requests by route template, method and status code",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "scorestream_gateway_request_seconds",
    "HTTP request latency by route template",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("scorestream_gateway_in_flight_requests", "Requests being processed")
REJECTED = Counter(
    "scorestream_gateway_rejected_total",
    "Requests refused before reaching a handler, by reason (overload, body_too_large, "
    "unauthenticated, forbidden, rate_limited, key_overload, unknown_method, "
    "unsupported_media_type, header_timeout, body_timeout)",
    ["reason"],
)
SYNC = Counter(
    "scorestream_gateway_sync_total",
    "Synchronous scoring requests by outcome (decided, deadline, unacknowledged)",
    ["tenant", "outcome"],
)
SYNC_SECONDS = Histogram(
    "scorestream_gateway_sync_seconds",
    "From publishing a transaction to receiving its decision on the reply partition",
    ["tenant"],
    buckets=LATENCY_BUCKETS,
)
REPLIES = Counter(
    "scorestream_gateway_replies_total",
    "Records read from this replica's reply partition, by outcome "
    "(matched, late, invalid, uncorrelated: no request id)",
    ["tenant", "outcome"],
)
IDEMPOTENT = Counter(
    "scorestream_gateway_idempotency_total",
    "Idempotency lookups by outcome "
    "(new, replayed, conflict, mismatch, transaction_id_reused, unacknowledged)",
    ["outcome"],
)


async def send_json(
    send: Send, status: int, body: object, headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def is_v2(path: str) -> bool:
    """A path of the Open Inference Protocol (KServe V2) endpoints."""
    return path == "/v2" or path.startswith("/v2/")


def error_body(path: str, message: str) -> dict[str, str]:
    """The error body for a request to ``path``: the Open Inference Protocol's error object
    ``{"error": "<message>"}`` under ``/v2`` (what V2 clients such as tritonclient read), the
    ``{"detail": "<message>"}`` of the rest of the API elsewhere."""
    return {"error": message} if is_v2(path) else {"detail": message}


async def send_error(
    send: Send, scope: Scope, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    """An error response in the shape of the requested path's API (:func:`error_body`)."""
    await send_json(send, status, error_body(str(scope.get("path", "")), message), headers)


KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"))
"""The methods this server knows (RFC 9110 plus PATCH; CONNECT is refused like an unknown one).
A known method on a route that does not take it is the router's 405; anything else is 501."""


def method_label(method: str) -> str:
    """The ``method`` label value: a known method, else ``_OTHER`` (bounded cardinality)."""
    return method if method in KNOWN_METHODS else "_OTHER"


class MethodFilterMiddleware:
    """501 for a method the server does not implement, before any other work: a made-up method
    name (8 KB of letters) gets no span, no metric series and no routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in KNOWN_METHODS:
            await self.app(scope, receive, send)
            return
        REJECTED.labels("unknown_method").inc()
        await send_error(
            send,
            scope,
            501,
            "method not implemented",
            {"Allow": "GET, HEAD, POST", "Connection": "close"},
        )


def _media_type(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return None


class ContentTypeMiddleware:
    """415 for a request body that is not declared as JSON, before the body is read.

    ``media_types(path)`` names what a path accepts (None: any, e.g. GET routes); ``None`` in
    that set means a request *without* a Content-Type is accepted too (KServe clients such as
    tritonclient send none). Parameters (``; charset=utf-8``) are ignored.
    """

    def __init__(
        self, app: ASGIApp, *, media_types: Callable[[str], frozenset[str | None] | None]
    ) -> None:
        self.app = app
        self.media_types = media_types

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        accepted = self.media_types(scope["path"])
        if accepted is None or _media_type(scope.get("headers", [])) in accepted:
            await self.app(scope, receive, send)
            return
        REJECTED.labels("unsupported_media_type").inc()
        names = sorted(m for m in accepted if m is not None)
        await send_error(
            send,
            scope,
            415,
            f"the request body must be sent as Content-Type: {' or '.join(names)}",
            {"Accept-Post": ", ".join(names)},
        )


class MetricsMiddleware:
    """Counts every response by route *template* (never the raw path) and by method label
    (:func:`method_label`): every label has a bounded set of values."""

    CACHE_SIZE = 1024
    """Paths whose route template is remembered (a dict, cleared when full: bounded)."""

    def __init__(self, app: ASGIApp, routes: Callable[[], list[Any]]) -> None:
        self.app = app
        self.routes = routes
        self._templates: dict[tuple[str, str], str] = {}

    def route_of(self, scope: Scope) -> str:
        """The template of the route ``scope`` matches (matched once per method and path: the
        routes' regular expressions cost more than the rest of this middleware)."""
        key = (scope["method"], scope["path"])
        template = self._templates.get(key)
        if template is None:
            template = "unmatched"
            for route in self.routes():
                if isinstance(route, Route):
                    match, _ = route.matches(scope)
                    if match is Match.FULL:
                        template = route.path
                        break
            if len(self._templates) >= self.CACHE_SIZE:
                self._templates.clear()
            self._templates[key] = template
        return template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.route_of(scope)
        method = method_label(scope["method"])
        status = [0]
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status[0] = status[0] or 500
            raise
        finally:
            # no response at all: the client went away (or was cut off by a read timeout)
            REQUESTS.labels(route, method, str(status[0] or 499)).inc()
            REQUEST_SECONDS.labels(route, method).observe(time.perf_counter() - started)


class InFlightLimitMiddleware:
    """At most ``limit`` requests in the handlers; beyond that 503 + ``Retry-After`` at once.

    Probes, metrics and docs are exempt: an overloaded replica must still answer its probes.
    Refusing at once (not queueing) keeps latency bounded and lets the load balancer or the
    client's retry move the work to another replica.
    """

    def __init__(
        self, app: ASGIApp, *, limit: int, retry_after_s: int, exempt: Callable[[str], bool]
    ) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.exempt = exempt
        self.current = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.current >= self.limit:
            REJECTED.labels("overload").inc()
            await send_error(
                send,
                scope,
                503,
                f"too many requests in flight (limit {self.limit}); retry later",
                {"Retry-After": str(self.retry_after_s)},
            )
            return
        self.current += 1
        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.current -= 1
            IN_FLIGHT.dec()


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``: by ``Content-Length`` up front, else while reading.

    The body is read here (bounded) and replayed to the app, so a chunked upload that grows
    past the limit is refused before the app sees any of it.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, scope: Scope, send: Send) -> None:
        REJECTED.labels("body_too_large").inc()
        await send_error(
            send, scope, 413, f"request body exceeds the limit of {self.max_bytes} bytes"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._too_large(scope, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as ASGI does

        await self.app(scope, replay, send)


# -- deadlines -------------------------------------------------------------------------------------


def parse_deadline(prefer: str | None, *, default_s: float, max_s: float) -> float:
    """The wait for a synchronous answer: RFC 7240 ``Prefer: wait=<seconds>`` or the default.

    Fractions are accepted (``wait=0.5``); the value is clamped to ``(0, max_s]``. An absent or
    unparsable preference means the default (a preference is never an error, RFC 7240 §2).
    """
    if prefer:
        for part in prefer.split(","):
            for token in part.split(";"):
                name, _, value = token.strip().partition("=")
                if name.strip().lower() == "wait":
                    try:
                        wait = float(value.strip().strip('"'))
                    except ValueError:
                        continue
                    if wait > 0 and math.isfinite(wait):
                        return min(wait, max_s)
    return min(default_s, max_s)


# -- idempotency -----------------------------------------------------------------------------------


class Lookup(Enum):
    NEW = "new"
    """First time: process the request, then ``complete`` (or ``abandon`` on failure)."""
    REPLAY = "replayed"
    """Done before: return the stored response."""
    CONFLICT = "conflict"
    """The first request with this key is still being processed (409)."""
    MISMATCH = "mismatch"
    """The key was used with a different request body (422)."""


@dataclass(slots=True)
class StoredResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    transaction_id: str | None = None
    awaiting_decision: bool = False
    """A ``:score`` that hit its deadline: the event is in Kafka; a retry waits for the decision
    again instead of publishing a second time."""
    settles: asyncio.Future[StoredResponse | None] | None = None
    """A ``:score`` whose deadline passed before Kafka acknowledged the event: resolves to what a
    retry with the same key replays (the event is in Kafka) or to ``None`` (it is not: a retry
    publishes again). Until then a retry gets 409. Never stored itself."""


def fingerprint(route: str, body: bytes) -> str:
    return hashlib.sha256(route.encode() + b"\0" + body).hexdigest()
