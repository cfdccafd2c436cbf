"""One home for local state: every command finds it whatever the current directory.

The attack: ``scorestream models list`` run from another directory than the one a model was
published from printed an empty table without a word (``var/models`` was relative to the
current directory); ``down`` silently found nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from scorestream.admin import ensure_topics
from scorestream.topics import REGISTRY
from tests.model_factory import tiny_model

pytestmark = pytest.mark.integration


def scorestream(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCORESTREAM_MODELS_")}
    proc = subprocess.run(
        [sys.executable, "-m", "scorestream", *args],
        cwd=cwd,
        env=base | {"COLUMNS": "250"} | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_models_published_from_one_directory_are_listed_from_another(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    tenant = f"t{uuid.uuid4().hex[:10]}"
    ensure_topics(
        {REGISTRY.topic(k, tenant): REGISTRY.get(k) for k in ("model-events", "model-rejections")}
    )
    home = tmp_path / "home"
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    env = {"SCORESTREAM_HOME": str(home)}
    name = f"m-{uuid.uuid4().hex[:8]}"
    data, meta = tiny_model("1", name=name)
    (tmp_path / "model.onnx").write_bytes(data)
    (tmp_path / "model.json").write_text(meta.model_dump_json())

    empty = scorestream(there, env, "models", "list", "--tenant", tenant)
    assert f"no models in {home / 'models'} (SCORESTREAM_HOME)" in empty.stdout

    scorestream(
        here,
        env,
        "models",
        "publish",
        "--tenant",
        tenant,
        "--onnx",
        str(tmp_path / "model.onnx"),
        "--metadata",
        str(tmp_path / "model.json"),
    )
    assert (home / "models" / name / "1" / "model.onnx").exists()
    assert not (here / "var").exists()
    listed = scorestream(there, env, "models", "list", "--tenant", tenant)
    assert name in listed.stdout
    assert "no models" not in listed.stdout


def test_without_a_home_the_xdg_data_directory_is_used(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SCORESTREAM_HOME"}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    proc = subprocess.run(
        [sys.executable, "-m", "scorestream", "down", "--tenant", "t0home0cafe"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pids = tmp_path / "xdg" / "scorestream" / "run" / "t0home0cafe" / "pids.json"
    assert f"no running services of tenant t0home0cafe in {pids}" in proc.stdout
    assert "(SCORESTREAM_HOME default)" in proc.stdout


def test_train_for_an_unprovisioned_tenant_fails_before_training(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A new user's first ``train`` for a tenant without topics: the error names the
    provisioning command at once, not after half a minute of training."""
    tenant = f"t{uuid.uuid4().hex[:10]}"
    proc = subprocess.run(
        [sys.executable, "-m", "scorestream", "train", "--tenant", tenant],
        cwd=tmp_path,
        env=os.environ | {"SCORESTREAM_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"scorestream topics create --tenant {tenant}" in out, out
    assert "build_dataset" not in out, "it trained first"
