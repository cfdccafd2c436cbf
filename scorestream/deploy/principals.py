"""Apply the ACL model of :mod:`scorestream.deploy.acl` to a real broker: SCRAM users and ACL
bindings.

Strimzi's User Operator does this from the ``KafkaUser`` manifests in Kubernetes. Without the
operator (the local broker, the security test suite, a cluster managed by hand) the same rules
are applied here through the Admin API, connected as a super user:

* ``alter_user_scram_credentials`` creates or rotates the principal ``<tenant>-<service>``;
* ``create_acls`` adds exactly the :func:`scorestream.deploy.acl.service_acl_rules` of that service;
* :func:`deprovision` removes both again (the security tests use a private tenant each time).

:func:`client_env` gives the ``SCORESTREAM_KAFKA_*`` variables a service process needs to
connect as its principal, which is how the k8s Deployments consume the KafkaUser Secret.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from scorestream.deploy.acl import AclRule, principal_name, service_acl_rules
from scorestream.errors import ScorestreamError
from scorestream.topics import REGISTRY, TopicRegistry

TIMEOUT_S = 30.0
SCRAM_ITERATIONS = 8192
"""Kafka's minimum is 4096; more makes each login slower, not the credential stronger per se."""

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactionalId": ResourceType.TRANSACTIONAL_ID,
}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
_OPERATION = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Describe": AclOperation.DESCRIBE,
    "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS,
    "Create": AclOperation.CREATE,
}


class SecurityProvisioningError(ScorestreamError):
    """The broker refused or failed to create or delete a SCRAM user or an ACL."""


@dataclass(frozen=True, slots=True)
class ServicePrincipal:
    """Credentials of one service of one tenant, as the KafkaUser Secret would hold them."""

    tenant: str
    service: str
    username: str
    password: str = field(repr=False)

    def client_env(
        self, bootstrap: str, *, protocol: str = "SASL_PLAINTEXT", ca_location: Path | None = None
    ) -> dict[str, str]:
        return client_env(
            bootstrap, self.username, self.password, protocol=protocol, ca_location=ca_location
        )


def client_env(
    bootstrap: str,
    username: str,
    password: str,
    *,
    protocol: str = "SASL_PLAINTEXT",
    ca_location: Path | None = None,
) -> dict[str, str]:
    """Environment of a service process that connects as ``username`` (see KafkaSettings);
    ``ca_location``: the PEM CA bundle that verifies the brokers for ``SASL_SSL``."""
    tls = {"SCORESTREAM_KAFKA_SSL_CA_LOCATION": str(ca_location)} if ca_location else {}
    return tls | {
        "SCORESTREAM_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SCORESTREAM_KAFKA_SECURITY_PROTOCOL": protocol,
        "SCORESTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "SCORESTREAM_KAFKA_SASL_USERNAME": username,
        "SCORESTREAM_KAFKA_SASL_PASSWORD": password,
    }


def acl_bindings(principal: str, rules: Iterable[AclRule]) -> list[AclBinding]:
    """One ALLOW binding per (resource, operation) for ``User:<principal>`` from any host.

    A topic both read and written yields Describe twice; the broker API refuses duplicates."""
    keys = dict.fromkeys((r.resource, r.name, r.pattern, op) for r in rules for op in r.operations)
    return [
        AclBinding(
            _RESOURCE[kind],
            name,
            _PATTERN[pattern],
            f"User:{principal}",
            "*",
            _OPERATION[op],
            AclPermissionType.ALLOW,
        )
        for kind, name, pattern, op in keys
    ]


def _wait(futures: Mapping[Any, Future[Any]], what: str) -> None:
    errors = []
    for key, future in futures.items():
        try:
            future.result(TIMEOUT_S)
        except KafkaException as exc:
            errors.append(f"{key}: {exc.args[0]}")
    if errors:
        raise SecurityProvisioningError(f"{what} failed: " + "; ".join(errors))


def set_scram_password(admin: AdminClient, username: str, password: str) -> None:
    """Create or rotate a SCRAM-SHA-512 credential."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    futures = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(username, info, password.encode())]
    )
    _wait(futures, f"SCRAM credential of {username}")


def provision(
    admin: AdminClient,
    tenant: str,
    services: Sequence[str],
    *,
    registry: TopicRegistry = REGISTRY,
) -> dict[str, ServicePrincipal]:
    """A SCRAM user with a fresh random password and the registry's ACLs, per service."""
    out: dict[str, ServicePrincipal] = {}
    bindings: list[AclBinding] = []
    for service in services:
        username = principal_name(tenant, service)
        password = secrets.token_urlsafe(24)
        set_scram_password(admin, username, password)
        bindings += acl_bindings(username, service_acl_rules(tenant, service, registry=registry))
        out[service] = ServicePrincipal(tenant, service, username, password)
    if bindings:
        _wait(admin.create_acls(bindings, request_timeout=TIMEOUT_S), "create_acls")
        users = {p.username for p in out.values()}
        _await_acls(admin, users, lambda seen: seen >= len(bindings), f"{len(bindings)} ACLs")
    return out


def _await_acls(
    admin: AdminClient, usernames: set[str], done: Callable[[int], bool], what: str
) -> None:
    """Block until the broker serves the new ACLs: ``create_acls`` returns once the controller
    has committed them, and the broker's metadata cache follows a moment later."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        seen = sum(len(principal_acls(admin, u)) for u in usernames)
        if done(seen):
            return
        if time.monotonic() > deadline:
            raise SecurityProvisioningError(f"waiting for {what}: {seen} ACLs visible")
        time.sleep(0.1)


def principal_acls(admin: AdminClient, username: str) -> list[AclBinding]:
    """Every ACL binding of ``User:<username>`` the broker has."""
    flt = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name; the 2.16 stub is too narrow
        ResourcePatternType.ANY,
        f"User:{username}",
        None,  # type: ignore[arg-type]  # any host
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    result: list[AclBinding] = admin.describe_acls(flt, request_timeout=TIMEOUT_S).result(TIMEOUT_S)
    return result


def deprovision(admin: AdminClient, tenant: str, services: Sequence[str]) -> None:
    """Delete the ACLs and SCRAM credentials of the given services of ``tenant``."""
    filters = []
    deletions: list[UserScramCredentialAlteration] = []
    for service in services:
        username = principal_name(tenant, service)
        filters.append(
            AclBindingFilter(
                ResourceType.ANY,
                None,  # type: ignore[arg-type]  # None matches any name
                ResourcePatternType.ANY,
                f"User:{username}",
                None,  # type: ignore[arg-type]  # any host
                AclOperation.ANY,
                AclPermissionType.ANY,
            )
        )
        deletions.append(UserScramCredentialDeletion(username, ScramMechanism.SCRAM_SHA_512))
    if filters:
        _wait(admin.delete_acls(filters, request_timeout=TIMEOUT_S), "delete_acls")
        users = {principal_name(tenant, s) for s in services}
        _await_acls(admin, users, lambda seen: seen == 0, "no ACLs")
        _wait(admin.alter_user_scram_credentials(deletions), "SCRAM credential deletion")
