"""The contracts' fast path: JSON ⇄ contract objects without pydantic's per-event validation.

The pydantic models of :mod:`schemas.events` stay the one source of truth (the public contract and
the JSON Schema). This module *derives* a decoder from each model at import time:

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
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, cast, get_args, get_origin

import annotated_types as at
import msgspec
import pydantic_core
from pydantic import AfterValidator, AwareDatetime, BaseModel, StringConstraints
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from schemas.events import Contract
from schemas.types import CLOCK_BOUNDS, PURE_VALIDATORS

M = TypeVar("M", bound=BaseModel)

MEMO_MAX = 4096
"""Values remembered per memoised field check; the memo is cleared when it grows past this
(a few hundred KiB per field: repeated values recur within a batch or two)."""

_COMMON_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?Z")
"""The timestamp shapes every scorestream producer writes; ``datetime.fromisoformat`` reads them
exactly as pydantic does. Any other shape is declined (pydantic decides)."""


class Decline(Exception):  # noqa: N818  (a control-flow signal, not an error of ours)
    """The fast path does not vouch for this payload; ``path`` is pydantic-style (``a.b.0``,
    ``<root>``). Not a :class:`~scorestream.errors.ScorestreamError`: it never leaves the codec,
    whose caller turns a decline into pydantic's verdict."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UnsupportedContractError(Exception):
    """The generator has no fast path for a construct of this model (internal to this module)."""


_new_object = object.__new__
_set_dict = object.__setattr__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _new(cls: type[M], values: dict[str, Any], fields_set: set[str]) -> M:
    """A validated model's state, set directly (the slots' descriptors: a quarter of the cost of
    four ``object.__setattr__`` calls)."""
    obj: M = _new_object(cls)
    _set_dict(obj, "__dict__", values)
    _set_fields_set(obj, fields_set)
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


# -- analysis of the pydantic annotations -------------------------------------------------------
@dataclass(slots=True)
class _Constraints:
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None
    """Bounds as the model states them (an ``int`` stays exact, however large)."""
    finite: bool = False
    validators: tuple[Callable[[Any], Any], ...] = ()

    def absorb(self, meta: object) -> None:
        if isinstance(meta, StringConstraints):
            if meta.strip_whitespace or meta.to_upper or meta.to_lower or meta.strict is False:
                raise UnsupportedContractError(f"string transformation {meta!r}")
            for name in ("min_length", "max_length", "pattern"):
                if getattr(meta, name) is not None:
                    setattr(self, name, getattr(meta, name))
        elif isinstance(meta, FieldInfo):
            for inner in meta.metadata:
                self.absorb(inner)
        elif isinstance(meta, AfterValidator):
            self.validators = (*self.validators, cast("Callable[[Any], Any]", meta.func))
        elif type(meta) in _BOUNDS:
            name = _BOUNDS[type(meta)]
            bound = getattr(meta, name)
            setattr(self, name, bound)
        else:
            self._absorb_pydantic(meta)

    def _absorb_pydantic(self, meta: object) -> None:
        kind = type(meta).__name__
        if kind == "AllowInfNan":
            self.finite = not getattr(meta, "allow_inf_nan", True)
        elif kind == "_PydanticGeneralMetadata":
            extra = {k for k, v in vars(meta).items() if v is not None and k != "pattern"}
            if extra:
                raise UnsupportedContractError(f"field metadata {extra}")
            self.pattern = getattr(meta, "pattern", None)
        elif kind != "Strict":
            raise UnsupportedContractError(f"field metadata {meta!r}")


_BOUNDS: dict[type, str] = {
    at.MinLen: "min_length",
    at.MaxLen: "max_length",
    at.Ge: "ge",
    at.Le: "le",
    at.Gt: "gt",
    at.Lt: "lt",
}


def _strip(tp: Any) -> tuple[Any, _Constraints, bool]:
    """(base type, constraints, nullable) of an annotation."""
    cons = _Constraints()
    nullable = False
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            base, *metas = get_args(tp)
            for meta in metas:
                cons.absorb(meta)
            tp = base
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1 or len(args) == len(get_args(tp)):
                raise UnsupportedContractError(f"union {tp!r}")
            nullable = True
            tp = args[0]
        else:
            return tp, cons, nullable


def _ms_meta(cons: _Constraints, base: type) -> msgspec.Meta | None:
    kw: dict[str, Any] = {}
    if base is str:
        if cons.min_length is not None:
            kw["min_length"] = cons.min_length
        if cons.max_length is not None:
            kw["max_length"] = cons.max_length
    elif base in (int, float):
        conv = int if base is int else float
        for name in ("ge", "le", "gt", "lt"):
            bound = getattr(cons, name)
            if bound is not None:
                if base is int and bound != int(bound):
                    raise UnsupportedContractError("fractional bound on an int")
                kw[name] = conv(bound)
    elif any(
        v is not None
        for v in (cons.min_length, cons.max_length, cons.ge, cons.le, cons.gt, cons.lt)
    ):
        raise UnsupportedContractError(f"constraints on {base!r}")
    return msgspec.Meta(**kw) if kw else None


