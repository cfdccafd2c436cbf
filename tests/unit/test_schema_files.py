"""The committed JSON Schemas are current, and published versions only evolve additively."""

from __future__ import annotations

import copy
from typing import Any

from schemas import TransactionEvent
from schemas.compat import breaking_changes, check_published, generate_schema, stale_files


def test_committed_json_schemas_are_current() -> None:
    assert stale_files() == [], "run 'scorestream schemas generate' and commit schemas/json"


def test_published_versions_are_compatible_with_the_code() -> None:
    assert check_published() == {}


def _tx() -> dict[str, Any]:
    return copy.deepcopy(generate_schema(TransactionEvent))


def test_adding_an_optional_field_is_compatible() -> None:
    new = _tx()
    new["properties"]["loyalty_tier"] = {"type": "string", "default": "none"}
    assert breaking_changes(_tx(), new) == []


def test_losing_a_field_is_breaking() -> None:
    new = _tx()
    del new["properties"]["mcc"]
    new["required"].remove("mcc")
    assert breaking_changes(_tx(), new) == ["mcc: field removed or renamed"]


def test_renaming_a_field_is_breaking() -> None:
    new = _tx()
    new["properties"]["merchant_category"] = new["properties"].pop("mcc")
    new["required"] = [("merchant_category" if r == "mcc" else r) for r in new["required"]]
    problems = breaking_changes(_tx(), new)
    assert "mcc: field removed or renamed" in problems
    assert any(p.startswith("merchant_category: new required field") for p in problems)


def test_retyping_a_field_is_breaking() -> None:
    new = _tx()
    new["properties"]["amount_minor"] = {"type": "number"}
    assert breaking_changes(_tx(), new) == ["amount_minor: type changed from integer to number"]


def test_making_a_field_nullable_is_breaking() -> None:
    new = _tx()
    new["properties"]["mcc"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert len(breaking_changes(_tx(), new)) == 1


def test_gaining_a_required_field_is_breaking() -> None:
    new = _tx()
    new["properties"]["risk_zone"] = {"type": "string"}
    new["required"].append("risk_zone")
    assert breaking_changes(_tx(), new) == [
        "risk_zone: new required field (add it with a default instead)"
    ]


def test_removing_an_enum_value_is_breaking() -> None:
    new = _tx()
    new["$defs"]["Channel"]["enum"].remove("atm")
    assert breaking_changes(_tx(), new) == ["channel: enum values removed ['atm']"]


def test_nested_objects_are_checked() -> None:
    from schemas import EnrichedTransaction  # noqa: PLC0415

    old = generate_schema(EnrichedTransaction)
    new = copy.deepcopy(old)
    del new["$defs"]["TransactionEvent"]["properties"]["currency"]
    assert breaking_changes(old, new) == ["transaction.currency: field removed or renamed"]
