"""The image's /opt/scorestream, made here by replaying the Dockerfile's build stage (there is no
Docker engine): its ``COPY`` instructions into a scratch build context, then its ``RUN``
instructions, verbatim except that ``/opt/scorestream`` is a directory of our own and ``python``
is Debian's ``/usr/bin/python3`` (the tests' own interpreter is a pyenv build under root's 0700
home, which the image's user could not run). The ``RUN`` that installs system packages is left out
(the compilers it brings are on this machine). So the lock file, its hashes, the build without
isolation and the removal of pip are the Dockerfile's own commands.

The result is root-owned and read-only for others, like the image. It is cached outside root's
home, keyed by the Dockerfile, the lock and the sources; the first build downloads the locked
packages from PyPI (about a minute).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.dockerfile import parse

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
BASE_PYTHON = Path("/usr/bin/python3")
IMAGE_VENV = "/opt/scorestream"


def cache_dir() -> Path:
    """``SCORESTREAM_IMAGE_VENV_CACHE`` (a directory the image's user can traverse: a cold build
    measured on its own, say), else outside root's 0700 home for root."""
    if env := os.environ.get("SCORESTREAM_IMAGE_VENV_CACHE"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/scorestream")
    return Path.home() / ".cache" / "scorestream"


def _build_stage_copies() -> list[str]:
    _, stages = parse(DOCKERFILE.read_text())
    sources = []
    for keyword, rest in stages[0].instructions:
        if keyword == "COPY" and "--from=" not in rest:
            sources += shlex.split(rest)[:-1]
    return sources


def _key() -> str:
    digest = hashlib.sha256(DOCKERFILE.read_bytes())
    for source in _build_stage_copies():
        path = ROOT / source
        for file in sorted([path] if path.is_file() else path.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(ROOT)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _copy(rest: str, context: Path) -> None:
    for source in shlex.split(rest)[:-1]:
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, context / source)


def _run(script: str, context: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["sh", "-ec", script],
        cwd=context,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if proc.returncode != 0:
        output = proc.stdout[-3000:] + proc.stderr[-3000:]
        raise RuntimeError(f"Dockerfile RUN failed: {script}\n{output}")


def _ensure_venv_module() -> None:
    """Debian ships ``venv``'s pip bootstrap (ensurepip) as python3-venv; install it if needed."""
    check = [str(BASE_PYTHON), "-c", "import ensurepip"]
    if subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "python3-venv"]
        if subprocess.run(install, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
            subprocess.run(install, capture_output=True, check=False)
    if subprocess.run(check, capture_output=True, check=False).returncode != 0:
        raise RuntimeError(f"{BASE_PYTHON} has no ensurepip: install Debian's python3-venv")


def image_venv() -> Path:
    """The venv (built once per key); raises with the failing command's output otherwise."""
    venv = cache_dir() / f"image-venv-{_key()}"
    if (venv / ".complete").exists():
        return venv
    _ensure_venv_module()
    for stale in cache_dir().glob("image-venv-*"):  # one at a time: each is ~1 GB
        shutil.rmtree(stale, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _, stages = parse(DOCKERFILE.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "src"
        context.mkdir()
        # `python` for the RUN lines; kept, since the venv's interpreter links to it
        shims = cache_dir() / "image-python"
        shims.mkdir(exist_ok=True)
        if not (shims / "python").exists():
            (shims / "python").symlink_to(BASE_PYTHON)
        env = {"PATH": f"{shims}:/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp}
        try:
            for keyword, rest in stages[0].instructions:
                if keyword == "ENV":
                    env |= dict(pair.partition("=")[::2] for pair in shlex.split(rest))
                elif keyword == "COPY":
                    _copy(rest, context)
                elif keyword == "RUN" and "apt-get" not in rest:
                    # /tmp/ first: the venv's own path may be under /tmp too
                    script = rest.replace("/tmp/", f"{tmp}/").replace(IMAGE_VENV, str(venv))
                    _run(script, context, env)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
    for path in (venv, *venv.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o022)
    (venv / ".complete").write_text("the Dockerfile's build stage, replayed\n")
    return venv
