"""Choosing between the serial and the parallel compilation of a kernel, by measurement.

Every hot kernel exists twice (``parallel=True`` with ``prange`` and a serial twin) and both
give bit-identical results, so which one runs is purely a speed question. Threads pay for large
calls on an idle machine, but on a shared or oversubscribed one (2 cores with other work running)
a fork/join barrier can wait a whole scheduler time slice and the parallel kernel becomes many
times slower (measured here under load: 15-40 ms for a 2-thread call whose serial twin takes
0.05-2 ms, ``benchmarks/thread_scaling.py``). :class:`KernelChooser` therefore times both on the
run's own calls and keeps the faster.

Three rules keep a wrong choice cheap:

* the first call of each kernel is provisional (it pays for the thread pool's start and cache
  loading): its time is replaced, not averaged, by the second call's;
* the parallel kernel must beat the serial one by :data:`MIN_GAIN` to be kept (two threads take a
  core from other work on a shared machine; a tie is not worth it);
* the slower kernel is re-tried after ``retune_every × (slow/fast)`` calls, so re-trying costs at
  most ~1/``retune_every`` of the run's time in that kernel however much slower it is (a kernel
  50× slower is re-tried every 2500 calls, not every 50).
"""

from __future__ import annotations

import math

import numba

MIN_GAIN = 0.1
"""The parallel kernel is kept only when at least this fraction faster than the serial one."""


class KernelChooser:
    """Serial-or-parallel choice for one kernel (see the module docstring).

    Args:
        min_work: below this much work per call (the caller's unit: cells, voxel values…) the
            serial kernel always runs, as it does when numba has a single thread.
        retune_every: the slower kernel is re-tried after ``retune_every × (slow/fast)`` calls.
        forced: ``True``/``False`` always runs the parallel/serial kernel; ``None`` chooses.
    """

    def __init__(self, min_work: int, retune_every: int = 50, forced: bool | None = None) -> None:
        self.min_work = int(min_work)
        self.retune_every = int(retune_every)
        self.forced = forced
        #: smoothed seconds per unit of work of the serial and the parallel kernel (None: not yet timed)
        self.speed: list[float | None] = [None, None]
        #: timed calls of each kernel (the first one's time is provisional)
        self.samples = [0, 0]
        self.calls = 0
        self.next_retry = 0  # call count at which the slower kernel runs once more (0: not scheduled)
        self._retrying = False  # the next record() is a re-try: it measures the present load
        self._threads = (-1, 0)  # (calls when read, numba threads): re-read every retune_every calls

    def _num_threads(self) -> int:
        at = self._threads[0]
        if at < 0 or self.calls - at >= self.retune_every:  # numba.get_num_threads costs µs per call
            self._threads = (self.calls, numba.get_num_threads())
        return self._threads[1]

    def faster_is_parallel(self) -> bool:
        """Whether the parallel kernel is the one kept (both must have been timed)."""
        serial, parallel = self.speed
        return parallel < (1.0 - MIN_GAIN) * serial

    def use_parallel(self, work: int) -> bool:
        """Whether the next call (of ``work`` units) should run the parallel kernel."""
        if self.forced is not None:
            return bool(self.forced)
        if work < self.min_work or self._num_threads() < 2:
            return False
        serial, parallel = self.speed
        if serial is None or (self.samples[0] < 2 and self.samples[1] >= 1):
            return False
        if parallel is None or self.samples[1] < 2:
            return True
        faster = self.faster_is_parallel()
        if self.next_retry == 0:  # both just timed: schedule the first re-try
            self.next_retry = self._retry_after()
        if self.calls >= self.next_retry:
            self.next_retry = self._retry_after()
            self._retrying = True
            return not faster
        return faster

    def _retry_after(self) -> int:
        """Call count of the next re-try of the slower kernel: ``retune_every × slow/fast`` on."""
        serial, parallel = self.speed
        slow, fast = max(serial, parallel), min(serial, parallel)
        ratio = slow / fast if fast > 0 else 1e6
        return self.calls + math.ceil(self.retune_every * min(max(1.0, ratio), 1e6))

    def record(self, parallel: bool, seconds: float, work: int) -> None:
        """Report the wall time of a call of ``work`` units made with the kernel ``parallel``."""
        if self.forced is not None or work <= 0:
            return
        self.calls += 1
        k = int(parallel)
        per = seconds / work
        old = self.speed[k]
        self.samples[k] += 1
        # the first call is provisional (thread start, cache loading): the second replaces it; a
        # re-try replaces the old figure too (it is the only news about that kernel for a while);
        # otherwise a short memory, so that a change of load is followed within a few calls
        fresh = old is None or self.samples[k] == 2 or self._retrying
        self.speed[k] = per if fresh else 0.5 * old + 0.5 * per
        if self._retrying and None not in self.speed:  # space the next re-try by the new ratio
            self.next_retry = self._retry_after()
        self._retrying = False
