"""The tenant's workloads: one pod template per service, from Python data.

Every service runs the same image with ``scorestream <service>``; the differences (port, whether
it scales on lag, resources, which Kafka streams it touches) are rows of :data:`APPS`, so probes,
security context, config and credentials are identical by construction. Pure functions: nothing
here talks to Kubernetes.

* credentials: the SCRAM password from the Secret Strimzi's User Operator writes for the
  ``<tenant>-<service>`` ``KafkaUser`` (key ``password``) and the cluster CA from
  ``scorestream-cluster-ca-cert``; both live in the Kafka namespace and must be mirrored into the
  tenant namespace (see docs/deploy.md), because a pod can only reference Secrets of its own
  namespace.
* ``POD_NAME`` (downward API) is the instance id, hence the ``transactional.id`` suffix
  ``<tenant>.<service>.<pod>`` of the exactly-once services.
* the gateway is a StatefulSet: each replica owns one partition of ``<tenant>.replies``, taken
  from the pod's ordinal (label ``apps.kubernetes.io/pod-index``, Kubernetes >= 1.28).
* the stateful services (the enricher and the merchant stage: their settings have a
  ``state_dir``) get a ``state`` emptyDir at :data:`~scorestream.deploy.k8s.config.STATE_MOUNT`. It
  only holds the checkpoints of their keyed state stores, written on a clean revoke or shutdown; the
  state itself lives in the compacted changelog (``<tenant>.<service>.state``), so losing the
  volume (a new pod, an eviction) costs a changelog replay at the next start, nothing else. See
  :data:`STATE_VOLUME_SIZE` for its size.
* the decision service reads its tenant's policy from the ``scorestream-decision-policy``
  ConfigMap (:func:`policy_config_map`), mounted as a directory (not ``subPath``) so that an
  edited ConfigMap reaches the running pods, which reload it between batches.
* every container requests ephemeral storage for its ``tmp`` and ``state`` emptyDirs (their
  ``sizeLimit``), so the scheduler places pods where the node has room for them; a pod whose
  emptyDirs outgrow the limits is evicted by the kubelet (see :data:`STATE_VOLUME_SIZE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from scorestream import __version__
from scorestream.deploy.k8s import config as cfg
from scorestream.topics import REGISTRY

ROOT = Path(__file__).resolve().parents[3]
POLICY_DIR = ROOT / "config" / "policies"
"""``config/policies/<tenant>.yaml``: a tenant's decision policy, copied into its ConfigMap."""

IMAGE = f"ghcr.io/scorestream/scorestream:{__version__}"
RUN_AS = 10001
API_KEYS_SECRET = "scorestream-gateway-api-keys"  # noqa: S105  (the name of a Secret)
"""Created by the operator from `scorestream gateway-keys add` lines (key ``keys``); see
docs/deploy.md."""
API_KEYS_FILE = "/etc/scorestream/api-keys/keys"
GRACE_MARGIN_S = 15
METRICS_LABEL = "scorestream.io/metrics"
"""On the one gateway Service that the ServiceMonitor scrapes (not on the headless one)."""
STATE_VOLUME_SIZE = "1Gi"
"""``sizeLimit`` of the ``state`` emptyDir. A checkpoint holds every key of a store partition
(simulated traffic over 35 days: about 1 KB per account, up to 10 KB per merchant), and an
instance may keep the checkpoints of every partition it has held until it gets them back, so
1 GiB is room for roughly a million accounts. Beyond that the kubelet evicts the pod while it
writes a checkpoint (on a rebalance or a clean shutdown): that costs a restart and a full
changelog replay, never data. Raise the limit with the tenant's account count, or accept the
replay."""
TMP_VOLUME_SIZE = "256Mi"
POLICY_CONFIGMAP = "scorestream-decision-policy"
POLICY_FILE = cfg.POLICY_FILE
ISTIO_INJECT_LABEL = "sidecar.istio.io/inject"
"""On the retraining Job's pods: ``"false"``. With a classic Istio sidecar a Job never completes
(the proxy keeps running after ``scorestream retrain`` exits), and the Job only talks to Kafka
and object storage, which are not in the mesh."""


