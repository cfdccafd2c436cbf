"""Settings: frozen pydantic-settings classes read from ``SCORESTREAM_*`` environment variables.

Configuration lives outside the code (12-factor): the same image runs everywhere and a
Kubernetes ConfigMap/Secret supplies these variables. ``KAFKA_BOOTSTRAP_SERVERS`` is honoured as
well, so a test run or a tool can be pointed at any existing cluster.

No settings error quotes a value: every class hides the input in pydantic's errors
(``hide_input_in_errors``; pydantic otherwise quotes the whole input of a failed model
validator, a password included), validators never format a secret and raise the typed
:class:`~scorestream.errors.SettingsError`, and :func:`settings_error` turns a pydantic
``ValidationError`` into one (setting names and messages only).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scorestream.errors import SettingsError


def settings_error(exc: ValidationError) -> SettingsError:
    """The typed error for a pydantic ``ValidationError``: each failing setting and why, without
    its input (the messages of pydantic's own checks and of ours never contain the value)."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or exc.title}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    )
    return SettingsError(f"invalid settings ({exc.title}): {problems}")


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def default_cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "scorestream"


def default_data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "scorestream"


class HomeSettings(BaseSettings):
    """Where local state lives: ``SCORESTREAM_HOME`` (default ``$XDG_DATA_HOME/scorestream``,
    else ``~/.local/share/scorestream``). Every command finds its state there whatever the
    current directory: ``models/`` (the local model repository), ``run/<tenant>/`` (``up``'s
    logs, pids, API key), ``runs/`` (training artifacts), ``chaos/``, ``broker/`` (the local
    broker, unless ``SCORESTREAM_BROKER_HOME`` says otherwise)."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    home: Path = Field(default_factory=default_data_dir, description="local state of every command")


def scorestream_home() -> Path:
    """The absolute ``SCORESTREAM_HOME`` (a relative value is taken from the current directory
    once, here, so that everything below it is absolute)."""
    return HomeSettings().home.expanduser().absolute()


def home_origin(setting: str | None = None) -> str:
    """Which setting chose a local path, for "where I looked" messages: ``setting`` (an env
    variable that overrides the home for this path) when it is set, else ``SCORESTREAM_HOME``
    (``default``: not set either)."""
    if setting and os.environ.get(setting):
        return setting
    return "SCORESTREAM_HOME" if os.environ.get("SCORESTREAM_HOME") else "SCORESTREAM_HOME default"


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSettings(BaseSettings):
    """How to reach Kafka. Env: ``SCORESTREAM_KAFKA_*`` (and ``KAFKA_BOOTSTRAP_SERVERS``)."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_KAFKA_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "SCORESTREAM_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS", "bootstrap_servers"
        ),
        description="host:port[,host:port]; unset means the local development broker",
    )
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = Field(default=None, description="PEM bundle of trusted CAs")
    ssl_certificate_location: Path | None = None
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_endpoint_identification: bool = True
    client_id: str = "scorestream"

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise SettingsError(
                f"security_protocol={self.security_protocol} needs SCORESTREAM_KAFKA_SASL_USERNAME"
                " and SCORESTREAM_KAFKA_SASL_PASSWORD"
            )
        return self


