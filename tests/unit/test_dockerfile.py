"""Lint of the Dockerfile and .dockerignore (no Docker engine here, so the image is not built in
tests): multi-stage, pinned slim base, non-root final stage without build tools or pip, one
`scorestream` entrypoint, dependencies from the hashed lock file, and a build context that holds
what the image installs and no more. tests/image_venv.py installs a venv the way the build stage
does (lock, hashes, no build isolation) and the KFP tests run the pipeline's steps in it."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from scorestream import lockfile
from tests.dockerfile import Stage, parse

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BUILD_TOOLS = ("build-essential", "gcc", "g++", "make", "git", "curl", "wget", "pip install")


def _final() -> Stage:
    return parse(DOCKERFILE.read_text())[1][-1]


def test_multi_stage_with_a_pinned_slim_python_base() -> None:
    _, stages = parse(DOCKERFILE.read_text())
    assert len(stages) >= 2
    for stage in stages:
        image, _, tag = stage.base.partition(":")
        assert image == "python", stage.base
        assert "@sha256:" in stage.base or re.fullmatch(r"3\.11\.\d+-slim-\w+", tag), stage.base
        assert tag != "latest"


def test_final_stage_runs_as_a_non_root_user() -> None:
    users = [rest for kw, rest in _final().instructions if kw == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric UID lets Kubernetes verify runAsNonRoot"
    assert int(user) == 10001  # the runAsUser of the pods (scorestream.k8s_apps.RUN_AS)


def test_no_build_tools_in_the_final_stage() -> None:
    final = _final()
    for keyword, rest in final.instructions:
        if keyword == "RUN":
            for tool in BUILD_TOOLS:
                assert tool not in rest, f"{tool} in the final stage: {rest}"
    copies = [rest for kw, rest in final.instructions if kw == "COPY"]
    assert any("--from=build" in c and "/opt/scorestream" in c for c in copies)


def test_one_entrypoint_for_every_service() -> None:
    entry = [rest for kw, rest in _final().instructions if kw == "ENTRYPOINT"]
    assert entry == ['["scorestream"]']


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        if (
            fnmatch.fnmatch(path, pat)
            or fnmatch.fnmatch(path, pat.removeprefix("**/"))
            or path.startswith(pat + "/")
        ):
            ignored = not negate
    return ignored


def test_build_context_holds_what_the_image_copies_and_leaves_out_the_rest() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for secret_or_heavy in (".git", ".venv", "var", "tests", "k8s", ".env"):
        assert _ignored(secret_or_heavy, patterns), secret_or_heavy
    _, stages = parse(DOCKERFILE.read_text())
    for stage in stages:
        for keyword, rest in stage.instructions:
            if keyword != "COPY" or "--from=" in rest:
                continue
            *sources, _dest = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not _ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"


def test_parser_reads_continuations_and_stages() -> None:
    text = "ARG B=python:3.11.1-slim-x\nFROM ${B} AS one\nRUN a \\\n  b\nFROM ${B}\nUSER 1\n"
    args, stages = parse(text)
    assert args == {"B": "python:3.11.1-slim-x"}
    assert [s.name for s in stages] == ["one", None]
    assert stages[0].instructions == [("RUN", "a b")]


# -- reproducible, pip-free image (issue 18) ----------------------------------------------------
def _runs(stage: Stage) -> str:
    return " ".join(rest for kw, rest in stage.instructions if kw == "RUN")


def test_the_build_backend_pin_reads_the_license_expression() -> None:
    """`license = "Apache-2.0"` (a PEP 639 expression) needs setuptools >= 77: an older one
    refuses the string form, so a build that picks the lowest allowed version fails."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(data["project"]["license"], str)
    (setuptools,) = [
        Requirement(r) for r in data["build-system"]["requires"] if r.startswith("setuptools")
    ]
    assert not setuptools.specifier.contains("76.1.0")
    assert setuptools.specifier.contains("77.0.0")
    pin = lockfile.parse(lockfile.LOCK.read_text())["setuptools"]
    assert setuptools.specifier.contains(pin.version)


def test_the_lock_covers_the_project_and_the_image_installs_from_it() -> None:
    pins = lockfile.parse(lockfile.LOCK.read_text())
    assert lockfile.problems(pins, lockfile.project_requirements()) == []
    assert {"kfp", "onnxruntime", "confluent-kafka", "setuptools", "wheel"} <= set(pins)
    assert all(len(p.sha256) == 64 for p in pins.values())
    build = parse(DOCKERFILE.read_text())[1][0]
    copies = " ".join(rest for kw, rest in build.instructions if kw == "COPY")
    assert "requirements.lock" in copies
    runs = _runs(build)
    assert "--require-hashes" in runs
    backend = runs.index("--no-deps -r /tmp/backend.lock")
    assert backend < runs.index("--no-build-isolation -r requirements.lock")
    assert "-r requirements.lock" in runs
    assert "--no-deps --no-build-isolation --no-index '.[kfp]'" in runs
    assert "pip uninstall --yes pip setuptools wheel" in runs


def test_the_checks_catch_a_stale_lock() -> None:
    pins = lockfile.parse(lockfile.LOCK.read_text())
    stale = {**pins, "kfp": lockfile.Pin("kfp", "1.8.22", "0" * 64)}
    assert lockfile.problems(stale, lockfile.project_requirements()) == [
        "kfp==1.8.22 does not satisfy kfp<3,>=2.9"
    ]
    del stale["kfp"]
    assert lockfile.problems(stale, lockfile.project_requirements()) == ["kfp is not in the lock"]


def test_no_pip_at_run_time() -> None:
    final = _final()
    runs = _runs(final)
    assert "python -m pip uninstall --yes pip setuptools wheel" in runs
    assert "rm -f /usr/local/bin/pip" in runs
    # the Kubeflow launcher's local artifact paths belong to the image's user
    assert "chown 10001:10001 /gcs /minio /s3" in runs
