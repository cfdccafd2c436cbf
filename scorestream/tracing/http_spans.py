"""HTTP spans (:mod:`scorestream.tracing`): a client span per outgoing request, a server span per
incoming one (ASGI middleware)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from scorestream.logs import redact_url
from scorestream.tracing import provider
from scorestream.tracing.conventions import TENANT
from scorestream.tracing.hops import continue_from_headers
from scorestream.tracing.propagation import w3c
from scorestream.tracing.provider import tracer


@contextlib.contextmanager
def client_span(
    method: str, url: str, *, parent: Context | Span | None = None
) -> Iterator[tuple[Span, dict[str, str]]]:
    """An HTTP client span; yields it and the W3C headers to send.

    ``url.full`` is the URL as :func:`scorestream.logs.redact_url` leaves it (scheme, host,
    port; user-info, path, query and fragment masked): a webhook URL carries its credentials
    there, and spans are kept and read like logs (the semantic conventions ask the same)."""
    if isinstance(parent, Span):
        parent = trace.set_span_in_context(parent)
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    attrs: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": redact_url(url),
        "server.address": parts.hostname or "",
    }
    if port:
        attrs["server.port"] = port
    with tracer().start_as_current_span(
        method, context=parent, kind=SpanKind.CLIENT, attributes=attrs
    ) as span:
        yield span, w3c(span)


def http_result(span: Span, status: int | None, error_type: str = "", attempts: int = 1) -> None:
    """Record an HTTP outcome on a client span (error status from 500 or a transport error)."""
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if attempts > 1:
        span.set_attribute("http.request.resend_count", attempts - 1)
    if error_type:
        span.set_attribute("error.type", error_type)
    if error_type or (status is not None and status >= 500):
        span.set_status(Status(StatusCode.ERROR, error_type or str(status)))


class ServerSpanMiddleware:
    """ASGI middleware: a SERVER span per HTTP request, continuing a ``traceparent`` header, and
    current while the app runs (so a producer span in a handler is its child). Named
    ``<METHOD> <route template>`` once routing has matched (low cardinality), else the method.
    Written by hand rather than taken from opentelemetry-instrumentation-asgi: it is thirty
    lines, and that package pins its own semantic-conventions versions."""

    def __init__(self, app: Any, *, exclude: Sequence[str] = ("/livez", "/readyz", "/metrics")):
        self.app = app
        self.exclude = tuple(exclude)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or provider._state is None or scope["path"] in self.exclude:
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", ())
            if k in (b"traceparent", b"tracestate")
        }
        method = scope["method"]
        attrs: dict[str, str | int] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        if provider._state.tenant:
            attrs[TENANT] = provider._state.tenant
        status: list[int] = []

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        with continue_from_headers(headers, method, attrs, kind=SpanKind.SERVER) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                if status:
                    span.set_attribute("http.response.status_code", status[0])
                    if status[0] >= 500:
                        span.set_status(Status(StatusCode.ERROR, str(status[0])))
