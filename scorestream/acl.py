"""The least-privilege ACL model of every service of a tenant, derived from the topic registry.

One function, :func:`service_acl_rules`, decides what a ``<tenant>-<service>`` principal may do;
two renderers use it, so what runs in production and what the tests prove cannot drift apart:

* :mod:`scorestream.k8s` writes the rules into the Strimzi ``KafkaUser`` manifests;
* :mod:`scorestream.security` turns them into real broker state (SCRAM credentials and
  ``create_acls``) for the security suite and for clusters without the Strimzi operator.

The rules: Read+Describe on the topics a service consumes, Write+Describe on the topics it
produces (its DLQs included, since a stream's consumers write its DLQ), Read on its consumer
groups (``<tenant>.<service>`` literal and ``<tenant>.<service>.`` prefixed) and, for the
exactly-once services, Write+Describe on the transactional ids ``<tenant>.<service>.*``. Every
rule names only the tenant's own resources or a global stream (``model-events``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scorestream.topics import REGISTRY, TopicRegistry, validate_tenant

ResourceKind = Literal["topic", "group", "transactionalId"]
PatternKind = Literal["literal", "prefix"]
Operation = Literal["Read", "Write", "Describe", "DescribeConfigs", "Create"]

EXACTLY_ONCE: frozenset[str] = frozenset({"enricher", "worker", "decision", "notifier", "audit"})
"""Services with a transactional producer (``transactional.id`` = ``<tenant>.<service>.<pod>``)."""

EXTRA_READS: dict[str, tuple[str, ...]] = {
    # The audit join restores its pending state from its own changelog on assignment.
    "audit": ("audit.state",),
}
"""Streams a service reads that the registry lists under another reader (``operator``)."""

QUIX_SERVICES: frozenset[str] = frozenset({"enricher"})
"""Services built on Quix Streams. Quix checks the config of every topic it is given
(DescribeConfigs) and creates its own internal topics, named ``changelog__<group>--...`` and
``repartition__<group>--...`` with ``<group>`` = ``<tenant>.<service>`` (quixstreams 3.28
``TopicManager._internal_name``), so it gets DescribeConfigs on its topics and Create, Read,
Write, Describe and DescribeConfigs on those two prefixes: still only its own tenant's names."""

_INTERNAL: tuple[Operation, ...] = ("Create", "Read", "Write", "Describe", "DescribeConfigs")

_READ: tuple[Operation, ...] = ("Read", "Describe")
_WRITE: tuple[Operation, ...] = ("Write", "Describe")


@dataclass(frozen=True, slots=True)
class AclRule:
    """One allow rule in Strimzi's vocabulary (``simple`` authorization, host ``*``)."""

    resource: ResourceKind
    name: str
    pattern: PatternKind
    operations: tuple[Operation, ...]


def principal_name(tenant: str, service: str) -> str:
    """The SCRAM user (and Strimzi ``KafkaUser`` name) of one service of one tenant."""
    return f"{validate_tenant(tenant)}-{service}"


def service_acl_rules(
    tenant: str, service: str, *, registry: TopicRegistry = REGISTRY
) -> list[AclRule]:
    """The least-privilege rules of one service of one tenant, in a stable order."""
    validate_tenant(tenant)
    reads = {s.name: s for s in registry.read_by(service)}
    for extra in EXTRA_READS.get(service, ()):
        reads.setdefault(extra, registry.get(extra))
    writes = registry.written_by(service)
    quix: tuple[Operation, ...] = ("DescribeConfigs",) if service in QUIX_SERVICES else ()
    rules = [AclRule("topic", s.topic(tenant), "literal", _READ + quix) for s in reads.values()]
    rules += [AclRule("topic", s.topic(tenant), "literal", _WRITE + quix) for s in writes]
    group = f"{tenant}.{service}"
    if service in QUIX_SERVICES:
        rules += [
            AclRule("topic", f"{kind}__{group}--", "prefix", _INTERNAL)
            for kind in ("changelog", "repartition")
        ]
    rules.append(AclRule("group", group, "literal", ("Read",)))
    rules.append(AclRule("group", f"{group}.", "prefix", ("Read",)))
    if service in EXACTLY_ONCE:
        rules.append(AclRule("transactionalId", f"{group}.", "prefix", _WRITE))
    return rules
