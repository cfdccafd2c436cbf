"""What the fast path reads of a pydantic annotation (:mod:`schemas.fast`): the base type, its
constraints and whether it is nullable; a construct it cannot say raises
:class:`UnsupportedContractError`."""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Union, cast, get_args, get_origin

import annotated_types as at
import msgspec
from pydantic import AfterValidator, StringConstraints
from pydantic.fields import FieldInfo


class UnsupportedContractError(Exception):
    """The generator has no fast path for a construct of this model (internal to the package)."""


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
