"""The contracts' fast path (``schemas.fast``) against the pydantic contracts it is generated from.

Property, over generated payloads of every contract (valid ones, and ones with one field
mutated, removed, retyped, or the JSON text damaged):

* when the fast path accepts a payload, pydantic accepts it too, and the two objects are equal
  (same values, same ``model_fields_set``), and the fast encoder writes JSON that decodes to the
  same event as ``model_dump_json``;
* when pydantic rejects a payload, the fast path rejects it as well (it *declines*), at a field
  path pydantic reports (``transaction.amount_minor``, ``features.amount``, ``<root>``);
* the unmutated payloads are all accepted by the fast path (it is not a path that declines
  everything).

A payload the fast path declines although pydantic accepts it (an unusual timestamp shape) is
allowed: the batch codec then asks pydantic, which decides.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.catalog import CONTRACTS
from schemas.events import (
    AuditRecord,
    AuditStatus,
    Contract,
    EnrichedTransaction,
    MerchantActivity,
    TransactionEvent,
)
from schemas.fast import Decline, dump_json, dump_many, fast_decoder
from tests.factories import every_contract, transaction

PROPERTY = settings(
    max_examples=int(os.environ.get("FAST_CODEC_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _bases() -> list[Contract]:
    out: list[Contract] = list(every_contract())
    tx = transaction(card_country=None)
    out.append(tx)
    out.append(
        EnrichedTransaction(
            transaction=transaction(),
            features={"amount": 12.5, "hour": 3.0, "ratio": -1e-7, "big": 1e300},
            feature_spec_hash="0123456789abcdef",
            enriched_at=datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=UTC),
            merchant_as_of=datetime(2026, 11, 24, 11, 0, tzinfo=UTC),
        )
    )
    out.append(
        AuditRecord(
            transaction_id="tx-1",
            tenant_id="acme",
            account_id="acc-1",
            status=AuditStatus.INCOMPLETE,
            missing=("prediction", "decision"),
            transaction=tx,
            features={"amount": 1.0},
            hop_ms={"enrich": 1.5},
            recorded_at=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
            revision=2,
            supersedes=1,
            amends=("transaction",),
        )
    )
    return [e for e in out if fast_decoder(type(e)) is not None]


BASES = _bases()

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2,
    10**15,
    10**15 + 1,
    2**70,
    0.0,
    0.5,
    1.0,
    1.5,
    -0.0,
    -2.5,
    1e308,
    "",
    "a",
    "x" * 129,
    "ab c",
    "-leading",
    "acme",
    "Acme",
    "EUR",
    "XXX",
    "eur",
    "DE",
    "ZZ",
    "de",
    "5411",
    "54110",
    "\u0665\u0664\u0661\u0661",
    "0" * 64,
    "0123456789abcdef0123456789abcdef",
    "card_present",
    "champion",
    "approve",
    "chargeback",
    "complete",
    "transaction",
    "promoted",
    "2026-11-24T12:00:00Z",
    "2026-11-24T12:00:00.123456Z",
    "2026-11-24T12:00:00.123Z",
    "2026-11-24T12:00:00+02:00",
    "2026-11-24 12:00:00Z",
    "2026-11-24T12:00:00",
    "2026-02-30T12:00:00Z",
    "9999-12-31T23:59:59Z",
    "1700000000",
    [],
    ["transaction"],
    ["nope"],
    {},
    {"amount": 1.0},
    {"amount": "1"},
    {"amount": None},
    {"queue_ms": 1.0, "inference_ms": 2.0, "batch_size": 1},
    {"queue_ms": -1.0, "inference_ms": 2.0, "batch_size": 1},
]
"""Values a mutated field takes: wrong types, boundaries, valid and invalid codes and times."""

TEXT_DAMAGE = [
    lambda s: s[: len(s) // 2],
    lambda s: s.replace('"', "'", 1),
    lambda s: "[" + s + "]",
    lambda s: s + "x",
    lambda s: "",
    lambda s: "null",
    lambda s: "1",
    lambda s: s.replace("1.0", "1e999", 1),
    lambda s: s.replace("12.5", "1e999", 1),
    lambda s: s.replace("0.5", "NaN", 1),
    lambda s: s.replace("}", ',"amount_minor":"7"}', 1),
    # a repeated key: the last one counts, in both
    lambda s: s[:-1] + ',"transaction_id":"tx-dup"}',
    lambda s: '{"transaction_id":"tx-dup",' + s[1:],
    lambda s: s[:-1] + ',"tenant_id":"Not A Tenant"}',
]


def _paths(doc: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((*prefix, str(i)))
            out += _paths(v, (*prefix, str(i)))
    return out


def _set(doc: Any, path: tuple[str, ...], value: Any, *, delete: bool = False) -> None:
    node = doc
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = path[-1]
    if isinstance(node, list):
        if delete:
            del node[int(last)]
        else:
            node[int(last)] = value
    elif delete:
        node.pop(last, None)
    else:
        node[last] = value


def _pydantic(model: type[Contract], payload: bytes) -> Contract | set[str]:
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        return {".".join(str(p) for p in e["loc"]) or "<root>" for e in exc.errors()}


def _fast(model: type[Contract], payload: bytes) -> Contract | Decline:
    decoder = fast_decoder(model)
    assert decoder is not None
    try:
        return decoder.decode(payload)
    except Decline as decline:
        return decline


def check_agreement(model: type[Contract], payload: bytes) -> str:
    """Assert the property for one payload; returns which case it was."""
    ref = _pydantic(model, payload)
    got = _fast(model, payload)
    if isinstance(got, Decline):
        if isinstance(ref, set):
            assert got.path in ref, (payload, got.path, ref)
            return "both reject"
        return "declined, pydantic accepts"
    assert not isinstance(ref, set), (payload, got, ref)
    assert got == ref
    assert got.model_fields_set == ref.model_fields_set
    assert type(got) is type(ref)
    assert json.loads(dump_json(got)) == json.loads(ref.model_dump_json())
    return "both accept"


@pytest.mark.parametrize("event", BASES, ids=lambda e: type(e).__name__)
def test_valid_events_take_the_fast_path_and_equal_pydantic(event: Contract) -> None:
    payload = event.model_dump_json().encode()
    assert check_agreement(type(event), payload) == "both accept"
    # the fast encoder writes what pydantic writes: the same fields in the same order and the
    # same values (floats may differ in spelling only: msgspec writes 1e300, pydantic 1e+300)
    fast = _fast(type(event), payload)
    assert isinstance(fast, Contract)
    for written in (dump_json(fast), dump_json(event), *dump_many([event, event])):
        assert json.loads(written) == json.loads(payload)
        assert list(json.loads(written)) == list(json.loads(payload))
    if b"e+" not in payload:
        assert dump_json(event) == payload
    # defaults left out of the payload: still accepted, and not in model_fields_set
    doc = json.loads(payload)
    for name, info in type(event).model_fields.items():
        if not info.is_required():
            doc.pop(name, None)
    doc["added_in_a_later_minor_version"] = {"x": [1, 2]}
    assert check_agreement(type(event), json.dumps(doc).encode()) == "both accept"


@given(data=st.data())
@PROPERTY
def test_one_field_mutated_agrees_with_pydantic(data: st.DataObject) -> None:
    event = data.draw(st.sampled_from(BASES))
    doc = json.loads(event.model_dump_json())
    path = data.draw(st.sampled_from(_paths(doc)))
    if data.draw(st.booleans()):
        _set(doc, path, data.draw(st.sampled_from(ODD_VALUES)))
    else:
        _set(doc, path, None, delete=True)
    check_agreement(type(event), json.dumps(doc).encode())


@given(data=st.data())
@PROPERTY
def test_damaged_json_text_agrees_with_pydantic(data: st.DataObject) -> None:
    event = data.draw(st.sampled_from(BASES))
    text = event.model_dump_json()
    damage = data.draw(st.sampled_from(TEXT_DAMAGE))
    check_agreement(type(event), damage(text).encode())


@given(
    data=st.data(),
    junk=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)),
)
@PROPERTY
def test_arbitrary_bytes_agree_with_pydantic(data: st.DataObject, junk: bytes) -> None:
    model = data.draw(st.sampled_from(sorted({type(e) for e in BASES}, key=lambda c: c.ce_type)))
    check_agreement(model, junk)


@given(
    amount=st.integers(min_value=-(2**66), max_value=2**66),
    feature=st.floats(allow_nan=False, allow_infinity=False),
    seconds=st.integers(min_value=-(10**9), max_value=10**10),
    micros=st.integers(min_value=0, max_value=999_999),
    ident=st.text(alphabet="aZ09_.:-é ", min_size=0, max_size=130),
)
@PROPERTY
def test_generated_values_agree_with_pydantic(
    amount: int, feature: float, seconds: int, micros: int, ident: str
) -> None:
    doc = json.loads(BASES[[type(b) for b in BASES].index(EnrichedTransaction)].model_dump_json())
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros)
    doc["transaction"]["amount_minor"] = amount
    doc["transaction"]["merchant_id"] = ident
    doc["transaction"]["timestamp"] = when.isoformat().replace("+00:00", "Z")
    doc["features"]["amount"] = feature
    check_agreement(EnrichedTransaction, json.dumps(doc).encode())


def test_every_contract_but_the_merchant_stages_has_a_fast_path() -> None:
    covered = {c for c in CONTRACTS if fast_decoder(c) is not None}
    assert covered == set(CONTRACTS) - {MerchantActivity}
    assert fast_decoder(MerchantActivity) is None


def test_a_far_future_event_time_is_declined_where_pydantic_rejects_it() -> None:
    doc = json.loads(transaction().model_dump_json())
    doc["timestamp"] = "2999-01-01T00:00:00Z"
    payload = json.dumps(doc).encode()
    assert isinstance(_pydantic(TransactionEvent, payload), set)
    got = _fast(TransactionEvent, payload)
    assert isinstance(got, Decline)
    assert got.path == "timestamp"


@pytest.mark.parametrize("payload", [b"{}\x00", b'{"a": 1} x', b"{}}", b"[] 1"])
@pytest.mark.parametrize(
    "model", [m for m in CONTRACTS if fast_decoder(m) is not None], ids=lambda m: m.__name__
)
def test_trailing_garbage_is_invalid_json_like_pydantic(
    model: type[Contract], payload: bytes
) -> None:
    """msgspec checks the fields while it parses, so ``{}\\x00`` failed on a missing field where
    pydantic reports malformed JSON (found by the property test above)."""
    assert check_agreement(model, payload) == "both reject"
