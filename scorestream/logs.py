"""JSON-lines logging for services: one object per line, with service and tenant on every line.

Fields: ``ts`` (UTC, ISO 8601), ``level``, ``service``, ``tenant``, ``logger``, ``msg`` and any
``extra={...}`` fields (``event_id``, ``trace_id``, ``span_id`` ...). Secrets never reach a log
call; values that look like settings with passwords are redacted defensively.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, tenant: str | None) -> None:
        super().__init__()
        self.service = service
        self.tenant = tenant

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "tenant": self.tenant,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = "***" if "password" in key or "secret" in key else value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(service: str, tenant: str | None = None, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, tenant))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
