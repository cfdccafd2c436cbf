"""The gateway's pure parts: idempotency cache, deadlines, body parsing, the V2 codec."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pytest
import tritonclient.http as triton

from producers.gateway import GatewaySettings, RequestInvalid, parse_transaction
from producers.gateway.http import (
    parse_deadline,
)
from producers.gateway.v2 import (
    HEADER_LENGTH,
    RequestedOutput,
    V2RequestError,
    encode_infer_response,
    model_metadata,
    parse_infer_request,
)
from schemas.events import DecisionEvent, Outcome
from tests.factories import T0, transaction_json


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        (None, 2.0),
        ("wait=5", 5.0),
        ("respond-async, wait=0.25", 0.25),
        ("handling=lenient; wait=1", 1.0),
        ("wait=100", 30.0),  # clamped
        ("wait=0", 2.0),
        ("wait=soon", 2.0),  # a preference is never an error
        ("wait=nan", 2.0),
    ],
)
def test_parse_deadline(prefer: str | None, expected: float) -> None:
    assert parse_deadline(prefer, default_s=2.0, max_s=30.0) == expected


def test_parse_transaction_defaults_the_tenant_and_names_bad_fields() -> None:
    data = transaction_json()
    del data["tenant_id"]
    assert parse_transaction(json.dumps(data).encode(), "acme").tenant_id == "acme"
    with pytest.raises(RequestInvalid) as info:
        parse_transaction(json.dumps(transaction_json(amount_minor="1", mcc=1)).encode(), "acme")
    assert [d["loc"] for d in info.value.detail] == [["body", "amount_minor"], ["body", "mcc"]]
    with pytest.raises(RequestInvalid) as info:
        parse_transaction(json.dumps(transaction_json()).encode(), "other")
    assert info.value.detail[0]["type"] == "tenant_mismatch"
    for bad in (b"{", b"[1]", b"\xff"):
        with pytest.raises(RequestInvalid):
            parse_transaction(bad, "acme")


def test_gateway_settings_defaults_and_bounds() -> None:
    s = GatewaySettings(tenant="acme")
    assert (s.host, s.reply_partition, s.deadline_s) == ("127.0.0.1", 0, 2.0)
    with pytest.raises(ValueError, match="max_in_flight"):
        GatewaySettings(tenant="acme", max_in_flight=0)
    with pytest.raises(ValueError, match="frozen"):
        s.port = 1  # type: ignore[misc]


# -- the V2 codec, checked against tritonclient's own encoder and decoder -------------------------

ROWS = {
    "transaction_id": ["t1", "t2", "t3"],
    "account_id": ["a1", "a2", "a1"],
    "merchant_id": ["m1", "m2", "m3"],
    "currency": ["EUR", "EUR", "USD"],
    "channel": ["ecommerce", "card_present", "atm"],
    "country": ["DE", "FR", "US"],
    "mcc": ["5411", "5812", "6011"],
}


def triton_inputs(binary: bool, *, amounts: list[int] | None = None) -> list[triton.InferInput]:
    inputs = []
    for name, values in ROWS.items():
        tensor = triton.InferInput(name, [3], "BYTES")
        tensor.set_data_from_numpy(np.array(values, dtype=object), binary_data=binary)
        inputs.append(tensor)
    amount = triton.InferInput("amount_minor", [3], "INT64")
    amount.set_data_from_numpy(np.array(amounts or [100, 2500, 99], np.int64), binary_data=binary)
    stamp = triton.InferInput("timestamp", [3], "INT64")
    stamp.set_data_from_numpy(np.array([int(T0.timestamp() * 1000)] * 3, np.int64), binary)
    return [*inputs, amount, stamp]


@pytest.mark.parametrize("binary", [True, False])
def test_infer_request_from_tritonclient(binary: bool) -> None:
    body, json_size = triton.InferenceServerClient.generate_request_body(
        triton_inputs(binary), request_id="r-1", timeout=1_500_000
    )
    assert (json_size is not None) == binary
    request = parse_infer_request(body, json_size)
    assert request.id == "r-1"
    assert request.timeout_s == 1.5
    assert [r["transaction_id"] for r in request.rows] == ROWS["transaction_id"]
    assert [r["amount_minor"] for r in request.rows] == [100, 2500, 99]
    assert request.rows[0]["timestamp"] == T0.isoformat()
    assert request.rows[2]["channel"] == "atm"
    assert [o.name for o in request.outputs] == ["score", "decision", "model_version"]
    assert all(o.binary for o in request.outputs)  # tritonclient asks for binary by default


def test_infer_request_errors_are_specific() -> None:
    def body(inputs: list[dict[str, object]]) -> bytes:
        return json.dumps({"inputs": inputs}).encode()

    def col(name: str, data: Sequence[object], datatype: str = "BYTES") -> dict[str, object]:
        return {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}

    full = [col(n, v) for n, v in ROWS.items()] + [col("amount_minor", [1, 2, 3], "INT64")]
    assert len(parse_infer_request(body(full), None).rows) == 3
    cases = {
        "missing input(s): amount_minor": full[:-1],
        "unexpected input 'colour'": [*full, col("colour", ["r", "g", "b"])],
        "has 2 rows": [*full[:-1], col("amount_minor", [1, 2], "INT64")],
        "expected an integer": [*full[:-1], col("amount_minor", ["1", "2", "3"], "BYTES")],
        "must be BYTES": [*full[1:], col("transaction_id", [1, 2, 3], "INT64")],
        "shape says 3": [*full[1:], {**col("transaction_id", ["a"]), "shape": [3]}],
    }
    for message, inputs in cases.items():
        with pytest.raises(V2RequestError, match=re.escape(message)):
            parse_infer_request(body(inputs), None)
    with pytest.raises(V2RequestError, match="not valid JSON"):
        parse_infer_request(b"{", None)
    with pytest.raises(V2RequestError, match=HEADER_LENGTH):
        parse_infer_request(b"{}", 10)


def decision(txid: str, outcome: Outcome, score: float) -> DecisionEvent:
    now = datetime.now(UTC)
    return DecisionEvent(
        transaction_id=txid,
        tenant_id="acme",
        account_id="a",
        outcome=outcome,
        score=score,
        model_name="fraud-gbt",
        model_version="7",
        policy_version="p1",
        event_time=now,
        decided_at=now,
    )


@pytest.mark.parametrize("binary", [True, False])
def test_infer_response_reads_back_with_tritonclient(binary: bool) -> None:
    decisions = [
        decision("t1", Outcome.APPROVE, 0.01),
        decision("t2", Outcome.DECLINE, 0.97),
    ]
    outputs = [RequestedOutput("score", binary), RequestedOutput("decision", binary)]
    content, headers = encode_infer_response(
        model_name="fraud-gbt",
        model_version="7",
        request_id="r-9",
        outputs=outputs,
        decisions=decisions,
    )
    length = headers.get(HEADER_LENGTH)
    assert (length is not None) == binary
    result = triton.InferResult.from_response_body(
        content, header_length=int(length) if length else None
    )
    assert result.get_response()["id"] == "r-9"
    scores = result.as_numpy("score")
    assert scores is not None
    assert scores.dtype == np.float32
    assert scores.tolist() == pytest.approx([0.01, 0.97])
    labels = result.as_numpy("decision")
    assert labels is not None
    assert [v.decode() if isinstance(v, bytes) else v for v in labels] == ["approve", "decline"]
    assert result.as_numpy("model_version") is None  # not requested


def test_model_metadata_lists_the_mapping() -> None:
    meta = model_metadata("fraud-gbt", ["3"])
    assert meta["versions"] == ["3"]
    inputs = {t["name"]: t["datatype"] for t in meta["inputs"]}
    assert inputs["amount_minor"] == "INT64"
    assert inputs["transaction_id"] == "BYTES"
    assert [o["name"] for o in meta["outputs"]] == ["score", "decision", "model_version"]
