"""Worker settings. Env: ``SCORESTREAM_WORKER_*`` (plus ``SCORESTREAM_KAFKA_*``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from scorestream.settings import ProcessingSettings


class WorkerSettings(ProcessingSettings):
    model_config = SettingsConfigDict(
        use_attribute_docstrings=True, env_prefix="SCORESTREAM_WORKER_", frozen=True, extra="ignore"
    )

    service: ClassVar[str] = "worker"

    model_name: str = "fraud-gbt"
    intra_op_threads: int = Field(default=1, ge=1, le=64)
    shadow: bool = True
    """Score with the challenger too, when one is promoted."""
