"""The decoders (:mod:`schemas.fast`): one per contract, generated on first use, and msgspec's
error paths told the way pydantic tells them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Generic

import msgspec
import pydantic_core
from pydantic import BaseModel

from schemas.fast.annotations import UnsupportedContractError
from schemas.fast.checks import Decline
from schemas.fast.generator import M, _Gen

# -- the decoders ----------------------------------------------------------------------------------
_MS_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MS_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")
_MS_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _ms_path(message: str, value: bytes, decode: Callable[[bytes], Any] | None = None) -> str:
    """msgspec's ``$.a.b[0]`` (``[...]`` for a dict value) as pydantic's ``a.b.0`` (``a.b.key``)."""
    m = _MS_PATH.search(message)
    raw = m.group("path") if m else ""
    parts = [name or item for name, item in _MS_PART.findall(raw)]
    missing = _MS_MISSING.match(message)
    if missing:
        parts.append(missing.group("field"))
    if "..." in parts:  # msgspec does not name the dict key: find it in the document
        parts = _resolve_dict_key(parts, value, decode)
    return ".".join(parts) or "<root>"


def _resolve_dict_key(
    parts: list[str], value: bytes, decode: Callable[[bytes], Any] | None
) -> list[str]:
    """The dict key msgspec left out (``[...]``): the first entry that is not a finite number, or
    that alone in its dict still fails ``decode`` (a bound); found in the document with the
    standard library (error path only)."""
    i = parts.index("...")
    try:
        doc: Any = json.loads(value)
        node = doc
        for part in parts[:i]:
            node = node[int(part)] if isinstance(node, list) else node[part]
    except (ValueError, KeyError, IndexError, TypeError):
        return parts[:i]
    if not isinstance(node, dict):
        return parts[:i]
    for k, x in node.items():
        if not isinstance(x, (int, float)) or isinstance(x, bool) or x - x != 0:
            return [*parts[:i], str(k), *parts[i + 1 :]]
    if decode is not None:
        for k, x in list(node.items()):
            node.clear()
            node[k] = x
            try:
                decode(json.dumps(doc).encode())
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                if "[...]" in str(exc):
                    return [*parts[:i], str(k), *parts[i + 1 :]]
    return parts[:i]


class FastDecoder(Generic[M]):
    """Decodes one contract's JSON; :meth:`decode` returns the pydantic instance or raises
    :class:`Decline`."""

    __slots__ = ("_decode", "_finish", "model")

    def __init__(self, model: type[M], struct: type[msgspec.Struct], finish: Callable[..., M]):
        self.model = model
        self._decode = msgspec.json.Decoder(struct).decode
        self._finish = finish

    def decode(self, value: bytes) -> M:
        try:
            s = self._decode(value)
        except msgspec.ValidationError as exc:
            # msgspec validates while it parses: ``{}\x00`` fails on the missing field before
            # the trailing byte; pydantic parses first and reports the JSON: ask its parser
            # (error path only)
            try:
                pydantic_core.from_json(value)
            except ValueError:
                raise Decline("<root>", "json_invalid") from None
            raise Decline(_ms_path(str(exc), value, self._decode), "schema") from None
        except msgspec.DecodeError:
            raise Decline("<root>", "json_invalid") from None
        return self._finish(s, "")


_GEN = _Gen()
_DECODERS: dict[type[BaseModel], FastDecoder[Any] | None] = {}


def fast_decoder(model: type[M]) -> FastDecoder[M] | None:
    """The fast decoder generated from ``model``, or ``None`` when the generator does not cover
    one of its constructs (then decode with pydantic)."""
    if model not in _DECODERS:
        try:
            _GEN.build(model)
        except UnsupportedContractError:
            _DECODERS[model] = None
        else:
            _DECODERS[model] = FastDecoder(model, _GEN.structs[model], _GEN.finishers[model])
    return _DECODERS[model]


def reset_memos() -> None:
    """Forget every memoised value check (benchmarks: a pass over the same records must not
    find them remembered from the previous pass, which a stream of new events never does)."""
    for ns_memo in _GEN.memos:
        ns_memo.clear()