@dataclass(frozen=True, slots=True)
class App:
    """One long-running service of a tenant."""

    service: str
    cpu: tuple[str, str]
    """(request, limit)"""
    memory: tuple[str, str]
    replicas: int = 1
    """Fixed replicas; the minimum when ``scale_on`` is set or the service has an HPA (the
    autoscaler then owns the count)."""
    scale_on: tuple[str, ...] = ()
    """The registry streams whose consumer lag scales the service (one KEDA trigger each; the
    replica count follows the largest)."""
    uses_models: bool = False
    egress_https: bool = False
    """Needs HTTPS beyond the cluster (object storage for models, webhooks)."""
    cpu_scaled: bool = False
    """Scaled by a HorizontalPodAutoscaler on CPU (the gateway: it has no lag to scale on)."""

    @property
    def port(self) -> int:
        return cfg.GATEWAY_PORT if self.service == "gateway" else cfg.HEALTH_PORT

    @property
    def kind(self) -> str:
        return "StatefulSet" if self.service == "gateway" else "Deployment"

    @property
    def autoscaled(self) -> bool:
        """KEDA or an HPA owns the replica count: the workload leaves ``replicas`` out."""
        return bool(self.scale_on) or self.cpu_scaled

    @property
    def stateful(self) -> bool:
        """Keeps local state files (a ``state_dir`` setting): gets the ``state`` volume."""
        return self.service in cfg.SERVICE_SETTINGS and cfg.has_state_dir(self.service)


APPS: tuple[App, ...] = (
    App("gateway", ("250m", "1"), ("256Mi", "512Mi"), replicas=2, cpu_scaled=True),
    # the merchant stage: re-keys transactions and fraud labels by merchant, then aggregates them
    App(
        "merchant",
        ("250m", "1"),
        ("512Mi", "1Gi"),
        scale_on=("merchant-activity", "transactions"),
    ),
    # the enricher: account state in its store, every instance follows the whole merchant table
    App("enricher", ("250m", "1"), ("512Mi", "1Gi"), scale_on=("transactions",)),
    App(
        "worker",
        ("500m", "1"),
        ("512Mi", "1Gi"),
        scale_on=("transactions.enriched",),
        uses_models=True,
        egress_https=True,
    ),
    App("decision", ("100m", "500m"), ("256Mi", "512Mi"), scale_on=("predictions",)),
    App(
        "notifier",
        ("100m", "500m"),
        ("256Mi", "512Mi"),
        scale_on=("decisions",),
        egress_https=True,
    ),
    # the audit join: co-partitioned inputs, state in its changelog, at least two for availability
    App(
        "audit",
        ("250m", "1"),
        ("512Mi", "1Gi"),
        replicas=2,
        scale_on=("transactions.enriched", "predictions", "decisions"),
    ),
    # one replica: live precision/AP per model version need every partition in one window
    App("monitor", ("100m", "500m"), ("512Mi", "1Gi"), uses_models=True, egress_https=True),
)
APP_BY_SERVICE = {a.service: a for a in APPS}

RETRAIN = App("retrain", ("1", "2"), ("1Gi", "2Gi"), uses_models=True, egress_https=True)
RETRAIN_SCHEDULE = "0 3 * * *"


def namespace(tenant: str) -> str:
    return f"scorestream-{tenant}"


def labels(tenant: str, service: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": service,
        "app.kubernetes.io/part-of": "scorestream",
        "scorestream.io/tenant": tenant,
    }


def selector(tenant: str, service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service, "scorestream.io/tenant": tenant}


def _meta(name: str, tenant: str, service: str | None = None) -> dict[str, Any]:
    lab = (
        labels(tenant, service)
        if service
        else {"app.kubernetes.io/part-of": "scorestream", "scorestream.io/tenant": tenant}
    )
    return {"name": name, "namespace": namespace(tenant), "labels": lab}


def tenant_namespace(tenant: str) -> dict[str, Any]:
    """The tenant's namespace; the label lets Strimzi's listener and KEDA policies admit it."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace(tenant),
            "labels": {
                "app.kubernetes.io/part-of": "scorestream",
                "scorestream.io/tenant": tenant,
                "scorestream.io/kafka-client": "true",
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }


def config_maps(tenant: str) -> list[dict[str, Any]]:
    """``scorestream-common`` (Kafka, tracing), ``scorestream-models`` and one per service."""
    maps = [
        ("scorestream-common", cfg.common_env()),
        ("scorestream-models", cfg.models_env(tenant)),
    ]
    maps += [(f"scorestream-{a.service}", cfg.service_env(a.service, tenant)) for a in APPS]
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, tenant), "data": data}
        for name, data in maps
    ] + [policy_config_map(tenant)]


def policy_text(tenant: str) -> str:
    """The tenant's decision policy: ``config/policies/<tenant>.yaml`` when there is one, else a
    thresholds-only policy equal to the decision service's defaults (version ``<tenant>-default``).
    """
    path = POLICY_DIR / f"{tenant}.yaml"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    defaults = cfg.SERVICE_SETTINGS["decision"].load().model_fields
    review = defaults["review_threshold"].default
    decline = defaults["decline_threshold"].default
    return (
        f"# No config/policies/{tenant}.yaml: the decision service's default thresholds.\n"
        f'version: "{tenant}-default"\n'
        f"thresholds:\n  review: {review}\n  decline: {decline}\n"
    )


def policy_config_map(tenant: str) -> dict[str, Any]:
    """The decision policy, mounted into the decision pods at :data:`POLICY_FILE`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(POLICY_CONFIGMAP, tenant, "decision"),
        "data": {"policy.yaml": policy_text(tenant)},
    }


