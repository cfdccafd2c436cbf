"""The configuration reference lists every settings class and every setting, as the classes say,
and docs/configuration.md is current (a setting added without regenerating fails here)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from scorestream.dev import config_reference
from scorestream.dev.config_reference import (
    ABSTRACT,
    SECTIONS,
    Entry,
    Section,
    Setting,
    documented,
    render,
    settings,
)
from scorestream.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("scorestream", "producers", "consumers", "inference_worker", "pipelines", "schemas")


def settings_classes_in_sources() -> set[str]:
    """``module:Class`` of every pydantic-settings class the shipped packages define."""
    found = set()
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = [
                node.name
                for node in tree.body
                if isinstance(node, ast.ClassDef)
                and any(ast.unparse(base).endswith("Settings") for base in node.bases)
            ]
            if not names:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            for name in names:
                cls = getattr(importlib.import_module(module), name)
                if isinstance(cls, type) and issubclass(cls, BaseSettings):
                    found.add(f"{module}:{name}")
    return found


def all_settings() -> list[Setting]:
    return [s for section in SECTIONS for e in section.entries for s in settings(e.load())]


def test_every_settings_class_is_in_the_reference() -> None:
    in_sources = settings_classes_in_sources()
    assert len(in_sources) >= 15
    listed = set(documented())
    assert in_sources - set(ABSTRACT) == listed, (
        "add the class to a section of scorestream/dev/config_reference.py (or to ABSTRACT)"
    )
    assert set(ABSTRACT) <= in_sources


def test_every_service_of_the_registry_is_documented() -> None:
    refs = {e.ref for e in config_reference.SERVICE_SECTION.entries}
    assert {s.settings for s in SERVICES} <= refs


def test_committed_docs_are_current() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), (
        "docs/configuration.md is stale: run `.venv/bin/python -m scorestream.dev.config_reference`"
    )


def test_check_flag_detects_stale_docs(tmp_path: Path) -> None:
    doc = tmp_path / "configuration.md"
    assert config_reference.main(["--output", str(doc)]) == 0
    assert config_reference.main(["--check", "--output", str(doc)]) == 0
    doc.write_text(doc.read_text(encoding="utf-8") + "stale\n", encoding="utf-8")
    assert config_reference.main(["--check", "--output", str(doc)]) == 1


def test_every_field_has_a_row() -> None:
    text = render()
    for section in SECTIONS:
        for entry in section.entries:
            cls = entry.load()
            rows = settings(cls)
            assert [s.name for s in rows] == list(cls.model_fields), cls
            for setting in rows:
                assert f"| `{setting.env[0]}`" in text, setting.env


class _Extended(BaseSettings):
    """A class with one more setting than the committed reference knows."""

    model_config = SettingsConfigDict(  # like every settings class (test_settings_secrets.py)
        env_prefix="SCORESTREAM_TESTONLY_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    brand_new: int = 3
    """Added without regenerating."""


def test_a_new_setting_changes_the_document() -> None:
    extra = Section("Extra", "A test section.", (Entry(f"{__name__}:_Extended", "a test"),))
    text = render((*SECTIONS, extra))
    assert text != render()
    row = "| `SCORESTREAM_TESTONLY_BRAND_NEW` | `int` | `3` | Added without regenerating. |"
    assert row in text


def test_secret_defaults_are_never_shown() -> None:
    text = render()
    secrets = [s for s in all_settings() if s.secret]
    assert secrets
    for setting in secrets:
        default = setting.field.default
        if default is not None:
            assert default.get_secret_value() not in text, setting.name
    assert "admin-secret" not in text
    assert "| `SCORESTREAM_BROKER_ADMIN_PASSWORD` | `SecretStr` | not shown (secret) |" in text


ALIASED = [
    ("KAFKA_BOOTSTRAP_SERVERS", "h:1", "scorestream.settings:KafkaSettings", "bootstrap_servers"),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://c:1",
        "scorestream.tracing:TracingSettings",
        "endpoint",
    ),
    (
        "SCORESTREAM_MAX_EVENT_SKEW",
        "60",
        "scorestream.event_time:EventTimeSettings",
        "max_event_skew",
    ),
    ("SCORESTREAM_HOME", "/x", "scorestream.settings:HomeSettings", "home"),
]
"""Names that are not ``<prefix><FIELD>`` of a class's own prefix: aliases, the bare prefix."""


@pytest.mark.parametrize(("env", "value", "ref", "field"), ALIASED)
def test_the_documented_names_are_read(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, ref: str, field: str
) -> None:
    cls = Entry(ref, "").load()
    row = next(s for s in settings(cls) if s.name == field)
    assert env in row.env
    monkeypatch.setenv(env, value)
    assert str(getattr(cls(), field)) not in ("", "None")
    assert getattr(cls(), field) != cls.model_fields[field].default


NUMERIC = [
    s for s in all_settings() if config_reference.type_name(s.field.annotation) in ("int", "float")
]


@pytest.mark.parametrize("setting", NUMERIC, ids=lambda s: s.env[0])
def test_every_numeric_setting_is_read_from_its_variable(
    monkeypatch: pytest.MonkeyPatch, setting: Setting
) -> None:
    """Setting the documented variable to a non-number makes the class refuse to load: the name
    is the one pydantic-settings reads."""
    required = {"tenant": "demo"} if "tenant" in setting.owner.model_fields else {}
    setting.owner(**required)  # loads without it
    monkeypatch.setenv(setting.env[0], "not-a-number")
    with pytest.raises(ValidationError):
        setting.owner(**required)


def test_service_settings_have_their_flag_and_others_none() -> None:
    """Every setting of a service is a flag of ``scorestream <service>`` (the Flag column, the
    last entry of COLUMNS); the shared classes are environment only."""
    text = render()
    assert "| Environment variable | Type | Default | Description | Flag |" in text
    assert "| `SCORESTREAM_DECISION_MAX_BATCH` | `int`" in text
    row = next(line for line in text.splitlines() if "`SCORESTREAM_DECISION_MAX_BATCH`" in line)
    assert row.endswith("| `--max-batch` |")
    lines = text.splitlines()
    kafka = next(line for line in lines if "`SCORESTREAM_KAFKA_SECURITY_PROTOCOL`" in line)
    assert kafka.endswith("|  |")


def test_markdown_of_docstrings() -> None:
    assert config_reference.markdown("see ``x`` and :class:`~a.B`,\n  then") == (
        "see `x` and `a.B`, then"
    )
