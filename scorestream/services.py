"""The service registry: every long-running service of a tenant, in start order.

One entry per service — its command name (``scorestream <name>``), the module whose
``main(argv)`` runs it, its settings class and how it delivers what it produces. The CLI,
``scorestream up``, the chaos runner, the ACL model and the Kubernetes generator all read this;
the topic registry (:mod:`scorestream.topics`) says what each one reads and writes. Modules are
named by import path, so the kernel imports no service.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import StrEnum

from pydantic_settings import BaseSettings

from scorestream.errors import ConfigError


class Delivery(StrEnum):
    EXACTLY_ONCE = "exactly-once"
    """Consume, handle, produce: outputs, dead letters, state and input offsets in one Kafka
    transaction per batch (:class:`scorestream.processor.Processor`)."""
    OBSERVER = "observer"
    """Reads and measures (metrics); its dead letters go out in transactions of its own."""
    REQUEST = "request"
    """HTTP in; each request published once (acks=all, claimed in the idempotency log)."""


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    module: str
    """The module whose ``main(argv)`` runs the service (``python -m <module>`` too)."""
    settings: str
    """``<module>:<class>`` of its settings (``SCORESTREAM_<NAME>_*``)."""
    delivery: Delivery
    summary: str

    @property
    def transactional(self) -> bool:
        """Whether it runs a transactional producer (``transactional.id`` per instance)."""
        return self.delivery in (Delivery.EXACTLY_ONCE, Delivery.OBSERVER)

    def settings_class(self) -> type[BaseSettings]:
        module, _, name = self.settings.partition(":")
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
            raise ConfigError(f"{self.settings} is not a settings class")
        return cls


EOS = Delivery.EXACTLY_ONCE
SERVICES: tuple[Service, ...] = (
    Service(
        "merchant",
        "consumers.merchant",
        "consumers.merchant:MerchantSettings",
        EOS,
        "merchant stage: transactions + fraud labels → the merchant table every enricher reads",
    ),
    Service(
        "enricher",
        "consumers.enricher",
        "consumers.enricher:EnricherSettings",
        EOS,
        "serve features: transactions → enriched (one hop)",
    ),
    Service(
        "worker",
        "inference_worker.worker",
        "inference_worker.settings:WorkerSettings",
        EOS,
        "run an inference worker for a tenant",
    ),
    Service(
        "decision",
        "consumers.decision",
        "consumers.decision:DecisionSettings",
        EOS,
        "decide approve / review / decline for a tenant's predictions",
    ),
    Service(
        "notifier",
        "consumers.notifier",
        "consumers.notifier:NotifierSettings",
        EOS,
        "alerts and webhooks for review / decline decisions",
    ),
    Service(
        "audit",
        "consumers.audit",
        "consumers.audit:AuditSettings",
        EOS,
        "join transaction + prediction + decision into audit records; 'audit replay ...'",
    ),
    Service(
        "monitor",
        "consumers.monitor",
        "consumers.monitor:MonitorSettings",
        Delivery.OBSERVER,
        "live precision/recall/AP and score drift (PSI) per model version, for a tenant",
    ),
    Service(
        "gateway",
        "producers.gateway",
        "producers.gateway:GatewaySettings",
        Delivery.REQUEST,
        "HTTP gateway: /v1 transactions, sync scoring, KServe V2",
    ),
)
NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)
_BY_NAME = {s.name: s for s in SERVICES}


def service(name: str) -> Service:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown service {name!r}: one of {', '.join(NAMES)}") from None
