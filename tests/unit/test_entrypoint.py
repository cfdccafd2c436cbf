"""One main for every service: each setting of its settings class is a flag, flags override the
environment, and an invalid value is named without being echoed."""

from __future__ import annotations

import pytest

from scorestream.entrypoint import run_service, settings_from_argv
from scorestream.errors import SettingsError
from scorestream.services import SERVICES, Service


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_every_setting_is_a_flag(svc: Service, capsys: pytest.CaptureFixture[str]) -> None:
    cls = svc.settings_class()
    with pytest.raises(SystemExit) as exit_:
        settings_from_argv(cls, ["--help"], prog=f"scorestream {svc.name}")
    assert exit_.value.code == 0
    usage = capsys.readouterr().out
    for name in cls.model_fields:
        assert f"--{name.replace('_', '-')}" in usage, name


@pytest.mark.parametrize("svc", SERVICES, ids=lambda s: s.name)
def test_every_flag_is_explained(svc: Service) -> None:
    """``--help`` shows each field's description (its attribute docstring): a field redefined
    in a subclass without one would show a bare flag."""
    cls = svc.settings_class()
    bare = [name for name, field in cls.model_fields.items() if not field.description]
    assert bare == [], f"{cls.__name__}: no description for {bare}"


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cls = next(s for s in SERVICES if s.name == "decision").settings_class()
    monkeypatch.setenv("SCORESTREAM_DECISION_TENANT", "acme")
    monkeypatch.setenv("SCORESTREAM_DECISION_MAX_BATCH", "9")
    from_env = settings_from_argv(cls, [], prog="x")
    assert (from_env.tenant, from_env.max_batch) == ("acme", 9)  # type: ignore[attr-defined]
    flagged = settings_from_argv(cls, ["--max-batch", "7", "--tenant", "beta"], prog="x")
    assert (flagged.tenant, flagged.max_batch) == ("beta", 7)  # type: ignore[attr-defined]


def test_an_invalid_setting_is_named_and_not_echoed() -> None:
    cls = next(s for s in SERVICES if s.name == "notifier").settings_class()
    with pytest.raises(SettingsError) as err:
        settings_from_argv(
            cls, ["--tenant", "acme", "--webhook-url", "ftp://s3cr3t-token@host"], prog="x"
        )
    assert "webhook_url" in str(err.value)
    assert "s3cr3t" not in str(err.value)


def test_run_service_exits_2_on_an_invalid_setting(capsys: pytest.CaptureFixture[str]) -> None:
    cls = next(s for s in SERVICES if s.name == "decision").settings_class()

    class Never:
        def __init__(self, _: object) -> None:
            raise AssertionError("never built")

        def run(self) -> int:
            return 0

    assert run_service("decision", cls, Never, ["--tenant", "NOT VALID"]) == 2
    assert "tenant" in capsys.readouterr().err
