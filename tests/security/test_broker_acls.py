"""Tenant isolation on the real broker: SCRAM principals with the KafkaUsers' ACLs.

Every principal is created from :func:`scorestream.deploy.acl.service_acl_rules` (the generator of
the Strimzi KafkaUsers) on the SASL_PLAINTEXT SCRAM-SHA-512 listener of the local broker, whose
StandardAuthorizer denies everything without an ACL. Each denial below is paired with the same
operation succeeding on the principal's own resources, so a broken setup cannot pass vacuously.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from scorestream.deploy import principals as security
from scorestream.deploy.acl import principal_name, service_acl_rules
from scorestream.deploy.k8s import generate as k8s
from scorestream.kafka_config import (
    admin_config,
    consumer_config,
    producer_config,
    transactional_producer_config,
)
from scorestream.settings import KafkaSettings
from scorestream.state import StateStore
from scorestream.table import GlobalTable
from scorestream.topics import REGISTRY
from tests.security.conftest import Provision, sasl_settings

pytestmark = [pytest.mark.security, pytest.mark.integration]

WAIT_S = 60.0


def _as(sasl_bootstrap: str, p: security.ServicePrincipal) -> KafkaSettings:
    return sasl_settings(sasl_bootstrap, p.username, p.password)


def describe_error(settings: KafkaSettings, topic: str) -> int | None:
    """The error code of describing ``topic``, None if it is described."""
    admin = AdminClient(admin_config(settings))
    [future] = admin.describe_topics(TopicCollection([topic]), request_timeout=WAIT_S).values()
    try:
        future.result(WAIT_S)
    except KafkaException as exc:
        return int(exc.args[0].code())
    return None


def produce_error(settings: KafkaSettings, topic: str) -> int | None:
    """The delivery error code of one record to ``topic``, None if it was acknowledged."""
    producer = Producer(producer_config(settings) | {"delivery.timeout.ms": 30_000})
    reports: list[KafkaError | None] = []
    producer.produce(topic, b"probe", on_delivery=lambda err, _msg: reports.append(err))
    producer.flush(WAIT_S)
    assert len(reports) == 1, "no delivery report"
    err = reports[0]
    return None if err is None else int(err.code())


def consume_outcome(settings: KafkaSettings, group: str, topic: str) -> int | None:
    """Subscribe with ``group``: the first error code, or None once a record is read."""
    consumer = Consumer(consumer_config(settings, group_id=group))
    consumer.subscribe([topic])
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            err = msg.error()
            if err is None:
                return None
            if err.code() != KafkaError._PARTITION_EOF:
                return int(err.code())
    finally:
        consumer.close()
    raise AssertionError(f"neither a record nor an error from {topic} within {WAIT_S}s")


def init_transactions_error(settings: KafkaSettings, transactional_id: str) -> int | None:
    producer = Producer(transactional_producer_config(settings, transactional_id=transactional_id))
    try:
        producer.init_transactions(WAIT_S)
    except KafkaException as exc:
        return int(exc.args[0].code())
    return None


def seed(admin: AdminClient, topic: str) -> None:
    """One record in ``topic``, written by the super user, so a granted read has data."""
    producer = Producer({"bootstrap.servers": _bootstrap_of(admin)})
    producer.produce(topic, b"seed")
    assert producer.flush(WAIT_S) == 0


def _bootstrap_of(_: AdminClient) -> str:
    import os  # noqa: PLC0415

    return os.environ["KAFKA_BOOTSTRAP_SERVERS"]  # PLAINTEXT: the ANONYMOUS super user


TOPIC_DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = KafkaError.GROUP_AUTHORIZATION_FAILED
TXN_DENIED = KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_broker_acls_are_the_kafkauser_acls(
    private_tenant: Provision, sasl_admin: AdminClient
) -> None:
    """What the broker enforces is exactly what the Strimzi KafkaUser manifests declare."""
    tenant, principals = private_tenant(k8s.SERVICES)
    for service, p in principals.items():
        assert p.username == principal_name(tenant, service)
        assert p.username == k8s.kafka_user(tenant, service)["metadata"]["name"]
        declared = {
            (acl["resource"]["type"], acl["resource"]["name"], acl["resource"]["patternType"], op)
            for acl in k8s.kafka_user(tenant, service)["spec"]["authorization"]["acls"]
            for op in acl["operations"]
        }
        kinds = {"TOPIC": "topic", "GROUP": "group", "TRANSACTIONAL_ID": "transactionalId"}
        patterns = {"LITERAL": "literal", "PREFIXED": "prefix"}
        operations = {v: k for k, v in security._OPERATION.items()}
        on_broker = {
            (
                kinds[b.restype.name],
                b.name,
                patterns[b.resource_pattern_type.name],
                operations[b.operation],
            )
            for b in security.principal_acls(sasl_admin, p.username)
        }
        assert on_broker == declared, service
        assert all(
            b.permission_type.name == "ALLOW"
            for b in security.principal_acls(sasl_admin, p.username)
        )
        assert len(service_acl_rules(tenant, service)) > 0


def test_tenant_a_cannot_touch_tenant_b(
    private_tenant: Provision, sasl_admin: AdminClient, sasl_bootstrap: str
) -> None:
    tenant_a, a = private_tenant(["worker", "decision", "gateway"])
    tenant_b, _ = private_tenant(["worker"])
    worker_a = _as(sasl_bootstrap, a["worker"])
    own_in = REGISTRY.topic("transactions.enriched", tenant_a)
    own_out = REGISTRY.topic("predictions", tenant_a)
    seed(sasl_admin, own_in)
    seed(sasl_admin, REGISTRY.topic("transactions.enriched", tenant_b))

    # controls: the same operations on the principal's own resources succeed
    assert describe_error(worker_a, own_in) is None
    assert produce_error(worker_a, own_out) is None
    assert consume_outcome(worker_a, f"{tenant_a}.worker", own_in) is None
    assert (
        consume_outcome(worker_a, f"{tenant_a}.worker.shadow-{uuid.uuid4().hex[:4]}", own_in)
        is None
    )

    # describe, read and write tenant B's topics: every one of them, for every service of A
    b_topics = [s.topic(tenant_b) for s in REGISTRY.tenant_streams()]
    for service, p in a.items():
        settings = _as(sasl_bootstrap, p)
        for topic in b_topics:
            assert describe_error(settings, topic) == TOPIC_DENIED, (service, topic)
    assert (
        consume_outcome(
            worker_a, f"{tenant_a}.worker", REGISTRY.topic("transactions.enriched", tenant_b)
        )
        == TOPIC_DENIED
    )
    assert produce_error(worker_a, REGISTRY.topic("predictions", tenant_b)) == TOPIC_DENIED
    gateway_a = _as(sasl_bootstrap, a["gateway"])
    assert produce_error(gateway_a, REGISTRY.topic("transactions", tenant_a)) is None
    assert produce_error(gateway_a, REGISTRY.topic("transactions", tenant_b)) == TOPIC_DENIED

    # join or inspect tenant B's consumer groups (on A's own topic, so only the group is denied)
    assert consume_outcome(worker_a, f"{tenant_b}.worker", own_in) == GROUP_DENIED
    admin_a = AdminClient(admin_config(worker_a))
    from confluent_kafka import ConsumerGroupTopicPartitions  # noqa: PLC0415

    [offsets] = admin_a.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(f"{tenant_b}.worker")], request_timeout=WAIT_S
    ).values()
    with pytest.raises(KafkaException) as denied:
        offsets.result(WAIT_S)
    assert denied.value.args[0].code() == GROUP_DENIED


def test_least_privilege_inside_a_tenant(private_tenant: Provision, sasl_bootstrap: str) -> None:
    """A service cannot write a stream it does not produce, nor use another service's group."""
    tenant, a = private_tenant(["worker", "notifier"])
    worker = _as(sasl_bootstrap, a["worker"])
    notifier = _as(sasl_bootstrap, a["notifier"])
    assert produce_error(worker, REGISTRY.topic("decisions", tenant)) == TOPIC_DENIED
    assert produce_error(notifier, REGISTRY.topic("predictions", tenant)) == TOPIC_DENIED
    assert describe_error(notifier, REGISTRY.topic("transactions.enriched", tenant)) == (
        TOPIC_DENIED
    )
    own_in = REGISTRY.topic("transactions.enriched", tenant)
    assert consume_outcome(worker, f"{tenant}.decision", own_in) == GROUP_DENIED


