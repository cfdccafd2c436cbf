"""The Open Inference Protocol (KServe V2) REST codec of the gateway: pure, no I/O.

The "model" behind ``/v2/models/<name>/infer`` is the whole choreography: each row of the
request becomes one ``TransactionEvent`` published to Kafka, and each row's output is that
transaction's decision, read from this replica's reply partition.

Inputs (all shape ``[N]`` or ``[N, 1]``, the same ``N`` for every input):

==================  =====================  ==========================================
name                datatype               value
==================  =====================  ==========================================
``transaction_id``  BYTES                  unique per row
``account_id``      BYTES                  Kafka key
``merchant_id``     BYTES
``amount_minor``    INT64 (any integer)    money in minor units
``currency``        BYTES                  ISO 4217 (``EUR``)
``channel``         BYTES                  ``ecommerce``, ``card_present`` ...
``country``         BYTES                  ISO 3166-1 alpha-2
``mcc``             BYTES                  four digits
``timestamp``       BYTES or INT64         optional: ISO 8601 with offset, or Unix ms;
                                           default: the time of the request
``card_country``    BYTES                  optional; empty means unknown
==================  =====================  ==========================================

The model's versions are what serves the tenant as champion (:func:`serving_version`); the
routes take it with or without ``/versions/<v>``, and every failure is ``{"error": "..."}``.

Outputs: ``score`` FP32 ``[N]``, ``decision`` BYTES ``[N]`` (approve / review / decline),
``model_version`` BYTES ``[N]``. Both JSON tensors and the binary tensor data extension
(``Inference-Header-Content-Length``, what ``tritonclient`` sends by default) are supported, for
inputs and outputs. The request parameter ``timeout`` (microseconds, as tritonclient sends it)
sets the deadline.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from producers.gateway import strict_json
from schemas.events import DecisionEvent, ModelAlias
from scorestream.errors import ScorestreamError
from scorestream.model_events import ModelState

PLATFORM = "scorestream_kafka"
HEADER_LENGTH = "Inference-Header-Content-Length"

STRING_INPUTS = (
    "transaction_id",
    "account_id",
    "merchant_id",
    "currency",
    "channel",
    "country",
    "mcc",
)
REQUIRED_INPUTS = (*STRING_INPUTS[:3], "amount_minor", *STRING_INPUTS[3:])
OPTIONAL_INPUTS = ("timestamp", "card_country")
OUTPUTS = {"score": "FP32", "decision": "BYTES", "model_version": "BYTES"}

_INT_TYPES = {
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}


class V2RequestError(ScorestreamError):
    """The infer request breaks the protocol or the input mapping (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True, slots=True)
class InferRequest:
    id: str | None
    rows: list[dict[str, Any]]
    """One JSON-ready ``TransactionEvent`` mapping per row (without ``tenant_id``)."""
    outputs: list[RequestedOutput]
    timeout_s: float | None


def serving_version(models: ModelState, tenant: str, model: str) -> str | None:
    """The version of ``model`` serving ``tenant`` as champion, as the ``model-events`` topic says:
    the latest promotion, unless a worker rejected that version after it was promoted (the
    workers then keep, or fall back to, an older version the gateway cannot name). ``None``: no
    model serves the tenant, so the V2 model (and server) readiness is false.
    """
    promoted = models.serving(tenant, model, ModelAlias.CHAMPION)
    if promoted is None:
        return None
    for rejected in models.rejected:
        if (rejected.tenant_id, rejected.model_name, rejected.model_version) == (
            tenant,
            model,
            promoted.model_version,
        ) and rejected.rejected_at >= promoted.promoted_at:
            return None
    return promoted.model_version


def model_metadata(name: str, versions: Sequence[str]) -> dict[str, Any]:
    def tensor(n: str, datatype: str) -> dict[str, Any]:
        return {"name": n, "datatype": datatype, "shape": [-1]}

    inputs = [tensor(n, "INT64" if n == "amount_minor" else "BYTES") for n in REQUIRED_INPUTS]
    inputs += [tensor(n, "BYTES") for n in OPTIONAL_INPUTS]
    return {
        "name": name,
        "versions": list(versions),
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": [tensor(n, t) for n, t in OUTPUTS.items()],
    }


# -- request -------------------------------------------------------------------------------------


MAX_DATA_DEPTH = 8
"""Nesting allowed in a tensor's ``data`` (row-major nested lists; shapes are [N] or [N, 1])."""


