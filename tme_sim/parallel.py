"""Choosing between the serial and the parallel compilation of a kernel, by measurement.

Every hot kernel exists twice (``parallel=True`` with ``prange`` and a serial twin) and both
give bit-identical results, so which one runs is purely a speed question. Threads pay for large
calls on an idle machine, but on a shared or oversubscribed one (2 cores with other work running)
a fork/join barrier can wait a whole scheduler time slice and the parallel kernel becomes many
times slower. :class:`KernelChooser` therefore times both on the run's own calls and keeps the
faster, re-trying the slower one every ``retune_every`` calls so that a change of load on the
machine is followed.
"""

from __future__ import annotations

import numba


class KernelChooser:
    """Serial-or-parallel choice for one kernel (see the module docstring).

    Args:
        min_work: below this much work per call (the caller's unit: cells, voxel values…) the
            serial kernel always runs, as it does when numba has a single thread.
        retune_every: every this many timed calls the currently slower kernel runs once more.
        forced: ``True``/``False`` always runs the parallel/serial kernel; ``None`` chooses.
    """

    def __init__(self, min_work: int, retune_every: int = 50, forced: bool | None = None) -> None:
        self.min_work = int(min_work)
        self.retune_every = int(retune_every)
        self.forced = forced
        #: smoothed seconds per unit of work of the serial and the parallel kernel (None: not yet timed)
        self.speed: list[float | None] = [None, None]
        self.calls = 0
        self._threads = (-1, 0)  # (calls when read, numba threads): re-read every retune_every calls

    def _num_threads(self) -> int:
        at = self._threads[0]
        if at < 0 or self.calls - at >= self.retune_every:  # numba.get_num_threads costs µs per call
            self._threads = (self.calls, numba.get_num_threads())
        return self._threads[1]

    def use_parallel(self, work: int) -> bool:
        """Whether the next call (of ``work`` units) should run the parallel kernel."""
        if self.forced is not None:
            return bool(self.forced)
        if work < self.min_work or self._num_threads() < 2:
            return False
        serial, parallel = self.speed
        if serial is None:
            return False
        if parallel is None:
            return True
        faster = parallel < serial
        if self.calls % self.retune_every == 0:
            return not faster
        return faster

    def record(self, parallel: bool, seconds: float, work: int) -> None:
        """Report the wall time of a call of ``work`` units made with the kernel ``parallel``."""
        if self.forced is not None or work <= 0:
            return
        self.calls += 1
        per = seconds / work
        old = self.speed[int(parallel)]
        # a short memory, so that a change of load on the machine is followed within a few calls
        self.speed[int(parallel)] = per if old is None else 0.5 * old + 0.5 * per
