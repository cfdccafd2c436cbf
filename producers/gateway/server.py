"""The gateway's HTTP server: uvicorn with header and body read timeouts.

uvicorn (h11) bounds the *size* of a request head (``h11_max_incomplete_event_size``, 16 KiB)
and the idle time *between* requests (``timeout_keep_alive``), and ``limit_concurrency``
answers 503 to everyone once a number of connections is reached. It has no limit on how long
a client may take to send its headers or its body: a connection that sends half a request line
and then one byte a minute stays open for ever, and a request whose body never arrives holds
its slot in the in-flight budget for ever (the ASGI app cannot see a request before its headers
are complete, so the header timeout cannot live in a middleware).

:class:`TimedH11Protocol` adds both, per request, as deadlines that data does not reset (a
trickle does not keep a connection alive):

* **header timeout** (``header_timeout_s``, default 10 s): from the connection being opened, or
  the previous response being sent, until the request's headers are complete. Expired: ``408``
  if any byte of a request arrived, then the connection is closed.
* **body timeout** (``body_timeout_s``, default 30 s): from the headers until the body is
  complete. Expired: ``408`` if no response was started yet (the app sees a disconnect and
  stops), then the connection is closed — also when the app answered early (401, 413) and the
  client keeps trickling a body nobody reads.

Both are counted in ``scorestream_gateway_rejected_total{reason="header_timeout"|"body_timeout"}``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from producers.gateway.http import REJECTED, error_body

_RESPONSE = "HTTP/1.1 408 Request Timeout\r\n"


def _timeout_response(detail: str, path: str = "") -> bytes:
    """A raw 408 in the shape of the path's API (the path is unknown while headers are read)."""
    body = json.dumps(error_body(path, detail)).encode()
    head = (
        f"{_RESPONSE}content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with per-request header and body read deadlines.

    The subclass only observes h11's connection state after uvicorn has processed an event
    (``their_state``: IDLE = waiting for a request's headers, SEND_BODY = reading its body) and
    arms one timer per phase; it never changes how uvicorn parses or dispatches.
    """

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase: tuple[object, object] | None = None

    @classmethod
    def configured(cls, *, header_timeout_s: float, body_timeout_s: float) -> type[H11Protocol]:
        """A subclass with these timeouts (uvicorn takes a protocol *class*)."""
        attrs = {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s}
        return type("GatewayH11Protocol", (cls,), attrs)

    # -- uvicorn's hooks -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    # -- the deadlines ---------------------------------------------------------------------------
    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _watch(self) -> None:
        """(Re)arm the deadline of the phase the connection is in; a phase is one request's
        header or body read (keyed by the cycle, so the next request gets a fresh deadline)."""
        if self.transport is None or self.transport.is_closing():
            self._cancel()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            phase: tuple[object, object] | None = ("header", self.cycle)
        elif state is h11.SEND_BODY:
            phase = ("body", self.cycle)
        else:
            phase = None  # the request is read; the app's own deadlines apply
        if phase == self._phase:
            return
        self._cancel()
        self._phase = phase
        if phase is not None:
            body = phase[0] == "body"
            self._timer = self.loop.call_later(
                self.body_timeout_s if body else self.header_timeout_s, self._expired, body
            )

    def _expired(self, body: bool) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if body:
            REJECTED.labels("body_timeout").inc()
            if cycle is not None and not cycle.response_started:
                cycle.disconnected = True  # the app's receive() returns http.disconnect
                cycle.message_event.set()
                self.transport.write(
                    _timeout_response(
                        f"request body not received within {self.body_timeout_s:g}s",
                        str(cycle.scope.get("path", "")),
                    )
                )
        else:
            REJECTED.labels("header_timeout").inc()
            pending, _ = self.conn.trailing_data
            if pending:  # part of a request arrived: say why it is cut off
                self.transport.write(
                    _timeout_response(
                        f"request headers not received within {self.header_timeout_s:g}s"
                    )
                )
        self.transport.close()


def server_config(
    app: Any,
    *,
    host: str,
    port: int,
    header_timeout_s: float,
    body_timeout_s: float,
    graceful_shutdown_s: int,
    event_loop: Literal["uvloop", "asyncio"] = "uvloop",
) -> uvicorn.Config:
    """The uvicorn configuration of the gateway: the timed h11 protocol, no access log (the
    metrics count requests), no ``server`` header."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=TimedH11Protocol.configured(
            header_timeout_s=header_timeout_s, body_timeout_s=body_timeout_s
        ),
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=graceful_shutdown_s,
        loop=event_loop,
    )
