"""An open-loop HTTP load generator: a constant arrival rate, latency from the intended send time.

A closed-loop client (send, wait for the answer, send the next) slows down when the server does
and so never records the requests it did not send — coordinated omission. Here request ``i`` is
due at ``t0 + i / rate`` whatever happened before; its latency is measured from that due time,
so a stall of the server (or of this generator: it shares the machine) shows up as latency of
every request that should have been sent during it. How late the generator itself was in
sending is recorded separately (``send_lag_ms``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import percentiles


@dataclass
class StepResult:
    rate: float
    duration_s: float
    sent: int = 0
    ok: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    """Every answered request (any status), from its intended send time."""
    ok_latencies_ms: list[float] = field(default_factory=list)
    send_lag_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        errors = self.sent - self.ok
        return {
            "offered_rate": self.rate,
            "duration_s": self.duration_s,
            "sent": self.sent,
            "ok": self.ok,
            "error_rate": round(errors / self.sent, 4) if self.sent else None,
            "statuses": dict(sorted(self.statuses.items())),
            "achieved_rate": round(self.ok / self.wall_s, 1) if self.wall_s else None,
            "latency_ms": percentiles(self.latencies_ms),
            "ok_latency_ms": percentiles(self.ok_latencies_ms),
            "send_lag_ms": percentiles(self.send_lag_ms),
        }


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    due: float,
    headers: dict[str, str],
    out: StepResult,
) -> None:
    loop = asyncio.get_running_loop()
    out.send_lag_ms.append((loop.time() - due) * 1000)
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            status = str(resp.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        status = type(exc).__name__
    ms = (loop.time() - due) * 1000
    out.statuses[status] = out.statuses.get(status, 0) + 1
    out.latencies_ms.append(ms)
    if status == "200":
        out.ok += 1
        out.ok_latencies_ms.append(ms)


async def _step(
    url: str, bodies: Sequence[bytes], rate: float, timeout_s: float, headers: dict[str, str]
) -> StepResult:
    out = StepResult(rate=rate, duration_s=len(bodies) / rate)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.05
        started = time.perf_counter()
        tasks = []
        for i, body in enumerate(bodies):
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(session, url, body, due, headers, out)))
            out.sent += 1
        await asyncio.gather(*tasks)
        out.wall_s = time.perf_counter() - started
    return out


def open_loop(
    url: str,
    bodies: Sequence[bytes],
    rate: float,
    *,
    timeout_s: float = 10.0,
    headers: dict[str, str] | None = None,
) -> StepResult:
    """Send ``bodies`` to ``url`` at ``rate`` per second (open loop) and wait for every answer."""
    hdrs = {"content-type": "application/json", **(headers or {})}
    return asyncio.run(_step(url, bodies, rate, timeout_s, hdrs))
