"""The real CRD schemas of the operators the manifests target, fetched from package registries.

Nothing here is hand-written: each ``openAPIV3Schema`` comes from the pinned release of the
project that owns the CRD, cached under ``~/.cache/scorestream/crds`` (``SCORESTREAM_CACHE_DIR``):

* Strimzi 1.2.0: Strimzi publishes its CRDs as the output of its own CRD generator run over its
  API model; both are on Maven Central (``io.strimzi:api``, ``io.strimzi:crd-generator``). We
  resolve them with Maven and run the generator with the exact arguments of ``io.strimzi:api``'s
  POM (it needs Java 21+, the ``Temurin`` JDK beside the system Java 17 here).
* KEDA, prometheus-operator and Istio are Go modules: ``go mod download`` fetches the release zip
  from the Go module proxy and the CRD YAML is read from the zip (``config/crd/bases``,
  ``example/prometheus-operator-crd``, ``kubernetes/customresourcedefinitions.gen.yaml``).

:func:`violations` validates an object against its CRD like the API server's structural schema
does, and reports the fields the server would silently prune as errors (a typo must not pass).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator

from scorestream.dev.broker.jars import cached_libs_at, java_major, resolve_with_maven
from scorestream.errors import ConfigError, ToolMissingError
from scorestream.settings import default_cache_dir

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the CRDs are megabytes

STRIMZI_VERSION = "1.2.0"
STRIMZI_MIN_JAVA = 21
STRIMZI_CLASSES: dict[str, str] = {
    "Kafka": "io.strimzi.api.kafka.model.kafka.Kafka",
    "KafkaNodePool": "io.strimzi.api.kafka.model.nodepool.KafkaNodePool",
    "KafkaTopic": "io.strimzi.api.kafka.model.topic.KafkaTopic",
    "KafkaUser": "io.strimzi.api.kafka.model.user.KafkaUser",
}
# The generator's arguments in io.strimzi:api:1.2.0's POM (execution "generate-crds").
STRIMZI_GENERATOR_ARGS = (
    "--label",
    "app:strimzi",
    "--label",
    "strimzi.io/crd-install:true",
    "--target-kube",
    "1.16+",
    "--crd-api-version",
    "v1",
    "--api-versions",
    "v1",
    "--storage-version",
    "v1",
    "--yaml",
)


@dataclass(frozen=True, slots=True)
class GoModuleCrds:
    """CRD files inside a Go module release."""

    module: str
    version: str
    files: tuple[str, ...]


GO_MODULE_CRDS: tuple[GoModuleCrds, ...] = (
    GoModuleCrds(
        "github.com/kedacore/keda/v2",
        "v2.21.0",
        (
            "config/crd/bases/keda.sh_scaledobjects.yaml",
            "config/crd/bases/keda.sh_triggerauthentications.yaml",
        ),
    ),
    GoModuleCrds(
        "github.com/prometheus-operator/prometheus-operator",
        "v0.85.0",
        tuple(
            f"example/prometheus-operator-crd/monitoring.coreos.com_{name}.yaml"
            for name in ("servicemonitors", "podmonitors", "prometheusrules")
        ),
    ),
    GoModuleCrds("istio.io/api", "v1.31.4", ("kubernetes/customresourcedefinitions.gen.yaml",)),
)


def cache_root() -> Path:
    env = os.environ.get("SCORESTREAM_CACHE_DIR")
    return (Path(env) if env else default_cache_dir()) / "crds"


# -- Go modules ------------------------------------------------------------------------------
def go_module_zip(module: str, version: str) -> Path:
    """The release zip of a Go module, downloaded once into the cache's own module cache."""
    gomodcache = cache_root() / "gomod"
    escaped = re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), module)
    cached = gomodcache / "cache" / "download" / escaped / "@v" / f"{version}.zip"
    if cached.is_file():
        return cached
    go = shutil.which("go")
    if go is None:
        raise ToolMissingError(f"go is needed once to download {module}@{version}'s CRDs")
    env = {**os.environ, "GOMODCACHE": str(gomodcache), "GOFLAGS": "-modcacherw"}
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env=env,
        cwd=cache_root().parent if cache_root().parent.is_dir() else None,
    )
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        info = {}
    if proc.returncode != 0 or "Zip" not in info:
        raise ConfigError(
            f"go mod download {module}@{version} failed: {info.get('Error') or proc.stderr}"
        )
    return Path(info["Zip"])


def _module_documents(spec: GoModuleCrds) -> Iterator[dict[str, Any]]:
    with zipfile.ZipFile(go_module_zip(spec.module, spec.version)) as archive:
        for name in spec.files:
            text = archive.read(f"{spec.module}@{spec.version}/{name}").decode("utf-8")
            yield from (d for d in yaml.load_all(text, Loader=_LOADER) if d)