# -- code generation -------------------------------------------------------------------------------
class _Gen:
    """Generates, per model, a msgspec struct and a ``finish`` function (struct → model)."""

    def __init__(self) -> None:
        self.structs: dict[type[BaseModel], type[msgspec.Struct]] = {}
        self.finishers: dict[type[BaseModel], Callable[[Any], Any]] = {}
        self.memos: list[dict[str, Any]] = []
        """Every memo of the generated checks (:func:`reset_memos`)."""
        self.sources: dict[type[BaseModel], str] = {}
        """The generated ``finish`` functions' source, per model (to read them)."""
        self._n = 0

    def build(self, model: type[BaseModel]) -> None:
        if model in self.finishers:
            return
        cfg = model.model_config
        if not cfg.get("strict") or cfg.get("extra") not in (None, "ignore"):
            raise UnsupportedContractError(f"{model.__name__}: not strict with extra='ignore'")
        if model.model_computed_fields or model.__pydantic_decorators__.field_validators:
            raise UnsupportedContractError(f"{model.__name__}: validators on the model")
        if model.__pydantic_decorators__.model_validators:
            raise UnsupportedContractError(f"{model.__name__}: model validators")
        ns: dict[str, Any] = {
            "Decline": Decline,
            "UNSET": msgspec.UNSET,
            "_new": _new,
            "MODEL": model,
            "MEMO_MAX": MEMO_MAX,
        }
        fields: list[tuple[str, Any, Any]] = []
        body: list[str] = []
        for name, info in model.model_fields.items():
            if info.alias not in (None, name) or info.validation_alias is not None:
                raise UnsupportedContractError(f"{model.__name__}.{name}: alias")
            ann: Any = info.annotation
            if info.metadata:
                ann = Annotated[(ann, *info.metadata)]
            ms_type, code = self._field(model, name, ann, ns)
            required = info.is_required()
            if required:
                fields.append((name, ms_type, msgspec.NODEFAULT))
                body.append(f"    v = s.{name}")
                body += ["    " + line for line in code]
                body.append(f"    d[{name!r}] = v")
            else:
                fields.append((name, ms_type | msgspec.UnsetType, msgspec.UNSET))
                if info.default_factory is not None:
                    ns[f"F_{name}"] = info.default_factory
                    default = f"F_{name}()"
                else:
                    if info.default is PydanticUndefined:
                        raise UnsupportedContractError(f"{model.__name__}.{name}: no default")
                    ns[f"D_{name}"] = info.default
                    default = f"D_{name}"
                body.append(f"    v = s.{name}")
                body.append("    if v is UNSET:")
                body.append(f"        d[{name!r}] = {default}")
                body.append("    else:")
                body.append(f"        fs.add({name!r})")
                body += ["        " + line for line in code]
                body.append(f"        d[{name!r}] = v")
        required_names = {n for n, i in model.model_fields.items() if i.is_required()}
        ns["FS0"] = frozenset(required_names)
        src = ["def finish(s, p):", "    d = {}", "    fs = set(FS0)", *body]
        src.append("    return _new(MODEL, d, fs)")
        self.memos += [v for k, v in ns.items() if k.startswith(("SM_", "TM_"))]
        self.sources[model] = "\n".join(src)
        exec(compile(self.sources[model], f"<fast {model.__name__}>", "exec"), ns)  # noqa: S102
        struct = msgspec.defstruct(
            f"Fast{model.__name__}",
            [(n, t) if d is msgspec.NODEFAULT else (n, t, d) for n, t, d in fields],
            forbid_unknown_fields=False,
            kw_only=True,
        )
        self.structs[model] = struct
        self.finishers[model] = ns["finish"]

    def _field(
        self, model: type[BaseModel], name: str, ann: Any, ns: dict[str, Any]
    ) -> tuple[Any, list[str]]:
        """(msgspec type, lines checking ``v`` — the decoded value — and leaving the final one
        in ``v``). ``p`` is the path prefix of the enclosing model."""
        base, cons, nullable = _strip(ann)
        origin = get_origin(base)
        if isinstance(base, type) and issubclass(base, BaseModel):
            ms, code = self._nested(base, cons, name, ns)
        elif base is AwareDatetime:
            if cons != _Constraints(validators=cons.validators):
                raise UnsupportedContractError(f"constraints on {name}")
            ms, code = str, _time(cons.validators, name, ns)
        elif base is str:
            ms, code = _string(cons, name, ns)
        elif base in (bool, int, float):
            ms, code = _number(base, cons, name)
        elif (isinstance(base, type) and issubclass(base, Enum)) or origin is Literal:
            _no_constraints(cons, name)
            ms, code = base, []
        elif origin is tuple:
            _no_constraints(cons, name)
            ms, code = _tuple(base), []
        elif origin is dict:
            _no_constraints(cons, name)
            ms, code = _float_dict(base, name, ns)
        else:
            raise UnsupportedContractError(f"{model.__name__}.{name}: type {base!r}")
        if nullable:
            ms = ms | None
            if code:
                code = ["if v is not None:", *("    " + line for line in code)]
        return ms, code

    def _nested(
        self, base: type[BaseModel], cons: _Constraints, name: str, ns: dict[str, Any]
    ) -> tuple[Any, list[str]]:
        _no_constraints(cons, name)
        self.build(base)
        ns[f"N_{name}"] = self.finishers[base]
        return self.structs[base], [f"v = N_{name}(v, p + {name + '.'!r})"]


