"""Fixtures of the security suite: the SASL/SCRAM listener of the broker, an admin client on it,
and private tenants whose principals are created from :mod:`scorestream.deploy.acl` and removed
after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence

import pytest
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from scorestream.admin import ensure_tenant_topics
from scorestream.deploy import principals as security
from scorestream.kafka_config import admin_config
from scorestream.settings import BrokerSettings, KafkaSettings
from scorestream.topics import REGISTRY


@pytest.fixture(scope="session")
def sasl_bootstrap(kafka_bootstrap: str) -> str:
    """``SCORESTREAM_TEST_SASL_BOOTSTRAP``, else the SASL listener of the local broker."""
    explicit = os.environ.get("SCORESTREAM_TEST_SASL_BOOTSTRAP")
    if explicit:
        return explicit
    from scorestream.dev.broker.state import read_state  # noqa: PLC0415

    state = read_state(BrokerSettings().home)
    if state is None or state.bootstrap != kafka_bootstrap:
        pytest.skip(
            "the broker under test is not the local one: set SCORESTREAM_TEST_SASL_BOOTSTRAP "
            "to a SASL_PLAINTEXT SCRAM-SHA-512 listener with an ACL authorizer"
        )
    return state.sasl_bootstrap


def sasl_settings(bootstrap: str, username: str, password: str) -> KafkaSettings:
    """The project's own settings path (what a service reads from SCORESTREAM_KAFKA_*)."""
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=username,
        sasl_password=SecretStr(password),
    )


@pytest.fixture(scope="session")
def sasl_admin(sasl_bootstrap: str) -> AdminClient:
    """A super user on the SASL listener: how provisioning runs against a secured cluster."""
    broker = BrokerSettings()
    settings = sasl_settings(
        sasl_bootstrap, broker.admin_user, broker.admin_password.get_secret_value()
    )
    return AdminClient(admin_config(settings, client_id="security-tests-admin"))


Provision = Callable[[Sequence[str]], tuple[str, dict[str, security.ServicePrincipal]]]


@pytest.fixture
def private_tenant(kafka_bootstrap: str, sasl_admin: AdminClient) -> Iterator[Provision]:
    """Creates a fresh tenant (topics + principals of the given services); cleans up after."""
    made: list[tuple[str, Sequence[str]]] = []

    def make(services: Sequence[str]) -> tuple[str, dict[str, security.ServicePrincipal]]:
        tenant = f"s{uuid.uuid4().hex[:9]}"
        ensure_tenant_topics(tenant)
        made.append((tenant, services))
        return tenant, security.provision(sasl_admin, tenant, services)

    yield make
    for tenant, services in made:
        security.deprovision(sasl_admin, tenant, services)
        for service in services:
            username = f"{tenant}-{service}"
            assert security.principal_acls(sasl_admin, username) == [], "ACLs left behind"
        topics = [s.topic(tenant) for s in REGISTRY.tenant_streams()]
        for future in sasl_admin.delete_topics(topics, operation_timeout=30).values():
            future.result(60)
