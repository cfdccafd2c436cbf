"""``SCORESTREAM_HOME``: the one directory of local state, and what lives under it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.repository import ModelRepository
from scorestream.dev.supervisor import Supervisor
from scorestream.settings import BrokerSettings, ModelRepoSettings, home_origin, scorestream_home


def test_state_lives_under_the_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCORESTREAM_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("SCORESTREAM_MODELS_URL", raising=False)
    monkeypatch.delenv("SCORESTREAM_BROKER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert scorestream_home() == tmp_path / "h"
    assert ModelRepoSettings().url == str(tmp_path / "h" / "models")
    assert ModelRepository().url == str(tmp_path / "h" / "models")
    assert Supervisor("acme").pid_file == tmp_path / "h" / "run" / "acme" / "pids.json"
    assert BrokerSettings().home == tmp_path / "h" / "broker"
    assert home_origin("SCORESTREAM_MODELS_URL") == "SCORESTREAM_HOME"


def test_a_relative_home_is_made_absolute_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCORESTREAM_HOME", "state")
    assert scorestream_home() == tmp_path / "state"


def test_the_default_is_the_xdg_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("SCORESTREAM_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert scorestream_home() == tmp_path / "xdg" / "scorestream"
    assert home_origin() == "SCORESTREAM_HOME default"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert scorestream_home() == tmp_path / "user" / ".local" / "share" / "scorestream"


def test_explicit_settings_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCORESTREAM_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SCORESTREAM_BROKER_HOME", str(tmp_path / "ci-broker"))
    monkeypatch.setenv("SCORESTREAM_MODELS_URL", "s3://bucket/models")
    assert BrokerSettings().home == tmp_path / "ci-broker"
    assert ModelRepoSettings().url == "s3://bucket/models"
    assert home_origin("SCORESTREAM_MODELS_URL") == "SCORESTREAM_MODELS_URL"
