"""``scorestream up`` waits until every service is ready, then prints where each one listens.

The attack: ``up`` returned before the services were ready and printed no port (the health
ports were only in ``pids.json``); a stack that could never become ready (no model for the
tenant) looked started.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from scorestream.admin import ensure_tenant_topics
from scorestream.services import NAMES as SERVICE_ORDER
from tests.worker_support import Tenant, free_port, http_get

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINE = re.compile(r"^(\w+)\s+(\d+)\s+(http://127\.0\.0\.1:(\d+))\s", re.M)


def scorestream(home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORESTREAM_MODELS_")}
    return subprocess.run(
        [sys.executable, "-m", "scorestream", *args],
        env=env | {"SCORESTREAM_HOME": str(home)},
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_up_waits_for_every_service_and_prints_their_ports(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    tenant = Tenant(f"u{uuid.uuid4().hex[:9]}", home / "models")
    ensure_tenant_topics(tenant.name)
    gateway = free_port()
    up = ("up", "--tenant", tenant.name, "--gateway-port", str(gateway))

    # no model for the tenant: the worker can never be ready, and up says so
    failed = scorestream(home, *up, "--ready-timeout", "25")
    try:
        assert failed.returncode == 2, failed.stdout + failed.stderr
        assert "error: worker not ready after 25s: no champion model loaded yet" in failed.stderr
        assert f"last lines of {home / 'run' / tenant.name / 'worker.log'}" in failed.stderr
    finally:
        down = scorestream(home, "down", "--tenant", tenant.name)
        assert down.returncode == 0, down.stderr

    tenant.publish_model("1")
    tenant.promote("1")
    ok = scorestream(home, *up, "--ready-timeout", "180")
    try:
        assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
        assert f"all {len(SERVICE_ORDER)} services of tenant {tenant.name} are ready" in ok.stdout
        listed = {m.group(1): int(m.group(4)) for m in LINE.finditer(ok.stdout)}
        assert set(listed) == set(SERVICE_ORDER), ok.stdout
        assert listed["gateway"] == gateway
        for name, port in listed.items():
            status, _ = http_get(port, "/readyz")
            assert status == 200, name
            status, metrics = http_get(port, "/metrics")
            assert status == 200, name
            assert "scorestream_" in metrics, name
    finally:
        down = scorestream(home, "down", "--tenant", tenant.name)
    assert down.returncode == 0, down.stderr
    assert f"stopped {len(SERVICE_ORDER)} service(s)" in down.stdout
