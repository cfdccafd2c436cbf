"""Issue 15 item 14: a service that cannot start never prints the SCRAM password.

Real service processes start with SASL on, no username and a canary password (from the
environment, as a Kubernetes Secret supplies it). Before the fix the crash message (pydantic's,
printed before the redacting logger starts) quoted 22 of the password's 32 characters. Now
each exits with the typed settings error naming what to set, and no 6-character piece of the
canary appears in its stdout or stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.security]

CANARY = "Kq7vZp2MwX9tRb4LnY6sHc8JdF3gAe5U"  # 32 characters, like the leaked password


def leaks(text: str, n: int = 6) -> list[str]:
    """The ``n``-character pieces of the canary found in ``text``."""
    return [CANARY[i : i + n] for i in range(len(CANARY) - n + 1) if CANARY[i : i + n] in text]


SERVICES = [
    ("scorestream", "worker"),
    ("scorestream", "enricher"),
    ("scorestream", "monitor"),
    ("consumers.audit",),  # a service module run directly, not through the CLI
]


@pytest.mark.parametrize("command", SERVICES, ids=lambda c: c[-1])
def test_a_service_with_sasl_and_no_username_does_not_print_the_password(
    command: tuple[str, ...],
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORESTREAM_KAFKA_SASL")}
    env |= {
        "SCORESTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SCORESTREAM_KAFKA_SASL_PASSWORD": CANARY,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # never reached: settings fail first
    }
    proc = subprocess.run(
        [sys.executable, "-m", *command, "--tenant", "acme", "--health-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-2000:]
    assert leaks(output) == [], output[-2000:]
    assert "SCORESTREAM_KAFKA_SASL_USERNAME" in output, output[-2000:]
