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
    """The model served (its name in the model repository): promotions of other models are
    ignored. ``SCORESTREAM_GATEWAY_MODEL_NAME`` should name the same model."""
    intra_op_threads: int = Field(default=1, ge=1, le=64)
    """ONNX Runtime threads for one model call (``intra_op_num_threads``); every loaded model
    (champion, challenger) has its own."""
    shadow: bool = True
    """Score with the challenger too, when one is promoted."""
