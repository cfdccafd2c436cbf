"""A local multi-node KRaft cluster: the chaos runner's broker, shaped like production.

Every node is broker and controller (static voters), internal and default topics are
replicated to every node with a majority in sync, and each node is a :class:`LocalBroker` of
its own (home, ports, process), so a fault can SIGKILL one node while the others keep the
partitions led and the transaction coordinator running, as a Strimzi cluster of three does.

Why not the single development node: Kafka 4.4 cannot keep transactions exactly-once across a
SIGKILL of its *only* node. On restart the node's transaction coordinator completes pending
transactions while its partitions are still without a leader and skips their markers
("likely deleted already and hence can be skipped"), and the next commit of the same producer
then makes the orphaned records visible: duplicates no client can prevent
(docs/adr/0003-single-broker-transactions.md).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scorestream.dev.broker.jars import Progress
from scorestream.dev.broker.local import LocalBroker, _cluster_id
from scorestream.dev.broker.state import BrokerState
from scorestream.errors import BrokerError
from scorestream.settings import BrokerSettings


@dataclass(frozen=True, slots=True)
class NodePorts:
    plaintext: int
    sasl: int
    controller: int


class LocalCluster:
    """``len(ports)`` nodes under ``home/node-<id>``; start them together (a majority of the
    voters must be up before any node is ready)."""

    def __init__(
        self,
        home: Path,
        ports: Sequence[NodePorts],
        *,
        heap: str = "512m",
        ready_timeout_s: float = 180.0,
    ) -> None:
        if len(ports) < 1:
            raise BrokerError("a cluster needs at least one node")
        self.home = home
        voters = ",".join(f"{i}@127.0.0.1:{p.controller}" for i, p in enumerate(ports, 1))
        cluster_id = _cluster_id()
        self.nodes = [
            LocalBroker(
                BrokerSettings(
                    home=home / f"node-{i}",
                    plaintext_port=p.plaintext,
                    sasl_port=p.sasl,
                    controller_port=p.controller,
                    heap=heap,
                    ready_timeout_s=ready_timeout_s,
                    node_id=i,
                    quorum_voters=voters,
                    cluster_nodes=len(ports),
                    cluster_id=cluster_id,
                )
            )
            for i, p in enumerate(ports, 1)
        ]

    @property
    def bootstrap(self) -> str:
        """Every node's PLAINTEXT address (clients find the others from any of them)."""
        return ",".join(f"127.0.0.1:{n.settings.plaintext_port}" for n in self.nodes)

    def start(self, progress: Progress = lambda _: None) -> list[BrokerState]:
        """Start every node at once and wait until each answers; raises the first failure."""
        states: dict[int, BrokerState] = {}
        errors: list[BaseException] = []

        def one(i: int, node: LocalBroker) -> None:
            try:
                states[i] = node.start(progress=lambda m: progress(f"node {i}: {m}"))
            except BaseException as exc:  # noqa: BLE001  (re-raised below, in the caller)
                errors.append(exc)

        threads = [
            threading.Thread(target=one, args=(i, n), daemon=True)
            for i, n in enumerate(self.nodes, 1)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            self.stop()
            raise errors[0]
        return [states[i] for i in sorted(states)]

    def stop(self, progress: Progress = lambda _: None) -> None:
        for node in self.nodes:
            node.stop(progress=progress)
