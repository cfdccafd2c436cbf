"""Run a compiled KFP component the way the KFP v2 launcher does, without a cluster.

The launcher takes the executor's ``command`` and ``args`` from the compiled pipeline, replaces
``{{$}}`` with the executor input (the JSON of the task's input parameters, its input and output
artifacts with their local paths, and where to write output parameters and ``executor_output``),
makes the output directories and runs the command in the component's image, as the image's user.
Here the "image" is a venv installed like the image's /opt/scorestream (tests/image_venv.py:
root-owned, from the lock, without pip), the user is UID 10001 (the image's ``USER``) when the
tests run as root, and the artifacts live under a scratch directory that user owns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_UID = 10001


@dataclass(frozen=True)
class Executor:
    name: str
    command: list[str]
    args: list[str]
    env: dict[str, str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]


def executors(spec: dict[str, Any]) -> dict[str, Executor]:
    """Task name -> its executor (command, args, env) and its component's interface."""
    out = {}
    executors_ = spec["deploymentSpec"]["executors"]
    for task, task_spec in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][task_spec["componentRef"]["name"]]
        container = executors_[component["executorLabel"]]["container"]
        out[task] = Executor(
            name=task,
            command=list(container["command"]),
            args=list(container["args"]),
            env={e["name"]: e["value"] for e in container.get("env", [])},
            inputs=component.get("inputDefinitions", {}),
            outputs=component.get("outputDefinitions", {}),
        )
    return out


@contextmanager
def scratch() -> Iterator[Path]:
    """A directory the image's user owns (under /tmp, outside root's 0700 pytest directory)."""
    path = Path(tempfile.mkdtemp(prefix="kfp-launcher-", dir="/tmp"))
    try:
        if os.geteuid() == 0:
            os.chown(path, IMAGE_UID, IMAGE_UID)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _artifact(name: str, schema: str, uri: str) -> dict[str, Any]:
    return {"artifacts": [{"name": name, "type": {"schemaTitle": schema}, "uri": uri}]}


def run(
    executor: Executor,
    work: Path,
    parameters: Mapping[str, Any],
    artifacts: Mapping[str, str],
    env: Mapping[str, str | None],
    venv: Path,
    timeout: float = 600,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run one executor; ``artifacts`` maps input artifact names to the URIs of earlier outputs;
    ``env`` overrides the compiled environment (None: leave the variable out).
    Returns the process and {output name: value or artifact path}."""
    task_dir = work / executor.name
    executor_input: dict[str, Any] = {
        "inputs": {
            "parameterValues": dict(parameters),
            "artifacts": {
                name: _artifact(name, d["artifactType"]["schemaTitle"], artifacts[name])
                for name, d in executor.inputs.get("artifacts", {}).items()
            },
        },
        "outputs": {
            "parameters": {
                name: {"outputFile": str(task_dir / "parameters" / name)}
                for name in executor.outputs.get("parameters", {})
            },
            "artifacts": {
                name: _artifact(
                    name, d["artifactType"]["schemaTitle"], str(task_dir / "artifacts" / name)
                )
                for name, d in executor.outputs.get("artifacts", {}).items()
            },
            "outputFile": str(task_dir / "executor_output.json"),
        },
    }
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in executor.args]
    argv = [*executor.command, *args]
    demote: list[str] = []
    if os.geteuid() == 0:
        demote = [
            "setpriv",
            f"--reuid={IMAGE_UID}",
            f"--regid={IMAGE_UID}",
            "--clear-groups",
            "--inh-caps=-all",
        ]
    full_env = {  # the image's ENV: its venv first on PATH
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work),
        "TMPDIR": str(work),
        "PYTHONDONTWRITEBYTECODE": "1",
        **executor.env,
    }
    for name, value in env.items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    setup = [*demote, "mkdir", "-p", str(task_dir / "parameters"), str(task_dir / "artifacts")]
    subprocess.run(setup, check=True, timeout=30)
    proc = subprocess.run(
        [*demote, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
        cwd=work,
    )
    outputs: dict[str, Any] = {
        name: str(task_dir / "artifacts" / name) for name in executor.outputs.get("artifacts", {})
    }
    written = task_dir / "executor_output.json"
    values = json.loads(written.read_text()).get("parameterValues", {}) if written.exists() else {}
    for name in executor.outputs.get("parameters", {}):
        path = task_dir / "parameters" / name
        outputs[name] = values.get(name, path.read_text() if path.exists() else None)
    return proc, outputs
