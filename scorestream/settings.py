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
    """How clients talk to the brokers: plain, TLS (``SSL``), or SASL over either; a ``SASL_*``
    protocol needs the SASL user name and password, the ``SSL_*`` settings apply to TLS only."""
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    """SASL mechanism (with a ``SASL_*`` protocol)."""
    sasl_username: str | None = None
    """SASL user name (required with a ``SASL_*`` protocol)."""
    sasl_password: SecretStr | None = None
    """SASL password (a secret; required with a ``SASL_*`` protocol)."""
    ssl_ca_location: Path | None = Field(default=None, description="PEM bundle of trusted CAs")
    ssl_certificate_location: Path | None = None
    """PEM client certificate, for mutual TLS."""
    ssl_key_location: Path | None = None
    """PEM private key of the client certificate."""
    ssl_key_password: SecretStr | None = None
    """Password of that private key when it is encrypted (a secret)."""
    ssl_endpoint_identification: bool = True
    """Check that the broker's certificate names the host connected to
    (``ssl.endpoint.identification.algorithm=https``); false turns the check off."""
    client_id: str = "scorestream"
    """Kafka ``client.id`` (broker logs, quotas) of the clients that do not set their own, e.g.
    the commands; a service's processing loop uses its instance id."""

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
    """The PLAINTEXT listener on 127.0.0.1 (the bootstrap address; no authentication). 0 or
    taken: a free port. Read when the storage is created; later starts reuse the ports recorded
    then (``--clean`` re-creates it)."""
    sasl_port: int = Field(default=9094, ge=0, le=65535)
    """The SASL_PLAINTEXT listener (SCRAM-SHA-512, ACLs enforced: the security tests); chosen and
    recorded like the PLAINTEXT port."""
    controller_port: int = Field(default=9093, ge=0, le=65535)
    """The KRaft controller listener; recorded in the storage, so a later start fails while
    another process holds it."""
    heap: str = Field(default="768m", pattern=r"^[0-9]+[mMgG]$")
    """The broker JVM's heap (``-Xmx`` and ``-Xms``), e.g. ``768m`` or ``2g``."""
    admin_user: str = "admin"
    """SCRAM-SHA-512 super user added when the storage is formatted, for the SASL listener."""
    admin_password: SecretStr = SecretStr("admin-secret")
    """The admin user's password (a secret; development only). Set when the storage is
    formatted: changing it later takes ``--clean``."""
    ready_timeout_s: float = Field(default=90.0, gt=0)
    """How long a start waits for the broker to answer metadata requests before it fails."""
    num_partitions: int = Field(default=3, ge=1)
    """The broker's ``num.partitions``: partitions of a topic created without a count
    (scorestream's own topics take theirs from the registry; auto-creation is off)."""
    node_id: int = Field(default=1, ge=1)
    """This node's ``node.id`` in a local multi-node cluster (with ``quorum_voters``); a
    standalone broker is always node 1."""
    quorum_voters: str = ""
    """Static ``controller.quorum.voters`` of a local multi-node cluster (``scorestream chaos``,
    :class:`scorestream.dev.broker.cluster.LocalCluster`); empty: a standalone single node."""
    cluster_nodes: int = Field(default=1, ge=1)
    """Nodes of the local cluster (with ``quorum_voters``): internal and default topics are
    replicated to all of them, with a majority in sync."""
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
    """Replicas of each topic created (at most the number of brokers); existing topics keep
    theirs."""
    min_insync_replicas: int = Field(default=1, ge=1)
    """``min.insync.replicas`` of every topic, existing ones included: an ``acks=all`` write
    fails while fewer replicas are in sync. Below the replication factor, a broker may be down."""
    partitions_scale: float = Field(
        default=1.0, gt=0, description="multiply the registry's partition counts (e.g. 0.5 in dev)"
    )

    @model_validator(mode="after")
    def _insync_fits_the_replicas(self) -> TopicSettings:
        # more in-sync replicas required than a new topic has: every acks=all write would fail
        if self.min_insync_replicas > self.replication_factor:
            msg = (
                f"min_insync_replicas ({self.min_insync_replicas}) exceeds replication_factor "
                f"({self.replication_factor}): every acks=all write to a new topic would fail"
            )
            raise ValueError(msg)
        return self


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
    """The model repository: a directory or ``s3://bucket/prefix`` (versions under
    ``<url>/<model>/<version>/``)."""
    s3_endpoint_url: str | None = None
    """Endpoint of an S3-compatible store (e.g. MinIO); unset: AWS S3. S3 settings apply to an
    ``s3://`` URL only."""
    s3_access_key: str | None = None
    """S3 access key id, used together with the secret key; without both, the standard AWS
    credential chain applies."""
    s3_secret_key: SecretStr | None = None
    """S3 secret access key (a secret)."""
    s3_region: str = "us-east-1"
    """Region of the bucket."""

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
    """The tenant served: its topics are ``<tenant>.*``, its consumer group
    ``<tenant>.<service>``."""
    instance_id: str = Field(default_factory=default_instance_id, min_length=1, max_length=200)
    """Names this instance: its ``transactional.id`` is ``<tenant>.<service>.<instance_id>``.
    Unique per running instance and stable across restarts (a restart fences the previous
    one's open transaction); Kubernetes sets the pod name."""
    delivery: Literal["exactly_once", "at_least_once"] = "exactly_once"
    """``exactly_once``: a batch's outputs, dead letters, state and input offsets commit in one
    Kafka transaction. ``at_least_once``: offsets are committed after the outputs are
    acknowledged, so a crash can repeat outputs. The audit service always runs exactly once."""
    max_batch: int = Field(default=500, ge=1, le=10_000)
    """Most records handled and committed together as one batch."""
    max_wait_ms: int = Field(default=20, ge=1, le=10_000)
    """How long a poll waits, in ms: for the first record with adaptive batching, else for a
    full batch. Also bounds how long the broker holds a fetch (``fetch.wait.max.ms``)."""
    adaptive_batching: bool = True
    """Block up to max_wait_ms for the first record only, then take what is already fetched
    (low latency when idle, full batches under load); False waits for a full batch."""
    health_port: int = Field(default=8080, ge=0, le=65535)
    """0 disables the HTTP endpoints (tests run several services in one process)."""
    transaction_timeout_s: float = Field(default=30.0, gt=0)
    """Kafka's ``transaction.timeout.ms`` and the timeout of each transaction call (a call stuck
    30 s past it ends the process); a dead instance's open transaction holds readers back this
    long. At least once: the wait for a batch's acknowledgements."""
    max_poll_interval_ms: int = Field(default=120_000, ge=10_000)
    """Kafka's ``max.poll.interval.ms``: a batch (handling and commit) that keeps the loop from
    polling longer gets the member evicted from the group; its partitions go to another."""
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    """Kafka's ``session.timeout.ms``: a member without a heartbeat this long (they are sent
    every fifth of it) is removed and its partitions reassigned; lower fails over faster."""
    live_after_s: float = Field(default=60.0, gt=0)
    """/livez fails when the loop has not polled for this long."""

    @property
    def group_id(self) -> str:
        return f"{self.tenant}.{self.service}"

    @property
    def transactional_id(self) -> str:
        return f"{self.tenant}.{self.service}.{self.instance_id}"
