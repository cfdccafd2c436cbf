"""The Strimzi manifests under k8s/base/kafka are generated from the topic registry, and stay so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from scorestream.deploy.acl import EXTRA_READS, TRANSACTIONAL
from scorestream.deploy.k8s import crds as k8s_crds
from scorestream.deploy.k8s import generate as k8s
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
    # cluster.yaml, networkpolicy.yaml and kustomization.yaml come from the manifests module
    assert set(committed) - {p.name for p in paths} == {
        "cluster.yaml",
        "kustomization.yaml",
        "networkpolicy.yaml",
    }
    for path in paths:
        assert (COMMITTED / path.name).read_text(encoding="utf-8") == path.read_text(
            encoding="utf-8"
        ), f"{path.name} is stale: regenerate it with `scorestream k8s generate`"


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
            assert set(acl["operations"]) <= {"Read", "Write", "Describe"}, acl
            if res["type"] == "topic":
                assert res["patternType"] == "literal", acl  # no service creates topics
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
                assert service in spec.consumers or spec.name in EXTRA_READS.get(service, ())
        assert _ops(user, "group", f"demo.{service}") == {"Read"}


def test_stateful_services_read_their_own_changelogs_and_nothing_of_quix() -> None:
    """Each keyed state store is restored from its changelog, so its service reads it back;
    the enricher also moves misrouted records back to ``transactions`` and reads the whole
    merchant table, no longer the labels (the merchant stage does)."""
    enricher, merchant = _user("demo", "enricher"), _user("demo", "merchant")
    assert _ops(enricher, "topic", "demo.enricher.state") == {"Read", "Write", "Describe"}
    assert _ops(merchant, "topic", "demo.merchant.state") == {"Read", "Write", "Describe"}
    assert _ops(_user("demo", "audit"), "topic", "demo.audit.state") == {
        "Read",
        "Write",
        "Describe",
    }
    assert _ops(enricher, "topic", "demo.transactions") == {"Read", "Write", "Describe"}
    assert _ops(enricher, "topic", "demo.merchant-features") == {"Read", "Describe"}
    assert _ops(enricher, "topic", "demo.labels") == set()
    assert _ops(enricher, "topic", "demo.merchant.state") == set()
    assert _ops(merchant, "topic", "demo.transactions") == {"Read", "Describe"}
    assert _ops(merchant, "topic", "demo.labels") == {"Read", "Describe"}
    assert _ops(merchant, "topic", "demo.merchant-activity") == {"Read", "Write", "Describe"}
    assert _ops(merchant, "topic", "demo.merchant-features") == {"Write", "Describe"}
    assert _ops(merchant, "topic", "demo.transactions.enriched") == set()
    for dlq in ("transactions", "labels", "merchant-activity"):
        assert _ops(merchant, "topic", f"demo.{dlq}.dlq") == {"Write", "Describe"}
    for user in (enricher, merchant):
        # the assign()-only restore and table readers' groups fall under the prefix rule
        groups = [
            a for a in user["spec"]["authorization"]["acls"] if a["resource"]["type"] == "group"
        ]
        assert {(g["resource"]["name"], g["resource"]["patternType"]) for g in groups} == {
            (f"demo.{user['metadata']['labels']['app.kubernetes.io/component']}", "literal"),
            (f"demo.{user['metadata']['labels']['app.kubernetes.io/component']}.", "prefix"),
        }
        for acl in user["spec"]["authorization"]["acls"]:
            assert "__" not in acl["resource"]["name"], acl  # no Quix internal topics


def test_worker_user_least_privilege() -> None:
    worker = _user("demo", "worker")
    for name in ("demo.predictions", "demo.predictions.shadow", "demo.transactions.enriched.dlq"):
        assert {"Write", "Describe"} <= _ops(worker, "topic", name)
    for name in ("demo.transactions.enriched", "demo.model-events", "demo.model-rejections"):
        assert {"Read", "Describe"} <= _ops(worker, "topic", name)
    assert {"Write", "Describe"} <= _ops(worker, "topic", "demo.model-rejections")
    assert "Write" not in _ops(worker, "topic", "demo.model-events")  # it reports, never promotes
    assert "Write" not in _ops(worker, "topic", "demo.decisions")
    assert "Write" not in _ops(worker, "topic", "demo.transactions.enriched")
    assert _ops(worker, "topic", "demo.audit") == set()
    assert _ops(_user("acme", "worker"), "topic", "demo.predictions") == set()


def test_only_model_management_writes_the_promotion_stream() -> None:
    """Issue 15: ``<tenant>.model-events`` is written by ``<tenant>-retrain`` alone."""
    writers = {
        service
        for service in k8s.SERVICES
        if "Write" in _ops(_user("demo", service), "topic", "demo.model-events")
    }
    assert writers == {"retrain"}
    assert _ops(_user("demo", "retrain"), "topic", "acme.model-events") == set()


def test_transactional_ids_only_for_transactional_services() -> None:
    for service in k8s.SERVICES:
        tx = [
            acl
            for acl in _user("demo", service)["spec"]["authorization"]["acls"]
            if acl["resource"]["type"] == "transactionalId"
        ]
        if service in TRANSACTIONAL:  # the exactly-once services and the monitor
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
# The schemas are Strimzi 1.2.0's own CRDs, produced by Strimzi's CRD generator from its API model
# (both io.strimzi artifacts from Maven Central, run with the arguments of io.strimzi:api's POM)
# and cached: see scorestream.deploy.k8s.crds. Unknown fields count as errors (the API server would
# silently prune them).


def test_the_schema_check_catches_mistakes() -> None:
    user = _user("demo", "worker")
    user["spec"]["authorization"]["acls"][0]["operation"] = "Read"  # the removed v1beta2 form
    user["spec"]["authorization"]["acls"][1]["operations"] = ["read"]
    problems = k8s_crds.violations(user)
    assert len(problems) == 2, problems
    topic = k8s.kafka_topics("demo")[0]
    topic["spec"]["partitions"] = 0
    (problem,) = k8s_crds.violations(topic)
    assert problem.startswith("spec/partitions:"), problem


@pytest.mark.parametrize("path", sorted(COMMITTED.glob("*.yaml")), ids=lambda p: p.name)
def test_committed_objects_match_the_strimzi_crd_schemas(path: Path) -> None:
    objects = _load(path)
    assert objects
    for obj in objects:
        if obj["kind"] == "Kustomization":
            continue
        assert obj["apiVersion"] in {k8s.API_VERSION, "networking.k8s.io/v1", "v1"}
        if obj["apiVersion"] == k8s.API_VERSION:
            assert k8s_crds.violations(obj) == [], obj["metadata"]["name"]
        name = obj["metadata"]["name"]
        assert len(name) <= 253, name
        assert name == name.lower(), name
