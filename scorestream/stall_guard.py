"""Crash-only guard for blocking Kafka client calls that do not honour their own timeout.

librdkafka 2.12's ``send_offsets_to_transaction`` can block forever when the group coordinator's
broker goes away (confluentinc/librdkafka#5456: the coordinator request's timeout is never
checked; #5511: a decommissioned coordinator is never looked up again). The CI-sized chaos run
caught a decision service in exactly that call, 4 minutes after a broker node was SIGKILLed and
long after its 30 s timeout. Such a process keeps its partitions and processes nothing.

A blocked C call cannot be interrupted from Python, so the guard does what Kubernetes' liveness
probe would do, only sooner and also outside Kubernetes: when a guarded call is still running
``grace_s`` after its own timeout, it logs the stall and ends the process (exit code
:data:`EXIT_STALLED`). Exactly-once is unaffected: the open transaction is aborted when the
restarted instance's ``init_transactions`` fences it, and the batch is read again from the
committed offsets. One watcher thread per guard; entering a guarded call costs two attribute
writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("scorestream.stall_guard")

EXIT_STALLED = 75
"""Exit code of a process ended by the guard (EX_TEMPFAIL: restarting it is the remedy)."""


def exit_stalled(op: str, waited_s: float) -> None:
    """The default reaction: log, flush the log handlers, end the process at once."""
    log.critical(
        "%s has not returned after %.0fs (a librdkafka call past its own timeout): exiting with "
        "code %d so the process is restarted; the open transaction is aborted by the restart",
        op,
        waited_s,
        EXIT_STALLED,
    )
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(EXIT_STALLED)


class StallGuard:
    """``with guard.call("commit_transaction", timeout_s): producer.commit_transaction(...)``."""

    def __init__(
        self,
        *,
        grace_s: float = 30.0,
        check_every_s: float = 1.0,
        on_stall: Callable[[str, float], None] = exit_stalled,
    ) -> None:
        if grace_s < 0 or check_every_s <= 0:
            raise ValueError("grace_s must be >= 0 and check_every_s > 0")
        self.grace_s = grace_s
        self.check_every_s = check_every_s
        self.on_stall = on_stall
        self._current: tuple[str, float, float] | None = None  # (op, started, deadline)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def call(self, op: str, timeout_s: float) -> Iterator[None]:
        self.arm(op, timeout_s)
        try:
            yield
        finally:
            self.disarm()

    def arm(self, op: str, timeout_s: float) -> None:
        """Start (or restart) the clock for ``op``: a loop whose blocking calls are not ours to
        wrap re-arms on every iteration, so a hang anywhere in the
        iteration is caught ``timeout_s + grace_s`` after the last one began."""
        if self._thread is None:
            self._start()
        started = time.monotonic()
        self._current = (op, started, started + timeout_s + self.grace_s)

    def disarm(self) -> None:
        """Nothing is guarded until the next :meth:`arm` (or :meth:`call`)."""
        self._current = None

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.check_every_s * 2 + 1)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="scorestream-stall-guard", daemon=True
                )
                self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.check_every_s):
            current = self._current
            if current is None:
                continue
            op, started, deadline = current
            now = time.monotonic()
            if now > deadline:
                self.on_stall(op, now - started)
                return