def _no_constraints(cons: _Constraints, name: str) -> None:
    if cons != _Constraints():
        raise UnsupportedContractError(f"constraints on {name}")


def _annotated(tp: Any, meta: msgspec.Meta | None) -> Any:
    return tp if meta is None else Annotated[tp, meta]


def _string(cons: _Constraints, name: str, ns: dict[str, Any]) -> tuple[Any, list[str]]:
    """Lengths are msgspec's. A pattern alone is one C regex call per value; with validators
    (function calls: the costly part) the whole check is memoised per value when they are pure.
    """
    ms = _annotated(str, _ms_meta(cons, str))
    if cons.pattern is None and not cons.validators:
        return ms, []
    if not cons.validators:
        ns[f"R_{name}"] = re.compile(cons.pattern or "").search
        return ms, [
            f"if R_{name}(v) is None:",
            f"    raise Decline(p + {name!r}, 'string_pattern_mismatch')",
        ]
    check = _StringCheck(cons.pattern, cons.validators)
    ns[f"S_{name}"] = check
    ns[f"SM_{name}"] = check.memo
    return ms, [
        f"w = SM_{name}.get(v)",
        "if w is None:",
        f"    w = S_{name}(v, p + {name!r})",
        "v = w",
    ]


def _time(validators: tuple[Callable[[Any], Any], ...], name: str, ns: dict[str, Any]) -> list[str]:
    """Parsed and pure validators memoised per text; an impure validator with a declared bound
    (:data:`schemas.types.CLOCK_BOUNDS`) runs only for a value above the bound last read."""
    parser = _TimeParser(validators)
    ns[f"T_{name}"] = parser
    ns[f"TM_{name}"] = parser.memo
    code = [
        f"w = TM_{name}.get(v)",
        "if w is None:",
        f"    w = T_{name}(v, p + {name!r})",
        "v = w",
    ]
    if parser.impure:
        ns[f"TR_{name}"] = parser.rest
        if parser.bound is None:
            code.append(f"v = TR_{name}(v, p + {name!r})")
        else:
            ns[f"TB_{name}"] = parser.bound
            code += [
                f"if v > TB_{name}[0]:",
                f"    v = TR_{name}(v, p + {name!r})",
            ]
    return code


def _number(base: type, cons: _Constraints, name: str) -> tuple[Any, list[str]]:
    if cons.validators or cons.pattern is not None:
        raise UnsupportedContractError(f"validators on {name}")
    if base is bool:
        _no_constraints(cons, name)
        return bool, []
    ms = _annotated(base, _ms_meta(cons, base))
    if base is float and cons.finite:
        return ms, ["if v - v != 0.0:", f"    raise Decline(p + {name!r}, 'finite_number')"]
    return ms, []


def _tuple(base: Any) -> Any:
    """``tuple[X, ...]`` of literals, enums or plain strings."""
    args = get_args(base)
    if len(args) != 2 or args[1] is not Ellipsis:
        raise UnsupportedContractError(f"tuple {base!r}")
    item, icons, inull = _strip(args[0])
    simple = (
        get_origin(item) is Literal
        or (isinstance(item, type) and issubclass(item, Enum))
        or (item is str and icons.pattern is None and not icons.validators)
    )
    if inull or not simple:
        raise UnsupportedContractError(f"tuple item {args[0]!r}")
    meta = _ms_meta(icons, str) if item is str else None
    generic: Any = tuple
    return generic[_annotated(item, meta), ...]


