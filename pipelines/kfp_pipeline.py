"""The Kubeflow Pipelines (v2) training pipeline.

(No ``from __future__ import annotations`` here: kfp reads the real annotation objects.)

build_dataset → train → evaluate → export_onnx → publish, each a lightweight component whose body
calls the same step functions ``scorestream train`` runs locally (:mod:`pipelines.steps`).

The components run in the scorestream image, which has this package *and kfp* installed (the
``kfp`` extra, from the image's lock file), so they are compiled with
``install_kfp_package=False``: the command KFP runs is ``python3 -m kfp.dsl.executor_main`` with
the component's source, and nothing is installed at start (no ``pip install`` into the image's
root-owned venv as UID 10001, no PyPI egress).

What the pods need from Kubernetes (Kafka and model-repository settings, the Kafka password, the
cluster CA, S3 keys, the label that lets them through the Kafka listener's NetworkPolicy) is a
:class:`Platform`, applied with ``kfp.kubernetes`` to the steps that talk to Kafka or the model
repository (``build_dataset`` reads the audit trail, ``publish`` stores and announces the model).
The tools layer builds it per tenant from the same settings as the services' pods
(:mod:`scorestream.k8s_kfp`) and ``scorestream k8s generate`` writes
``k8s/kubeflow/training-pipeline-<tenant>.yaml``; a test keeps the committed YAML current.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Input, Metrics, Model, Output

IMAGE = "ghcr.io/scorestream/scorestream:0.1.0"
PIPELINE_NAME = "scorestream-fraud-training"


@dataclass(frozen=True)
class SecretEnv:
    """One environment variable from one key of a Secret."""

    secret: str
    key: str
    env: str
    optional: bool = False


@dataclass(frozen=True)
class Platform:
    """Kubernetes configuration of the pods that talk to Kafka or the model repository."""

    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[SecretEnv, ...] = ()
    secret_volumes: Mapping[str, str] = field(default_factory=dict)
    """Secret name -> mount path."""
    pod_labels: Mapping[str, str] = field(default_factory=dict)


def _configure(task: dsl.PipelineTask, platform: Platform) -> None:
    for name, value in platform.env.items():
        task.set_env_variable(name, value)
    for item in platform.secret_env:
        kubernetes.use_secret_as_env(
            task, item.secret, {item.key: item.env}, optional=item.optional
        )
    for secret, path in platform.secret_volumes.items():
        kubernetes.use_secret_as_volume(task, secret, mount_path=path)
    for key, value in platform.pod_labels.items():
        kubernetes.add_pod_label(task, key, value)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def build_dataset(
    tenant: str,
    seed: int,
    days: int,
    source: str,
    dataset: Output[Dataset],
) -> str:
    """Audit records joined with labels (features as served) when present, else simulated."""
    from pathlib import Path  # noqa: PLC0415

    from pipelines.sources import load_training_data  # noqa: PLC0415
    from pipelines.steps import build_dataset_step  # noqa: PLC0415
    from pipelines.training import TrainConfig  # noqa: PLC0415

    data = load_training_data(tenant=tenant, seed=seed, days=days, source=source)
    built = build_dataset_step(
        data.transactions, data.labels, Path(dataset.path), TrainConfig(), data.features
    )
    dataset.metadata["source"] = data.source
    return built.describe()


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(dataset: Input[Dataset], model: Output[Model], n_estimators: int) -> None:
    from pathlib import Path  # noqa: PLC0415

    from pipelines.steps import train_step  # noqa: PLC0415
    from pipelines.training import TrainConfig  # noqa: PLC0415

    Path(model.path).parent.mkdir(parents=True, exist_ok=True)
    train_step(Path(dataset.path), Path(model.path), TrainConfig(n_estimators=n_estimators))
    model.metadata["framework"] = "lightgbm"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def export_onnx(model: Input[Model], dataset: Input[Dataset], onnx_model: Output[Model]) -> float:
    from pathlib import Path  # noqa: PLC0415

    from pipelines.steps import export_onnx_step  # noqa: PLC0415

    Path(onnx_model.path).parent.mkdir(parents=True, exist_ok=True)
    diff = export_onnx_step(Path(model.path), Path(onnx_model.path), Path(dataset.path))
    if diff > 1e-5:
        raise RuntimeError(f"ONNX differs from LightGBM by {diff:.2e} > 1e-5")
    onnx_model.metadata["max_abs_diff"] = diff
    return diff


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(onnx_model: Input[Model], dataset: Input[Dataset], metrics: Output[Metrics]) -> float:
    from pathlib import Path  # noqa: PLC0415

    from pipelines.steps import evaluate_step  # noqa: PLC0415

    Path(metrics.path).parent.mkdir(parents=True, exist_ok=True)
    values = evaluate_step(Path(onnx_model.path), Path(dataset.path), Path(metrics.path))
    for key, value in values.items():
        metrics.log_metric(key, value)
    return values["average_precision"]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def publish(
    onnx_model: Input[Model],
    dataset: Input[Dataset],
    metrics: Input[Metrics],
    tenant: str,
    promote_if_first: bool,
) -> str:
    """Store the version in the model repository and emit ModelPublished (and a first
    ModelPromoted when the tenant has no champion yet). Repository and Kafka settings come from
    the SCORESTREAM_* environment (ConfigMap + Secret)."""
    from pathlib import Path  # noqa: PLC0415

    from pipelines.steps import publish_step  # noqa: PLC0415

    event = publish_step(
        Path(onnx_model.path),
        Path(dataset.path),
        Path(metrics.path),
        tenant=tenant,
        promote_if_first=promote_if_first,
    )
    return f"{event.model_name}/{event.model_version}"


def make_pipeline(tenant: str = "demo", platform: Platform | None = None) -> Callable[..., None]:
    """The pipeline for one tenant (its default ``tenant`` parameter); with ``platform``, the
    Kafka-facing steps get their Kubernetes configuration."""

    @dsl.pipeline(
        name=PIPELINE_NAME, description="Fraud model: features → LightGBM → ONNX → repository"
    )
    def training_pipeline(
        tenant: str = tenant,
        seed: int = 42,
        days: int = 60,
        source: str = "auto",
        n_estimators: int = 300,
        promote_if_first: bool = True,
    ) -> None:
        data = build_dataset(tenant=tenant, seed=seed, days=days, source=source)
        trained = train(dataset=data.outputs["dataset"], n_estimators=n_estimators)
        onnx = export_onnx(model=trained.outputs["model"], dataset=data.outputs["dataset"])
        scored = evaluate(onnx_model=onnx.outputs["onnx_model"], dataset=data.outputs["dataset"])
        published = publish(
            onnx_model=onnx.outputs["onnx_model"],
            dataset=data.outputs["dataset"],
            metrics=scored.outputs["metrics"],
            tenant=tenant,
            promote_if_first=promote_if_first,
        )
        if platform is not None:
            for task in (data, published):
                _configure(task, platform)

    result: Callable[..., None] = training_pipeline
    return result


training_pipeline = make_pipeline()
"""Without Kubernetes configuration: what ``scorestream train --kfp-local`` runs."""


def compile_pipeline(path: Path, tenant: str = "demo", platform: Platform | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(make_pipeline(tenant, platform), str(path))
    return path
