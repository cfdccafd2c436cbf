"""Worker settings. Env: ``SCORESTREAM_WORKER_*`` (plus ``SCORESTREAM_KAFKA_*``)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_instance() -> str:
    # Kubernetes: POD_NAME from the downward API keeps transactional.id stable per pod.
    return os.environ.get("POD_NAME") or socket.gethostname()


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCORESTREAM_WORKER_", frozen=True, extra="ignore")

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    instance_id: str = Field(default_factory=_default_instance, min_length=1, max_length=200)
    model_name: str = "fraud-gbt"
    delivery: Literal["exactly_once", "at_least_once"] = "exactly_once"
    max_batch: int = Field(default=500, ge=1, le=10_000)
    max_wait_ms: int = Field(default=20, ge=1, le=10_000)
    intra_op_threads: int = Field(default=1, ge=1, le=64)
    shadow: bool = True
    """Score with the challenger too, when one is promoted."""
    health_port: int = Field(default=8080, ge=0, le=65535)
    """0 disables the HTTP endpoints (tests run several workers in one process)."""
    transaction_timeout_s: float = Field(default=30.0, gt=0)
    max_poll_interval_ms: int = Field(default=120_000, ge=10_000)
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    live_after_s: float = Field(default=60.0, gt=0)
    """/livez fails when the loop has not polled for this long."""

    @property
    def group_id(self) -> str:
        return f"{self.tenant}.worker"

    @property
    def transactional_id(self) -> str:
        return f"{self.tenant}.worker.{self.instance_id}"