def _flatten(data: Any, name: str, depth: int = 0) -> list[Any]:
    if isinstance(data, list):
        if depth >= MAX_DATA_DEPTH:
            raise V2RequestError(f"input '{name}': 'data' is nested too deeply")
        out: list[Any] = []
        for item in data:
            out.extend(_flatten(item, name, depth + 1))
        return out
    return [data]


def _params(holder: dict[str, Any], where: str) -> dict[str, Any]:
    """``holder["parameters"]``: absent/null → {}; anything but an object is a 400."""
    params = holder.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise V2RequestError(f"{where}'parameters' must be an object")
    return params


def _deserialize_bytes(blob: bytes, name: str) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    while pos < len(blob):
        if pos + 4 > len(blob):
            raise V2RequestError(f"input '{name}': truncated BYTES element length")
        (length,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        if pos + length > len(blob):
            raise V2RequestError(f"input '{name}': BYTES element overruns the binary data")
        out.append(blob[pos : pos + length])
        pos += length
    return out


def _tensor_values(tensor: dict[str, Any], blob: bytes | None) -> list[Any]:
    name = tensor["name"]
    datatype = tensor.get("datatype")
    if blob is not None:
        if datatype == "BYTES":
            return list(_deserialize_bytes(blob, name))
        dtype = _INT_TYPES.get(str(datatype))
        if dtype is None:
            raise V2RequestError(f"input '{name}': datatype {datatype} is not supported here")
        if len(blob) % np.dtype(dtype).itemsize:
            raise V2RequestError(f"input '{name}': binary size is not a multiple of {datatype}")
        return [int(v) for v in np.frombuffer(blob, dtype=dtype)]
    if "data" not in tensor:
        raise V2RequestError(f"input '{name}': no 'data' and no binary_data_size")
    return _flatten(tensor["data"], name)


def _shape_rows(tensor: dict[str, Any]) -> int:
    shape = tensor.get("shape")
    name = tensor.get("name")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise V2RequestError(f"input '{name}': 'shape' must be a list of non-negative integers")
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return int(shape[0])
    raise V2RequestError(f"input '{name}': shape must be [N] or [N, 1], got {shape}")


def _as_text(value: Any, name: str, row: int) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise V2RequestError(f"input '{name}'[{row}]: not valid UTF-8") from exc
    if isinstance(value, str):
        return value
    raise V2RequestError(f"input '{name}'[{row}]: expected a string (BYTES), got {_preview(value)}")


def _cell(name: str, datatype: str, value: Any, row: int) -> Any:
    if name == "amount_minor":
        if datatype not in _INT_TYPES or isinstance(value, bool) or not isinstance(value, int):
            raise V2RequestError(f"input 'amount_minor'[{row}]: expected an integer (INT64)")
        return value
    if name == "timestamp" and datatype in _INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise V2RequestError(f"input 'timestamp'[{row}]: expected Unix milliseconds")
        try:
            return datetime.fromtimestamp(value / 1000, UTC).isoformat()
        except (OverflowError, OSError, ValueError) as exc:
            raise V2RequestError(f"input 'timestamp'[{row}]: out of range") from exc
    if datatype != "BYTES":
        raise V2RequestError(f"input '{name}': datatype must be BYTES, got {datatype}")
    return _as_text(value, name, row)


def _columns(inputs: list[Any], binary: bytes) -> tuple[dict[str, tuple[str, list[Any]]], int]:
    """Input name → (datatype, flat values), and the common row count N."""
    pos = 0
    columns: dict[str, tuple[str, list[Any]]] = {}
    n: int | None = None
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise V2RequestError("every input needs a 'name'")
        name = tensor["name"]
        if name not in REQUIRED_INPUTS and name not in OPTIONAL_INPUTS:
            raise V2RequestError(
                f"unexpected input {_preview(name)}; inputs are {', '.join(REQUIRED_INPUTS)} "
                f"(optional: {', '.join(OPTIONAL_INPUTS)})"
            )
        if name in columns:
            raise V2RequestError(f"input '{name}' given twice")
        rows = _shape_rows(tensor)
        size = _params(tensor, f"input '{name}': ").get("binary_data_size")
        blob = None
        if size is not None:
            if not isinstance(size, int) or size < 0 or pos + size > len(binary):
                raise V2RequestError(f"input '{name}': binary_data_size overruns the body")
            blob, pos = binary[pos : pos + size], pos + size
        values = _tensor_values(tensor, blob)
        if len(values) != rows:
            raise V2RequestError(f"input '{name}': shape says {rows} elements, got {len(values)}")
        if n is not None and rows != n:
            raise V2RequestError(f"input '{name}' has {rows} rows, other inputs have {n}")
        n = rows
        columns[name] = (str(tensor.get("datatype")), values)
    missing = [name for name in REQUIRED_INPUTS if name not in columns]
    if missing:
        raise V2RequestError(f"missing input(s): {', '.join(missing)}")
    if not n:
        raise V2RequestError("the request has no rows (N = 0)")
    return columns, n


def _timeout_s(params: dict[str, Any]) -> float | None:
    timeout = params.get("timeout")
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0:
        return timeout / 1e6
    return None


def parse_infer_request(
    body: bytes, header_length: int | None, *, now: datetime | None = None
) -> InferRequest:
    """Decode an infer request (JSON, or JSON header + binary tensors) into transaction rows."""
    if header_length is not None and not 0 < header_length <= len(body):
        raise V2RequestError(f"{HEADER_LENGTH} {header_length} does not fit the body")
    head = body[:header_length] if header_length is not None else body
    binary = body[header_length:] if header_length is not None else b""
    try:
        request = strict_json.loads(head)
    except strict_json.JsonBodyError as exc:
        raise V2RequestError(f"request is not valid JSON: {exc}") from exc
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise V2RequestError("request must be a JSON object with an 'inputs' list")
    params = _params(request, "")
    columns, n = _columns(request["inputs"], binary)
    stamp = (now or datetime.now(UTC)).isoformat()
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row = {name: _cell(name, dt, values[i], i) for name, (dt, values) in columns.items()}
        if not row.get("card_country"):
            row.pop("card_country", None)
        row.setdefault("timestamp", stamp)
        rows.append(row)
    request_id = request.get("id")
    if request_id is not None and (
        isinstance(request_id, bool) or not isinstance(request_id, str | int)
    ):
        raise V2RequestError("'id' must be a string")
    return InferRequest(
        id=str(request_id) if request_id not in (None, "") else None,
        rows=rows,
        outputs=_requested_outputs(request, bool(params.get("binary_data_output", False))),
        timeout_s=_timeout_s(params),
    )


def _requested_outputs(request: dict[str, Any], binary_default: bool) -> list[RequestedOutput]:
    wanted = request.get("outputs")
    if not wanted:
        return [RequestedOutput(name, binary_default) for name in OUTPUTS]
    if not isinstance(wanted, list):
        raise V2RequestError("'outputs' must be a list")
    out: list[RequestedOutput] = []
    for item in wanted:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(name, str) or name not in OUTPUTS:
            raise V2RequestError(
                f"every output needs a 'name', one of {', '.join(OUTPUTS)}; got "
                f"{_preview(name if isinstance(item, dict) else item)}"
            )
        params = _params(item, f"output '{name}': ")
        out.append(RequestedOutput(name, bool(params.get("binary_data", binary_default))))
    return out


def _preview(value: Any) -> str:
    """A short rendering of a client's value for an error message (never the whole body)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- response ------------------------------------------------------------------------------------


def _serialize_bytes(values: Sequence[str]) -> bytes:
    parts: list[bytes] = []
    for v in values:
        raw = v.encode()
        parts += [struct.pack("<I", len(raw)), raw]
    return b"".join(parts)


def encode_infer_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[RequestedOutput],
    decisions: Sequence[DecisionEvent],
) -> tuple[bytes, dict[str, str]]:
    """The response body and headers; binary outputs add ``Inference-Header-Content-Length``."""
    n = len(decisions)
    columns: dict[str, list[Any]] = {
        "score": [float(np.float32(d.score)) for d in decisions],
        "decision": [d.outcome.value for d in decisions],
        "model_version": [d.model_version for d in decisions],
    }
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for out in outputs:
        values = columns[out.name]
        tensor: dict[str, Any] = {"name": out.name, "datatype": OUTPUTS[out.name], "shape": [n]}
        if out.binary:
            blob = (
                np.asarray(values, dtype="<f4").tobytes()
                if OUTPUTS[out.name] == "FP32"
                else _serialize_bytes(values)
            )
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = values
        tensors.append(tensor)
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": tensors,
    }
    if request_id is not None:
        response["id"] = request_id
    head = json.dumps(response, allow_nan=False).encode()
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {
        "content-type": "application/octet-stream",
        HEADER_LENGTH: str(len(head)),
    }
