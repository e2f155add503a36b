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
    assert c.use_parallel(100) is False  # nothing timed yet: serial first
    c.record(False, 1.0, 100)
    assert c.use_parallel(100) is True  # then the parallel one
    c.record(True, 0.25, 100)
    picks = []
    for _ in range(20):
        par = c.use_parallel(100)
        picks.append(par)
        c.record(par, 0.25 if par else 1.0, 100)
    assert picks.count(False) == 4  # the slower kernel re-tried once every 5 calls
    # the machine gets loaded: parallel becomes slow, and the choice follows within a few calls
    picks = []
    for _ in range(15):
        par = c.use_parallel(100)
        picks.append(par)
        c.record(par, 5.0 if par else 1.0, 100)
    assert picks[-10:].count(True) == 2  # serial kept, parallel only re-tried


def test_one_thread_is_always_serial(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    c = KernelChooser(0)
    c.speed = [2.0, 1.0]
    assert not c.use_parallel(10**6)