def kafka_user_secret(tenant: str, service: str) -> str:
    """The Secret Strimzi's User Operator writes for the service's ``KafkaUser``."""
    return f"{tenant}-{service}"


def _env(app: App, tenant: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "OTEL_SERVICE_NAME", "value": app.service},
        {"name": "HOME", "value": "/tmp"},  # noqa: S108 (an emptyDir; the root fs is read-only)
        {"name": "SCORESTREAM_KAFKA_CLIENT_ID", "value": f"{tenant}.{app.service}"},
        {
            "name": "SCORESTREAM_KAFKA_SASL_USERNAME",
            "value": kafka_user_secret(tenant, app.service),
        },
        {
            "name": "SCORESTREAM_KAFKA_SASL_PASSWORD",
            "valueFrom": {
                "secretKeyRef": {"name": kafka_user_secret(tenant, app.service), "key": "password"}
            },
        },
    ]
    if app.service in cfg.SERVICE_SETTINGS:
        env.append(
            {
                "name": cfg.instance_id_key(app.service),
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            }
        )
    if app.service == "gateway":
        env.append(
            {
                "name": cfg.env_key(cfg.SERVICE_SETTINGS["gateway"], "reply_partition"),
                "valueFrom": {
                    "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
                },
            }
        )
    if app.service == "gateway":
        # hashed API key lines (`scorestream gateway-keys add`), from a Secret mounted as a file
        env.append({"name": "SCORESTREAM_GATEWAY_API_KEYS_FILE", "value": API_KEYS_FILE})
    if app.uses_models:
        for field, key in (("s3_access_key", "access-key"), ("s3_secret_key", "secret-key")):
            env.append(
                {
                    "name": cfg.env_key(cfg.MODELS, field),
                    "valueFrom": {
                        # optional: with workload identity (IRSA, GKE WI) there is no static key
                        "secretKeyRef": {"name": cfg.MODELS_SECRET, "key": key, "optional": True}
                    },
                }
            )
    return env


def _env_from(app: App) -> list[dict[str, Any]]:
    names = ["scorestream-common"]
    if app.uses_models:
        names.append("scorestream-models")
    if app.service in cfg.SERVICE_SETTINGS:
        names.append(f"scorestream-{app.service}")
    return [{"configMapRef": {"name": n}} for n in names]


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def container(app: App, tenant: str, args: list[str] | None = None) -> dict[str, Any]:
    """The ``scorestream`` container of ``app``; ``args`` overrides ``[<service>]``."""
    spec: dict[str, Any] = {
        "name": app.service,
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": args or [app.service],
        "envFrom": _env_from(app),
        "env": _env(app, tenant),
        "resources": {
            "requests": {
                "cpu": app.cpu[0],
                "memory": app.memory[0],
                "ephemeral-storage": ephemeral_storage(app),
            },
            "limits": {"cpu": app.cpu[1], "memory": app.memory[1]},
        },
        "securityContext": dict(SECURITY_CONTEXT),
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
            {"name": "kafka-ca", "mountPath": cfg.CA_MOUNT, "readOnly": True},
        ],
    }
    if app.stateful:
        spec["volumeMounts"].append({"name": "state", "mountPath": cfg.STATE_MOUNT})
    if app.service == "decision":
        spec["volumeMounts"].append(
            {
                "name": "policy",
                "mountPath": str(PurePosixPath(POLICY_FILE).parent),
                "readOnly": True,
            }
        )
    if app.service == "gateway":
        spec["volumeMounts"].append(
            {
                "name": "api-keys",
                "mountPath": str(PurePosixPath(API_KEYS_FILE).parent),
                "readOnly": True,
            }
        )
    if args is None:
        spec["ports"] = [{"name": "http", "containerPort": app.port, "protocol": "TCP"}]
        spec["startupProbe"] = _probe("/livez", period=5, failures=60)  # model load, restore
        spec["livenessProbe"] = _probe("/livez", period=10, failures=3)
        spec["readinessProbe"] = _probe("/readyz", period=5, failures=2)
    return spec


