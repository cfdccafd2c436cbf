"""A venv installed the way the Dockerfile's build stage installs /opt/scorestream (there is no
Docker engine here): from ``requirements.lock`` with ``--require-hashes`` and no build isolation,
then the project itself with ``--no-deps --no-build-isolation --no-index '.[kfp]'``, then pip,
setuptools and wheel removed. Owned by root, on an interpreter every user may run (Debian's
``/usr/bin/python3``: the tests' own venv sits on a pyenv interpreter under root's 0700 home).

Cached outside root's home, keyed by the lock, pyproject.toml and the sources' commit state; the
first build downloads the locked packages from PyPI (a minute or two).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from scorestream import lockfile

ROOT = Path(__file__).resolve().parents[1]
BASE_PYTHON = Path("/usr/bin/python3")
PACKAGES = ("scorestream", "schemas", "producers", "consumers", "inference_worker", "pipelines")


def cache_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/cache/scorestream")
    return Path.home() / ".cache" / "scorestream"


def _key() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.lock", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _pip(venv: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def image_venv() -> Path:
    """The venv (built once per key); raises with pip's output when it cannot be built."""
    venv = cache_dir() / f"image-venv-{_key()}"
    if (venv / ".complete").exists():
        return venv
    for stale in cache_dir().glob("image-venv-*"):
        shutil.rmtree(stale, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BASE_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    pins = lockfile.parse(lockfile.LOCK.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        backend = Path(tmp) / "backend.lock"
        backend.write_text("".join(pins[n].line() for n in ("setuptools", "wheel")))
        # the backend first: the sdists of the lock are built with it, without isolation
        _pip(venv, "install", "--require-hashes", "--no-deps", "-r", str(backend))
        _pip(venv, "install", "--require-hashes", "--no-build-isolation", "-r", str(lockfile.LOCK))
        source = Path(tmp) / "src"  # a copy: building in the checkout would leave build/ there
        shutil.copytree(
            ROOT,
            source,
            ignore=shutil.ignore_patterns(
                ".git", ".venv", "var", "tests", "bench", "k8s", "build", "*.egg-info"
            ),
        )
        _pip(venv, "install", "--no-deps", "--no-build-isolation", "--no-index", f"{source}[kfp]")
    _pip(venv, "check")
    _pip(venv, "uninstall", "--yes", "setuptools", "wheel")
    for path in (venv, *venv.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o022)
    (venv / ".complete").write_text("built like the Dockerfile's /opt/scorestream\n")
    return venv
