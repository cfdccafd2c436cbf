"""The committed Kubeflow pipeline YAML is what the code compiles to, its components install
nothing at start, and the Kafka-facing steps get their settings and secrets from kfp.kubernetes.
The compiled command lines run as the image's non-root user in a root-owned venv, the way the KFP
launcher runs them, in tests/e2e/test_kfp_launcher.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.kfp_pipeline import PIPELINE_NAME
from scorestream.deploy.k8s import apps as k8s_apps
from scorestream.deploy.k8s import config as k8s_config
from scorestream.deploy.k8s import kfp as k8s_kfp
from tests import image_venv

ROOT = Path(__file__).resolve().parents[2]
COMPILED = ROOT / "k8s" / k8s_kfp.pipeline_file("demo")


def _documents() -> tuple[dict[str, Any], dict[str, Any]]:
    pipeline, platform = yaml.safe_load_all(COMPILED.read_text())
    return pipeline, platform


def test_committed_pipeline_yaml_is_current(tmp_path: Path) -> None:
    fresh = k8s_kfp.compile_training_pipeline(tmp_path, "demo")
    assert COMPILED.exists(), "run 'scorestream k8s generate' and commit the YAML"
    assert fresh.read_text() == COMPILED.read_text(), (
        f"{COMPILED.relative_to(ROOT)} is stale: run 'scorestream k8s generate'"
    )


def test_pipeline_has_the_five_steps_in_order() -> None:
    spec, _ = _documents()
    assert spec["pipelineInfo"]["name"] == PIPELINE_NAME
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"build-dataset", "train", "export-onnx", "evaluate", "publish"}
    assert tasks["train"]["dependentTasks"] == ["build-dataset"]
    assert set(tasks["publish"]["dependentTasks"]) == {"build-dataset", "evaluate", "export-onnx"}
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {k8s_apps.IMAGE}


def test_components_install_nothing_at_start() -> None:
    """No `pip install kfp` as UID 10001 into the image's root-owned venv, no PyPI egress: kfp is
    in the image (Dockerfile, the kfp extra) and the components use it as it is."""
    spec, _ = _documents()
    for name, executor in spec["deploymentSpec"]["executors"].items():
        script = " ".join(executor["container"]["command"][:3])
        assert "pip" not in script, name
        assert "python3 -m kfp.dsl.executor_main" in script, name


def test_kafka_facing_steps_get_settings_secrets_and_the_kafka_client_label() -> None:
    spec, platform = _documents()
    configured = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(configured) == {"exec-build-dataset", "exec-publish"}
    for name, config in configured.items():
        assert config["podMetadata"]["labels"] == {k8s_config.KAFKA_CLIENT_LABEL: "true"}
        secret_env = {
            (s["secretName"], k["secretKey"]): (k["envVar"], s["optional"])
            for s in config["secretAsEnv"]
            for k in s["keyToEnv"]
        }
        assert secret_env[("demo-retrain", "password")] == (
            "SCORESTREAM_KAFKA_SASL_PASSWORD",
            False,
        )
        assert secret_env[(k8s_config.MODELS_SECRET, "access-key")][1] is True
        (ca,) = config["secretAsVolume"]
        assert (ca["secretName"], ca["mountPath"]) == (
            k8s_config.CLUSTER_CA_SECRET,
            k8s_config.CA_MOUNT,
        )
        container = spec["deploymentSpec"]["executors"][name]["container"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["SCORESTREAM_KAFKA_BOOTSTRAP_SERVERS"] == k8s_config.BOOTSTRAP
        assert env["SCORESTREAM_KAFKA_SASL_USERNAME"] == "demo-retrain"
        assert env["SCORESTREAM_KAFKA_SSL_CA_LOCATION"] == f"{k8s_config.CA_MOUNT}/ca.crt"
        assert env["SCORESTREAM_MODELS_URL"] == "s3://scorestream-models/demo"
    # the settings classes read exactly these names
    from scorestream.settings import KafkaSettings  # noqa: PLC0415

    names = {f"SCORESTREAM_KAFKA_{f.upper()}" for f in KafkaSettings.model_fields}
    env_names = {
        e["name"]
        for e in spec["deploymentSpec"]["executors"]["exec-publish"]["container"]["env"]
        if e["name"].startswith("SCORESTREAM_KAFKA_")
    }
    assert env_names | {"SCORESTREAM_KAFKA_SASL_PASSWORD"} <= names


@pytest.fixture(scope="module")
def image() -> Path:
    """A venv installed like the image's /opt/scorestream (from requirements.lock, no pip)."""
    return image_venv.image_venv()


def test_the_image_venv_has_kfp_and_no_pip(image: Path) -> None:
    site = next((image / "lib").glob("python3.*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
    assert {"kfp", "scorestream", "onnxruntime", "lightgbm"} <= installed
    assert not installed & {"pip", "setuptools", "wheel"}
    assert not (image / "bin" / "pip").exists()


@pytest.mark.parametrize("tenant", ["demo", "acme"])
def test_the_pipeline_is_compiled_per_tenant(tmp_path: Path, tenant: str) -> None:
    path = k8s_kfp.compile_training_pipeline(tmp_path, tenant)
    spec, platform = yaml.safe_load_all(path.read_text())
    assert spec["root"]["inputDefinitions"]["parameters"]["tenant"]["defaultValue"] == tenant
    text = json.dumps(platform)
    assert f"{tenant}-retrain" in text
    assert ("demo" in text) == (tenant == "demo")
