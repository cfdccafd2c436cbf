"""The broker's generated configuration, jar cache and tool command lines (no processes)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from scorestream.dev.broker import jars
from scorestream.dev.broker.config import Ports, server_properties
from scorestream.dev.broker.local import LocalBroker, _cluster_id, port_is_free
from scorestream.dev.broker.state import BrokerState, read_state, write_state
from scorestream.dev.broker.tools import TOOLS, tool_args
from scorestream.errors import ConfigError, ToolMissingError
from scorestream.settings import BrokerSettings
from scorestream.versions import KAFKA_VERSION


def _props(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_server_properties_single_node_kraft_with_scram() -> None:
    p = _props(
        server_properties(
            Ports(19092, 19094, 19093), Path("/d"), admin_user="admin", num_partitions=3
        )
    )
    assert p["process.roles"] == "broker,controller"
    assert p["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert p["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,SASL_PLAINTEXT://127.0.0.1:19094,CONTROLLER://127.0.0.1:19093"
    )
    assert all("127.0.0.1:" in listener for listener in p["listeners"].split(","))
    assert p["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert p["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert p["allow.everyone.if.no.acl.found"] == "false"
    assert p["super.users"] == "User:ANONYMOUS;User:admin"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "default.replication.factor",
    ):
        assert p[key] == "1"
    assert p["group.initial.rebalance.delay.ms"] == "0"


def test_cached_jars_are_used_without_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = jars.runtime_dir(tmp_path)
    (root / "libs").mkdir(parents=True)
    (root / "libs" / f"kafka_2.13-{KAFKA_VERSION}.jar").write_bytes(b"")
    (root / "resolved.json").write_text(json.dumps({"jars": [f"kafka_2.13-{KAFKA_VERSION}.jar"]}))
    monkeypatch.setenv("PATH", "/nonexistent")  # no mvn reachable: must not be needed
    assert jars.ensure_jars(tmp_path) == root / "libs"


def test_incomplete_cache_is_not_trusted(tmp_path: Path) -> None:
    root = jars.runtime_dir(tmp_path)
    (root / "libs").mkdir(parents=True)
    (root / "resolved.json").write_text(json.dumps({"jars": ["missing.jar"]}))
    assert jars.cached_libs(tmp_path) is None


def test_missing_maven_and_java_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ToolMissingError, match="Maven"):
        jars.ensure_jars(tmp_path)
    with pytest.raises(ToolMissingError, match="Java 17"):
        jars.find_java()


def test_busy_default_port_is_replaced_and_recorded(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert not port_is_free(taken)
        broker = LocalBroker(
            BrokerSettings(home=tmp_path, plaintext_port=taken, sasl_port=0, controller_port=0)
        )
        notes: list[str] = []
        ports = broker._ports(notes.append)
    assert ports.plaintext != taken
    assert len({ports.plaintext, ports.sasl, ports.controller}) == 3
    assert any(str(taken) in n for n in notes)
    assert json.loads((tmp_path / "ports.json").read_text())["plaintext"] == ports.plaintext


def test_state_round_trip_and_stopped_status(tmp_path: Path) -> None:
    state = BrokerState(
        pid=2**22 + 12345,  # no such process
        plaintext_port=1,
        sasl_port=2,
        controller_port=3,
        home=str(tmp_path),
        data_dir="d",
        log_file="l",
        kafka_version=KAFKA_VERSION,
        cluster_id="c",
        started_at="now",
    )
    write_state(tmp_path, state)
    assert read_state(tmp_path) == state
    status = LocalBroker(BrokerSettings(home=tmp_path)).status()
    assert not status.running
    assert status.describe() == "stopped"


def test_tool_args_fill_bootstrap() -> None:
    assert tool_args("kafka-topics", ["--list"], bootstrap="127.0.0.1:1") == [
        TOOLS["kafka-topics"],
        "--bootstrap-server",
        "127.0.0.1:1",
        "--list",
    ]
    explicit = tool_args("kafka-topics.sh", ["--bootstrap-server", "x:1", "--list"], bootstrap="y")
    assert explicit.count("--bootstrap-server") == 1
    assert "y" not in explicit
    controller = tool_args(
        "kafka-metadata-quorum", ["--bootstrap-controller", "c:1"], bootstrap="y"
    )
    assert "--bootstrap-server" not in controller
    assert "--bootstrap-server" not in tool_args("kafka-dump-log", ["--files", "f"], bootstrap="y")


def test_unknown_tool_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="kafka-console-consumer"):
        tool_args("kafka-nonsense", [], bootstrap="x")


def test_required_tools_use_kafka4_class_names() -> None:
    for tool in (
        "kafka-topics",
        "kafka-console-consumer",
        "kafka-console-producer",
        "kafka-consumer-groups",
        "kafka-get-offsets",
        "kafka-acls",
        "kafka-configs",
    ):
        assert TOOLS[tool].startswith("org.apache.kafka.tools.")


def test_cluster_ids_never_look_like_an_option() -> None:
    """``kafka-storage format --cluster-id -abc`` fails; 1 random id in 64 starts with '-'."""
    ids = [_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)
    assert len(set(ids)) == len(ids)