def assign_only_errors(
    settings: KafkaSettings, group: str, topic: str, seconds: float
) -> list[int]:
    """Error codes an ``assign()``-only consumer with ``group`` meets reading ``topic`` from the
    start for ``seconds`` (it stops at the first error); it never commits nor asks for offsets."""
    consumer = Consumer(consumer_config(settings, group_id=group) | {"enable.partition.eof": False})
    partitions = consumer.list_topics(topic, timeout=WAIT_S).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    errors: list[int] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and not errors:
            errors += [
                int(err.code())
                for msg in consumer.consume(100, 0.5)
                if (err := msg.error()) is not None
            ]
    finally:
        consumer.close()
    return errors


class _Bytes:
    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, data: bytes) -> bytes:
        return data


def test_assign_only_readers_need_their_group_acl(
    private_tenant: Provision, sasl_admin: AdminClient, sasl_bootstrap: str
) -> None:
    """The state restores (``<group>.restore``) and the enricher's merchant table
    (``<tenant>.enricher.table``) assign partitions and never commit, yet librdkafka still looks
    up their group's coordinator: they work under their service's own principal (the
    ``<tenant>.<service>.`` group prefix rule), and a group outside it is refused."""
    tenant, p = private_tenant(["enricher", "merchant"])
    enricher, merchant = _as(sasl_bootstrap, p["enricher"]), _as(sasl_bootstrap, p["merchant"])
    table_topic = REGISTRY.topic("merchant-features", tenant)
    producer = Producer({"bootstrap.servers": _bootstrap_of(sasl_admin)})
    for service in ("enricher", "merchant"):
        producer.produce(REGISTRY.topic(f"{service}.state", tenant), b"v", b"k", partition=0)
    producer.produce(table_topic, b"state", b"merchant-1", partition=0)
    assert producer.flush(WAIT_S) == 0

    for service, settings, source in (
        ("enricher", enricher, "transactions"),
        ("merchant", merchant, "merchant-activity"),
    ):
        store = StateStore(
            "probe",
            source=REGISTRY.topic(source, tenant),
            changelog=REGISTRY.topic(f"{service}.state", tenant),
            codec=_Bytes(),
            kafka=settings,
            group_id=f"{tenant}.{service}",
            restore_timeout_s=WAIT_S,
        )
        store.restore([0])  # reads <tenant>.<service>.state with group <tenant>.<service>.restore
        assert store.partition(0).get("k") == b"v", service

    seen: list[object] = []
    table = GlobalTable(
        table_topic,
        seen.append,
        kafka=enricher,
        client_id="acl-probe",
        group_id=f"{tenant}.enricher.table",
    )
    try:
        table.bootstrap(WAIT_S)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            table.poll()
            time.sleep(0.2)
    finally:
        table.close()
    assert (len(seen), table.errors) == (1, 0)
    assert assign_only_errors(enricher, f"{tenant}.enricher.table", table_topic, 10) == []

    # the same reader under a group the principal has no ACL for: FindCoordinator is refused
    assert assign_only_errors(enricher, f"{tenant}.other.table", table_topic, WAIT_S) == [
        GROUP_DENIED
    ]