def _float_dict(base: Any, name: str, ns: dict[str, Any]) -> tuple[Any, list[str]]:
    """``dict[str, float]`` (bounded, finite): one C ``sum`` tells whether every value is finite
    (a NaN or infinity makes the sum one; an overflowing sum only declines)."""
    kt, vt = get_args(base)
    vbase, vcons, vnull = _strip(vt)
    if kt is not str or vbase is not float or vnull or vcons.validators or vcons.pattern:
        raise UnsupportedContractError(f"dict {base!r}")
    generic: Any = dict
    ms = generic[str, _annotated(float, _ms_meta(vcons, float))]
    if not vcons.finite:
        return ms, []
    ns[f"DF_{name}"] = _non_finite_key
    return ms, [
        "if v:",
        "    t = sum(v.values())",
        "    if t - t != 0.0:",
        f"        raise Decline(p + {name + '.'!r} + DF_{name}(v), 'finite_number')",
    ]


def _non_finite_key(values: dict[str, float]) -> str:
    """The first key whose value is not finite (a sum that overflowed: the first large one)."""
    for k, x in values.items():
        if x - x != 0.0:
            return k
    return next(iter(values))


class _StringCheck:
    """A string field's pattern and ``AfterValidator`` chain; memoised per value when every
    validator is pure (:data:`schemas.types.PURE_VALIDATORS`: the ISO code look-ups)."""

    __slots__ = ("memo", "pattern", "pure", "validators")

    def __init__(self, pattern: str | None, validators: tuple[Callable[[Any], Any], ...]) -> None:
        # pydantic's patterns use Rust regex semantics; the contracts' are plain character
        # classes and anchors, where ``re.search`` agrees (the property test covers them)
        self.pattern = re.compile(pattern) if pattern is not None else None
        self.validators = validators
        self.pure = all(v in PURE_VALIDATORS for v in validators)
        self.memo: dict[str, str] = {}
        """Stays empty when a validator is impure: the check then runs for every value."""

    def __call__(self, value: str, path: str) -> str:
        if self.pattern is not None and self.pattern.search(value) is None:
            raise Decline(path, "string_pattern_mismatch")
        out: str = _run(self.validators, value, path)
        if self.pure:
            memo = self.memo
            if len(memo) >= MEMO_MAX:
                memo.clear()
            memo[value] = out
        return out


def _run(validators: tuple[Callable[[Any], Any], ...], value: Any, path: str) -> Any:
    for check in validators:
        try:
            value = check(value)
        except ValueError as exc:
            raise Decline(path, "value_error") from exc
    return value


def _split_pure(
    validators: tuple[Callable[[Any], Any], ...],
) -> tuple[tuple[Callable[[Any], Any], ...], tuple[Callable[[Any], Any], ...]]:
    """(the leading pure validators, the rest)."""
    n = 0
    while n < len(validators) and validators[n] in PURE_VALIDATORS:
        n += 1
    return validators[:n], validators[n:]


class _TimeParser:
    """An aware timestamp parsed as pydantic parses it, then the field's validators. The parse
    and the leading pure validators are memoised per text (a batch shares its stamps, which then
    are one object); the others (one reads the clock) run for every event (:meth:`rest`), or,
    when they only refuse values above a clock bound (:data:`schemas.types.CLOCK_BOUNDS`), for
    the values above the bound last read (the bound never decreases, so an old one is only
    stricter; :meth:`rest` reads it again)."""

    __slots__ = ("bound", "bounds", "impure", "memo", "pure")

    def __init__(self, validators: tuple[Callable[[Any], Any], ...]) -> None:
        self.pure, self.impure = _split_pure(validators)
        self.memo: dict[str, datetime] = {}
        self.bounds = [CLOCK_BOUNDS.get(v) for v in self.impure]
        self.bound: list[datetime] | None = None
        """``[the smallest bound last read]``, when every impure validator has one."""
        if self.impure and all(b is not None for b in self.bounds):
            self.bound = [datetime.min.replace(tzinfo=UTC)]

    def __call__(self, text: str, path: str) -> datetime:
        if _COMMON_TIME.fullmatch(text) is None:
            raise Decline(path, "datetime_shape")
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise Decline(path, "datetime_parsing") from exc
        value = cast("datetime", _run(self.pure, value, path))
        memo = self.memo
        if len(memo) >= MEMO_MAX:
            memo.clear()
        memo[text] = value
        return value

    def rest(self, value: datetime, path: str) -> datetime:
        if self.bound is not None:  # read the bounds before the validators: never too late
            self.bound[0] = min(cast("Callable[[], datetime]", b)() for b in self.bounds)
        return cast("datetime", _run(self.impure, value, path))


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


__all__ = ["Decline", "FastDecoder", "dump_json", "dump_many", "fast_decoder"]
