"""Shared fixtures: one real Kafka broker per test session, random names per test.

Broker choice, in order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; a testcontainers Kafka if a Docker
engine answers; else the local broker assembled from Maven jars (``scorestream broker``), started
once and stopped at the end unless it was already running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from scorestream.broker import LocalBroker


def _docker_engine_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        proc = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


_STARTED_FOR_WORKERS: list[LocalBroker] = []


def pytest_configure(config: pytest.Config) -> None:
    """With pytest-xdist (``-n``), the controller starts the local broker once and hands its
    address to every worker through ``KAFKA_BOOTSTRAP_SERVERS`` (inherited by the workers it
    spawns after this hook): workers starting or stopping a shared broker themselves would race.
    Nothing happens in a single process (the fixture below starts the broker on first use) or
    when ``KAFKA_BOOTSTRAP_SERVERS`` is already set."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return
    broker = LocalBroker()
    if not broker.status().running:
        _STARTED_FOR_WORKERS.append(broker)
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.start().bootstrap


def pytest_unconfigure(config: pytest.Config) -> None:
    while _STARTED_FOR_WORKERS:
        _STARTED_FOR_WORKERS.pop().stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a real broker; also exported as ``KAFKA_BOOTSTRAP_SERVERS``."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    if os.environ.get("SCORESTREAM_TEST_DOCKER", "auto") != "never" and _docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer  # noqa: PLC0415

        # cp-kafka 8.x is Apache Kafka 4.x; KRaft mode, no ZooKeeper.
        with KafkaContainer(image="confluentinc/cp-kafka:8.1.0").with_kraft() as container:
            bootstrap = container.get_bootstrap_server()
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
            try:
                yield bootstrap
            finally:
                os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        return
    broker = LocalBroker()
    was_running = broker.status().running
    state = broker.start()
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = state.bootstrap
    try:
        yield state.bootstrap
    finally:
        os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        if not was_running:
            broker.stop()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique("orders")`` → ``test-orders-1a2b3c4d``: fresh topic/group names per test."""
    run = uuid.uuid4().hex[:8]

    def make(prefix: str) -> str:
        return f"test-{prefix}-{run}-{uuid.uuid4().hex[:6]}"

    return make


@pytest.fixture
def admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def make_topic(admin: AdminClient, unique: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    """Create a uniquely named topic; all are deleted after the test."""
    created: list[str] = []

    def make(prefix: str = "topic", partitions: int = 3) -> str:
        name = unique(prefix)
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
            name
        ].result(30)
        created.append(name)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created, request_timeout=30).values():
            future.result(30)
