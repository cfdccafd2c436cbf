"""JSON-lines logging for services: one object per line, the same fields in every service.

Fields: ``ts`` (UTC, ISO 8601, ms), ``level``, ``service``, ``tenant``, ``logger``, ``msg``,
``trace_id`` / ``span_id`` (from the record's ``extra`` — the message being processed — else the
current OpenTelemetry span), ``event_id`` when known, then any other ``extra={...}`` fields and
``exc`` for tracebacks.

Everything passes a redaction layer before it is written, because a log line is read by more
people than a secret should be and is kept longer than card data may be:

* values under secret-looking keys (password, secret, token, api key, authorization, JAAS
  config, credential, private key) become ``***``, in extras and nested dicts alike;
* ``key=value`` / ``"key": "value"`` spans of text with such keys are masked the same way;
* the secret values this process was configured with (Kafka SASL/SSL passwords, S3 keys,
  anything passed to :func:`register_secret`) are replaced wherever they appear verbatim;
* URLs (``scheme://...``) keep their scheme, host and port only: user-info, path, query and
  fragment become ``***`` (:func:`redact_url`; a webhook URL carries its credentials there: a
  basic-auth password, a token in the path, a signature in the query). Span attributes use the
  same function (:func:`scorestream.tracing.client_span`);
* digit runs that look like a card number (13-19 digits, spaces or dashes allowed, Luhn-valid)
  keep their first 6 and last 4 digits only, as PCI DSS allows for display.

Third-party HTTP client loggers (``httpx``, ``httpcore``) are set to WARNING: their INFO and DEBUG
lines quote every request's URL (issue 15: a webhook's password, path token and signature ended
up in the notifier's log that way), and a line they still write passes the URL redaction.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_ORDER = ("event_id", "trace_id", "span_id")

SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_.-]?key|authorization|jaas|credential|"
    r"private[_.-]?key",
    re.IGNORECASE,
)
"""Keys whose values are never logged (``sasl.password``, ``sasl.jaas.config``, ``api_key`` ...).
``sasl.username`` / ``sasl.mechanism`` stay readable: they say who connected, not how."""
# key=value, key: value, "key": "value", 'key': 'value' with a secret-looking key
_KV = re.compile(
    r"""(?P<k>["']?[\w.-]*(?:pass(?:word|wd|phrase)?|secret|token|api[_.-]?key|authorization|"""
    r"""jaas|credential|private[_.-]?key)[\w.-]*["']?\s*[:=]\s*)"""
    r"""(?P<v>"[^"]*"|'[^']*'|[^\s,;}\])]+)""",
    re.IGNORECASE,
)
_PAN = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")
MASK = "***"
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>`]+""")
"""A URL in free text: scheme, ``://``, then anything up to whitespace or a quote."""
QUIET_LOGGERS = ("httpx", "httpcore")
"""Libraries whose INFO/DEBUG lines quote full request URLs: WARNING and above only."""

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it appears in a log line (values shorter than 4
    characters are ignored: masking them would garble ordinary text)."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mask_pan(m: re.Match[str]) -> str:
    text = m.group(0)
    digits = re.sub(r"\D", "", text)
    if not 13 <= len(digits) <= 19 or not _luhn(digits):
        return text
    return f"{digits[:6]}{'*' * (len(digits) - 10)}{digits[-4:]}"


def _mask_kv(m: re.Match[str]) -> str:
    value = m.group("v")
    quote = value[0] if value[:1] in {'"', "'"} else ""
    return f"{m.group('k')}{quote}{MASK}{quote}"


def redact_url(url: str) -> str:
    """A URL reduced to what identifies the server: ``scheme://host[:port]``, with ``/***`` for
    a path, ``?***`` for a query and ``#***`` for a fragment, and no user-info at all.

    The one redaction of URLs for log lines and span attributes alike. Webhook URLs carry their
    secrets in every one of those parts (``https://user:pass@host/hooks/<token>?sig=<hmac>``);
    which path segment is a token cannot be told from its looks, so no segment is kept. Text
    that does not parse as a URL becomes ``***``."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not parts.netloc:
        return MASK
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    out = f"{parts.scheme}://{host}{'' if port is None else f':{port}'}"
    if parts.path not in ("", "/"):
        out += f"/{MASK}"
    elif parts.path == "/":
        out += "/"
    if parts.query or url.rstrip().endswith("?"):
        out += f"?{MASK}"
    if parts.fragment:
        out += f"#{MASK}"
    return out


def _mask_url(m: re.Match[str]) -> str:
    text = m.group(0)
    tail = ""
    while text and text[-1] in ".,;:)]}":  # sentence punctuation after a URL is not part of it
        tail = text[-1] + tail
        text = text[:-1]
    return redact_url(text) + tail


def redact_text(text: str) -> str:
    """Mask secrets, URLs' secret parts and card-number-like digit runs in free text."""
    if "://" in text:
        text = _URL.sub(_mask_url, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _KV.sub(_mask_kv, text)
    return _PAN.sub(_mask_pan, text)


def redact(value: Any, key: str | None = None) -> Any:
    """Redact a log field: secret-looking keys hide their value, text is scanned."""
    if key is not None and SECRET_KEY.search(key):
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", errors="replace"))
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [redact(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value))


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
            "msg": redact_text(record.getMessage()),
        }
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
        }
        if not extras.get("trace_id"):
            ctx = trace.get_current_span().get_span_context()
            if ctx.is_valid:
                extras["trace_id"] = format(ctx.trace_id, "032x")
                extras["span_id"] = format(ctx.span_id, "016x")
        for key in _ORDER:
            value = extras.pop(key, None)
            if value:
                # trace/span ids are hex the SDK or the W3C parser validated: not scanned
                out[key] = value if key != "event_id" else redact(value, key)
        for key, value in extras.items():
            out[key] = redact(value, key)
        if record.exc_info:
            out["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


def _register_configured_secrets() -> None:
    """The secrets this process reads from its environment, so that they are masked even in a
    library's message that quotes a configuration value."""
    from scorestream.settings import KafkaSettings, ModelRepoSettings  # noqa: PLC0415

    for factory in (KafkaSettings, ModelRepoSettings):
        try:
            settings = factory()
        except ValueError:  # invalid settings: the service reports that itself
            continue
        for value in settings.__dict__.values():
            secret = getattr(value, "get_secret_value", None)
            if callable(secret):
                register_secret(secret())


def configure_logging(service: str, tenant: str | None = None, level: str = "INFO") -> None:
    """JSON lines on stderr; ``SCORESTREAM_LOG_LEVEL`` (e.g. ``DEBUG``) overrides ``level``."""
    level = os.environ.get("SCORESTREAM_LOG_LEVEL", level).upper()
    _register_configured_secrets()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service, tenant))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
