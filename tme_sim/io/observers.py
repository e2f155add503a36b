"""Observers of the step loop (output, progress, checkpoints): the physics never calls them.

An observer gets ``on_start(model)``, ``on_step(model)`` after every mechanics step and
``on_finish(model)``; it decides itself when to act (py-pde's trackers are the model).
"""

from __future__ import annotations

import math
import time as wallclock
from pathlib import Path
from typing import TYPE_CHECKING

from tme_sim.io import OutputWriter

if TYPE_CHECKING:
    from rich.progress import Progress

    from tme_sim.model import TMEModel


class Observer:
    """Base observer acting every ``interval`` simulated minutes (0 = only start/finish)."""

    def __init__(self, interval: float = 0.0) -> None:
        self.interval = float(interval)
        self._next = 0.0

    def on_start(self, model: TMEModel) -> None:
        # aligned to whole multiples of the interval, so a resumed run acts at the same times
        if self.interval > 0:
            self._next = (math.floor(model.time / self.interval + 1e-9) + 1) * self.interval
        else:
            self._next = float("inf")

    def on_step(self, model: TMEModel) -> None:
        if model.time + 1e-9 >= self._next:
            self.act(model)
            while self._next <= model.time + 1e-9:
                self._next += self.interval

    def on_finish(self, model: TMEModel) -> None:
        pass

    def act(self, model: TMEModel) -> None:
        pass


class OutputObserver(Observer):
    """Writes a snapshot at start, every ``interval`` minutes, and at the end (if not just written)."""

    def __init__(self, writer: OutputWriter, interval: float, *, initial: bool = True) -> None:
        super().__init__(interval)
        self.writer = writer
        self.initial = initial
        self._last_time = None

    def on_start(self, model: TMEModel) -> None:
        super().on_start(model)
        if self.initial:
            self.act(model)

    def act(self, model: TMEModel) -> None:
        self.writer.snapshot(model)
        self._last_time = model.time

    def on_finish(self, model: TMEModel) -> None:
        if self._last_time is None or abs(self._last_time - model.time) > 1e-9:
            self.act(model)


class ProgressObserver(Observer):
    """A rich progress bar: simulated time, cells per type, simulated minutes per wall second."""

    def __init__(self, duration: float, progress: Progress, interval: float | None = None) -> None:
        super().__init__(interval if interval is not None else 0.0)
        self.duration = duration
        self.progress = progress
        self.task = None
        self._t0 = 0.0
        self._sim0 = 0.0
        self._last_wall = 0.0

    def on_start(self, model: TMEModel) -> None:
        self._t0 = wallclock.perf_counter()
        self._sim0 = model.time
        self.task = self.progress.add_task("run", total=self.duration, info="")
        self._refresh(model)

    def on_step(self, model: TMEModel) -> None:
        now = wallclock.perf_counter()
        if now - self._last_wall >= 0.25:
            self._last_wall = now
            self._refresh(model)

    def _refresh(self, model: TMEModel) -> None:
        wall = max(wallclock.perf_counter() - self._t0, 1e-9)
        rate = (model.time - self._sim0) / wall
        cells = " ".join(f"{k}={v}" for k, v in model.summary().items())
        info = f"t={model.time / 60:.1f} h  {cells}  {rate:.0f} sim-min/s"
        self.progress.update(self.task, completed=model.time - self._sim0, info=info)
        self.progress.refresh()

    def on_finish(self, model: TMEModel) -> None:
        self._refresh(model)


class CheckpointObserver(Observer):
    """Writes a checkpoint every ``interval`` simulated minutes (atomic: temp file, fsync, rename)."""

    def __init__(self, path: Path, interval: float) -> None:
        super().__init__(interval)
        self.path = Path(path)

    def act(self, model: TMEModel) -> None:
        from tme_sim.io.checkpoint import write_checkpoint

        write_checkpoint(model, self.path)
