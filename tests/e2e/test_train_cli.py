"""``scorestream train`` end to end, in-process steps and through kfp.local."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pipelines.repository import ModelRepository

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SCORESTREAM_MODELS_URL": str(tmp_path / "models")}
    return subprocess.run(
        [sys.executable, "-m", "scorestream", *args, "--run-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )


def test_train_publishes_and_promotes(kafka_bootstrap: str, tmp_path: Path) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [sys.executable, "-m", "scorestream", "topics", "create", "--tenant", tenant],
        check=True,
        capture_output=True,
        timeout=120,
    )
    proc = _run(["train", "--tenant", tenant, "--days", "45", "--n-estimators", "80"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "average_precision" in proc.stdout
    assert "published fraud-gbt/1" in proc.stdout
    repo = ModelRepository(str(tmp_path / "models"))
    meta = repo.load("fraud-gbt", "1").metadata
    assert meta.metrics["onnx_max_abs_diff"] <= 1e-5


def test_kfp_local_runs_the_compiled_pipeline_components(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    subprocess.run(  # the deploy step: the tenant's model-events exists before anything publishes
        [sys.executable, "-m", "scorestream", "topics", "create", "--tenant", tenant],
        check=True,
        capture_output=True,
        timeout=120,
    )
    proc = _run(
        ["train", "--kfp-local", "--tenant", tenant, "--days", "45", "--n-estimators", "40"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "kfp.local pipeline finished" in proc.stdout
    assert ModelRepository(str(tmp_path / "models")).versions("fraud-gbt") == ["1"]
