"""confluent-kafka client configuration built from settings, in one place.

Every client of scorestream gets its configuration here, so security settings, timeouts and the
exactly-once defaults are decided once: ``producer_config``, ``transactional_producer_config``,
``consumer_config`` and ``admin_config`` all start from :func:`common_config`.
"""

from __future__ import annotations

from typing import Any

from scorestream.settings import KafkaSettings
from scorestream.topics import MAX_MESSAGE_BYTES

ClientConfig = dict[str, Any]

LOCAL_DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def resolve_bootstrap(settings: KafkaSettings) -> str:
    """Explicit setting first, then the running local broker, then the default port."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    from scorestream.broker.state import read_running_bootstrap  # noqa: PLC0415  (no import cycle)

    return read_running_bootstrap() or LOCAL_DEFAULT_BOOTSTRAP


def common_config(settings: KafkaSettings, *, client_id: str | None = None) -> ClientConfig:
    conf: ClientConfig = {
        "bootstrap.servers": resolve_bootstrap(settings),
        "client.id": client_id or settings.client_id,
        "security.protocol": settings.security_protocol,
        "log_level": 4,  # librdkafka: warnings and worse (its info lines are noise in CLIs)
    }
    if settings.security_protocol.startswith("SASL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        conf |= {
            "sasl.mechanism": settings.sasl_mechanism,
            "sasl.username": settings.sasl_username,
            "sasl.password": password,
        }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        if settings.ssl_ca_location:
            conf["ssl.ca.location"] = str(settings.ssl_ca_location)
        if settings.ssl_certificate_location:
            conf["ssl.certificate.location"] = str(settings.ssl_certificate_location)
        if settings.ssl_key_location:
            conf["ssl.key.location"] = str(settings.ssl_key_location)
        if settings.ssl_key_password:
            conf["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
        conf["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.ssl_endpoint_identification else "none"
        )
    return conf


def producer_config(settings: KafkaSettings, *, client_id: str | None = None) -> ClientConfig:
    """Idempotent producer: no duplicates or reordering from retries; bounded local queue.

    ``murmur2_random`` is the Java client's partitioner: a key lands on the same partition
    whichever client produced it (:mod:`scorestream.partitioning`).

    ``message.max.bytes`` is the topics' ``max.message.bytes`` (the registry's
    :data:`~scorestream.topics.MAX_MESSAGE_BYTES`): a record larger than a topic accepts is
    refused at ``produce()`` (``MSG_SIZE_TOO_LARGE``), before it can fail a transaction."""
    return common_config(settings, client_id=client_id) | {
        "partitioner": "murmur2_random",
        "message.max.bytes": MAX_MESSAGE_BYTES,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 100_000,
        "queue.buffering.max.kbytes": 65_536,
        "delivery.timeout.ms": 120_000,
    }


def transactional_producer_config(
    settings: KafkaSettings, *, transactional_id: str, client_id: str | None = None
) -> ClientConfig:
    """Exactly-once producer; ``transactional_id`` must be stable per instance (pod name)."""
    return producer_config(settings, client_id=client_id) | {
        "transactional.id": transactional_id,
        "transaction.timeout.ms": 60_000,
        "delivery.timeout.ms": 60_000,  # must not exceed the transaction timeout
        # The broker answers CONCURRENT_TRANSACTIONS while the previous commit's markers are
        # written; librdkafka's default 100 ms backoff then stalls every next batch (measured in
        # bench/worker_bench.py: 7x passthrough at batch 1). Retry fast instead.
        "retry.backoff.ms": 10,
        "retry.backoff.max.ms": 50,
    }


def consumer_config(
    settings: KafkaSettings,
    *,
    group_id: str,
    client_id: str | None = None,
    read_committed: bool = True,
) -> ClientConfig:
    """Manual commits, cooperative rebalancing, and only committed transactional data."""
    return common_config(settings, client_id=client_id) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 45_000,
        "max.poll.interval.ms": 300_000,
        # see added partitions within 30 s (librdkafka's default: 5 min), so a stateful service
        # stops with PartitionCountMismatchError instead of running on
        "topic.metadata.refresh.interval.ms": 30_000,
    }


def reader_config(
    settings: KafkaSettings,
    *,
    group_id: str,
    client_id: str | None = None,
    fetch_wait_ms: int = 50,
) -> ClientConfig:
    """A reader that only ``assign()``s partitions and positions itself: no group membership, no
    commits (``group_id`` is required by librdkafka, never joined), committed data only."""
    return common_config(settings, client_id=client_id) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": fetch_wait_ms,
    }


def admin_config(settings: KafkaSettings, *, client_id: str | None = None) -> ClientConfig:
    return common_config(settings, client_id=client_id)


def redacted(conf: ClientConfig) -> ClientConfig:
    """A copy that is safe to log."""
    return {k: ("***" if "password" in k or "secret" in k else v) for k, v in conf.items()}
