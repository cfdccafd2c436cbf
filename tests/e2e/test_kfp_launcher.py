"""The compiled Kubeflow pipeline, every step through its compiled command line the way the KFP
launcher runs it (tests/kfp_launcher.py): as the image's user (UID 10001 when the tests run as
root) in a venv installed like the image's (tests/image_venv.py), publish included, against a
real broker. tests/unit/test_kfp_pipeline.py checks the compiled YAML itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.repository import ModelRepository
from scorestream.deploy.k8s import kfp as k8s_kfp
from tests import image_venv, kfp_launcher

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_every_compiled_step_runs_as_the_image_user_and_publishes(kafka_bootstrap: str) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    subprocess.run(  # the deploy step: the tenant's model-events exists before anything publishes
        [sys.executable, "-m", "scorestream", "topics", "create", "--tenant", tenant],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = image_venv.image_venv()
    if os.geteuid() == 0:  # as CI runs: the venv is root's and the steps run as UID 10001
        assert image.stat().st_uid == 0
        assert not image.stat().st_mode & 0o022, "the venv must not be writable by the image user"
    path = ROOT / "k8s" / k8s_kfp.pipeline_file("demo")
    spec, _platform = yaml.safe_load_all(path.read_text())
    steps = kfp_launcher.executors(spec)
    with kfp_launcher.scratch() as work:
        # the cluster's Kafka settings (SASL_SSL, the in-cluster bootstrap) replaced by the test
        # broker's; the model repository on the scratch disk instead of S3
        env: dict[str, str | None] = {
            "SCORESTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "SCORESTREAM_KAFKA_SECURITY_PROTOCOL": None,
            "SCORESTREAM_KAFKA_SASL_MECHANISM": None,
            "SCORESTREAM_KAFKA_SASL_USERNAME": None,
            "SCORESTREAM_KAFKA_SSL_CA_LOCATION": None,
            "SCORESTREAM_TRACING_ENDPOINT": None,
            "SCORESTREAM_MODELS_URL": str(work / "models"),
        }

        def run(task: str, params: dict[str, Any], artifacts: dict[str, str]) -> dict[str, Any]:
            proc, outputs = kfp_launcher.run(steps[task], work, params, artifacts, env, image)
            assert proc.returncode == 0, f"{task}:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
            return outputs

        data = run("build-dataset", {"tenant": tenant, "seed": 3, "days": 45, "source": "auto"}, {})
        trained = run("train", {"n_estimators": 20}, {"dataset": data["dataset"]})
        onnx = run("export-onnx", {}, {"model": trained["model"], "dataset": data["dataset"]})
        scored = run("evaluate", {}, {"onnx_model": onnx["onnx_model"], "dataset": data["dataset"]})
        published = run(
            "publish",
            {"tenant": tenant, "promote_if_first": True},
            {
                "onnx_model": onnx["onnx_model"],
                "dataset": data["dataset"],
                "metrics": scored["metrics"],
            },
        )
        assert published["Output"] == "fraud-gbt/1"
        assert ModelRepository(str(work / "models")).versions("fraud-gbt") == ["1"]
        assert json.loads(Path(scored["metrics"]).read_text())["metrics"]
