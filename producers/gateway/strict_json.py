"""Strict JSON for request bodies: duplicate keys and absurd nesting are errors, not surprises.

``json.loads`` keeps the *last* of two equal keys (``{"amount_minor": 100, "amount_minor": 1}``
is 1), so a body can say one thing to a reviewer and another to the service; and it raises
``RecursionError`` (an uncaught 500) for a body nested a few thousand levels deep. :func:`loads`
turns both into :class:`JsonBodyError`, which the routes answer with a 4xx naming the problem.
"""

from __future__ import annotations

import json
from typing import Any

from scorestream.errors import ScorestreamError


class JsonBodyError(ScorestreamError):
    """The body is not acceptable JSON; ``kind`` is ``json_invalid`` or ``json_duplicate_key``
    (then ``key`` is the repeated key)."""

    def __init__(self, message: str, *, kind: str = "json_invalid", key: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise JsonBodyError(
                f"duplicate key {key!r} in a JSON object", kind="json_duplicate_key", key=key
            )
        obj[key] = value
    return obj


def loads(body: bytes | str) -> Any:
    """Parse ``body``; JsonBodyError for invalid JSON, a repeated key, or nesting too deep."""
    try:
        return json.loads(body, object_pairs_hook=_unique)
    except RecursionError:
        raise JsonBodyError("Invalid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise JsonBodyError(f"Invalid JSON: {exc}") from exc
