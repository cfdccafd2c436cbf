"""The configuration reference: every setting of every settings class, rendered to
``docs/configuration.md``.

Read from the pydantic-settings classes themselves (their env prefix, fields, types, defaults,
constraints, and each field's ``description`` or attribute docstring), so it cannot drift from the
code: ``python -m scorestream.dev.config_reference`` rewrites the document and ``--check`` fails
when the committed copy is stale (tests/unit/test_config_reference.py does the same and checks
that every settings class in the sources is listed here).

A column is a heading and a function of a :class:`Setting` (:data:`COLUMNS`): adding one, e.g.
each setting's command-line flag, is one entry there.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from scorestream.dev.generated_doc import doc_main
from scorestream.services import SERVICES

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@dataclass(frozen=True, slots=True)
class Entry:
    """One settings class in the reference: ``module:Class`` and who reads it."""

    ref: str
    used_by: str

    def load(self) -> type[BaseSettings]:
        module, _, name = self.ref.partition(":")
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
            raise TypeError(f"{self.ref} is not a settings class")
        return cls


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    intro: str
    entries: tuple[Entry, ...]


SHARED = Section(
    "Shared settings",
    "Read by every service and by the commands that talk to Kafka or the model repository.",
    (
        Entry("scorestream.settings:HomeSettings", "every command (local state)"),
        Entry("scorestream.settings:KafkaSettings", "every Kafka client"),
        Entry("scorestream.settings:TopicSettings", "`scorestream topics create`, the generators"),
        Entry("scorestream.settings:ModelRepoSettings", "worker, monitor, train, models, retrain"),
        Entry("scorestream.features:FeatureSettings", "enricher, merchant stage, training"),
        Entry("scorestream.event_time:EventTimeSettings", "gateway, enricher (event-time window)"),
        Entry("scorestream.tracing:TracingSettings", "every service"),
    ),
)
SERVICE_SECTION = Section(
    "Services",
    "One class per service of the registry (`scorestream/services.py`), in start order; "
    "`scorestream <service>` reads it.",
    (
        *(Entry(s.settings, f"`scorestream {s.name}`") for s in SERVICES),
        Entry("producers.gateway.auth:GatewayAuthSettings", "`scorestream gateway` (API keys)"),
    ),
)
TOOLS = Section(
    "Tools and libraries",
    "The local development broker, the operators' commands and the publishing library.",
    (
        Entry("scorestream.settings:BrokerSettings", "`scorestream broker`, the test suite"),
        Entry("scorestream.ops.dlq:DlqSettings", "`scorestream dlq`"),
        Entry("producers.publisher:PublisherSettings", "`producers.publisher.Publisher`"),
    ),
)
SECTIONS: tuple[Section, ...] = (SHARED, SERVICE_SECTION, TOOLS)

ABSTRACT: dict[str, str] = {
    "scorestream.settings:ProcessingSettings": "the consuming services' common fields; each "
    "service's class lists them under its own prefix",
}
"""Settings classes that are never read directly (so not listed on their own)."""

FACTORY_DEFAULTS: dict[str, str] = {
    "default_data_dir": "`$XDG_DATA_HOME/scorestream`, else `~/.local/share/scorestream`",
    "default_cache_dir": "`$XDG_CACHE_HOME/scorestream`, else `~/.cache/scorestream`",
    'lambda: scorestream_home() / "broker"': "`$SCORESTREAM_HOME/broker`",
    'lambda: str(scorestream_home() / "models")': "`$SCORESTREAM_HOME/models`",
    "default_instance_id": "`$POD_NAME`, else the host name",
    "_default_instance": "`$POD_NAME`, else the host name",
    'lambda: Path(tempfile.gettempdir()) / "scorestream" / "enricher-state"': (
        "`$TMPDIR/scorestream/enricher-state` (`TMPDIR` default `/tmp`)"
    ),
    'lambda: Path(tempfile.gettempdir()) / "scorestream" / "merchant-state"': (
        "`$TMPDIR/scorestream/merchant-state` (`TMPDIR` default `/tmp`)"
    ),
}
"""How a default computed at start-up reads (by the factory's source text); a factory not named
here is shown as its source."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One field of a settings class, with what the reference says about it."""

    owner: type[BaseSettings]
    name: str
    field: FieldInfo
    doc: str
    """The field's ``description``, else its attribute docstring (markdown)."""
    factory: str | None
    """The source text of its ``default_factory``, if it has one."""

    @property
    def env(self) -> tuple[str, ...]:
        """The environment variables it is read from (case-insensitive), first the usual one."""
        alias = self.field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names = tuple(c.upper() for c in choices if isinstance(c, str) and c != self.name)
        if names:
            return names
        return (f"{self.owner.model_config.get('env_prefix', '')}{self.name}".upper(),)

    @property
    def secret(self) -> bool:
        return _mentions(self.field.annotation, SecretStr)


Column = tuple[str, Callable[[Setting], str]]


def env_cell(s: Setting) -> str:
    return "<br>".join(f"`{name}`" for name in s.env)


def type_cell(s: Setting) -> str:
    limits = constraints(s.field)
    text = f"`{type_name(s.field.annotation)}`"
    return f"{text}, {limits}" if limits else text


def default_cell(s: Setting) -> str:
    field = s.field
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    if s.secret:
        return "not shown (secret)" if field.default not in (None, PydanticUndefined) else "unset"
    if field.default_factory is not None:
        if s.factory in FACTORY_DEFAULTS:
            return FACTORY_DEFAULTS[s.factory]
        if field.default_factory in _EMPTY:
            return f"`{_EMPTY[field.default_factory]}`"
        return f"computed: `{s.factory}`"
    return default_text(field.default)


_EMPTY: dict[object, str] = {dict: "{}", list: "[]", tuple: "[]"}


def description_cell(s: Setting) -> str:
    return _cell(s.doc)


@functools.cache
def _service_classes() -> frozenset[type[BaseSettings]]:
    return frozenset(s.settings_class() for s in SERVICES)


def flag_cell(s: Setting) -> str:
    """A service's settings are flags of ``scorestream <service>`` too (flags override the
    environment; :mod:`scorestream.entrypoint`); other classes are read from the environment."""
    if s.owner not in _service_classes():
        return ""
    return f"`--{s.name.replace('_', '-')}`"


COLUMNS: tuple[Column, ...] = (
    ("Environment variable", env_cell),
    ("Type", type_cell),
    ("Default", default_cell),
    ("Description", description_cell),
    ("Flag", flag_cell),
)


def default_text(value: Any) -> str:
    """A default as it would be written in the environment."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, timedelta):
        return f"`{_seconds(value)}` s ({value})"
    if isinstance(value, dict | list | tuple):
        return f"`{json.dumps(value)}`"
    if value == "":
        return '`""`'
    return f"`{value}`"


def _seconds(value: timedelta) -> str:
    seconds = value.total_seconds()
    return str(int(seconds)) if seconds.is_integer() else str(seconds)


def type_name(annotation: Any) -> str:
    """A short, readable form of a field's type (``Literal`` as its choices)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return str(getattr(annotation, "__name__", annotation))


_BOUNDS: tuple[tuple[str, str], ...] = (
    ("ge", "≥"),
    ("gt", ">"),
    ("le", "≤"),
    ("lt", "<"),
    ("min_length", "length ≥"),
    ("max_length", "length ≤"),
)


def constraints(field: FieldInfo) -> str:
    """The field's bounds and pattern, e.g. ``≥ 1, ≤ 10000``."""
    out = []
    for item in field.metadata:
        for attr, sign in _BOUNDS:
            bound = getattr(item, attr, None)
            if bound is not None:
                shown = f"{_seconds(bound)} s" if isinstance(bound, timedelta) else bound
                out.append(f"{sign} {shown}")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            out.append(f"matches `{pattern}`")
    return ", ".join(out)


def _mentions(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return any(_mentions(a, kind) for a in typing.get_args(annotation))


def markdown(text: str) -> str:
    """A docstring as one markdown line: reST roles and double backticks to single backticks."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return " ".join(text.replace("``", "`").split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


@dataclass(frozen=True, slots=True)
class _Source:
    """What only a class's source says: attribute docstrings and default factories' text."""

    docs: dict[str, str]
    factories: dict[str, str]


@functools.cache
def _source(cls: type) -> _Source:
    docs: dict[str, str] = {}
    factories: dict[str, str] = {}
    try:
        text = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return _Source(docs, factories)
    node = ast.parse(text).body[0]
    statements = node.body if isinstance(node, ast.ClassDef) else []
    for i, statement in enumerate(statements):
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        name = statement.target.id
        after = statements[i + 1] if i + 1 < len(statements) else None
        if (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[name] = inspect.cleandoc(after.value.value)
        if isinstance(statement.value, ast.Call):
            for keyword in statement.value.keywords:
                if keyword.arg == "default_factory":
                    segment = ast.get_source_segment(text, keyword.value) or ""
                    factories[name] = " ".join(segment.split())
    return _Source(docs, factories)


def settings(cls: type[BaseSettings]) -> list[Setting]:
    """The class's fields in declaration order (inherited ones first), documented."""
    mro = [c for c in cls.__mro__ if issubclass(c, BaseSettings) and c is not BaseSettings]
    sources = [_source(c) for c in mro]
    sources = [s for s in sources if s.docs or s.factories]
    out = []
    for name, field in cls.model_fields.items():
        doc = field.description or next((s.docs[name] for s in sources if name in s.docs), "")
        factory = next((s.factories[name] for s in sources if name in s.factories), None)
        out.append(Setting(cls, name, field, markdown(doc), factory))
    return out


def documented() -> dict[str, Entry]:
    """Every listed class by ``module:Class`` (where it is defined)."""
    out = {}
    for section in SECTIONS:
        for entry in section.entries:
            cls = entry.load()
            out[f"{cls.__module__}:{cls.__qualname__}"] = entry
    return out


def _class_section(entry: Entry, columns: tuple[Column, ...]) -> list[str]:
    cls = entry.load()
    prefix = cls.model_config.get("env_prefix", "")
    doc = markdown(inspect.cleandoc(cls.__dict__.get("__doc__") or ""))  # its own, not inherited
    lines = [
        f"### {cls.__name__}",
        "",
        f"`{cls.__module__}.{cls.__qualname__}` · prefix `{prefix}` · read by {entry.used_by}",
        "",
    ]
    if doc:
        lines += [doc, ""]
    lines.append("| " + " | ".join(heading for heading, _ in columns) + " |")
    lines.append("|" + " --- |" * len(columns))
    for setting in settings(cls):
        lines.append("| " + " | ".join(cell(setting) for _, cell in columns) + " |")
    return [*lines, ""]


def render(sections: tuple[Section, ...] = SECTIONS, columns: tuple[Column, ...] = COLUMNS) -> str:
    """The markdown document: per section, per class, one table row per setting."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m scorestream.dev.config_reference`; do not edit by hand. -->",
        "",
        "Every setting scorestream reads, from its pydantic-settings classes: each is an",
        "environment variable (names are case-insensitive; a Kubernetes ConfigMap or Secret",
        "supplies them, see [deploy.md](deploy.md)). Every setting of a service is also a flag",
        "of `scorestream <service>` (the Flag column; `scorestream <service> --help` lists them),",
        "and flags override the environment. Secret defaults are never shown. Durations given",
        "as a number are seconds.",
        "",
    ]
    for section in sections:
        lines.append(f"- [{section.title}](#{slug(section.title)})")
        for entry in section.entries:
            name = entry.load().__name__
            lines.append(f"  - [{name}](#{slug(name)})")
    lines.append("")
    for section in sections:
        lines += [f"## {section.title}", "", section.intro, ""]
        for entry in section.entries:
            lines += _class_section(entry, columns)
    return "\n".join(lines).rstrip("\n") + "\n"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    return doc_main(
        argv,
        render=render,
        default=DOC_PATH,
        module="scorestream.dev.config_reference",
        description=__doc__,
    )


if __name__ == "__main__":
    sys.exit(main())
