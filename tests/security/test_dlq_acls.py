"""``scorestream dlq`` under ACLs (issue 17): the rights docs/operations.md lists are enough to
list and re-drive, a service principal is refused with a clear error (not a traceback), and the
operator of one tenant cannot read another tenant's dead letters."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from schemas.errors import RawRecord
from scorestream.deploy import principals as security
from scorestream.dlq import DeadLetter
from scorestream.ops.dlq import operator_acl_rules
from scorestream.topics import REGISTRY
from tests.kafka_helpers import produce_raw, read_messages
from tests.security.conftest import Provision

pytestmark = [pytest.mark.security, pytest.mark.integration]

SCORESTREAM = Path(sys.executable).with_name("scorestream")


def _dlq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCORESTREAM), "dlq", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | env,
        check=False,
    )


def test_operator_acls_suffice_and_others_are_refused_clearly(
    private_tenant: Provision, sasl_admin: AdminClient, sasl_bootstrap: str, kafka_bootstrap: str
) -> None:
    tenant, principals = private_tenant(["decision"])
    other, _ = private_tenant([])
    source = REGISTRY.topic("predictions", tenant)
    dead = DeadLetter(
        RawRecord(b"acc-1", b"{}", [("ce_id", b"x-1")], source, 0, 5), "schema_violation", "E", "m"
    ).record("decision", max_bytes=10**6)
    headers = [(k, v.encode() if isinstance(v, str) else v or b"") for k, v in dead.headers]
    produce_raw(
        kafka_bootstrap,
        REGISTRY.dlq_topic("predictions", tenant),
        [(dead.key, dead.value, headers)],
    )

    operator = f"{tenant}-dlq-operator"
    password = secrets.token_urlsafe(24)
    security.set_scram_password(sasl_admin, operator, password)
    try:
        bindings = security.acl_bindings(operator, operator_acl_rules(tenant))
        for future in sasl_admin.create_acls(bindings, request_timeout=30).values():
            future.result(30)
        env = security.client_env(sasl_bootstrap, operator, password)
        listed = _dlq(env, "list", "--tenant", tenant)
        assert listed.returncode == 0, listed.stderr
        assert "1 dead letters" in listed.stdout
        moved = _dlq(env, "redrive", "--tenant", tenant)
        assert moved.returncode == 0, moved.stderr
        assert "re-drove 1" in moved.stdout
        [msg] = read_messages(kafka_bootstrap, source, 1)
        assert msg.key() == b"acc-1"

        foreign = _dlq(env, "list", "--tenant", other)
        assert foreign.returncode == 2
        assert "not authorized" in foreign.stderr
        assert "Traceback" not in foreign.stderr
    finally:
        security.deprovision(sasl_admin, tenant, ["dlq-operator"])

    service = principals["decision"].client_env(sasl_bootstrap)
    refused = _dlq(service, "list", "--tenant", tenant)
    assert refused.returncode == 2
    assert "not authorized" in refused.stderr
    assert "Traceback" not in refused.stderr
