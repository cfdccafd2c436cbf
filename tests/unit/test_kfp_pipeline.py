"""The committed Kubeflow pipeline YAML is what the code compiles to."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.kfp_pipeline import COMPILED, compile_pipeline


def test_committed_pipeline_yaml_is_current(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "pipeline.yaml")
    assert COMPILED.exists(), "run 'scorestream train --compile-kfp' and commit the YAML"
    assert fresh.read_text() == COMPILED.read_text(), (
        "k8s/kubeflow/training-pipeline.yaml is stale: run 'scorestream train --compile-kfp'"
    )


def test_pipeline_has_the_five_steps_in_order() -> None:
    spec = yaml.safe_load(COMPILED.read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"build-dataset", "train", "export-onnx", "evaluate", "publish"}
    assert tasks["train"]["dependentTasks"] == ["build-dataset"]
    assert set(tasks["publish"]["dependentTasks"]) == {"build-dataset", "evaluate", "export-onnx"}
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"ghcr.io/scorestream/scorestream:0.1.0"}
