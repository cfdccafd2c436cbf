"""KEDA autoscaling on consumer lag for the services that have a lag to scale on.

One ``ScaledObject`` per scaled service (a kafka trigger on the service's consumer group per input
topic it scales on: the merchant stage has two, ``merchant-activity`` and ``transactions``, and
the HPA follows the larger demand) and one ``TriggerAuthentication`` with the service's own SCRAM
credentials: the ``KafkaUser`` already has Describe on those topics and Read (so Describe) on that
group, which is all KEDA's lag query needs. ``maxReplicaCount`` is the largest of those topics'
partition counts from the registry, because a consumer beyond it would sit idle while still
taking part in every rebalance; the HPA ``behavior`` damps scale-down so that lag spikes do not
cause rebalance storms. ``minReplicaCount`` is the service's ``replicas`` (two for the audit join,
for availability).

The gateway has no consumer lag to scale on (it produces; its reply consumer reads one partition
per replica): an ``autoscaling/v2`` HorizontalPodAutoscaler scales its StatefulSet on CPU, between
its ``replicas`` and the partition count of ``<tenant>.replies``, because each replica owns the
reply partition of its ordinal and a replica beyond that count would have none. The monitor stays
at one replica (live metrics per model version need every partition in one process).
"""

from __future__ import annotations

from typing import Any

from scorestream import k8s_config as cfg
from scorestream.k8s_apps import APPS, App, kafka_user_secret, labels, namespace, scaled_partitions
from scorestream.topics import REGISTRY

KEDA_API = "keda.sh/v1alpha1"
GATEWAY_CPU_TARGET = 70
"""Average CPU utilisation (% of the request) the gateway HPA aims at."""
LAG_THRESHOLD = 1000
"""Target lag per replica: about one second of a worker's throughput at the demo's rates."""
ACTIVATION_LAG = 10
USERS_CONFIGMAP = "scorestream-kafka-users"


def scaled_apps() -> tuple[App, ...]:
    return tuple(a for a in APPS if a.scale_on)


def users_config_map(tenant: str) -> dict[str, Any]:
    """SCRAM user names (not secret) for KEDA's ``configMapTargetRef``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": USERS_CONFIGMAP,
            "namespace": namespace(tenant),
            "labels": {"app.kubernetes.io/part-of": "scorestream", "scorestream.io/tenant": tenant},
        },
        "data": {a.service: kafka_user_secret(tenant, a.service) for a in scaled_apps()},
    }


def trigger_authentication(app: App, tenant: str) -> dict[str, Any]:
    secret = kafka_user_secret(tenant, app.service)
    return {
        "apiVersion": KEDA_API,
        "kind": "TriggerAuthentication",
        "metadata": {
            "name": f"{app.service}-kafka",
            "namespace": namespace(tenant),
            "labels": labels(tenant, app.service),
        },
        "spec": {
            "configMapTargetRef": [
                {"parameter": "username", "name": USERS_CONFIGMAP, "key": app.service}
            ],
            "secretTargetRef": [
                {"parameter": "password", "name": secret, "key": "password"},
                {"parameter": "ca", "name": cfg.CLUSTER_CA_SECRET, "key": "ca.crt"},
            ],
        },
    }


def _trigger(app: App, tenant: str, stream: str) -> dict[str, Any]:
    return {
        "type": "kafka",
        "metadata": {
            "bootstrapServers": cfg.BOOTSTRAP,
            "consumerGroup": f"{tenant}.{app.service}",
            "topic": REGISTRY.topic(stream, tenant),
            "lagThreshold": str(LAG_THRESHOLD),
            "activationLagThreshold": str(ACTIVATION_LAG),
            "offsetResetPolicy": "earliest",
            "allowIdleConsumers": "false",
            "sasl": "scram_sha512",
            "tls": "enable",
        },
        "authenticationRef": {"name": f"{app.service}-kafka"},
    }


def scaled_object(app: App, tenant: str) -> dict[str, Any]:
    if not app.scale_on:
        raise ValueError(f"{app.service} does not scale on lag")
    return {
        "apiVersion": KEDA_API,
        "kind": "ScaledObject",
        "metadata": {
            "name": app.service,
            "namespace": namespace(tenant),
            "labels": labels(tenant, app.service),
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": app.kind, "name": app.service},
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "minReplicaCount": app.replicas,
            "maxReplicaCount": scaled_partitions(app),
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior()}},
            "triggers": [_trigger(app, tenant, stream) for stream in app.scale_on],
        },
    }


def _behavior() -> dict[str, Any]:
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": 60,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 300,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
        },
    }


def gateway_max_replicas() -> int:
    """One gateway replica per partition of ``<tenant>.replies``."""
    return REGISTRY.get("replies").partitions


def cpu_autoscaler(app: App, tenant: str) -> dict[str, Any]:
    """The HPA of a CPU-scaled service (the gateway StatefulSet)."""
    if not app.cpu_scaled:
        raise ValueError(f"{app.service} is not scaled on CPU")
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": app.service,
            "namespace": namespace(tenant),
            "labels": labels(tenant, app.service),
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": app.kind, "name": app.service},
            "minReplicas": app.replicas,
            "maxReplicas": gateway_max_replicas(),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": GATEWAY_CPU_TARGET},
                    },
                }
            ],
            "behavior": _behavior(),
        },
    }


def scaling_objects(tenant: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [users_config_map(tenant)]
    for app in scaled_apps():
        out += [trigger_authentication(app, tenant), scaled_object(app, tenant)]
    out += [cpu_autoscaler(app, tenant) for app in APPS if app.cpu_scaled]
    return out
