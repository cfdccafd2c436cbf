"""JSON log lines: the common fields, trace correlation, and the redaction layer."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from scorestream import logs

PAN = "4539578763621486"  # Luhn-valid test number
NOT_A_PAN = "4539578763621487"  # same digits, Luhn check fails


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("worker", "acme"))
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_has_the_common_fields_and_the_current_span(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    ctx = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(1),
    )
    with trace.use_span(NonRecordingSpan(ctx)):
        logger.info("scored %d", 3, extra={"event_id": "ev-1", "topic": "acme.predictions"})
    logger.warning("no span here")
    logger.info("from a message", extra={"trace_id": "1" * 32, "span_id": "2" * 16})
    first, second, third = lines(stream)
    assert first["level"] == "info"
    assert first["service"] == "worker"
    assert first["tenant"] == "acme"
    assert first["msg"] == "scored 3"
    assert first["event_id"] == "ev-1"
    assert first["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert first["span_id"] == "b7ad6b7169203331"
    assert first["topic"] == "acme.predictions"
    assert first["ts"].endswith("+00:00")
    assert "trace_id" not in second
    assert (third["trace_id"], third["span_id"]) == ("1" * 32, "2" * 16)


def test_secret_keys_are_masked_in_extras_and_nested_config(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    config = {
        "bootstrap.servers": "b:9094",
        "sasl.username": "svc",
        "sasl.password": "hunter2-canary",
        "nested": {"api_key": "k-canary", "ssl.key.password": "p-canary"},
    }
    logger.info("config", extra={"kafka": config, "token": "t-canary", "Authorization": "x"})
    line = lines(stream)[0]
    assert line["kafka"]["sasl.password"] == "***"
    assert line["kafka"]["sasl.username"] == "svc"  # who connected stays readable
    assert line["kafka"]["nested"] == {"api_key": "***", "ssl.key.password": "***"}
    assert line["token"] == logs.MASK
    assert line["Authorization"] == "***"
    assert "canary" not in stream.getvalue()


def test_secrets_in_free_text_and_registered_values_are_masked(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    logs.register_secret("s3cr3t-registered-value")
    logger.error("connect failed: sasl.password=abc123 password: 'q w' token=xyz;")
    logger.error('config {"client_secret": "shh", "user": "u"}')
    logger.error("boom with s3cr3t-registered-value inside")
    try:
        raise ValueError("api_key=leaked-in-exception")
    except ValueError:
        logger.exception("failed")
    out = stream.getvalue()
    for leaked in ("abc123", "'q w'", "xyz", "shh", "s3cr3t-registered-value", "leaked-in"):
        assert leaked not in out, leaked
    first, second, *_ = lines(stream)
    assert first["msg"] == "connect failed: sasl.password=*** password: '***' token=***;"
    assert second["msg"] == 'config {"client_secret": "***", "user": "u"}'


@pytest.mark.parametrize(
    "text",
    [PAN, "4539 5787 6362 1486", "4539-5787-6362-1486", f"key={PAN}!", f"pan:{PAN}"],
)
def test_card_numbers_keep_only_the_first_six_and_last_four_digits(text: str) -> None:
    out = logs.redact_text(text)
    assert "453957******1486" in out
    assert "78763621" not in out.replace(" ", "").replace("-", "")


def test_digit_runs_that_are_not_card_numbers_are_left_alone() -> None:
    # a failed Luhn check, an epoch in ms that happens to fail it, short numbers, offsets
    for text in (NOT_A_PAN, "offset 1234567 partition 2", "1732500000001"):
        assert logs.redact_text(text) == text


def test_bytes_and_lists_are_scanned_too() -> None:
    assert logs.redact(PAN.encode(), "key") == "453957******1486"
    assert logs.redact([PAN, 3, None]) == ["453957******1486", 3, None]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "http://user:CANARYPASS@127.0.0.1:8080/hooks/CANARYTOKEN/x?sig=CANARYSIG",
            "http://127.0.0.1:8080/***?***",
        ),
        ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/***"),
        ("https://CANARYTOKEN@example.com", "https://example.com"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com?CANARYSIG", "https://example.com?***"),
        ("https://example.com/a#CANARY", "https://example.com/***#***"),
        ("http://[::1]:9000/CANARYTOKEN", "http://[::1]:9000/***"),
        ("http://host:CANARYPORT/x", "***"),  # unparseable: nothing of it
        ("not a url CANARY", "***"),
    ],
)
def test_redact_url_keeps_scheme_host_and_port_only(url: str, shown: str) -> None:
    assert logs.redact_url(url) == shown


def test_urls_in_log_lines_lose_credentials_path_and_query(
    capture: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = capture
    url = "https://u:CANARYPASS@hooks.example.com:8443/hooks/CANARYTOKEN/x?sig=CANARYSIG"
    # what httpx writes at INFO for every request
    logger.info('HTTP Request: POST %s "HTTP/1.1 200 OK"', url)
    logger.warning("webhook failed", extra={"detail": f"calling {url}, giving up."})
    text = stream.getvalue()
    assert "CANARY" not in text
    first, second = lines(stream)
    shown = "https://hooks.example.com:8443/***?***"
    assert first["msg"] == f'HTTP Request: POST {shown} "HTTP/1.1 200 OK"'
    assert second["detail"] == "calling https://hooks.example.com:8443/***?***, giving up."


def test_configure_logging_quiets_the_http_client_loggers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SCORESTREAM_LOG_LEVEL", raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure_logging("notifier", "acme", level="DEBUG")
        for name in ("httpx", "httpcore"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO)
            assert logging.getLogger(name).isEnabledFor(logging.WARNING)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.NOTSET)
