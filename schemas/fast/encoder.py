"""Encoding (:mod:`schemas.fast`): a validated contract's JSON, written by msgspec."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
from pydantic import BaseModel

from schemas.events import Contract


# -- encoding --------------------------------------------------------------------------------------
def _enc_hook(obj: Any) -> Any:
    """msgspec's ``enc_hook``: a nested model as its fields; anything else unsupported, which
    msgspec's protocol asks the hook to signal with ``NotImplementedError`` (not a stub)."""
    if isinstance(obj, BaseModel):
        return obj.__dict__
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)
_encode = _ENCODER.encode


def dump_json(event: Contract) -> bytes:
    """``event``'s JSON, as ``model_dump_json`` writes it (same fields, same order, same values):
    the values are already validated, so only the writing is left (msgspec, in C)."""
    return _encode(event.__dict__)


def dump_many(events: typing.Sequence[Contract]) -> list[bytes]:
    """:func:`dump_json` of each event."""
    enc = _encode
    return [enc(e.__dict__) for e in events]
