"""The gateway's HTTP application: middlewares, the ``/v1``, ``/v2`` and operations routes, the
OpenAPI document, the server and ``main``."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from producers.gateway import inference
from producers.gateway.auth import ApiKeyMiddleware, GatewayAuthSettings, auth_store
from producers.gateway.bodies import (
    TX_BODY,
    V2_BODY,
    Accepted,
    Pending,
    Problem,
    RequestInvalid,
    Scored,
    event_time_settings,
    transaction_schema,
)
from producers.gateway.http import (
    BodyLimitMiddleware,
    ContentTypeMiddleware,
    InFlightLimitMiddleware,
    MethodFilterMiddleware,
    MetricsMiddleware,
    error_body,
    is_v2,
    parse_deadline,
)
from producers.gateway.server import server_config
from producers.gateway.service import Gateway
from producers.gateway.settings import GatewaySettings
from producers.gateway.v2 import (
    HEADER_LENGTH,
    model_metadata,
)
from producers.publisher import (
    PublisherError,
)
from scorestream import tracing
from scorestream.entrypoint import run_service
from scorestream.settings import KafkaSettings

log = logging.getLogger("scorestream.gateway")
SERVICE = "gateway"

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
    keys = auth_store(settings.tenant, auth)  # API keys (producers.gateway.auth); fails closed
    event_time_settings()  # a bad SCORESTREAM_MAX_EVENT_* fails at start, not on a request
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
        openapi_extra=TX_BODY,
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
        openapi_extra=TX_BODY,
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
        return await inference.infer(gw, model, body, header_length, traceparent, deadline)

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

    @app.post("/v2/models/{model}/infer", tags=["v2"], openapi_extra=V2_BODY)
    async def v2_infer(
        model: str,
        request: Request,
        traceparent: TraceParent = None,
        prefer: Prefer = None,
    ) -> Response:
        """Score N transactions given as named input tensors (see producers.gateway.v2)."""
        return await infer(model, None, request, traceparent, prefer)

    @app.post("/v2/models/{model}/versions/{version}/infer", tags=["v2"], openapi_extra=V2_BODY)
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
    request_schema, defs = transaction_schema()

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


def serve(settings: GatewaySettings) -> int:
    """Run the gateway's HTTP server until SIGTERM/SIGINT (drains in-flight requests)."""
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


@dataclass(frozen=True, slots=True)
class _Server:
    settings: GatewaySettings

    def run(self) -> int:
        return serve(self.settings)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scorestream gateway`` and of the container: every setting of
    :class:`GatewaySettings` from ``SCORESTREAM_GATEWAY_*`` or as a flag."""
    return run_service(SERVICE, GatewaySettings, _Server, argv)


if __name__ == "__main__":
    sys.exit(main())
