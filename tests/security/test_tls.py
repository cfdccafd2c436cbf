"""SASL_SSL on a private broker (tests/security/tls_broker.py): the project's TLS settings
(``SCORESTREAM_KAFKA_SECURITY_PROTOCOL=SASL_SSL``, ``..._SSL_CA_LOCATION``,
``..._SSL_ENDPOINT_IDENTIFICATION``) give an encrypted, verified connection on which the same
per-tenant ACLs hold; an untrusted CA or a wrong host name is refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from scorestream.admin import ensure_tenant_topics
from scorestream.deploy import principals as security
from scorestream.kafka_config import admin_config, producer_config
from scorestream.settings import KafkaSettings
from scorestream.topics import REGISTRY
from tests.security.test_broker_acls import (
    TOPIC_DENIED,
    consume_outcome,
    describe_error,
    produce_error,
)
from tests.security.tls_broker import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    TlsBroker,
    make_certificates,
    start_tls_broker,
)
from tests.worker_support import (
    Tenant,
    enriched_events,
    exactly_once,
    publish_enriched,
    read_predictions,
)

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def tls_broker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsBroker]:
    broker = start_tls_broker(tmp_path_factory.mktemp("tls-broker"))
    try:
        yield broker
    finally:
        broker.stop()


def tls_settings(
    bootstrap: str,
    username: str,
    password: str,
    ca: Path,
    *,
    verify_host: bool = True,
) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_SSL",
        sasl_username=username,
        sasl_password=SecretStr(password),
        ssl_ca_location=ca,
        ssl_endpoint_identification=verify_host,
    )


def test_tenants_are_isolated_over_sasl_ssl(tls_broker: TlsBroker) -> None:
    admin = AdminClient(admin_config(tls_settings(tls_broker.tls, ADMIN_USER, ADMIN_PASSWORD,
                                                  tls_broker.ca)))  # fmt: skip
    plain = KafkaSettings(bootstrap_servers=tls_broker.plaintext)
    a, b = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    for tenant in (a, b):
        ensure_tenant_topics(tenant, kafka=plain)
    principals = {t: security.provision(admin, t, ["worker"])["worker"] for t in (a, b)}
    try:
        worker_a = tls_settings(
            tls_broker.tls, principals[a].username, principals[a].password, tls_broker.ca
        )
        own_in = REGISTRY.topic("transactions.enriched", a)
        seed = Producer(producer_config(plain))
        seed.produce(own_in, b"seed")
        assert seed.flush(60) == 0
        assert produce_error(worker_a, REGISTRY.topic("predictions", a)) is None
        assert consume_outcome(worker_a, f"{a}.worker", own_in) is None
        assert describe_error(worker_a, REGISTRY.topic("transactions.enriched", b)) == TOPIC_DENIED
        assert produce_error(worker_a, REGISTRY.topic("predictions", b)) == TOPIC_DENIED
    finally:
        for tenant in (a, b):
            security.deprovision(admin, tenant, ["worker"])


def _connect_errors(settings: KafkaSettings) -> list[KafkaError]:
    """[] once metadata is read; else the client's errors once one is a TLS failure (a refused
    connection to another address of the host, e.g. ::1, is not the answer being tested)."""
    errors: list[KafkaError] = []
    producer = Producer(producer_config(settings) | {"error_cb": errors.append, "log_level": 0})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        producer.poll(0.5)
        tls = [e for e in errors if e.code() in (KafkaError._SSL, KafkaError._TRANSPORT)]
        if any("certificate" in e.str() for e in tls):
            return [e for e in tls if "certificate" in e.str()]
        try:
            producer.list_topics(timeout=2)
        except KafkaException:
            continue
        return []
    return errors


def test_an_untrusted_certificate_is_refused(tls_broker: TlsBroker, tmp_path: Path) -> None:
    other_ca = make_certificates(tmp_path / "other", name="other")
    settings = tls_settings(tls_broker.tls, ADMIN_USER, ADMIN_PASSWORD, other_ca)
    errors = _connect_errors(settings)
    assert errors, "connected with a CA that did not sign the broker's certificate"
    assert errors[0].code() in (KafkaError._SSL, KafkaError._TRANSPORT)
    assert "certificate verify failed" in errors[0].str()


def test_the_host_name_is_verified(tls_broker: TlsBroker) -> None:
    """The certificate names IP 127.0.0.1 only: 'localhost' does not match unless the
    (default-on) endpoint identification is turned off."""
    port = tls_broker.tls.rsplit(":", 1)[1]
    by_name = f"localhost:{port}"
    errors = _connect_errors(tls_settings(by_name, ADMIN_USER, ADMIN_PASSWORD, tls_broker.ca))
    assert errors, "a certificate for 127.0.0.1 was accepted for 'localhost'"
    assert "certificate verify failed" in errors[0].str()
    relaxed = tls_settings(by_name, ADMIN_USER, ADMIN_PASSWORD, tls_broker.ca, verify_host=False)
    assert _connect_errors(relaxed) == []


def test_the_worker_scores_over_sasl_ssl_as_its_own_principal(
    tls_broker: TlsBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real worker process whose only Kafka settings are SASL_SSL + its principal + the CA."""
    monkeypatch.delenv("SCORESTREAM_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", tls_broker.plaintext)  # the test's own setup
    tenant = Tenant(f"w{uuid.uuid4().hex[:8]}", tmp_path / "models")
    ensure_tenant_topics(tenant.name)
    tenant.publish_model("1")
    tenant.promote("1")
    admin = AdminClient(
        admin_config(tls_settings(tls_broker.tls, ADMIN_USER, ADMIN_PASSWORD, tls_broker.ca))
    )
    worker = security.provision(admin, tenant.name, ["worker"])["worker"]
    try:
        env = worker.client_env(tls_broker.tls, protocol="SASL_SSL", ca_location=tls_broker.ca)
        tenant.start_worker("w-tls", **env)
        events = list(enriched_events(tenant.name, 200))
        publish_enriched(tenant, events)
        preds = read_predictions(tls_broker.plaintext, tenant, len(events), timeout=180)
        ids = {e.transaction.transaction_id for e in events}
        assert exactly_once(preds, ids) == (0, 0, 0), tenant.worker_logs()
        assert worker.password not in tenant.worker_logs()
    finally:
        tenant.stop_all()
        security.deprovision(admin, tenant.name, ["worker"])
