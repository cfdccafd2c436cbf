"""What the gateway reads and answers: the request body as a transaction, and the response
bodies of ``/v1`` (accepted, scored, pending, unacknowledged, the idempotency refusals)."""

from __future__ import annotations

import functools
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from producers.gateway import strict_json
from producers.gateway.http import (
    StoredResponse,
)
from producers.gateway.idempotency import (
    DONE,
    Entry,
)
from producers.publisher import (
    ContractViolationError,
    DeliveryReport,
    validate_transaction,
)
from schemas.events import DecisionEvent, TransactionEvent
from scorestream.event_time import REASON as EVENT_TIME
from scorestream.event_time import EventTimeSettings, out_of_window

# -- request and response bodies ---------------------------------------------------------------


class RequestInvalid(Exception):  # noqa: N818  (an HTTP outcome, mapped to 422)
    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail


@functools.cache
def event_time_settings() -> EventTimeSettings:
    return EventTimeSettings()


def parse_transaction(
    body: bytes, tenant: str, *, window: EventTimeSettings | None = None
) -> TransactionEvent:
    """The request body as a ``TransactionEvent`` of ``tenant``; RequestInvalid lists the fields.

    Strict JSON (a repeated key or absurd nesting is refused,
    :mod:`producers.gateway.strict_json`) and an event time inside ``window`` (default:
    :class:`EventTimeSettings` from the environment).
    """
    try:
        data = strict_json.loads(body)
    except strict_json.JsonBodyError as exc:
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
    why = out_of_window(tx.timestamp, datetime.now(UTC), window or event_time_settings())
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


def transaction_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    schema = TransactionEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    schema["title"] = "TransactionRequest"
    schema["description"] = (
        "A scorestream.transaction.v1 event. tenant_id may be left out: it defaults to the "
        "gateway's tenant (and must equal it if given)."
    )
    schema["required"] = [f for f in schema.get("required", []) if f != "tenant_id"]
    return schema, defs


TX_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TransactionRequest"}}
        },
    }
}
V2_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def stored_response(response: StoredResponse, *, replayed: bool = False) -> JSONResponse:
    headers = dict(response.headers)
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(response.body, status_code=response.status, headers=headers)


def key_reused() -> JSONResponse:
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


def transaction_reused() -> JSONResponse:
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


def done_entry(entry: Entry, stored: StoredResponse, *, seq: int) -> Entry:
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


def from_entry(entry: Entry) -> StoredResponse:
    r = entry.response or {}
    return StoredResponse(
        int(r.get("status", 500)),
        dict(r.get("body") or {}),
        headers=dict(r.get("headers") or {}),
        transaction_id=entry.transaction_id,
        awaiting_decision=bool(r.get("awaiting", False)),
    )


def open_outcome(transaction_id: str | None, status: int, *, retry_after_s: int) -> JSONResponse:
    return JSONResponse(
        {
            "detail": "a request with this Idempotency-Key or transaction_id is still being "
            "processed, or Kafka's answer to it is not known yet; retry later with the same "
            "request",
            "transaction_id": transaction_id,
        },
        status_code=status,
        headers={"Retry-After": str(retry_after_s)},
    )


def accepted_response(report: DeliveryReport) -> StoredResponse:
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


def decided_response(report_event_id: str, trace_id: str, d: DecisionEvent) -> StoredResponse:
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


def pending_response(
    event_id: str, transaction_id: str, trace_id: str, waited: float
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


def unacknowledged_response(
    tx: TransactionEvent, deadline_s: float, *, retry_after_s: int
) -> StoredResponse:
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
        headers={"Retry-After": str(retry_after_s)},
        transaction_id=tx.transaction_id,
    )
