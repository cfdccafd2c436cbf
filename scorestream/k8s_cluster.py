"""The Strimzi ``Kafka`` cluster and its ``KafkaNodePool`` (``kafka.strimzi.io/v1``, KRaft).

The base is production-shaped: three dual-role (controller + broker) nodes on persistent
volumes, a TLS listener with SCRAM-SHA-512 that only the tenant namespaces, KEDA and the training
pipeline's pods in the Kubeflow Pipelines namespace may reach,
``simple`` authorization (the generated ``KafkaUser`` ACLs) and replication settings that match the
generated topics (3 replicas, min ISR 2). The dev overlay patches it down to one node.
"""

from __future__ import annotations

from typing import Any

from scorestream import k8s_config as cfg
from scorestream.k8s_network import KEDA_NAMESPACE

API = "kafka.strimzi.io/v1"
NODE_POOL = "dual-role"


def _meta(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": cfg.KAFKA_NAMESPACE,
        "labels": {
            "strimzi.io/cluster": cfg.KAFKA_CLUSTER,
            "app.kubernetes.io/part-of": "scorestream",
        },
    }


def kafka(*, replication: int = 3, min_isr: int = 2) -> dict[str, Any]:
    meta = _meta(cfg.KAFKA_CLUSTER)
    del meta["labels"]["strimzi.io/cluster"]
    return {
        "apiVersion": API,
        "kind": "Kafka",
        "metadata": meta,
        "spec": {
            "kafka": {
                "listeners": [
                    {
                        "name": "tls",
                        "port": cfg.KAFKA_TLS_PORT,
                        "type": "internal",
                        "tls": True,
                        "authentication": {"type": "scram-sha-512"},
                        "networkPolicyPeers": [
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"scorestream.io/kafka-client": "true"}
                                }
                            },
                            {
                                "namespaceSelector": {
                                    "matchLabels": {"kubernetes.io/metadata.name": KEDA_NAMESPACE}
                                }
                            },
                            # the Kubeflow Pipelines pods of the training pipeline (labelled by
                            # pipelines/kfp_pipeline.py with kfp.kubernetes), not all of KFP
                            {
                                "namespaceSelector": {
                                    "matchLabels": {
                                        "kubernetes.io/metadata.name": cfg.KFP_NAMESPACE
                                    }
                                },
                                "podSelector": {"matchLabels": {cfg.KAFKA_CLIENT_LABEL: "true"}},
                            },
                        ],
                    }
                ],
                "authorization": {"type": "simple"},
                "config": {
                    "auto.create.topics.enable": False,
                    "default.replication.factor": replication,
                    "min.insync.replicas": min_isr,
                    "offsets.topic.replication.factor": replication,
                    "transaction.state.log.replication.factor": replication,
                    "transaction.state.log.min.isr": min_isr,
                    "group.initial.rebalance.delay.ms": 3000,
                },
                "template": {
                    "pod": {
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "topology.kubernetes.io/zone",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {
                                    "matchLabels": {
                                        "strimzi.io/cluster": cfg.KAFKA_CLUSTER,
                                        "strimzi.io/kind": "Kafka",
                                    }
                                },
                            }
                        ]
                    }
                },
            },
            "entityOperator": {
                "topicOperator": {"watchedNamespace": cfg.KAFKA_NAMESPACE},
                "userOperator": {"watchedNamespace": cfg.KAFKA_NAMESPACE},
            },
        },
    }


def node_pool(*, replicas: int = 3, size: str = "100Gi") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "KafkaNodePool",
        "metadata": _meta(NODE_POOL),
        "spec": {
            "replicas": replicas,
            "roles": ["controller", "broker"],
            "storage": {
                "type": "jbod",
                "volumes": [
                    {
                        "id": 0,
                        "type": "persistent-claim",
                        "size": size,
                        "deleteClaim": False,
                        "kraftMetadata": "shared",
                    }
                ],
            },
            "resources": {
                "requests": {"cpu": "1", "memory": "4Gi"},
                "limits": {"cpu": "2", "memory": "4Gi"},
            },
        },
    }


def cluster_objects() -> list[dict[str, Any]]:
    return [kafka(), node_pool()]
