"""The view of a running simulation: an observer copies each snapshot into memory, the page reads it.

:class:`LiveObserver` runs in the simulation's thread (after the output snapshot, at the same
times); :class:`LiveSource` is read by the web server's thread under a lock. Nothing here touches
the output file, so the page works whatever the file's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tme_sim.cells import BEHAVIOR_COLUMNS, DEATH_NAMES
from tme_sim.events import EVENT_KINDS
from tme_sim.io import POPULATION_STATES
from tme_sim.io.observers import Observer
from tme_sim.view.data import Source, type_colors_of

if TYPE_CHECKING:
    from tme_sim.model import TMEModel

_DEATH = np.array(list(DEATH_NAMES.values()))


class LiveSource(Source):
    """Snapshots of a running model, kept in memory (cells as tables, fields as float32)."""

    def __init__(self) -> None:
        super().__init__()
        self._times: list[float] = []
        self._cells: list[pd.DataFrame] = []
        self._fields: list[np.ndarray] = []
        self._population: list[pd.DataFrame] = []
        self._events: list[dict[str, int]] = []
        self.progress = {"running": True, "time": 0.0, "duration": 0.0, "state": "starting"}

    # ------------------------------------------------------------------ written by the observer
    def start(self, model: TMEModel, duration: float) -> None:
        doc = model.scenario.model_dump(mode="json")
        with self.lock:
            self.meta = {
                "scenario": model.scenario.name,
                "dim": model.dim,
                "size": [float(s) for s in model.scenario.domain.size],
                "dx": float(model.micro.dx),
                "cell_types": list(model.type_names),
                "substrates": list(model.substrate_names),
                "units": dict(zip(model.substrate_names, model.substrate_units, strict=True)),
                "colors": type_colors_of(doc),
                "event_kinds": list(EVENT_KINDS),
                "source": "live run",
            }
            self.progress = {
                "running": True,
                "time": model.time,
                "start": model.time,
                "duration": model.time + duration,
                "state": "running",
            }

    def add(self, model: TMEModel) -> None:
        st = model.store
        n = st.n
        types = np.asarray(model.type_names)
        df = pd.DataFrame(
            {
                "snapshot": len(self._times),
                "time": model.time,
                "id": st.id[:n].copy(),
                "type": types[st.type[:n]],
                "death": _DEATH[st.death[:n]],
                "x": st.position[:n, 0].copy(),
                "y": st.position[:n, 1].copy(),
                "z": st.position[:n, 2].copy(),
                "radius": st.radius[:n].copy(),
                "volume": st.volume[:n].copy(),
                "generation": st.generation[:n].copy(),
                "kills": st.kills[:n].copy(),
                "exhaustion": st.exhaustion[:n].copy(),
                **{b: getattr(st, b)[:n].copy() for b in BEHAVIOR_COLUMNS},
            }
        )
        for ti, im in model.intracellular.items():
            rows = st.istate_of(ti)
            if rows.shape[0] == 0:
                continue
            ids = st.id[st.istate_slots(ti)]
            name = model.type_names[ti]
            states = pd.DataFrame(rows, columns=[f"{name}:{c}" for c in im.state_names])
            states["id"] = ids
            df = df.merge(states, on="id", how="left")
        counts = model.population_counts()
        pop = pd.DataFrame(counts, columns=list(POPULATION_STATES))
        pop.insert(0, "type", model.type_names)
        pop.insert(0, "time", model.time)
        fields = model.micro.species_first().astype(np.float32)
        with self.lock:
            self._times.append(float(model.time))
            self._cells.append(df)
            self._fields.append(fields)
            self._population.append(pop)
            self._events.append(dict(model.events.totals))
            self.version += 1

    def set_time(self, time: float) -> None:
        self.progress["time"] = time  # a float store: atomic enough for a progress line

    def finish(self, state: str) -> None:
        with self.lock:
            self.progress = {**self.progress, "running": False, "state": state}
            self.version += 1

    # ------------------------------------------------------------------ read by the page
    def n_snapshots(self) -> int:
        with self.lock:
            return len(self._times)

    def times(self) -> np.ndarray:
        with self.lock:
            return np.asarray(self._times)

    def cells(self, k: int) -> pd.DataFrame:
        with self.lock:
            return self._cells[k]

    def field(self, k: int, species: str) -> np.ndarray | None:
        with self.lock:
            if species not in self.meta.get("substrates", []):
                return None
            return self._fields[k][self.meta["substrates"].index(species)]

    def field_range(self, species: str) -> tuple[float, float]:
        with self.lock:
            if species not in self.meta.get("substrates", []) or not self._fields:
                return 0.0, 1.0
            j = self.meta["substrates"].index(species)
            lo = min(0.0, min(float(f[j].min()) for f in self._fields))
            hi = max(float(f[j].max()) for f in self._fields)
        return lo, hi if hi > lo else lo + 1e-12

    def population(self) -> pd.DataFrame:
        with self.lock:
            return pd.concat(self._population, ignore_index=True) if self._population else pd.DataFrame()

    def event_counts(self) -> pd.DataFrame:
        with self.lock:
            rows = list(self._events)
            times = list(self._times)
        return pd.DataFrame(rows, index=pd.Index(times, name="time"), columns=self.meta.get("event_kinds"))

    def history(self, cell_id: int) -> pd.DataFrame:
        with self.lock:
            frames = [df[df["id"] == cell_id] for df in self._cells]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


class LiveObserver(Observer):
    """Copies a snapshot into a :class:`LiveSource` at the output's times; keeps its progress current."""

    def __init__(self, source: LiveSource, interval: float | None = None) -> None:
        super().__init__(0.0)
        self.source = source
        self._interval = interval
        self._last = None
        self.planned_minutes: float | None = None  # set by tme_sim.runner.execute

    def on_start(self, model: TMEModel) -> None:
        self.interval = float(self._interval if self._interval is not None else model.scenario.output.interval)
        super().on_start(model)
        planned = self.planned_minutes
        self.source.start(model, planned if planned is not None else model.scenario.duration - model.time)
        self.act(model)

    def on_step(self, model: TMEModel) -> None:
        self.source.set_time(model.time)
        super().on_step(model)

    def act(self, model: TMEModel) -> None:
        self.source.add(model)
        self._last = model.time

    def on_finish(self, model: TMEModel) -> None:
        if self._last is None or abs(self._last - model.time) > 1e-9:
            self.act(model)
        self.source.finish("complete")