def test_enricher_reroutes_into_transactions_and_the_merchant_stage_stays_off_the_path(
    private_tenant: Provision, sasl_bootstrap: str
) -> None:
    tenant, p = private_tenant(["enricher", "merchant"])
    enricher, merchant = _as(sasl_bootstrap, p["enricher"]), _as(sasl_bootstrap, p["merchant"])
    # a record on a partition its key does not hash to is moved back into the transactions
    assert produce_error(enricher, REGISTRY.topic("transactions", tenant)) is None
    assert produce_error(enricher, REGISTRY.topic("merchant-features", tenant)) == TOPIC_DENIED
    assert produce_error(merchant, REGISTRY.topic("merchant-activity", tenant)) is None
    for stream in ("transactions", "transactions.enriched", "predictions"):
        assert produce_error(merchant, REGISTRY.topic(stream, tenant)) == TOPIC_DENIED, stream
    assert describe_error(enricher, REGISTRY.topic("labels", tenant)) == TOPIC_DENIED
    assert init_transactions_error(merchant, f"{tenant}.merchant.merchant-0") is None
    assert init_transactions_error(merchant, f"{tenant}.enricher.enricher-0") == TXN_DENIED


def test_transactional_ids_are_per_tenant_and_service(
    private_tenant: Provision, sasl_bootstrap: str
) -> None:
    tenant_a, a = private_tenant(["worker"])
    tenant_b, _ = private_tenant(["worker"])
    worker_a = _as(sasl_bootstrap, a["worker"])
    assert init_transactions_error(worker_a, f"{tenant_a}.worker.pod-0") is None
    assert init_transactions_error(worker_a, f"{tenant_b}.worker.pod-0") == TXN_DENIED
    assert init_transactions_error(worker_a, f"{tenant_a}.decision.pod-0") == TXN_DENIED
    # a prefix match is on the whole "<tenant>.<service>." string, not on the tenant alone
    assert init_transactions_error(worker_a, f"{tenant_a}.workerx.pod-0") == TXN_DENIED


@pytest.mark.parametrize("case", ["wrong password", "unknown user", "another principal's"])
def test_bad_credentials_are_rejected(
    private_tenant: Provision, sasl_bootstrap: str, case: str
) -> None:
    tenant, a = private_tenant(["worker", "decision"])
    username, password = {
        "wrong password": (a["worker"].username, a["worker"].password + "x"),
        "unknown user": (f"{tenant}-nobody", a["worker"].password),
        "another principal's": (a["worker"].username, a["decision"].password),
    }[case]
    errors: list[KafkaError] = []
    conf = producer_config(sasl_settings(sasl_bootstrap, username, password))
    producer = Producer(conf | {"error_cb": errors.append, "log_level": 0})
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not errors:
        producer.poll(0.5)
    assert errors, "no error reported"
    assert errors[0].code() == KafkaError._AUTHENTICATION
    assert "invalid credentials" in errors[0].str()
    assert password not in errors[0].str()
