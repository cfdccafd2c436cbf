"""Run the genuine Kafka command-line tools from the same jars as the local broker.

Class names are those of Kafka 4.x's ``bin/*.sh`` scripts (the old ``kafka.tools.*`` and
``kafka.admin.*`` redirects are gone in 4.x).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from scorestream.dev.broker import config as cfg
from scorestream.dev.broker.jars import classpath, ensure_jars, find_java
from scorestream.errors import ConfigError
from scorestream.settings import BrokerSettings

TOOLS: dict[str, str] = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-acls": "org.apache.kafka.tools.AclCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-transactions": "org.apache.kafka.tools.TransactionsCommand",
    "kafka-metadata-quorum": "org.apache.kafka.tools.MetadataQuorumCommand",
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-features": "org.apache.kafka.tools.FeatureCommand",
    "kafka-cluster": "org.apache.kafka.tools.ClusterTool",
    "kafka-dump-log": "org.apache.kafka.tools.DumpLogSegments",
    "kafka-storage": "kafka.tools.StorageTool",
}

NO_BOOTSTRAP = frozenset({"kafka-dump-log", "kafka-storage"})
BOOTSTRAP_FLAGS = ("--bootstrap-server", "--bootstrap-controller")


def tool_args(tool: str, args: Sequence[str], *, bootstrap: str) -> list[str]:
    """``[main class, *args]`` for ``tool``, with ``--bootstrap-server`` filled in if absent."""
    name = tool.removesuffix(".sh")
    if name not in TOOLS:
        known = ", ".join(sorted(TOOLS))
        raise ConfigError(f"unknown Kafka tool {tool!r}; known tools: {known}")
    argv = list(args)
    has_bootstrap = any(a == f or a.startswith(f + "=") for a in argv for f in BOOTSTRAP_FLAGS)
    if name not in NO_BOOTSTRAP and not has_bootstrap and "--help" not in argv:
        argv = ["--bootstrap-server", bootstrap, *argv]
    return [TOOLS[name], *argv]


def tool_command(
    tool: str,
    args: Sequence[str],
    *,
    bootstrap: str,
    settings: BrokerSettings | None = None,
) -> list[str]:
    """The full ``java ...`` command line for ``tool`` (resolves the jars on first use)."""
    main_and_args = tool_args(tool, args, bootstrap=bootstrap)
    settings = settings or BrokerSettings()
    libs = ensure_jars(settings.cache_dir)
    log4j = settings.cache_dir / "tools-log4j2.properties"
    if not log4j.exists():
        log4j.parent.mkdir(parents=True, exist_ok=True)
        log4j.write_text(cfg.tools_log4j2_properties())
    return [
        find_java(),
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        classpath(libs),
        *main_and_args,
    ]


def run_tool(
    tool: str,
    args: Sequence[str],
    *,
    bootstrap: str,
    settings: BrokerSettings | None = None,
    cwd: Path | None = None,
) -> int:
    """Run a Kafka tool attached to this terminal; returns its exit code."""
    cmd = tool_command(tool, args, bootstrap=bootstrap, settings=settings)
    return subprocess.call(cmd, cwd=cwd)
