"""Shared fixtures: one real Kafka broker per test session, random names per test.

Broker choice, in order: ``KAFKA_BOOTSTRAP_SERVERS`` if set; a testcontainers Kafka if a Docker
engine answers; else the local broker assembled from Maven jars (``scorestream broker``), started
once and stopped at the end unless it was already running. On that local broker the topics the
tests' random tenants created are deleted at the end (the development broker's data outlives the
session; one ``make check`` creates about 600 topics).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from scorestream.dev.broker import LocalBroker
from scorestream.settings import BrokerSettings
from tests.kafka_helpers import TestTopics

# Local state: every test process (the controller and each xdist worker import this module
# once) gets its own SCORESTREAM_HOME, so that tests never share models, run directories or
# API keys by accident, nor touch the user's. The local broker stays where it is (the user's,
# or CI's SCORESTREAM_BROKER_HOME): pinned before the home moves, inherited by the workers.
os.environ.setdefault("SCORESTREAM_BROKER_HOME", str(BrokerSettings().home))
_TEST_HOME = tempfile.mkdtemp(prefix="scorestream-test-home-")
os.environ["SCORESTREAM_HOME"] = _TEST_HOME


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
_CLEANUP: list[TestTopics] = []


def pytest_configure(config: pytest.Config) -> None:
    """With pytest-xdist (``-n``), the controller starts the local broker once and hands its
    address to every worker through ``KAFKA_BOOTSTRAP_SERVERS`` (inherited by the workers it
    spawns after this hook): workers starting or stopping a shared broker themselves would race.
    Nothing happens in a single process (the fixture below starts the broker on first use) or
    when ``KAFKA_BOOTSTRAP_SERVERS`` is already set."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    os.environ[_LOCK_DIR_ENV] = tempfile.mkdtemp(prefix="scorestream-test-locks-")
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return
    broker = LocalBroker()
    if not broker.status().running:
        _STARTED_FOR_WORKERS.append(broker)
    bootstrap = broker.start().bootstrap
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    _CLEANUP.append(TestTopics(bootstrap))


def pytest_unconfigure(config: pytest.Config) -> None:
    while _CLEANUP:
        _CLEANUP.pop().delete_new()
    while _STARTED_FOR_WORKERS:
        _STARTED_FOR_WORKERS.pop().stop()
    shutil.rmtree(_TEST_HOME, ignore_errors=True)
    if not hasattr(config, "workerinput") and os.environ.get(_LOCK_DIR_ENV):
        shutil.rmtree(os.environ.pop(_LOCK_DIR_ENV), ignore_errors=True)


_LOCK_DIR_ENV = "SCORESTREAM_TEST_LOCK_DIR"


@contextlib.contextmanager
def _machine_share(exclusive: bool) -> Iterator[None]:
    """A readers-writer lock over the xdist workers of one run: every test holds it shared, an
    ``exclusive`` test alone. The turnstile gives the exclusive test precedence: while it waits
    for the running tests to end, no new test starts."""
    lock_dir = os.environ.get(_LOCK_DIR_ENV)
    if not lock_dir or not Path(lock_dir).is_dir():
        yield
        return
    with (
        Path(lock_dir, "turnstile").open("a") as turnstile,
        Path(lock_dir, "machine").open("a") as machine,
    ):
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(machine, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(machine, fcntl.LOCK_UN)


def _file_rank(items: list[pytest.Item]) -> int:
    """Where a file's tests go in the run: the longest kinds first, so that no worker is still
    in a three-minute chaos run when the others have nothing left; ``exclusive`` ones last, so
    that they wait for short tests only (waiting for a long one leaves every worker idle)."""
    marks = {m.name for item in items for m in item.iter_markers()}
    if "exclusive" in marks:
        return 4
    if "chaos" in marks:
        return 0
    if "e2e" in marks:
        return 1
    return 2 if "slow" in marks else 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Whole files ordered by :func:`_file_rank` (stable: path order within a rank). With
    xdist's ``--dist loadfile --no-loadscope-reorder`` (the Makefile) this is the order the
    workers take the files in; xdist's own reorder puts the files with most tests first, the
    unit tests, and the chaos run started last."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    ranked = sorted(files.values(), key=_file_rank)
    items[:] = [item for group in ranked for item in group]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    """Outermost (before pytest-timeout's timer): an ``exclusive`` test waits for the other
    workers' running tests and has the machine to itself (a latency bound under 5x overload
    does not hold while another worker's test saturates both cores: CI saw 2.5 s stalls)."""
    with _machine_share(item.get_closest_marker("exclusive") is not None):
        yield


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
    topics = TestTopics(state.bootstrap)
    try:
        yield state.bootstrap
    finally:
        os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        topics.delete_new()
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


@pytest.fixture(autouse=True)
def _isolated_log_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values a test registers for log redaction (``scorestream.logs.register_secret``, e.g. a
    webhook client's URL parts) are forgotten after it: the registry is process-wide, and a
    worker process runs many tests (a test's ``/hook`` masked another test's expected output)."""
    from scorestream import logs  # noqa: PLC0415

    monkeypatch.setattr(logs, "_secrets", set(logs._secrets))
