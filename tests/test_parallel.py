"""The serial/parallel kernel chooser (tme_sim.parallel)."""

from __future__ import annotations

import numba
import pytest

from tme_sim.parallel import KernelChooser


def test_forced_choice_and_small_calls_ignore_timings():
    assert KernelChooser(10, forced=True).use_parallel(1)
    assert not KernelChooser(10, forced=False).use_parallel(10**9)
    c = KernelChooser(1000)
    c.speed = [2.0, 1.0]
    assert not c.use_parallel(999)  # below min_work: serial whatever was measured


def test_times_both_then_keeps_the_faster_and_retries_the_slower(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    c = KernelChooser(10, retune_every=5)
    order = []
    for t_serial, t_par in ((9.0, 9.0), (1.0, 0.25)):  # the first call of each is provisional
        for par, t in ((False, t_serial), (True, t_par)):
            assert c.use_parallel(100) is par
            order.append(par)
            c.record(par, t, 100)
    assert order == [False, True, False, True]
    assert c.speed == [1.0 / 100, 0.25 / 100]  # the provisional times were replaced, not averaged
    picks = []
    for _ in range(60):
        par = c.use_parallel(100)
        picks.append(par)
        c.record(par, 0.25 if par else 1.0, 100)
    # serial is 4x slower: re-tried every 5 * 4 = 20 calls, so re-trying costs ~1/5 of a call each time
    assert picks.count(False) == 2  # at calls 24 and 44
    # the machine gets loaded: parallel becomes 5x slower than serial; serial is back within two
    # calls, and parallel is then re-tried every ~5 * 5 calls
    picks = []
    for _ in range(60):
        par = c.use_parallel(100)
        picks.append(par)
        c.record(par, 5.0 if par else 1.0, 100)
    first_serial = picks.index(False)
    assert first_serial <= 2 and picks.count(True) <= 5


def test_retry_cost_is_bounded_when_parallel_is_much_slower(monkeypatch: pytest.MonkeyPatch):
    """The issue's case: 2 threads at 10³ cells took 1.92 ms against 0.07 ms serial. Re-tries of
    the slow kernel must cost at most ~1/retune_every of the serial time, whatever the ratio."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    c = KernelChooser(0, retune_every=50)
    spent = 0.0
    for _ in range(20_000):
        par = c.use_parallel(1000)
        t = 1.92e-3 if par else 0.07e-3
        spent += t
        c.record(par, t, 1000)
    assert spent < 1.03 * 20_000 * 0.07e-3 + 2 * 1.92e-3  # ≤ 3 % over always-serial (+ the two timing calls)


def test_parallel_must_win_clearly(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    c = KernelChooser(0)
    c.samples = [2, 2]
    c.speed = [1.0, 0.95]  # 5 % faster is within noise: serial kept (threads take a core from others)
    assert not c.faster_is_parallel()
    c.speed = [1.0, 0.8]
    assert c.faster_is_parallel()


def test_one_thread_is_always_serial(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    c = KernelChooser(0)
    c.speed = [2.0, 1.0]
    assert not c.use_parallel(10**6)
