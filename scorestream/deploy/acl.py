"""The least-privilege ACL model of every service of a tenant, derived from the topic registry.

One function, :func:`service_acl_rules`, decides what a ``<tenant>-<service>`` principal may do;
two renderers use it, so what runs in production and what the tests prove cannot drift apart:

* :mod:`scorestream.deploy.k8s.generate` writes the rules into the Strimzi ``KafkaUser`` manifests;
* :mod:`scorestream.deploy.principals` turns them into real broker state (SCRAM credentials and
  ``create_acls``) for the security suite and for clusters without the Strimzi operator.

The rules: Read+Describe on the topics a service consumes (its own state changelogs included,
:data:`EXTRA_READS`), Write+Describe on the topics it produces (its DLQs included, since a
stream's consumers write its DLQ), Read on its consumer groups (``<tenant>.<service>`` literal and
``<tenant>.<service>.`` prefixed) and, for the exactly-once services, Write+Describe on the
transactional ids ``<tenant>.<service>.*``. Every rule names only the tenant's own resources (there
is no global stream: promotions are ``<tenant>.model-events``, writable only by the tenant's
model-management principal ``<tenant>-retrain``, since an ACL cannot restrict by key); every rule
is a literal or a ``<tenant>.``-prefixed name. No rule grants Create (nor any cluster operation):
topics, internal changelogs included, are provisioned by the deploy step, never by a service.

The prefixed group rule also covers the ``assign()``-only readers, which never commit and never
ask for committed offsets: the state store restores and checkpoints (group
``<tenant>.<service>.restore``, :mod:`scorestream.state`), the enricher's replicated merchant
table (``<tenant>.enricher.table``, :mod:`scorestream.table`), the worker's model watcher
(``<tenant>.worker.models``) and the gateway's reply reader (``<tenant>.gateway.replies``). They
need it all the same: librdkafka looks up the group coordinator of every consumer configured
with a ``group.id``, and a FindCoordinator refused with GROUP_AUTHORIZATION_FAILED (it needs
Describe on the group, which Read implies) comes out of ``consume()`` as an error, which fails a
restore (``tests/security/test_broker_acls.py::test_assign_only_readers_need_their_group_acl``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scorestream.services import SERVICES, Delivery
from scorestream.topics import REGISTRY, TopicRegistry, validate_tenant

ResourceKind = Literal["topic", "group", "transactionalId"]
PatternKind = Literal["literal", "prefix"]
Operation = Literal["Read", "Write", "Describe"]

EXACTLY_ONCE: frozenset[str] = frozenset(
    s.name for s in SERVICES if s.delivery is Delivery.EXACTLY_ONCE
)
"""Services with a transactional producer (``transactional.id`` = ``<tenant>.<service>.<pod>``)."""

TRANSACTIONAL: frozenset[str] = frozenset(s.name for s in SERVICES if s.transactional)
"""Every service with a transactional producer: the exactly-once ones, and the monitor, which
writes its dead letters and their dedup mark in transactions of its own."""

EXTRA_READS: dict[str, tuple[str, ...]] = {
    # A keyed state store is restored from its own changelog on assignment (scorestream.state).
    "audit": ("audit.state",),
    "enricher": ("enricher.state",),
    "merchant": ("merchant.state",),
    # The gateway looks up whether an event whose delivery timed out was written after all.
    "gateway": ("transactions",),
}
"""Streams a service reads that the registry lists under another reader (``operator``): its
own state changelogs, which it writes in its transactions and reads back on assignment."""

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
    rules = [AclRule("topic", s.topic(tenant), "literal", _READ) for s in reads.values()]
    rules += [AclRule("topic", s.topic(tenant), "literal", _WRITE) for s in writes]
    group = f"{tenant}.{service}"
    rules.append(AclRule("group", group, "literal", ("Read",)))
    # the assign()-only readers' <group>.restore, <tenant>.enricher.table...: see the module doc
    rules.append(AclRule("group", f"{group}.", "prefix", ("Read",)))
    if service in TRANSACTIONAL:
        rules.append(AclRule("transactionalId", f"{group}.", "prefix", _WRITE))
    return rules