class BrokerSettings(BaseSettings):
    """The local development broker. Env: ``SCORESTREAM_BROKER_*``."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_BROKER_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    home: Path = Field(
        default_factory=lambda: scorestream_home() / "broker",
        description="data, logs and the state file of the local broker",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir, description="where the Kafka jars are cached"
    )
    plaintext_port: int = Field(default=9092, ge=0, le=65535)
    sasl_port: int = Field(default=9094, ge=0, le=65535)
    controller_port: int = Field(default=9093, ge=0, le=65535)
    heap: str = Field(default="768m", pattern=r"^[0-9]+[mMgG]$")
    admin_user: str = "admin"
    admin_password: SecretStr = SecretStr("admin-secret")
    ready_timeout_s: float = Field(default=90.0, gt=0)
    num_partitions: int = Field(default=3, ge=1)
    node_id: int = Field(default=1, ge=1)
    quorum_voters: str = ""
    """Static ``controller.quorum.voters`` of a local multi-node cluster (``scorestream chaos``,
    :class:`scorestream.dev.broker.cluster.LocalCluster`); empty: a standalone single node."""
    cluster_nodes: int = Field(default=1, ge=1)
    cluster_id: str = ""
    """The id to format a node of a local cluster with (every node the same); empty: random."""
    extra_config: dict[str, str] = Field(default_factory=dict)
    """More ``server.properties`` entries (they override the generated ones), e.g.
    ``SCORESTREAM_BROKER_EXTRA_CONFIG='{"num.io.threads": "8"}'``."""


class TopicSettings(BaseSettings):
    """Topic layout. Env: ``SCORESTREAM_TOPICS_*``."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_TOPICS_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int = Field(default=1, ge=1)
    partitions_scale: float = Field(
        default=1.0, gt=0, description="multiply the registry's partition counts (e.g. 0.5 in dev)"
    )


class ModelRepoSettings(BaseSettings):
    """Where model versions live. Env: ``SCORESTREAM_MODELS_*``.

    ``url`` is a local directory (default ``$SCORESTREAM_HOME/models``) or
    ``s3://bucket/prefix``; for S3 the credentials come from the standard AWS chain or the fields
    below (a k8s Secret).
    """

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True,
        env_prefix="SCORESTREAM_MODELS_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,
    )

    url: str = Field(default_factory=lambda: str(scorestream_home() / "models"))
    name: str = Field(default="fraud-gbt", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    s3_endpoint_url: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"

    def storage_options(self) -> dict[str, object]:
        if not self.url.startswith("s3://"):
            return {}
        options: dict[str, object] = {"client_kwargs": {"region_name": self.s3_region}}
        if self.s3_endpoint_url:
            options["client_kwargs"] = {
                "region_name": self.s3_region,
                "endpoint_url": self.s3_endpoint_url,
            }
        if self.s3_access_key and self.s3_secret_key:
            options["key"] = self.s3_access_key
            options["secret"] = self.s3_secret_key.get_secret_value()
        return options


def default_instance_id() -> str:
    """Kubernetes: POD_NAME from the downward API keeps ``transactional.id`` stable per pod."""
    import socket  # noqa: PLC0415

    return os.environ.get("POD_NAME") or socket.gethostname()


class ProcessingSettings(BaseSettings):
    """The tuning every consuming service shares; subclasses set ``service`` and their env prefix
    (``SCORESTREAM_<SERVICE>_*``) and add their own fields.
    :meth:`scorestream.processor.ProcessorConfig.for_service` reads these by name."""

    model_config = SettingsConfigDict(
        use_attribute_docstrings=True, frozen=True, extra="ignore", hide_input_in_errors=True
    )

    service: ClassVar[str] = "service"

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    instance_id: str = Field(default_factory=default_instance_id, min_length=1, max_length=200)
    delivery: Literal["exactly_once", "at_least_once"] = "exactly_once"
    max_batch: int = Field(default=500, ge=1, le=10_000)
    max_wait_ms: int = Field(default=20, ge=1, le=10_000)
    adaptive_batching: bool = True
    """Block up to max_wait_ms for the first record only, then take what is already fetched
    (low latency when idle, full batches under load); False waits for a full batch."""
    health_port: int = Field(default=8080, ge=0, le=65535)
    """0 disables the HTTP endpoints (tests run several services in one process)."""
    transaction_timeout_s: float = Field(default=30.0, gt=0)
    max_poll_interval_ms: int = Field(default=120_000, ge=10_000)
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    live_after_s: float = Field(default=60.0, gt=0)
    """/livez fails when the loop has not polled for this long."""

    @property
    def group_id(self) -> str:
        return f"{self.tenant}.{self.service}"

    @property
    def transactional_id(self) -> str:
        return f"{self.tenant}.{self.service}.{self.instance_id}"
