"""The stall guard: a guarded call outliving its timeout + grace triggers the reaction once."""

from __future__ import annotations

import threading
import time

import pytest

from scorestream import stall_guard
from scorestream.stall_guard import EXIT_STALLED, StallGuard


def _recording() -> tuple[list[tuple[str, float]], threading.Event, StallGuard]:
    stalls: list[tuple[str, float]] = []
    fired = threading.Event()

    def on_stall(op: str, waited: float) -> None:
        stalls.append((op, waited))
        fired.set()

    return stalls, fired, StallGuard(grace_s=0.05, check_every_s=0.01, on_stall=on_stall)


def test_a_call_past_its_timeout_and_grace_is_reported_with_its_name() -> None:
    stalls, fired, guard = _recording()
    with guard.call("send_offsets_to_transaction", 0.05):
        assert fired.wait(5)  # the call "blocks" until the guard reacts
    guard.close()
    assert len(stalls) == 1
    op, waited = stalls[0]
    assert op == "send_offsets_to_transaction"
    assert waited >= 0.1


def test_calls_that_return_in_time_never_trigger_it() -> None:
    stalls, _, guard = _recording()
    for _ in range(20):
        with guard.call("commit_transaction", 0.05):
            time.sleep(0.01)
    time.sleep(0.3)  # idle between calls is not a stall either
    guard.close()
    assert stalls == []


def test_an_exception_in_the_call_clears_it() -> None:
    stalls, _, guard = _recording()
    with pytest.raises(RuntimeError), guard.call("abort_transaction", 0.01):
        raise RuntimeError("boom")
    time.sleep(0.2)
    guard.close()
    assert stalls == []


def test_the_default_reaction_logs_and_ends_the_process(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    codes: list[int] = []
    monkeypatch.setattr("scorestream.stall_guard.os._exit", codes.append)
    stall_guard.exit_stalled("commit_transaction", 61.0)
    assert codes == [EXIT_STALLED]
    assert "commit_transaction has not returned after 61s" in caplog.text


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="grace_s"):
        StallGuard(grace_s=-1)
    with pytest.raises(ValueError, match="check_every_s"):
        StallGuard(check_every_s=0)


def test_a_loop_that_keeps_re_arming_is_never_reported_and_one_that_stops_is() -> None:
    stalls, fired, guard = _recording()
    for _ in range(20):  # iterations well inside timeout + grace
        guard.arm("main loop", 0.05)
        time.sleep(0.01)
    assert stalls == []
    assert fired.wait(5)  # the loop stopped re-arming: reported once
    guard.close()
    assert [op for op, _ in stalls] == ["main loop"]


def test_a_disarmed_guard_stays_quiet() -> None:
    stalls, _, guard = _recording()
    guard.arm("state recovery", 0.01)
    guard.disarm()
    time.sleep(0.2)
    guard.close()
    assert stalls == []
