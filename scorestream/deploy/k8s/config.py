"""Environment for the pods, derived from the real settings classes (never typed by hand).

Every ConfigMap key is built by :func:`env_key` from a pydantic-settings class and one of its
field names, so a renamed or removed setting fails the generator instead of silently producing a
key no service reads. A unit test goes further and loads each service's settings class from the
generated environment.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pydantic_settings import BaseSettings

from scorestream.deploy.acl import EXACTLY_ONCE
from scorestream.errors import ConfigError
from scorestream.services import SERVICES

# The in-cluster names the manifests agree on.
KAFKA_CLUSTER = "scorestream"
KAFKA_NAMESPACE = "kafka"
KAFKA_TLS_PORT = 9093
BOOTSTRAP = f"{KAFKA_CLUSTER}-kafka-bootstrap.{KAFKA_NAMESPACE}.svc:{KAFKA_TLS_PORT}"
CLUSTER_CA_SECRET = f"{KAFKA_CLUSTER}-cluster-ca-cert"
CA_MOUNT = "/etc/scorestream/kafka-ca"
MODELS_SECRET = "scorestream-models-s3"  # noqa: S105 (a Secret's name)
KFP_NAMESPACE = "kubeflow"
"""Where Kubeflow Pipelines runs the pipeline's pods (standalone KFP; with multi-user Kubeflow, the
profile namespace): admitted by the Kafka listener for pods labelled :data:`KAFKA_CLIENT_LABEL`."""
KAFKA_CLIENT_LABEL = "scorestream.io/kafka-client"
OTLP_NAMESPACE = "observability"
OTLP_ENDPOINT = f"http://otel-collector.{OTLP_NAMESPACE}.svc:4318"
HEALTH_PORT = 8080
GATEWAY_PORT = 8000
STATE_MOUNT = "/var/lib/scorestream/state"
"""Where the stateful services' ``state`` volume is mounted (their ``state_dir``)."""
LIVENESS_MARGIN_S = 30
POLICY_FILE = "/etc/scorestream/policy/policy.yaml"
"""The decision policy, from the tenant's ``scorestream-decision-policy`` ConfigMap."""


@dataclass(frozen=True, slots=True)
class SettingsRef:
    """A settings class by import path, so this module stays importable without the services."""

    module: str
    name: str

    def load(self) -> type[BaseSettings]:
        cls = getattr(importlib.import_module(self.module), self.name)
        if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
            raise ConfigError(f"{self.module}.{self.name} is not a settings class")
        return cls


KAFKA = SettingsRef("scorestream.settings", "KafkaSettings")
MODELS = SettingsRef("scorestream.settings", "ModelRepoSettings")
TRACING = SettingsRef("scorestream.tracing", "TracingSettings")
GATEWAY_AUTH = SettingsRef("producers.gateway.auth", "GatewayAuthSettings")

SERVICE_SETTINGS: dict[str, SettingsRef] = {
    s.name: SettingsRef(*s.settings.split(":", 1)) for s in SERVICES
}
"""The settings class each long-running service reads (``scorestream <service>``)."""


def env_key(ref: SettingsRef, field: str) -> str:
    """``SCORESTREAM_<PREFIX>_<FIELD>`` for a field that the class really has."""
    cls = ref.load()
    if field not in cls.model_fields:
        raise ConfigError(f"{ref.name} has no setting {field!r}")
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field.upper()}"


def env_map(ref: SettingsRef, values: dict[str, Any]) -> dict[str, str]:
    """ConfigMap data for ``values`` (field -> value), keys checked against the class."""
    return {env_key(ref, k): _text(v) for k, v in values.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def common_env() -> dict[str, str]:
    """Kafka client, model repository and tracing settings shared by every pod of a tenant."""
    data = env_map(
        KAFKA,
        {
            "bootstrap_servers": BOOTSTRAP,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "ssl_ca_location": f"{CA_MOUNT}/ca.crt",
        },
    )
    data |= env_map(TRACING, {"endpoint": OTLP_ENDPOINT, "sampler_ratio": 0.1})
    return data


def models_env(tenant: str) -> dict[str, str]:
    """Where the tenant's model versions live (credentials come from a Secret)."""
    return env_map(MODELS, {"url": f"s3://scorestream-models/{tenant}"})


def service_env(service: str, tenant: str) -> dict[str, str]:
    """The service's own ConfigMap: its tenant, HTTP port and in-cluster choices."""
    ref = SERVICE_SETTINGS[service]
    values: dict[str, Any] = {"tenant": tenant}
    if service == "gateway":
        values |= {"host": "0.0.0.0", "port": GATEWAY_PORT}  # noqa: S104 (pod IP, behind a Service)
    else:
        values["health_port"] = HEALTH_PORT
    if service in EXACTLY_ONCE:
        values["delivery"] = "exactly_once"
    if service == "worker":
        values["intra_op_threads"] = 1
    if service == "decision":
        values["policy_file"] = POLICY_FILE
    if has_state_dir(service):
        values["state_dir"] = STATE_MOUNT
    live = live_after_seconds(service)
    if live is not None:
        values["live_after_s"] = live
    return env_map(ref, values)


def has_state_dir(service: str) -> bool:
    """Whether the service keeps local state files (checkpoints of its keyed state store)."""
    return "state_dir" in SERVICE_SETTINGS[service].load().model_fields


def live_after_seconds(service: str) -> int | None:
    """``live_after_s`` for a service that restores state or reads a table before it polls, else
    None (its default stands).

    ``/livez`` fails once the loop has not polled for ``live_after_s``, and neither a restore
    (inside the assignment callback) nor the enricher's first read of the merchant table (before
    the loop starts) polls: with the default (60 s) a restore that takes longer than about 90 s
    makes the liveness probe kill the pod mid-restore, and the next pod starts the restore over.
    So such a service may go without a poll for as long as its longest restore or table timeout
    (after which it fails on its own) plus a margin."""
    cls = SERVICE_SETTINGS[service].load()
    waits = [
        _default(cls, name)
        for name in ("restore_timeout_s", "table_timeout_s")
        if name in cls.model_fields
    ]
    if not waits or "live_after_s" not in cls.model_fields:
        return None
    return int(max(_default(cls, "live_after_s"), max(waits) + LIVENESS_MARGIN_S))


def _default(cls: type[BaseSettings], name: str) -> float:
    value = cls.model_fields[name].default
    if not isinstance(value, int | float):
        raise ConfigError(f"{cls.__name__}.{name} has no numeric default")
    return float(value)


def instance_id_key(service: str) -> str:
    """The env var that carries the pod name as the service's instance id."""
    return env_key(SERVICE_SETTINGS[service], "instance_id")


def drain_seconds(service: str) -> int:
    """How long a SIGTERM'd pod may need to finish its batch or requests, from its settings'
    defaults: the pod's ``terminationGracePeriodSeconds`` is this plus a margin."""
    cls = SERVICE_SETTINGS[service].load()

    def default(name: str) -> float:
        return _default(cls, name)

    if service == "gateway":
        # in-flight synchronous requests wait up to max_deadline_s, then the producer flushes
        return int(default("max_deadline_s") + default("publish_timeout_s"))
    if service == "monitor":
        return int(default("publish_interval_s") + default("metadata_timeout_s"))
    drain = default("transaction_timeout_s")
    if service == "notifier":
        webhook = (
            default("webhook_batch_budget_s")
            + default("webhook_connect_timeout_s")
            + default("webhook_read_timeout_s")
        )
        drain = max(drain, webhook)
    return int(drain)
