"""The Strimzi manifests under k8s/base/kafka are generated from the topic registry, and stay so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scorestream import k8s
from scorestream.errors import ConfigError
from scorestream.topics import REGISTRY, Scope

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "k8s" / "base" / "kafka"
GLOBAL_TOPICS = {s.topic() for s in REGISTRY.global_streams()}


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _all_objects(tenant: str = "demo") -> list[dict[str, Any]]:
    return k8s.kafka_topics(tenant) + k8s.kafka_users(tenant)


def _user(tenant: str, service: str) -> dict[str, Any]:
    return k8s.kafka_user(tenant, service)


def _ops(user: dict[str, Any], kind: str, name: str) -> set[str]:
    ops: set[str] = set()
    for acl in user["spec"]["authorization"]["acls"]:
        res = acl["resource"]
        if res["type"] == kind and res["name"] == name and res["patternType"] == "literal":
            ops.update(acl["operations"])
    return ops


def test_every_registry_stream_has_its_kafka_topic() -> None:
    topics = {t["metadata"]["name"]: t for t in k8s.kafka_topics("acme", replicas=3, min_isr=2)}
    assert len(topics) == len(REGISTRY.streams)
    for spec in REGISTRY.streams:
        topic = topics[spec.topic("acme")]
        assert topic["apiVersion"] == "kafka.strimzi.io/v1"
        assert topic["kind"] == "KafkaTopic"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "scorestream"
        assert topic["spec"]["topicName"] == spec.topic("acme")
        assert topic["spec"]["partitions"] == spec.partitions
        assert topic["spec"]["replicas"] == 3
        config = topic["spec"]["config"]
        assert config["retention.ms"] == str(spec.retention_ms)
        assert config["cleanup.policy"] == spec.cleanup_policy.value
        assert config["min.insync.replicas"] == "2"
        for key, value in spec.extra_config:
            assert config[key] == value


def test_global_streams_are_written_once_across_tenants(tmp_path: Path) -> None:
    k8s.generate(tmp_path, tenants=("demo", "acme"))
    names = [
        t["metadata"]["name"] for f in sorted(tmp_path.glob("topics-*.yaml")) for t in _load(f)
    ]
    assert len(names) == len(set(names))
    expected = {s.topic("demo") for s in REGISTRY.streams} | {
        s.topic("acme") for s in REGISTRY.tenant_streams()
    }
    assert set(names) == expected
    assert all(REGISTRY.get(n).scope is Scope.GLOBAL for n in GLOBAL_TOPICS)


def test_replication_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        k8s.kafka_topics("demo", replicas=1, min_isr=2)
    with pytest.raises(ConfigError):
        k8s.kafka_topics("Not A Tenant")


def test_committed_yaml_equals_the_generator_output(tmp_path: Path) -> None:
    paths = k8s.generate(tmp_path, tenants=("demo",))
    committed = sorted(p.name for p in COMMITTED.glob("*.yaml"))
    assert committed == sorted(p.name for p in paths)
    for path in paths:
        assert (COMMITTED / path.name).read_text(encoding="utf-8") == path.read_text(
            encoding="utf-8"
        ), f"{path.name} is stale: regenerate it with scorestream.k8s.generate('k8s/base/kafka')"


def test_render_yaml_round_trips_and_is_stable() -> None:
    objects = _all_objects()
    text = k8s.render_yaml(objects)
    assert text == k8s.render_yaml(_all_objects())
    assert [d for d in yaml.safe_load_all(text) if d is not None] == objects
    assert text.count("\n---\n") == len(objects)


@pytest.mark.parametrize("tenant", ["demo", "acme"])
def test_every_acl_names_only_the_tenants_resources_or_global_streams(tenant: str) -> None:
    users = k8s.kafka_users(tenant)
    assert sorted(u["metadata"]["name"] for u in users) == sorted(
        f"{tenant}-{s}" for s in k8s.SERVICES
    )
    for user in users:
        spec = user["spec"]
        assert spec["authentication"] == {"type": "scram-sha-512"}
        assert spec["authorization"]["type"] == "simple"
        for acl in spec["authorization"]["acls"]:
            res = acl["resource"]
            assert acl["operations"], acl
            assert "All" not in acl["operations"]
            assert res["type"] in {"topic", "group", "transactionalId"}, acl
            if res["type"] == "topic":
                assert res["patternType"] == "literal", acl
                assert res["name"].startswith(f"{tenant}.") or res["name"] in GLOBAL_TOPICS
            else:
                assert res["name"].startswith(f"{tenant}."), acl


def test_acls_follow_the_registry() -> None:
    for service in k8s.SERVICES:
        user = _user("demo", service)
        for spec in REGISTRY.read_by(service):
            assert {"Read", "Describe"} <= _ops(user, "topic", spec.topic("demo"))
        for spec in REGISTRY.written_by(service):
            assert {"Write", "Describe"} <= _ops(user, "topic", spec.topic("demo"))
        for spec in REGISTRY.streams:
            ops = _ops(user, "topic", spec.topic("demo"))
            if "Write" in ops:
                assert service in spec.producers
            if "Read" in ops:
                assert service in spec.consumers or spec.name in k8s.EXTRA_READS.get(service, ())
        assert _ops(user, "group", f"demo.{service}") == {"Read"}


def test_worker_user_least_privilege() -> None:
    worker = _user("demo", "worker")
    for name in ("demo.predictions", "demo.predictions.shadow", "demo.transactions.enriched.dlq"):
        assert {"Write", "Describe"} <= _ops(worker, "topic", name)
    for name in ("demo.transactions.enriched", "model-events"):
        assert {"Read", "Describe"} <= _ops(worker, "topic", name)
    assert "Write" not in _ops(worker, "topic", "demo.decisions")
    assert "Write" not in _ops(worker, "topic", "demo.transactions.enriched")
    assert _ops(worker, "topic", "demo.audit") == set()
    assert _ops(_user("acme", "worker"), "topic", "demo.predictions") == set()


def test_transactional_ids_only_for_exactly_once_services() -> None:
    for service in k8s.SERVICES:
        tx = [
            acl
            for acl in _user("demo", service)["spec"]["authorization"]["acls"]
            if acl["resource"]["type"] == "transactionalId"
        ]
        if service in k8s.EXACTLY_ONCE:
            assert tx == [
                {
                    "resource": {
                        "type": "transactionalId",
                        "name": f"demo.{service}.",
                        "patternType": "prefix",
                    },
                    "operations": ["Write", "Describe"],
                    "host": "*",
                }
            ]
        else:
            assert tx == []


# --- structural check against the real Strimzi CRDs -------------------------------------------
# `spec` of the openAPIV3Schema of Strimzi 1.2.0's `kafkatopics.kafka.strimzi.io` and
# `kafkausers.kafka.strimzi.io` CRDs (their only version, v1), as Strimzi's own CRD generator
# (io.strimzi:crd-generator:1.2.0) emits them from the io.strimzi:api:1.2.0 model classes, both
# from Maven Central; descriptions and the CEL `x-kubernetes-validations` (about `tls` certificate
# validity only) left out. Update both when moving to a newer Strimzi.

_TOPIC_SPEC: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topicName": {"type": "string"},
        "partitions": {"type": "integer", "minimum": 1},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
        "config": {"x-kubernetes-preserve-unknown-fields": True, "type": "object"},
    },
}
_USER_SPEC: dict[str, Any] = {
    "type": "object",
    "properties": {
        "authentication": {
            "type": "object",
            "properties": {
                "password": {
                    "type": "object",
                    "properties": {
                        "valueFrom": {
                            "type": "object",
                            "properties": {
                                "secretKeyRef": {
                                    "type": "object",
                                    "properties": {
                                        "key": {"type": "string"},
                                        "name": {"type": "string"},
                                        "optional": {"type": "boolean"},
                                    },
                                }
                            },
                        }
                    },
                    "required": ["valueFrom"],
                },
                "renewalDays": {"type": "integer", "minimum": 1},
                "type": {"type": "string", "enum": ["tls", "tls-external", "scram-sha-512"]},
                "validityDays": {"type": "integer", "minimum": 1},
            },
            "required": ["type"],
        },
        "authorization": {
            "type": "object",
            "properties": {
                "acls": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string", "enum": ["allow", "deny"]},
                            "resource": {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "patternType": {
                                        "type": "string",
                                        "enum": ["literal", "prefix"],
                                    },
                                    "type": {
                                        "type": "string",
                                        "enum": ["topic", "group", "cluster", "transactionalId"],
                                    },
                                },
                                "required": ["type"],
                            },
                            "host": {"type": "string"},
                            "operations": {
                                "type": "array",
                                "items": {
                                    "type": "string",
                                    "enum": [
                                        "Read",
                                        "Write",
                                        "Create",
                                        "Delete",
                                        "Alter",
                                        "Describe",
                                        "ClusterAction",
                                        "AlterConfigs",
                                        "DescribeConfigs",
                                        "IdempotentWrite",
                                        "All",
                                    ],
                                },
                            },
                        },
                        "required": ["resource", "operations"],
                    },
                },
                "type": {"type": "string", "enum": ["simple"]},
            },
            "required": ["acls", "type"],
        },
        "quotas": {
            "type": "object",
            "properties": {
                "producerByteRate": {"type": "integer", "minimum": 0},
                "consumerByteRate": {"type": "integer", "minimum": 0},
                "requestPercentage": {"type": "integer", "minimum": 0},
                "controllerMutationRate": {"type": "number", "minimum": 0},
            },
        },
        "template": {
            "type": "object",
            "properties": {
                "secret": {
                    "type": "object",
                    "properties": {
                        "metadata": {
                            "type": "object",
                            "properties": {
                                "labels": {
                                    "additionalProperties": {"type": "string"},
                                    "type": "object",
                                },
                                "annotations": {
                                    "additionalProperties": {"type": "string"},
                                    "type": "object",
                                },
                            },
                        }
                    },
                }
            },
        },
    },
}
_CRDS: dict[str, dict[str, Any]] = {
    kind: {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "enum": ["kafka.strimzi.io/v1"]},
            "kind": {"type": "string", "enum": [kind]},
            "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "spec": spec,
        },
        "required": ["spec"],
    }
    for kind, spec in (("KafkaTopic", _TOPIC_SPEC), ("KafkaUser", _USER_SPEC))
}
_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


def _violations(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Unknown fields are errors here (the API server would silently prune them)."""
    kind = schema["type"]
    type_ok = isinstance(value, _TYPES[kind]) and (kind == "boolean" or not isinstance(value, bool))
    if not type_ok:
        return [f"{where}: expected {kind}, got {value!r}"]
    out: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        out.append(f"{where}: {value} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        out.append(f"{where}: {value} > {schema['maximum']}")
    if kind == "array":
        for i, item in enumerate(value):
            out += _violations(item, schema["items"], f"{where}[{i}]")
    if kind == "object" and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props: dict[str, Any] = schema.get("properties", {})
        extra: dict[str, Any] | None = schema.get("additionalProperties")
        out += [f"{where}: missing {r!r}" for r in schema.get("required", []) if r not in value]
        for key, item in value.items():
            if key in props:
                out += _violations(item, props[key], f"{where}.{key}")
            elif extra is not None:
                out += _violations(item, extra, f"{where}.{key}")
            else:
                out.append(f"{where}: unknown field {key!r}")
    return out


def test_the_schema_check_catches_mistakes() -> None:
    user = _user("demo", "worker")
    user["spec"]["authorization"]["acls"][0]["operation"] = "Read"  # the removed v1beta2 form
    user["spec"]["authorization"]["acls"][1]["operations"] = ["read"]
    assert len(_violations(user, _CRDS["KafkaUser"])) == 2
    topic = k8s.kafka_topics("demo")[0]
    topic["spec"]["partitions"] = 0
    assert _violations(topic, _CRDS["KafkaTopic"]) == ["$.spec.partitions: 0 < 1"]


@pytest.mark.parametrize("path", sorted(COMMITTED.glob("*.yaml")), ids=lambda p: p.name)
def test_committed_objects_match_the_strimzi_crd_schemas(path: Path) -> None:
    objects = _load(path)
    assert objects
    for obj in objects:
        assert obj["apiVersion"] == k8s.API_VERSION
        assert _violations(obj, _CRDS[obj["kind"]]) == [], obj["metadata"]["name"]
        name = obj["metadata"]["name"]
        assert len(name) <= 253, name
        assert name == name.lower(), name
