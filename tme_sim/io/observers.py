"""Observers of the step loop (output, progress, checkpoints): the physics never calls them.

An observer gets ``on_start(model)``, ``on_step(model)`` after every mechanics step and
``on_finish(model)``; it decides itself when to act (py-pde's trackers are the model).

A new output is one observer class: a subclass that sets ``name`` registers itself (here or in a
scenario's ``plugins``) and a scenario turns it on with a table ``[output.observers.<name>]``
whose keys are passed to :meth:`Observer.from_settings` (``interval`` with a unit).
"""

from __future__ import annotations

import math
import time as wallclock
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tme_sim.errors import ConfigError
from tme_sim.io import OutputWriter
from tme_sim.io.checkpoint import write_checkpoint
from tme_sim.units import parse_duration

if TYPE_CHECKING:
    from rich.progress import Progress

    from tme_sim.model import TMEModel


#: observers selectable from scenarios: name → class (filled by ``Observer.__init_subclass__``)
_OBSERVERS: dict[str, type[Observer]] = {}


class Observer:
    """Base observer acting every ``interval`` simulated minutes (0 = only start/finish)."""

    #: name under ``[output.observers]`` (empty: not selectable from scenarios)
    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("name"):
            _OBSERVERS[cls.name] = cls

    @classmethod
    def from_settings(cls, settings: dict[str, Any], output: Path, key: str) -> Observer:
        """Build from the scenario's ``[output.observers.<name>]`` table (``key`` names it in errors)
        for the run writing ``output``. Default: ``interval`` (a duration with unit) and nothing else."""
        unknown = sorted(set(settings) - {"interval"})
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]}: unknown key")
        interval = settings.get("interval", "0 min")
        try:
            minutes = parse_duration(str(interval))
        except ValueError as exc:
            raise ConfigError(f"{key}.interval: {exc}") from None
        return cls(interval=minutes)

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
        write_checkpoint(model, self.path)


class PopulationCSVObserver(Observer):
    """Live cells per type every ``interval`` minutes in ``<output>.population.csv`` (time in min,
    one column per type): a plain table for spreadsheets, written as the run goes."""

    name = "population_csv"

    def __init__(self, interval: float = 60.0, path: Path | None = None) -> None:
        super().__init__(interval)
        self.path = path

    @classmethod
    def from_settings(cls, settings: dict[str, Any], output: Path, key: str) -> Observer:
        obs = super().from_settings(settings, output, key)
        obs.path = output.with_suffix(".population.csv")
        return obs

    def on_start(self, model: TMEModel) -> None:
        super().on_start(model)
        if self.path is None:
            return
        if model.time == 0 or not self.path.exists():  # a resumed run appends to its table
            self.path.write_text(",".join(["time_min", *model.type_names]) + "\n")
            self.act(model)

    def act(self, model: TMEModel) -> None:
        if self.path is None:
            return
        counts = model.summary()
        with self.path.open("a") as fh:
            fh.write(",".join([f"{model.time:g}", *(str(counts[n]) for n in model.type_names)]) + "\n")


def scenario_observers(tables: dict[str, dict[str, Any]], output: Path) -> list[Observer]:
    """The observers a scenario's ``[output.observers]`` turns on, for the run writing ``output``."""
    out = []
    for name, settings in tables.items():
        key = f"output.observers.{name}"
        cls = _OBSERVERS.get(name)
        if cls is None:
            raise ConfigError(f"{key}: unknown observer (known: {', '.join(sorted(_OBSERVERS)) or 'none'})")
        if not isinstance(settings, dict):
            raise ConfigError(f"{key}: expected a table")
        out.append(cls.from_settings(settings, output, key))
    return out
