"""Code generation (:mod:`schemas.fast`): per model, a msgspec struct and a ``finish`` function
(struct → model) generated as straight-line Python."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import msgspec
from pydantic import AwareDatetime, BaseModel
from pydantic_core import PydanticUndefined

from schemas.fast.annotations import UnsupportedContractError, _Constraints, _ms_meta, _strip
from schemas.fast.checks import MEMO_MAX, Decline, _non_finite_key, _StringCheck, _TimeParser

M = TypeVar("M", bound=BaseModel)


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
