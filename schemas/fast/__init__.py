"""The contracts' fast path: JSON ⇄ contract objects without pydantic's per-event validation.

The pydantic models of :mod:`schemas.events` stay the one source of truth (the public contract and
the JSON Schema). This package *derives* a decoder from each model at import time:

* the structure (types, required fields, defaults, numeric bounds, string lengths, enums,
  literals, nested contracts) becomes a :mod:`msgspec` struct, validated in C;
* what msgspec cannot say the way pydantic does runs as generated straight-line Python: regular
  expressions, the fields' own ``AfterValidator`` functions (the very functions the model
  declares; memoised per value when pure, :data:`schemas.types.PURE_VALIDATORS`: currencies
  and countries repeat), finite floats, timestamps (the two RFC 3339 shapes scorestream writes,
  parsed as pydantic parses them, memoised: a batch shares its stamps);
* the result is an instance of the pydantic model itself, built without validating again, with
  the same values and the same ``model_fields_set`` as ``model_validate_json`` gives.

The fast path is conservative: for any input it either returns exactly what pydantic returns or
*declines* with :class:`Decline` (naming the field path where it stopped). A caller that gets a
decline asks pydantic, which decides: so a record the fast path does not understand (an unusual
timestamp shape, say) is still accepted, and every rejection carries pydantic's own reason.
``tests/unit/test_fast_codec.py`` proves it on generated events, valid and invalid: every event
pydantic accepts decodes to an equal object or is declined, and every event pydantic rejects is
declined at one of the field paths pydantic reports.

A contract using a construct the generator does not know (``MerchantActivity``'s dict of models,
the model-event union) gets no fast decoder (:func:`fast_decoder` returns ``None``); the caller
uses pydantic for it.

Encoding (:func:`dump_json`) writes the instance's values with msgspec's encoder; the test checks
it decodes to the same event as ``model_dump_json`` for every contract.

Layout: :mod:`~schemas.fast.annotations` reads a model's pydantic annotations,
:mod:`~schemas.fast.generator` turns them into a msgspec struct and a generated ``finish``
function that calls the value checks of :mod:`~schemas.fast.checks`; :mod:`~schemas.fast.decoder`
holds the decoders (and maps msgspec's errors to pydantic's field paths),
:mod:`~schemas.fast.encoder` the encoding.
"""

from __future__ import annotations

from schemas.fast.annotations import UnsupportedContractError
from schemas.fast.checks import MEMO_MAX, Decline
from schemas.fast.decoder import _GEN as _GEN  # the generator's state, read by bench/codec.py
from schemas.fast.decoder import FastDecoder, fast_decoder, reset_memos
from schemas.fast.encoder import dump_json, dump_many

__all__ = [
    "MEMO_MAX",
    "Decline",
    "FastDecoder",
    "UnsupportedContractError",
    "dump_json",
    "dump_many",
    "fast_decoder",
    "reset_memos",
]
