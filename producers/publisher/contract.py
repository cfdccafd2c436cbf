"""What the publisher may send (:mod:`producers.publisher`): a ``TransactionEvent`` of its tenant,
validated as a consumer will decode it, and well-formed CloudEvents extensions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json

from producers.publisher.outcomes import ContractViolationError
from schemas.errors import FieldError
from schemas.events import TransactionEvent

# -- contract validation -----------------------------------------------------------------------

TransactionInput = TransactionEvent | Mapping[str, Any] | str | bytes


def _field_errors(exc: ValidationError) -> tuple[FieldError, ...]:
    return tuple(
        FieldError(
            path=".".join(str(p) for p in err["loc"]) or "<root>",
            code=err["type"],
            message=err["msg"],
        )
        for err in exc.errors(include_url=False)
    )


def validate_transaction(event: TransactionInput, *, tenant: str) -> TransactionEvent:
    """``event`` as a ``TransactionEvent`` that consumers will decode, or ContractViolationError.

    Accepts a ``TransactionEvent`` (re-validated: ``model_construct`` skips validation), a
    JSON-ready mapping (datetimes and enums allowed) or JSON text. Validation runs on the JSON
    form, as the consumers' decoder does, so strictness is identical on both ends.
    """
    try:
        if isinstance(event, TransactionEvent):
            data = event.model_dump_json(warnings=False).encode()
        elif isinstance(event, Mapping):
            data = to_json(dict(event))
        elif isinstance(event, str | bytes):
            data = event.encode() if isinstance(event, str) else event
        else:
            raise ContractViolationError(
                f"expected a TransactionEvent, a mapping or JSON, got {type(event).__name__}"
            )
        validated = TransactionEvent.model_validate_json(data)
    except ValidationError as exc:
        raise ContractViolationError(
            "not a valid scorestream.transaction.v1", _field_errors(exc)
        ) from exc
    except PydanticSerializationError as exc:
        raise ContractViolationError(f"event cannot be serialised: {exc}") from exc
    if validated.tenant_id != tenant:
        raise ContractViolationError(
            "wrong tenant",
            (
                FieldError(
                    "tenant_id",
                    "tenant_mismatch",
                    f"{validated.tenant_id!r} is not this publisher's tenant {tenant!r}",
                ),
            ),
        )
    return validated


_REPLYTO = re.compile(r"^[A-Za-z0-9._-]{1,249}/[0-9]{1,6}$")


def validate_extensions(extensions: Mapping[str, str] | None) -> dict[str, str]:
    """Extension names are lower-case alphanumeric; ``replyto`` is ``<topic>/<partition>``."""
    out: dict[str, str] = {}
    for name, value in (extensions or {}).items():
        if not (name.isascii() and name.isalnum() and name.islower()) or len(name) > 20:
            raise ContractViolationError(
                "invalid CloudEvents extension",
                (FieldError(f"extensions.{name}", "name", "use 1-20 lower-case a-z0-9"),),
            )
        if name == "replyto" and not _REPLYTO.match(value):
            raise ContractViolationError(
                "invalid replyto",
                (FieldError("extensions.replyto", "format", "expected '<topic>/<partition>'"),),
            )
        out[name] = value
    return out
