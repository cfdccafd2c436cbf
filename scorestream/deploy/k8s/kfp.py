"""The Kubeflow Pipelines training pipeline, compiled per tenant with its Kubernetes configuration.

The pipeline's Kafka-facing steps (:mod:`pipelines.kfp_pipeline`) get, through ``kfp.kubernetes``,
the same settings as the tenant's ``retrain`` CronJob (:mod:`scorestream.deploy.k8s.apps`): Kafka
over SASL_SSL as ``<tenant>-retrain``, the model repository, tracing; the SCRAM password from the
Secret ``<tenant>-retrain``, S3 keys from ``scorestream-models-s3`` (optional, as in the CronJob),
the cluster CA mounted from ``scorestream-cluster-ca-cert``; and the pod label
:data:`~scorestream.deploy.k8s.config.KAFKA_CLIENT_LABEL`, which the Kafka listener's NetworkPolicy
admits in the KFP namespace (:data:`~scorestream.deploy.k8s.config.KFP_NAMESPACE`). Those Secrets
must exist in the namespace the pipeline runs in (copied like the tenant namespace's, see
docs/deploy.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scorestream.deploy.k8s import apps as k8s_apps
from scorestream.deploy.k8s import config as cfg

if TYPE_CHECKING:
    from pipelines.kfp_pipeline import Platform

KUBEFLOW_DIR = "kubeflow"


def pipeline_file(tenant: str) -> str:
    """The compiled pipeline's path relative to the ``k8s`` root."""
    return f"{KUBEFLOW_DIR}/training-pipeline-{tenant}.yaml"


def platform(tenant: str) -> Platform:
    from pipelines.kfp_pipeline import Platform, SecretEnv  # noqa: PLC0415 (kfp: slow import)

    env = {**cfg.common_env(), **cfg.models_env(tenant)}
    env[cfg.env_key(cfg.KAFKA, "sasl_username")] = k8s_apps.kafka_user_secret(tenant, "retrain")
    env[cfg.env_key(cfg.KAFKA, "client_id")] = f"{tenant}.retrain"
    env["HOME"] = "/tmp"  # noqa: S108 (the image's HOME; explicit for images built elsewhere)
    secrets = [
        SecretEnv(
            k8s_apps.kafka_user_secret(tenant, "retrain"),
            "password",
            cfg.env_key(cfg.KAFKA, "sasl_password"),
        )
    ]
    secrets += [
        SecretEnv(cfg.MODELS_SECRET, key, cfg.env_key(cfg.MODELS, field), optional=True)
        for field, key in (("s3_access_key", "access-key"), ("s3_secret_key", "secret-key"))
    ]
    return Platform(
        env=env,
        secret_env=tuple(secrets),
        secret_volumes={cfg.CLUSTER_CA_SECRET: cfg.CA_MOUNT},
        pod_labels={cfg.KAFKA_CLIENT_LABEL: "true"},
    )


def compile_training_pipeline(root: Path, tenant: str) -> Path:
    """Compile the tenant's pipeline to ``<root>/kubeflow/training-pipeline-<tenant>.yaml``."""
    from pipelines.kfp_pipeline import compile_pipeline  # noqa: PLC0415

    return compile_pipeline(root / pipeline_file(tenant), tenant, platform(tenant))
