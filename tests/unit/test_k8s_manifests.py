"""The k8s/ tree: generated parts current, every overlay builds with kustomize, every object valid
against the real schemas (Kubernetes OpenAPI via kubernetes-validate; the pinned Strimzi, KEDA,
Istio and prometheus-operator CRDs via scorestream.k8s_crds), and the deployment policies hold.

kustomize comes from `.ci/kustomize.sh` (`kubectl kustomize` where kubectl is installed, else built
once with `go install` and cached under ~/.cache/scorestream/bin; KUSTOMIZE overrides it) and the
CRDs are downloaded once into ~/.cache/scorestream/crds. If either cannot be provided these tests
fail; they are never skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from scorestream import (
    cli,
    k8s_apps,
    k8s_cluster,
    k8s_config,
    k8s_crds,
    k8s_edge,
    k8s_manifests,
    k8s_scaling,
)
from scorestream.topics import REGISTRY
from tests import k8s_support

ROOT = k8s_support.ROOT
K8S = k8s_support.K8S
OVERLAYS = k8s_support.OVERLAYS
KUBE_VERSION = "1.33.0"
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
TOPICS = {s.topic("demo"): s for s in REGISTRY.streams}


@pytest.fixture(scope="session")
def kustomize() -> str:
    return k8s_support.kustomize()


@pytest.fixture(scope="session")
def built(kustomize: str) -> dict[str, list[dict[str, Any]]]:
    """``kustomize build`` of every overlay."""
    return k8s_support.build(kustomize, OVERLAYS)


def _all(built: dict[str, list[dict[str, Any]]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for overlay, objects in built.items():
        for obj in objects:
            yield overlay, obj


def _name(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace', '-')}/{meta['name']}"


def _of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
        if expr["operator"] == "Exists" and value is None:
            return False
    return True


# -- generated and current ---------------------------------------------------------------------
def test_committed_tree_equals_the_generator_output(tmp_path: Path) -> None:
    written = k8s_manifests.generate_all(tmp_path, tenants=("demo",))
    assert written
    for path in written:
        rel = path.relative_to(tmp_path)
        committed = K8S / rel
        assert committed.is_file(), f"{rel} is not committed: run `scorestream k8s generate`"
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{rel} is stale: run `scorestream k8s generate`"
        )


def test_the_cli_writes_the_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["k8s", "generate", "--root", str(tmp_path), "--tenant", "acme"]) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "base" / "tenants" / "acme" / "workloads.yaml") in printed
    assert (tmp_path / "overlays" / "tenants" / "acme" / "kustomization.yaml").is_file()
    assert cli.main(["k8s", "generate", "--out", str(tmp_path / "only"), "--tenant", "acme"]) == 0
    assert sorted(p.name for p in (tmp_path / "only").iterdir()) == [
        "topics-acme.yaml",
        "users-acme.yaml",
    ]


def test_a_second_tenant_gets_its_own_namespace_and_resources(tmp_path: Path) -> None:
    k8s_manifests.generate_all(tmp_path, tenants=("demo", "acme"))
    bundle = tmp_path / "base" / "tenants" / "acme"
    objects = [
        d for f in sorted(bundle.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d
    ]
    namespaced = [o for o in objects if o["kind"] not in {"Namespace", "Kustomization"}]
    assert namespaced
    assert {o["metadata"]["namespace"] for o in namespaced} == {"scorestream-acme"}
    text = "".join(f.read_text() for f in bundle.glob("*.yaml"))
    assert "demo" not in text.replace("scorestream-models/acme", "")


# -- kustomize and schemas ---------------------------------------------------------------------
def test_every_overlay_builds(built: dict[str, list[dict[str, Any]]]) -> None:
    for overlay, objects in built.items():
        kinds = {o["kind"] for o in objects}
        assert {"Deployment", "StatefulSet", "NetworkPolicy", "ScaledObject"} <= kinds, overlay
        if overlay != "tenants/demo":
            assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"} <= kinds, overlay
            assert {"PrometheusRule", "ConfigMap"} <= kinds, overlay
    assert _of(built["istio"], "Gateway")
    assert _of(built["istio"], "VirtualService")
    assert _of(built["istio"], "DestinationRule")
    assert len(_of(built["ingress"], "Ingress")) == 2
    assert not _of(built["ingress"], "VirtualService")
    for overlay in ("dev", "prod", "tenants/demo"):
        assert not _of(built[overlay], "Ingress")
        assert not _of(built[overlay], "Gateway")


def test_core_objects_match_the_kubernetes_openapi_schemas(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    schemas = k8s_crds.crd_schemas()
    kinds: set[str] = set()
    unique = {json.dumps(obj, sort_keys=True): obj for _, obj in _all(built)}  # overlays share most
    for obj in unique.values():
        if (obj["apiVersion"], obj["kind"]) in schemas:
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{_name(obj)}: {exc.message} at {list(exc.path)}")
        kinds.add(obj["kind"])
    assert kinds == {
        "Namespace",
        "ConfigMap",
        "Service",
        "Deployment",
        "StatefulSet",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "CronJob",
        "Ingress",
        "HorizontalPodAutoscaler",
    }


def test_custom_resources_match_the_pinned_crds(built: dict[str, list[dict[str, Any]]]) -> None:
    schemas = k8s_crds.crd_schemas()
    seen: set[str] = set()
    for overlay, obj in _all(built):
        if "." not in obj["apiVersion"].split("/")[0]:
            continue  # core group or apps, batch, policy...: not a custom resource
        if obj["apiVersion"].startswith(("networking.k8s.io", "policy", "batch", "apps")):
            continue
        assert (obj["apiVersion"], obj["kind"]) in schemas, f"no pinned CRD for {_name(obj)}"
        problems = k8s_crds.violations(obj)
        assert problems == [], f"{overlay}: {_name(obj)}: {problems}"
        seen.add(obj["kind"])
    assert seen == {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "ScaledObject",
        "TriggerAuthentication",
        "PodMonitor",
        "ServiceMonitor",
        "PrometheusRule",
        "Gateway",
        "VirtualService",
        "DestinationRule",
    }


def test_the_schema_checks_catch_mistakes(built: dict[str, list[dict[str, Any]]]) -> None:
    scaled = dict(_of(built["prod"], "ScaledObject")[0])
    scaled["spec"] = {**scaled["spec"], "maxReplicas": 3}  # the HPA spelling, not KEDA's
    assert any("maxReplicas" in p for p in k8s_crds.violations(scaled))
    user = _of(built["prod"], "KafkaUser")[0]
    acl = {**user["spec"]["authorization"]["acls"][0], "operation": "Read"}  # removed v1beta2 form
    bad_user = {
        **user,
        "spec": {**user["spec"], "authorization": {"type": "simple", "acls": [acl]}},
    }
    assert k8s_crds.violations(bad_user)
    pool = _of(built["prod"], "KafkaNodePool")[0]
    assert k8s_crds.violations({**pool, "spec": {**pool["spec"], "roles": ["leader"]}})
    deployment = _of(built["prod"], "Deployment")[0]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)


# -- policies ----------------------------------------------------------------------------------
def _pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in WORKLOAD_KINDS:
            yield obj, obj["spec"]["template"]
        elif obj["kind"] == "CronJob":
            yield obj, obj["spec"]["jobTemplate"]["spec"]["template"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_locked_down(built: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    pods = list(_pod_specs(built[overlay]))
    assert len(pods) == len(k8s_apps.APPS) + 1
    for obj, template in pods:
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, _name(obj)
        assert spec["securityContext"]["runAsUser"] != 0, _name(obj)
        assert spec["automountServiceAccountToken"] is False, _name(obj)
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, _name(obj)
            assert sc["readOnlyRootFilesystem"] is True, _name(obj)
            assert sc["allowPrivilegeEscalation"] is False, _name(obj)
            assert sc["capabilities"]["drop"] == ["ALL"], _name(obj)
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", _name(obj)
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), _name(obj)
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), _name(obj)
            image = c["image"]
            tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
            assert tag, f"{_name(obj)} image {image} has no tag"
            assert tag != "latest", f"{_name(obj)} image {image} is not pinned"
            assert c["args"][0] in {*k8s_apps.APP_BY_SERVICE, "retrain"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_probes_grace_spread_policy_and_pdb(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = built[overlay]
    policies = _of(objects, "NetworkPolicy")
    pdbs = _of(objects, "PodDisruptionBudget")
    workloads = [o for o in objects if o["kind"] in WORKLOAD_KINDS]
    assert {w["metadata"]["name"] for w in workloads} == set(k8s_apps.APP_BY_SERVICE)
    for obj, template in _pod_specs(objects):
        labels = template["metadata"]["labels"]
        ns = obj["metadata"]["namespace"]
        selecting = [
            p
            for p in policies
            if p["metadata"]["namespace"] == ns and _matches(p["spec"]["podSelector"], labels)
        ]
        assert any(p["spec"]["podSelector"] == {} for p in selecting), f"no default deny {ns}"
        own = [p for p in selecting if p["spec"]["podSelector"]]
        assert own, f"{_name(obj)}: no NetworkPolicy of its own"
        if obj["kind"] == "CronJob":
            continue
        spec = template["spec"]
        container = spec["containers"][0]
        for probe, path in (
            ("livenessProbe", "/livez"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/livez"),
        ):
            assert container[probe]["httpGet"]["path"] == path, _name(obj)
            assert container[probe]["httpGet"]["port"] == "http"
        port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
        assert port == k8s_apps.APP_BY_SERVICE[obj["metadata"]["name"]].port
        service = obj["metadata"]["name"]
        assert spec["terminationGracePeriodSeconds"] > k8s_config.drain_seconds(service)
        assert {t["topologyKey"] for t in spec["topologySpreadConstraints"]} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        assert any(
            p["metadata"]["namespace"] == ns and _matches(p["spec"]["selector"], labels)
            for p in pdbs
        ), f"{_name(obj)}: no PodDisruptionBudget"
        # the policy lets Prometheus reach the metrics port
        assert any(
            rule["ports"] == [{"protocol": "TCP", "port": "http"}]
            for p in own
            for rule in p["spec"].get("ingress", [])
        ), _name(obj)


def test_pods_reach_kafka_dns_and_otlp_only_where_the_policies_say() -> None:
    for app in (*k8s_apps.APPS, k8s_apps.RETRAIN):
        policy = k8s_apps_policy(app)
        ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert {53, k8s_config.KAFKA_TLS_PORT, 4318} <= ports, app.service
        assert (443 in ports) == app.egress_https, app.service
        for rule in policy["spec"]["egress"]:
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    assert "10.0.0.0/8" in peer["ipBlock"]["except"]


def k8s_apps_policy(app: k8s_apps.App) -> dict[str, Any]:
    from scorestream.k8s_network import service_policy  # noqa: PLC0415

    return service_policy(app, "demo")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_on_lag_within_the_partitions(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = built[overlay]
    scaled = _of(objects, "ScaledObject")
    assert {s["metadata"]["name"] for s in scaled} == {
        "merchant",
        "worker",
        "enricher",
        "decision",
        "notifier",
        "audit",
    }
    auths = {a["metadata"]["name"]: a for a in _of(objects, "TriggerAuthentication")}
    for so in scaled:
        spec = so["spec"]
        name = so["metadata"]["name"]
        topics = [t["metadata"]["topic"] for t in spec["triggers"]]
        assert topics == [
            s.topic("demo") for s in map(REGISTRY.get, k8s_apps.APP_BY_SERVICE[name].scale_on)
        ]
        partitions = max(TOPICS[t].partitions for t in topics)
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
        if overlay != "dev":
            assert spec["minReplicaCount"] >= k8s_apps.APP_BY_SERVICE[name].replicas
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
        for trigger in spec["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            assert name in TOPICS[meta["topic"]].consumers
            assert meta["consumerGroup"] == f"demo.{name}"
            assert meta["sasl"] == "scram_sha512"
            assert meta["tls"] == "enable"
            assert {"lagThreshold", "activationLagThreshold", "offsetResetPolicy"} <= set(meta)
            assert meta["bootstrapServers"] == k8s_config.BOOTSTRAP
            auth = auths[trigger["authenticationRef"]["name"]]["spec"]
            assert {r["parameter"] for r in auth["secretTargetRef"]} == {"password", "ca"}
            assert auth["configMapTargetRef"][0]["parameter"] == "username"
        target = spec["scaleTargetRef"]
        workload = [o for o in objects if o["metadata"]["name"] == target["name"]]
        assert workload
        assert workload[0]["kind"] == target["kind"] == "Deployment"
        assert "replicas" not in workload[0]["spec"], "KEDA owns the replica count"
    # every service either scales or is the one-replica monitor
    fixed = {o["metadata"]["name"] for o in objects if "replicas" in o.get("spec", {})} & set(
        k8s_apps.APP_BY_SERVICE
    )
    assert fixed == {"monitor"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_stateful_services_checkpoint_to_a_volume_of_their_own(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """The enricher and the merchant stage write their stores' checkpoints to a ``state``
    emptyDir (losing it costs a changelog replay); nobody else gets one."""
    stateful = set()
    for obj, template in _pod_specs(built[overlay]):
        name = obj["metadata"]["name"]
        spec = template["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        if "state" not in volumes:
            assert "state" not in mounts, _name(obj)
            continue
        stateful.add(name)
        assert volumes["state"]["emptyDir"] == {"sizeLimit": k8s_apps.STATE_VOLUME_SIZE}
        assert mounts["state"] == k8s_config.STATE_MOUNT
        # the scheduler reserves the emptyDirs' room on the node (tmp 256Mi + state 1Gi)
        requests = spec["containers"][0]["resources"]["requests"]
        assert requests["ephemeral-storage"] == "1280Mi", _name(obj)
        env = _pod_env(built[overlay], name)
        assert env[f"SCORESTREAM_{name.upper()}_STATE_DIR"] == k8s_config.STATE_MOUNT
    assert stateful == {"enricher", "merchant"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_replicas_fit_the_reply_partitions(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    (gateway,) = [
        o for o in _of(built[overlay], "StatefulSet") if o["metadata"]["name"] == "gateway"
    ]
    assert "replicas" not in gateway["spec"], "the HPA owns the replica count"
    (hpa,) = _of(built[overlay], "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "gateway",
    }
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["maxReplicas"] <= REGISTRY.get("replies").partitions
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    if overlay in {"prod", "istio", "ingress"}:
        assert hpa["spec"]["minReplicas"] == 3
    env = {e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    ref = env["SCORESTREAM_GATEWAY_REPLY_PARTITION"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert ref == "metadata.labels['apps.kubernetes.io/pod-index']"


def test_kafka_users_name_only_their_own_tenants_resources(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    global_topics = {s.topic() for s in REGISTRY.global_streams()}
    users = _of(built["prod"], "KafkaUser")
    assert users
    for user in users:
        tenant = user["metadata"]["labels"]["scorestream/tenant"]
        assert user["metadata"]["name"].startswith(f"{tenant}-")
        for acl in user["spec"]["authorization"]["acls"]:
            name = acl["resource"]["name"]
            assert name.startswith(f"{tenant}.") or name in global_topics, (user, acl)
            if acl["resource"]["patternType"] == "prefix":
                assert acl["resource"]["type"] != "topic", acl
                service = user["metadata"]["name"][len(tenant) + 1 :]
                assert name == f"{tenant}.{service}.", acl
            assert "All" not in acl["operations"]


def test_dev_is_one_broker_and_prod_is_three(built: dict[str, list[dict[str, Any]]]) -> None:
    for overlay, nodes, replicas in (("dev", 1, 1), ("prod", 3, 3)):
        (pool,) = _of(built[overlay], "KafkaNodePool")
        assert pool["spec"]["replicas"] == nodes
        assert set(pool["spec"]["roles"]) == {"controller", "broker"}
        (kafka,) = _of(built[overlay], "Kafka")
        config = kafka["spec"]["kafka"]["config"]
        assert config["default.replication.factor"] == replicas
        assert config["min.insync.replicas"] <= replicas
        for topic in _of(built[overlay], "KafkaTopic"):
            assert topic["spec"]["replicas"] <= nodes
            assert int(topic["spec"]["config"]["min.insync.replicas"]) <= topic["spec"]["replicas"]
        (listener,) = kafka["spec"]["kafka"]["listeners"]
        assert listener["tls"] is True
        assert listener["authentication"]["type"] == "scram-sha-512"
        assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"


def test_retrain_cronjob(built: dict[str, list[dict[str, Any]]]) -> None:
    (cron,) = _of(built["prod"], "CronJob")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 1
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    assert job["template"]["spec"]["containers"][0]["args"][:3] == ["retrain", "--tenant", "demo"]


# -- the pods' environment is what the services' settings classes read --------------------------
def _pod_env(objects: list[dict[str, Any]], service: str) -> dict[str, str]:
    (obj,) = [
        o for o in objects if o["kind"] in WORKLOAD_KINDS and o["metadata"]["name"] == service
    ]
    container = obj["spec"]["template"]["spec"]["containers"][0]
    maps = {m["metadata"]["name"]: m["data"] for m in _of(objects, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        env.update(maps[source["configMapRef"]["name"]])
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "fieldRef" in entry["valueFrom"]:
            path = entry["valueFrom"]["fieldRef"]["fieldPath"]
            env[entry["name"]] = "1" if "pod-index" in path else f"{service}-7d9f-abcde"
        else:
            env[entry["name"]] = "from-a-secret"
    return env


@pytest.mark.parametrize("service", sorted(k8s_config.SERVICE_SETTINGS))
def test_settings_load_from_the_pod_environment(
    built: dict[str, list[dict[str, Any]]], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _pod_env(built["prod"], service)
    for key in list(os.environ):
        if key.startswith("SCORESTREAM_") or key in {"KAFKA_BOOTSTRAP_SERVERS", "POD_NAME"}:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings: Any = k8s_config.SERVICE_SETTINGS[service].load()()
    assert settings.tenant == "demo"
    assert settings.instance_id == f"{service}-7d9f-abcde"
    kafka: Any = k8s_config.KAFKA.load()()
    assert kafka.security_protocol == "SASL_SSL"
    assert kafka.sasl_username == f"demo-{service}"
    assert kafka.bootstrap_servers == k8s_config.BOOTSTRAP
    scorestream_keys = {k for k in env if k.startswith("SCORESTREAM_")}
    known = set()
    for ref in (*k8s_config.SERVICE_SETTINGS.values(), k8s_config.KAFKA, k8s_config.MODELS):
        cls = ref.load()
        known |= {f"{cls.model_config.get('env_prefix', '')}{f.upper()}" for f in cls.model_fields}
    for ref in (k8s_config.TRACING, k8s_config.GATEWAY_AUTH):
        cls = ref.load()
        known |= {f"{cls.model_config.get('env_prefix', '')}{f.upper()}" for f in cls.model_fields}
    assert scorestream_keys <= known, scorestream_keys - known
    if hasattr(settings, "state_dir"):
        assert str(settings.state_dir) == k8s_config.STATE_MOUNT
    # a restore or the first read of the merchant table does not poll: /livez must outlast them
    waits = [getattr(settings, n, 0.0) for n in ("restore_timeout_s", "table_timeout_s")]
    if hasattr(settings, "live_after_s"):
        assert settings.live_after_s > max(waits), service
    if service in {"enricher", "merchant", "audit"}:
        assert max(waits) > 0, service
    if service == "gateway":
        auth: Any = k8s_config.GATEWAY_AUTH.load()()
        assert auth.auth_mode == "api_key"
        assert str(auth.api_keys_file) == k8s_apps.API_KEYS_FILE
        assert settings.reply_partition == 1
        assert settings.port == k8s_config.GATEWAY_PORT
    else:
        assert settings.health_port == k8s_config.HEALTH_PORT


# -- the edges: Istio and ingress-nginx (issue 18) ----------------------------------------------
def _pods_admitted_by(
    policies: list[dict[str, Any]], ns: str, pod_labels: dict[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """(policy name, ``from`` peer) of every ingress peer that admits the gateway pods."""
    out = []
    for p in policies:
        if p["metadata"]["namespace"] != ns or not _matches(p["spec"]["podSelector"], pod_labels):
            continue
        for rule in p["spec"].get("ingress", []):
            out += [(p["metadata"]["name"], peer) for peer in rule.get("from", [])]
    return out


def _peer_admits(peer: dict[str, Any], namespace: str, labels: dict[str, str]) -> bool:
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    if "namespaceSelector" in peer and not _matches(peer["namespaceSelector"], ns_labels):
        return False
    return "podSelector" not in peer or _matches(peer["podSelector"], labels)


def test_the_istio_ingress_gateway_may_reach_the_gateway_pods(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    """The Gateway's selector names the pods of a standard install (istioctl: istio-system,
    istio=ingressgateway), and a NetworkPolicy admits exactly those pods to the gateway."""
    objects = built["istio"]
    (gateway,) = _of(objects, "Gateway")
    selector = gateway["spec"]["selector"]
    assert selector == {"istio": "ingressgateway"}
    ingress_pod = {**selector, "app": "istio-ingressgateway"}
    gateway_pod = k8s_apps.labels("demo", "gateway")
    peers = _pods_admitted_by(_of(objects, "NetworkPolicy"), "scorestream-demo", gateway_pod)
    assert any(_peer_admits(p, "istio-system", ingress_pod) for _, p in peers)
    # not from every pod of istio-system, and not in the overlays without Istio
    assert not any(_peer_admits(p, "istio-system", {"app": "istiod"}) for _, p in peers)
    assert not any(
        _peer_admits(p, "istio-system", ingress_pod)
        for _, p in _pods_admitted_by(
            _of(built["ingress"], "NetworkPolicy"), "scorestream-demo", gateway_pod
        )
    )
    # the ingress-nginx controller reaches the gateway in the ingress overlay
    nginx_pod = {"app.kubernetes.io/name": "ingress-nginx"}
    assert any(
        _peer_admits(p, "ingress-nginx", nginx_pod)
        for _, p in _pods_admitted_by(
            _of(built["ingress"], "NetworkPolicy"), "scorestream-demo", gateway_pod
        )
    )


def test_retries_with_one_idempotency_key_reach_one_replica(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    (rule,) = _of(built["istio"], "DestinationRule")
    (vs,) = _of(built["istio"], "VirtualService")
    host = vs["spec"]["http"][0]["route"][0]["destination"]["host"]
    assert rule["spec"]["host"] == host == "gateway.scorestream-demo.svc.cluster.local"
    hashing = rule["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]
    assert hashing == {"httpHeaderName": "Idempotency-Key"}
    main, keyed = sorted(_of(built["ingress"], "Ingress"), key=lambda i: i["metadata"]["name"])
    annotations = keyed["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary"] == "true"
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header"] == "Idempotency-Key"
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-pattern"] == ".+"
    assert annotations["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$http_idempotency_key"
    # requests without the key are not hashed (an absent header would hash as "": one replica)
    assert "nginx.ingress.kubernetes.io/upstream-hash-by" not in main["metadata"]["annotations"]
    assert main["spec"]["rules"][0]["host"] == keyed["spec"]["rules"][0]["host"]
    services = {s["metadata"]["name"]: s for s in _of(built["ingress"], "Service")}
    backend = keyed["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert backend != "gateway"
    assert services[backend]["spec"]["selector"] == services["gateway"]["spec"]["selector"]


def test_sidecars_only_where_istio_is_and_never_in_the_retrain_job(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    for overlay, objects in built.items():
        (ns,) = [o for o in _of(objects, "Namespace") if o["metadata"]["name"] != "kafka"]
        injected = ns["metadata"]["labels"].get("istio-injection")
        assert injected == ("enabled" if overlay == "istio" else None), overlay
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        (cron,) = _of(objects, "CronJob")
        pod_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["sidecar.istio.io/inject"] == "false"
    istio_nets = {p["metadata"]["name"] for p in _of(built["istio"], "NetworkPolicy")}
    assert {"istio-sidecars", "gateway-from-istio-ingress"} <= istio_nets


def test_edges_are_generated_per_tenant(tmp_path: Path) -> None:
    k8s_manifests.generate_all(tmp_path, tenants=("demo", "acme"))
    istio = yaml.safe_load((tmp_path / "overlays" / "istio" / "kustomization.yaml").read_text())
    assert istio["resources"] == ["../prod", "tenants/demo.yaml", "tenants/acme.yaml"]
    assert [p["target"]["name"] for p in istio["patches"]] == [
        "scorestream-demo",
        "scorestream-acme",
    ]
    for overlay in ("istio", "ingress"):
        text = (tmp_path / "overlays" / overlay / "tenants" / "acme.yaml").read_text()
        objects = [d for d in yaml.safe_load_all(text) if d]
        assert {o["metadata"]["namespace"] for o in objects} == {"scorestream-acme"}
        assert "demo" not in text
    assert k8s_edge.istio_tls_secret("acme") != k8s_edge.istio_tls_secret("demo")


# -- the decision policy and the training pipeline's access to Kafka ---------------------------
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_decision_policy_is_mounted_from_a_config_map(
    built: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    from consumers.policy import parse_policy  # noqa: PLC0415

    objects = built[overlay]
    maps = {m["metadata"]["name"]: m["data"] for m in _of(objects, "ConfigMap")}
    policy = parse_policy(maps["scorestream-decision-policy"]["policy.yaml"], tenant="demo")
    committed = (ROOT / "config" / "policies" / "demo.yaml").read_text()
    assert policy == parse_policy(committed, tenant="demo")
    (decision,) = [o for o in _of(objects, "Deployment") if o["metadata"]["name"] == "decision"]
    spec = decision["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert volumes["policy"]["configMap"]["name"] == "scorestream-decision-policy"
    assert "subPath" not in mounts["policy"], "a subPath mount never sees ConfigMap updates"
    (item,) = volumes["policy"]["configMap"]["items"]
    path = f"{mounts['policy']['mountPath']}/{item['path']}"
    assert _pod_env(objects, "decision")["SCORESTREAM_DECISION_POLICY_FILE"] == path


def test_a_tenant_without_a_policy_file_gets_the_default_thresholds() -> None:
    from consumers.policy import parse_policy  # noqa: PLC0415

    policy = parse_policy(k8s_apps.policy_text("acme"), tenant="acme")
    defaults: Any = k8s_config.SERVICE_SETTINGS["decision"].load()(tenant="acme")
    assert policy.version == "acme-default"
    assert policy.thresholds.review == defaults.review_threshold
    assert policy.thresholds.decline == defaults.decline_threshold


def test_the_kafka_listener_admits_tenants_keda_and_the_pipeline_pods_only() -> None:
    (listener,) = k8s_cluster.kafka()["spec"]["kafka"]["listeners"]
    peers = listener["networkPolicyPeers"]
    kfp_pod = {"scorestream.io/kafka-client": "true"}
    assert any(_peer_admits(p, k8s_config.KFP_NAMESPACE, kfp_pod) for p in peers)
    assert not any(_peer_admits(p, k8s_config.KFP_NAMESPACE, {"app": "ml-pipeline"}) for p in peers)
    assert k8s_scaling.gateway_max_replicas() == REGISTRY.get("replies").partitions


@pytest.mark.parametrize("install", ["istioctl", "helm"])
def test_the_gateway_selector_and_its_network_policy_agree_for_each_standard_install(
    tmp_path: Path, install: str
) -> None:
    assert cli.main(["k8s", "generate", "--root", str(tmp_path), "--istio-ingress", install]) == 0
    text = (tmp_path / "overlays" / "istio" / "tenants" / "demo.yaml").read_text()
    objects = [d for d in yaml.safe_load_all(text) if d]
    (gateway,) = _of(objects, "Gateway")
    ingress = k8s_edge.INSTALLS[install]
    assert gateway["spec"]["selector"] == ingress.labels
    gateway_pod = k8s_apps.labels("demo", "gateway")
    peers = _pods_admitted_by(_of(objects, "NetworkPolicy"), "scorestream-demo", gateway_pod)
    pod = {**gateway["spec"]["selector"], "app": "istio-ingressgateway"}
    assert [p for _, p in peers if _peer_admits(p, ingress.namespace, pod)]
    other = k8s_edge.HELM if install == "istioctl" else k8s_edge.ISTIOCTL
    assert not [p for _, p in peers if _peer_admits(p, other.namespace, other.labels)]
