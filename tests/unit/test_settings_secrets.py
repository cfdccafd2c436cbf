"""Settings errors never echo a secret (issue 15 item 14), for every settings class with one.

Before, ``KafkaSettings`` with SASL on and no username raised a pydantic ValidationError whose
text quoted the whole input, 22 of the password's 32 characters included, before any redacting
logger ran. Every settings class holding a ``SecretStr`` is found by walking the project's
packages; each must hide inputs in its errors, and its errors must not contain any 6-character
piece of a canary secret.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from scorestream.errors import ConfigError, SettingsError
from scorestream.settings import KafkaSettings

CANARY = "Kq7vZp2MwX9tRb4LnY6sHc8JdF3gAe5U"  # 32 characters, like the leaked password
PACKAGES = ("scorestream", "consumers", "producers", "inference_worker", "pipelines", "schemas")


def leaks(text: str, secret: str = CANARY, n: int = 6) -> list[str]:
    return [secret[i : i + n] for i in range(len(secret) - n + 1) if secret[i : i + n] in text]


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _secret_fields(cls: type[BaseSettings]) -> list[str]:
    return [n for n, f in cls.model_fields.items() if "SecretStr" in str(f.annotation)]


def _settings_with_secrets() -> list[type[BaseSettings]]:
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        for mod in pkgutil.walk_packages(pkg.__path__, f"{package}."):
            if not mod.name.endswith("__main__"):
                importlib.import_module(mod.name)
    found = {c for c in _subclasses(BaseSettings) if _secret_fields(c)}
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _params() -> list[object]:
    out = []
    for cls in _settings_with_secrets():
        out.append(pytest.param(cls, id=cls.__qualname__))
    return out


SECRET_CLASSES = _params()


def test_the_known_secret_holders_are_found() -> None:
    names = {p.values[0].__qualname__ for p in SECRET_CLASSES}  # type: ignore[attr-defined]
    assert {"KafkaSettings", "BrokerSettings", "ModelRepoSettings"} <= names


@pytest.mark.parametrize("cls", SECRET_CLASSES)
def test_errors_of_every_secret_holder_hide_the_input(cls: type[BaseSettings]) -> None:
    assert cls.model_config.get("hide_input_in_errors") is True
    for field in _secret_fields(cls):
        # a secret of the wrong shape: pydantic would quote the input in its message
        with pytest.raises((ValidationError, ConfigError)) as caught:
            cls(**{field: {"value": CANARY}})
        assert leaks(str(caught.value)) == []
        assert leaks(repr(caught.value)) == []
        # a valid secret beside an invalid other setting
        other = next(n for n in cls.model_fields if n not in _secret_fields(cls))
        with pytest.raises((ValidationError, ConfigError)) as caught:
            cls(**{field: CANARY, other: object()})
        assert leaks(str(caught.value)) == []


def test_sasl_without_username_is_a_typed_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCORESTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SCORESTREAM_KAFKA_SASL_PASSWORD", CANARY)
    monkeypatch.delenv("SCORESTREAM_KAFKA_SASL_USERNAME", raising=False)
    with pytest.raises(SettingsError) as caught:
        KafkaSettings()
    assert "SCORESTREAM_KAFKA_SASL_USERNAME" in str(caught.value)
    assert leaks(str(caught.value)) == []
    assert leaks(repr(caught.value)) == []
    # with both, the password stays a SecretStr that never prints
    monkeypatch.setenv("SCORESTREAM_KAFKA_SASL_USERNAME", "svc")
    settings = KafkaSettings()
    assert isinstance(settings.sasl_password, SecretStr)
    assert leaks(repr(settings)) == []
    assert leaks(str(settings.model_dump())) == []


def test_every_settings_class_hides_inputs() -> None:
    """Not only the SecretStr holders: a URL or a JSON setting may carry a credential too."""
    _settings_with_secrets()  # imports every module
    shown = sorted(
        f"{c.__module__}.{c.__qualname__}"
        for c in _subclasses(BaseSettings)
        if c.model_config.get("hide_input_in_errors") is not True
    )
    assert shown == []