def pod_spec(app: App, tenant: str, args: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container(app, tenant, args)],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": TMP_VOLUME_SIZE}},
            {
                "name": "kafka-ca",
                "secret": {
                    "secretName": cfg.CLUSTER_CA_SECRET,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                },
            },
        ],
    }
    if app.stateful:
        # checkpoints only (see STATE_VOLUME_SIZE): an emptyDir, losing it costs a replay
        spec["volumes"].append({"name": "state", "emptyDir": {"sizeLimit": STATE_VOLUME_SIZE}})
    if app.service == "decision":
        spec["volumes"].append(
            {
                "name": "policy",
                "configMap": {
                    "name": POLICY_CONFIGMAP,
                    "items": [{"key": "policy.yaml", "path": PurePosixPath(POLICY_FILE).name}],
                },
            }
        )
    if app.service == "gateway":
        spec["volumes"].append(
            {
                "name": "api-keys",
                "secret": {
                    "secretName": API_KEYS_SECRET,
                    "items": [{"key": "keys", "path": PurePosixPath(API_KEYS_FILE).name}],
                },
            }
        )
    if args is None:
        spec["terminationGracePeriodSeconds"] = grace_seconds(app.service)
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": key,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(tenant, app.service)},
            }
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
        ]
    return spec


def _mebibytes(quantity: str) -> int:
    number, unit = quantity[:-2], quantity[-2:]
    return int(number) * {"Mi": 1, "Gi": 1024}[unit]


def ephemeral_storage(app: App) -> str:
    """The container's ephemeral-storage request: the ``sizeLimit`` of its pod's emptyDirs."""
    total = _mebibytes(TMP_VOLUME_SIZE)
    if app.stateful:
        total += _mebibytes(STATE_VOLUME_SIZE)
    return f"{total}Mi"


def grace_seconds(service: str) -> int:
    return cfg.drain_seconds(service) + GRACE_MARGIN_S


def workload(app: App, tenant: str) -> dict[str, Any]:
    """The Deployment (StatefulSet for the gateway) of one service."""
    spec: dict[str, Any] = {}
    if not app.autoscaled:
        spec["replicas"] = app.replicas
    spec["revisionHistoryLimit"] = 5
    spec["selector"] = {"matchLabels": selector(tenant, app.service)}
    if app.kind == "StatefulSet":
        spec["serviceName"] = f"{app.service}-headless"
        spec["podManagementPolicy"] = "Parallel"
    else:
        spec["strategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        }
    spec["template"] = {
        "metadata": {"labels": labels(tenant, app.service)},
        "spec": pod_spec(app, tenant),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": app.kind,
        "metadata": _meta(app.service, tenant, app.service),
        "spec": spec,
    }


def pdb(app: App, tenant: str) -> dict[str, Any]:
    """At most one pod of a service down for voluntary disruptions (node drains, upgrades)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(app.service, tenant, app.service),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(tenant, app.service)},
        },
    }


def gateway_services(tenant: str) -> list[dict[str, Any]]:
    """The gateway's client endpoint and the StatefulSet's headless governing Service."""
    sel = selector(tenant, "gateway")
    port = {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                **_meta("gateway", tenant, "gateway"),
                "labels": {**labels(tenant, "gateway"), METRICS_LABEL: "true"},
            },
            "spec": {"type": "ClusterIP", "selector": sel, "ports": [port]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("gateway-headless", tenant, "gateway"),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": sel,
                "ports": [{**port, "port": cfg.GATEWAY_PORT}],
            },
        },
    ]


def retrain_cronjob(tenant: str) -> dict[str, Any]:
    """``scorestream retrain`` nightly from the audit trail; never two at once."""
    args = ["retrain", "--tenant", tenant, "--source", "audit"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta("retrain", tenant, "retrain"),
        "spec": {
            "schedule": RETRAIN_SCHEDULE,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 4 * 3600,
                    "ttlSecondsAfterFinished": 7 * 24 * 3600,
                    "template": {
                        "metadata": {
                            "labels": {**labels(tenant, "retrain"), ISTIO_INJECT_LABEL: "false"}
                        },
                        "spec": {
                            **pod_spec(RETRAIN, tenant, args),
                            "restartPolicy": "Never",
                        },
                    },
                }
            },
        },
    }


def scaled_partitions(app: App) -> int:
    """Partitions of the largest stream that scales ``app``: more consumers would idle."""
    if not app.scale_on:
        return app.replicas
    return max(REGISTRY.get(s).partitions for s in app.scale_on)
