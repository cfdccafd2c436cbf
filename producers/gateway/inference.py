"""KServe V2 ``infer`` through Kafka: each row is a transaction, published with this replica's
``replyto`` and a request id of its own; the answer is every row's decision, or 504.

V2 rows are refused (409) when ``/v1`` already claimed their ``transaction_id``; they do not claim
their ids themselves (docs/gateway.md, limits)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse, Response

from producers.gateway.bodies import event_time_settings
from producers.gateway.http import (
    IDEMPOTENT,
    SYNC,
)
from producers.gateway.idempotency import (
    RELEASED,
    tx_key,
)
from producers.gateway.service import Gateway
from producers.gateway.v2 import (
    V2RequestError,
    encode_infer_response,
    parse_infer_request,
)
from producers.publisher import (
    ContractViolationError,
    validate_transaction,
)
from schemas.events import TransactionEvent
from scorestream.event_time import out_of_window


async def infer(
    gw: Gateway,
    model: str,
    body: bytes,
    header_length: int | None,
    traceparent: str | None,
    deadline_s: float,
) -> Response:
    started = time.monotonic()
    s = gw.settings
    if model != s.model_name:
        return JSONResponse({"error": f"unknown model '{model}'"}, status_code=404)
    try:
        request = parse_infer_request(body, header_length)
        if len(request.rows) > s.max_infer_rows:
            raise V2RequestError(f"{len(request.rows)} rows exceed the limit of {s.max_infer_rows}")
        txs = [_row(gw, i, row) for i, row in enumerate(request.rows)]
    except V2RequestError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    ids = [tx.transaction_id for tx in txs]
    if len(set(ids)) != len(ids):
        return JSONResponse({"error": "transaction_id values must be unique"}, status_code=400)
    for i, tid in enumerate(ids):
        # a transaction id /v1 already accepted names that transaction: never a second one
        # (V2 rows are not claimed themselves: docs/gateway.md, limits)
        entry = gw.store.get(tx_key(tid))
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
    futures = [gw.router.register(rid) for rid in request_ids]
    try:
        reports = await asyncio.gather(
            *(
                gw.publish(tx, traceparent, None, reply=True, request_id=rid)
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
            gw.router.unregister(rid, future)
    SYNC.labels(s.tenant, "decided").inc(len(txs))
    versions = {d.model_version for d in decisions}
    version = versions.pop() if len(versions) == 1 else (gw.router.champion_version() or "")
    content, headers = encode_infer_response(
        model_name=model,
        model_version=version,
        request_id=request.id,
        outputs=request.outputs,
        decisions=decisions,
    )
    return Response(content, status_code=200, headers=headers)


def _row(gw: Gateway, i: int, row: dict[str, Any]) -> TransactionEvent:
    try:
        tx = validate_transaction(
            row | {"tenant_id": gw.settings.tenant}, tenant=gw.settings.tenant
        )
    except ContractViolationError as exc:
        detail = "; ".join(f"input '{e.path}'[{i}]: {e.message}" for e in exc.errors)
        raise V2RequestError(detail or str(exc)) from exc
    why = out_of_window(tx.timestamp, datetime.now(UTC), event_time_settings())
    if why is not None:
        raise V2RequestError(f"input 'timestamp'[{i}]: {why}")
    return tx
