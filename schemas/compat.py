"""JSON Schema generation and the backward-compatibility check of published contract versions.

``schemas/json/`` holds the schemas generated from the current code (a test keeps them current).
``schemas/published/`` holds the frozen schema of every contract version at publication. A
published version may only evolve additively: it must not lose, rename or retype a field, and it
must not gain a required field. Breaking changes need a new version (``...v2``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.catalog import CONTRACTS, schema_file_name
from schemas.events import Contract

PACKAGE_DIR = Path(__file__).resolve().parent
JSON_DIR = PACKAGE_DIR / "json"
PUBLISHED_DIR = PACKAGE_DIR / "published"

Schema = dict[str, Any]


def generate_schema(contract: type[Contract]) -> Schema:
    schema = contract.model_json_schema(mode="validation")
    schema["$id"] = f"urn:scorestream:schema:{contract.ce_type}"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate_all(directory: Path = JSON_DIR) -> list[Path]:
    """Write the current schemas; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in CONTRACTS:
        path = directory / schema_file_name(contract)
        path.write_text(render(generate_schema(contract)), encoding="utf-8")
        written.append(path)
    return written


def stale_files(directory: Path = JSON_DIR) -> list[str]:
    """Names of files in ``directory`` that differ from what the code generates now."""
    stale = []
    for contract in CONTRACTS:
        path = directory / schema_file_name(contract)
        current = render(generate_schema(contract))
        if not path.exists() or path.read_text(encoding="utf-8") != current:
            stale.append(path.name)
    return stale


def publish_missing(directory: Path = PUBLISHED_DIR) -> list[Path]:
    """Freeze the schema of every contract version not yet published. Never overwrites."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in CONTRACTS:
        path = directory / schema_file_name(contract)
        if not path.exists():
            path.write_text(render(generate_schema(contract)), encoding="utf-8")
            written.append(path)
    return written


def _resolve(schema: Schema, root: Schema) -> Schema:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        schema = root["$defs"][ref.removeprefix("#/$defs/")]
    return schema


def _signature(schema: Schema, root: Schema) -> str:
    s = _resolve(schema, root)
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in s:
            parts = sorted(_signature(x, root) for x in s[combinator])
            return f"{combinator}({','.join(parts)})"
    if "const" in s:
        return f"const:{json.dumps(s['const'])}"
    kind = s.get("type", "any")
    if isinstance(kind, list):
        return "|".join(sorted(kind))
    if kind == "array":
        items = s.get("items")
        return f"array<{_signature(items, root) if items else 'any'}>"
    if kind == "object":
        if "properties" in s:
            return "object"
        extra = s.get("additionalProperties")
        return f"map<{_signature(extra, root) if isinstance(extra, dict) else 'any'}>"
    if "format" in s:
        return f"{kind}/{s['format']}"
    return str(kind)


def _objects(schema: Schema, root: Schema) -> list[Schema]:
    """The object schemas a field's schema can be (through refs, optionals and arrays)."""
    s = _resolve(schema, root)
    found: list[Schema] = []
    for combinator in ("anyOf", "oneOf", "allOf"):
        for member in s.get(combinator, []):
            found.extend(_objects(member, root))
    if s.get("type") == "object" and "properties" in s:
        found.append(s)
    if s.get("type") == "array" and isinstance(s.get("items"), dict):
        found.extend(_objects(s["items"], root))
    return found


def _compare(
    old: Schema, old_root: Schema, new: Schema, new_root: Schema, path: str, out: list[str]
) -> None:
    old_props: dict[str, Schema] = old.get("properties", {})
    new_props: dict[str, Schema] = new.get("properties", {})
    old_required = set(old.get("required", []))
    new_required = set(new.get("required", []))
    for name, old_field in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            out.append(f"{where}: field removed or renamed")
            continue
        old_sig = _signature(old_field, old_root)
        new_sig = _signature(new_props[name], new_root)
        if old_sig != new_sig:
            out.append(f"{where}: type changed from {old_sig} to {new_sig}")
            continue
        old_enum = set(_resolve(old_field, old_root).get("enum", []))
        new_enum = set(_resolve(new_props[name], new_root).get("enum", []))
        if old_enum - new_enum:
            out.append(f"{where}: enum values removed {sorted(old_enum - new_enum)}")
        old_objs = _objects(old_field, old_root)
        new_objs = _objects(new_props[name], new_root)
        for o, n in zip(old_objs, new_objs, strict=False):
            _compare(o, old_root, n, new_root, f"{where}.", out)
    for name in sorted(new_required - old_required):
        out.append(f"{path}{name}: new required field (add it with a default instead)")


def breaking_changes(published: Schema, current: Schema) -> list[str]:
    """Why ``current`` cannot replace ``published`` under the same version; empty if it can."""
    out: list[str] = []
    _compare(published, published, current, current, "", out)
    return out


def check_published(directory: Path = PUBLISHED_DIR) -> dict[str, list[str]]:
    """Breaking changes per published contract version (only entries with problems)."""
    problems: dict[str, list[str]] = {}
    for contract in CONTRACTS:
        path = directory / schema_file_name(contract)
        if not path.exists():
            continue
        published = json.loads(path.read_text(encoding="utf-8"))
        found = breaking_changes(published, generate_schema(contract))
        if found:
            problems[contract.ce_type] = found
    return problems