# -- Strimzi -----------------------------------------------------------------------------------
def _strimzi_pom() -> str:
    deps = "\n".join(
        f"    <dependency><groupId>io.strimzi</groupId><artifactId>{a}</artifactId>"
        f"<version>{STRIMZI_VERSION}</version></dependency>"
        for a in ("api", "crd-generator")
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by scorestream: Strimzi's API model and its CRD generator -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.scorestream.local</groupId>
  <artifactId>strimzi-crds</artifactId>
  <version>{STRIMZI_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def java_at_least(major: int) -> str:
    """``JAVA_HOME``'s java, the one on PATH, or any JDK under /usr/lib/jvm, if new enough."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    candidates += sorted(Path("/usr/lib/jvm").glob("*/bin/java"), reverse=True)
    for java in candidates:
        found = java_major(str(java)) if java.exists() else None
        if found is not None and found >= major:
            return str(java)
    raise ToolMissingError(
        f"Strimzi's CRD generator needs Java {major}+; none found (set JAVA_HOME)"
    )


def strimzi_crd_dir() -> Path:
    """Strimzi's CRDs as its own generator writes them, generated once into the cache."""
    root = cache_root() / f"strimzi-{STRIMZI_VERSION}"
    out = root / "crds"
    if all((out / f"{kind}.yaml").is_file() for kind in STRIMZI_CLASSES):
        return out
    libs = cached_libs_at(root) or resolve_with_maven(
        root,
        _strimzi_pom(),
        label=f"Strimzi {STRIMZI_VERSION} API and CRD generator",
        required_jar="crd-generator-",
        error=ConfigError,
    )
    partial = root / "crds.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    targets = [f"{cls}={partial / kind}.yaml" for kind, cls in STRIMZI_CLASSES.items()]
    proc = subprocess.run(
        [
            java_at_least(STRIMZI_MIN_JAVA),
            "-cp",
            f"{libs}/*",
            "io.strimzi.crdgenerator.CrdGenerator",
            *STRIMZI_GENERATOR_ARGS,
            *targets,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise ConfigError(f"Strimzi's CRD generator failed: {proc.stderr[-2000:]}")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out


def _strimzi_documents() -> Iterator[dict[str, Any]]:
    for path in sorted(strimzi_crd_dir().glob("*.yaml")):
        yield yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)  # noqa: S506 (a SafeLoader)


# -- schemas -----------------------------------------------------------------------------------
@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """``(apiVersion, kind)`` -> the served version's ``openAPIV3Schema``, for every pinned CRD."""
    docs = list(_strimzi_documents())
    for spec in GO_MODULE_CRDS:
        docs += list(_module_documents(spec))
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
        for version in doc["spec"]["versions"]:
            if version.get("served", True) and "schema" in version:
                out[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return out


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields forbidden wherever the API server would prune them."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: strict(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [strict(s) for s in out[key]]
    return out


def validation_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict JSON schema of one custom resource kind (:func:`strict`, plus the fields every
    object has whether or not the CRD lists them: Istio's do not)."""
    schemas = crd_schemas()
    if (api_version, kind) not in schemas:
        raise ConfigError(f"no pinned CRD serves {kind} in {api_version}")
    root = strict(schemas[(api_version, kind)])
    root["properties"] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        **root.get("properties", {}),
    }
    return root


@cache
def _validator(api_version: str, kind: str) -> Draft4Validator:
    return Draft4Validator(validation_schema(api_version, kind))


KUBECONFORM_LAYOUT = "{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
"""The ``-schema-location`` template of :func:`write_kubeconform_schemas`' directory."""


def write_kubeconform_schemas(dest: Path) -> list[Path]:
    """Every pinned CRD's strict schema as kubeconform reads it: ``<group>/<kind>_<version>.json``
    under ``dest`` (kind in lower case, as kubeconform's ``ResourceKind``)."""
    written = []
    for api_version, kind in sorted(crd_schemas()):
        group, version = api_version.split("/")
        path = dest / group / f"{kind.lower()}_{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(validation_schema(api_version, kind)), encoding="utf-8")
        written.append(path)
    return written


def violations(obj: dict[str, Any]) -> list[str]:
    """Schema errors of a custom resource, as ``path: message`` lines (empty when valid)."""
    validator = _validator(obj["apiVersion"], obj["kind"])
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '$'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
    ]


def pins() -> dict[str, str]:
    """Where each CRD comes from (for docs/deploy.md and reports)."""
    out = {"strimzi": f"io.strimzi:api:{STRIMZI_VERSION} + crd-generator (Maven Central)"}
    for spec in GO_MODULE_CRDS:
        out[spec.module] = f"{spec.module}@{spec.version} (Go module proxy)"
    return out
