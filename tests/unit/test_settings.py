from __future__ import annotations

import pytest
from pydantic import ValidationError

from scorestream.errors import SettingsError
from scorestream.kafka_config import (
    consumer_config,
    producer_config,
    redacted,
    transactional_producer_config,
)
from scorestream.settings import BrokerSettings, KafkaSettings, TopicSettings


def test_env_prefix_and_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORESTREAM_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("SCORESTREAM_KAFKA_CLIENT_ID", "svc")
    s = KafkaSettings()
    assert s.bootstrap_servers == "k1:9092,k2:9092"
    assert s.client_id == "svc"
    with pytest.raises(ValidationError):
        s.client_id = "other"  # type: ignore[misc]


def test_plain_kafka_bootstrap_servers_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCORESTREAM_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:19092")
    assert producer_config(KafkaSettings())["bootstrap.servers"] == "elsewhere:19092"


def test_sasl_scram_with_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9093")
    monkeypatch.setenv("SCORESTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SCORESTREAM_KAFKA_SASL_USERNAME", "acme-worker")
    monkeypatch.setenv("SCORESTREAM_KAFKA_SASL_PASSWORD", "canary-s3cret")
    monkeypatch.setenv("SCORESTREAM_KAFKA_SSL_CA_LOCATION", "/etc/kafka/ca.crt")
    s = KafkaSettings()
    assert "canary-s3cret" not in repr(s)
    conf = consumer_config(s, group_id="g")
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "acme-worker"
    assert conf["sasl.password"] == "canary-s3cret"
    assert conf["ssl.ca.location"] == "/etc/kafka/ca.crt"
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert "canary-s3cret" not in str(redacted(conf))


def test_sasl_without_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORESTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(SettingsError, match="SASL_USERNAME"):
        KafkaSettings()


def test_client_defaults_for_exactly_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k:9092")
    s = KafkaSettings()
    consumer = consumer_config(s, group_id="g")
    assert consumer["isolation.level"] == "read_committed"
    assert consumer["enable.auto.commit"] is False
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    producer = transactional_producer_config(s, transactional_id="worker-0")
    assert producer["enable.idempotence"] is True
    assert producer["acks"] == "all"
    assert producer["transactional.id"] == "worker-0"


def test_broker_settings_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCORESTREAM_BROKER_HEAP", "lots")
    with pytest.raises(ValidationError, match="heap"):
        BrokerSettings()


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValidationError, match="exceeds replication_factor"):
        TopicSettings(replication_factor=1, min_insync_replicas=2)
    assert TopicSettings(replication_factor=3, min_insync_replicas=2).min_insync_replicas == 2
