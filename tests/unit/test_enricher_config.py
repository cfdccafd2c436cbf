"""The enricher's Quix client settings come from scorestream.kafka_config (shared with every
client), with the two deliberate differences from Quix's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from consumers.enricher import EnricherSettings
from consumers.enricher_quix import connection, consumer_extra, producer_extra
from scorestream.settings import KafkaSettings

SASL = KafkaSettings(
    bootstrap_servers="k1:9094,k2:9094",
    security_protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="acme-enricher",
    sasl_password=SecretStr("s3cret"),
    ssl_ca_location=Path("/etc/ca.pem"),
)


def test_sasl_and_tls_settings_reach_the_connection_config() -> None:
    conn, rest = connection(SASL, client_id="enricher-0")
    d = conn.as_librdkafka_dict()
    assert d["bootstrap.servers"] == "k1:9094,k2:9094"
    assert d["security.protocol"] == "sasl_ssl"
    assert d["sasl.mechanism"] == "SCRAM-SHA-512"
    assert d["sasl.username"] == "acme-enricher"
    assert d["sasl.password"] == "s3cret"
    assert d["ssl.ca.location"] == "/etc/ca.pem"
    assert d["ssl.endpoint.identification.algorithm"] == "https"
    assert d["client.id"] == "enricher-0"
    assert rest == {"log_level": 4}  # what Quix's ConnectionConfig has no field for


def test_producer_is_transactional_with_a_stable_id_and_the_default_partitioner() -> None:
    extra = producer_extra(
        SASL, transactional_id="acme.enricher.enricher-0", client_id="enricher-0", timeout_s=30
    )
    assert extra["transactional.id"] == "acme.enricher.enricher-0"
    assert extra["partitioner"] == "consistent_random"  # not Quix's murmur2
    assert extra["enable.idempotence"] is True
    assert extra["acks"] == "all"
    assert extra["transaction.timeout.ms"] == 30_000
    assert extra["delivery.timeout.ms"] == 30_000
    assert not any("sasl" in k or "bootstrap" in k for k in extra), "connection in one place"


def test_consumer_reads_committed_and_leaves_quix_its_own_settings() -> None:
    extra = consumer_extra(
        SASL,
        group_id="acme.enricher",
        client_id="enricher-0",
        session_timeout_ms=10_000,
        max_poll_interval_ms=120_000,
    )
    assert extra["isolation.level"] == "read_committed"
    assert extra["session.timeout.ms"] == 10_000
    assert extra["max.poll.interval.ms"] == 120_000
    for owned in ("group.id", "auto.offset.reset", "enable.auto.commit"):
        assert owned not in extra
    assert not any("sasl" in k for k in extra)


def test_settings_names_and_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCORESTREAM_ENRICHER_STATE_DIR", str(tmp_path))
    s = EnricherSettings(tenant="acme", instance_id="pod-1")
    assert s.group_id == "acme.enricher"
    assert s.transactional_id == "acme.enricher.pod-1"
    assert s.resolved_state_dir("cluster-a") == tmp_path / "cluster-a" / "acme" / "pod-1"
    assert s.resolved_state_dir("cluster-b") != s.resolved_state_dir("cluster-a")
    with pytest.raises(ValidationError):
        EnricherSettings(tenant="Not A Tenant")
    with pytest.raises(ValidationError):
        EnricherSettings(tenant="acme", max_batch=0)
