"""Issue 15 item 12: no tenant principal can create a topic on the shared cluster.

The attack (adversarial review, 2026-12-04): a tenant principal created a topic of 12 partitions,
retention -1 and 50 MB messages. Topics — internal ones such as the state changelogs included —
are created only by the deploy step (``scorestream topics create`` as an admin, or the generated
``KafkaTopic`` objects) with the registry's configs; a service that finds one missing stops with
an error naming that command instead of creating (or crashing on) it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from scorestream.deploy import principals as security
from scorestream.deploy.k8s import generate as k8s
from scorestream.kafka_config import admin_config
from tests.security.conftest import Provision, sasl_settings

pytestmark = [pytest.mark.security, pytest.mark.integration]

WAIT_S = 60.0
ATTACK_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "max.message.bytes": "52428800"}


def create_errors(admin: AdminClient, names: list[str]) -> dict[str, int | None]:
    """The error code of creating each topic as ``admin``'s principal (None: created)."""
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=12, replication_factor=1, config=ATTACK_CONFIG) for n in names],
        request_timeout=WAIT_S,
    )
    out: dict[str, int | None] = {}
    for name, future in futures.items():
        try:
            future.result(WAIT_S)
            out[name] = None
        except KafkaException as exc:
            out[name] = int(exc.args[0].code())
    return out


def test_no_service_principal_can_create_a_topic(
    private_tenant: Provision, sasl_admin: AdminClient, sasl_bootstrap: str
) -> None:
    tenant, principals = private_tenant(k8s.SERVICES)
    run = uuid.uuid4().hex[:8]
    created: list[str] = []  # by a regression: removed again, the broker is shared
    try:
        _attempt_as_every_service(principals, tenant, run, sasl_bootstrap, created)
    finally:
        if created:
            for future in sasl_admin.delete_topics(created, operation_timeout=30).values():
                future.result(WAIT_S)

    # control: the same request is valid, the provisioning admin may make it
    probe = f"{tenant}.admin-probe-{run}"
    assert create_errors(sasl_admin, [probe]) == {probe: None}
    for future in sasl_admin.delete_topics([probe], operation_timeout=30).values():
        future.result(WAIT_S)


def _attempt_as_every_service(
    principals: dict[str, security.ServicePrincipal],
    tenant: str,
    run: str,
    sasl_bootstrap: str,
    created: list[str],
) -> None:
    for service, p in principals.items():
        admin = AdminClient(admin_config(sasl_settings(sasl_bootstrap, p.username, p.password)))
        names = [
            f"{tenant}.anything-{service}-{run}",  # the tenant's own prefix
            f"{tenant}.{service}.state-{run}",  # where a service's internal topics would go
            # the Quix-era internal names the review's principal could create (12 partitions...)
            f"changelog__{tenant}.{service}--{run}",
            f"repartition__{tenant}.{service}--{run}",
            f"x{run}-{service}",  # any name on the shared cluster
        ]
        errors = create_errors(admin, names)
        created += [name for name, err in errors.items() if err is None]
        assert errors == dict.fromkeys(names, KafkaError.TOPIC_AUTHORIZATION_FAILED), service


@pytest.mark.parametrize("service", ["decision", "worker"])
def test_a_service_missing_its_topics_stops_naming_the_provisioning_command(
    kafka_bootstrap: str, service: str, tmp_path: Path
) -> None:
    """Nothing was provisioned for this tenant: the service exits with a clear error, it neither
    creates the topics nor crash-loops on an opaque UNKNOWN_TOPIC_OR_PART."""
    tenant = f"u{uuid.uuid4().hex[:10]}"
    proc = subprocess.run(
        [sys.executable, "-m", "scorestream", service, "--tenant", tenant, "--health-port", "0"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={
            **os.environ,
            "SCORESTREAM_MODELS_URL": str(tmp_path / "models"),
            "SCORESTREAM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        },
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"scorestream topics create --tenant {tenant}" in out, out[-2000:]
    assert "missing" in out
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    assert not [t for t in admin.list_topics(timeout=30).topics if t.startswith(f"{tenant}.")]
