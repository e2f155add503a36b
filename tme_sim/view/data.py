"""What the browser view shows, read from an output file (:class:`FileSource`) or a running
simulation (:class:`tme_sim.view.live.LiveSource`): both answer the same questions.

A source holds snapshots ``0..n-1`` (times in min); per snapshot a cells table (one row per cell:
``id``, ``type`` and ``death`` names, ``x, y, z, radius`` in µm, numeric state columns, and the
intracellular states of typed models as ``<type>:<node>`` columns) and the fields; over the run
the population and cumulative event counts.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tme_sim.io import (
    committed_snapshots,
    open_output,
    read_attrs,
    read_cells,
    read_events,
    read_population,
    read_states,
    read_stored_scenario,
    species_units,
)

#: columns that are labels or coordinates, never offered as "colour by"
NOT_NUMERIC = ("snapshot", "time", "id", "type", "phase", "death", "dead", "x", "y", "z", "clone")


def type_colors_of(doc: dict[str, Any]) -> dict[str, str]:
    """Colour of each cell type of a resolved scenario dictionary (as in the static figures)."""
    from tme_sim.plotting import DEFAULT_COLORS, PALETTE

    return {
        name: ct.get("color") or DEFAULT_COLORS.get(ct.get("rules", ""), PALETTE[i % len(PALETTE)])
        for i, (name, ct) in enumerate(doc["cell_types"].items())
    }


class Source:
    """Base of the view's data sources; subclasses fill the attributes and implement the readers."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.version = 0  # bumped whenever a snapshot is added
        self.meta: dict[str, Any] = {}
        self.progress: dict[str, Any] = {"running": False, "time": 0.0, "duration": 0.0, "state": "complete"}

    # every reader takes snapshot indices 0..n-1
    def n_snapshots(self) -> int:
        raise NotImplementedError

    def times(self) -> np.ndarray:
        raise NotImplementedError

    def cells(self, k: int) -> pd.DataFrame:
        raise NotImplementedError

    def field(self, k: int, species: str) -> np.ndarray | None:
        """The ``(nz, ny, nx)`` field at snapshot ``k`` (None when fields are not stored)."""
        raise NotImplementedError

    def field_range(self, species: str) -> tuple[float, float]:
        raise NotImplementedError

    def population(self) -> pd.DataFrame:
        """Long table: time, type, live, apoptotic, necrotic, lysed."""
        raise NotImplementedError

    def event_counts(self) -> pd.DataFrame:
        """Cumulative events of each kind (columns) at each snapshot time (index, min)."""
        raise NotImplementedError

    def history(self, cell_id: int) -> pd.DataFrame:
        """Every snapshot's row of one cell (by id), in time order."""
        raise NotImplementedError

    def numeric_columns(self) -> list[str]:
        df = self.cells(self.n_snapshots() - 1) if self.n_snapshots() else pd.DataFrame()
        return [c for c in df.columns if c not in NOT_NUMERIC and pd.api.types.is_numeric_dtype(df[c])]

    def column_range(self, column: str) -> tuple[float, float]:
        lo, hi = np.inf, -np.inf
        for k in range(self.n_snapshots()):
            df = self.cells(k)
            if column in df and len(df):
                v = df[column].to_numpy(dtype=float)
                v = v[np.isfinite(v)]
                if v.size:
                    lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
        if not np.isfinite(lo):
            return 0.0, 1.0
        return lo, hi if hi > lo else lo + 1e-12


def _with_states(cells: pd.DataFrame, states: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``cells`` (all snapshots) with each type's intracellular states as ``<type>:<node>`` columns."""
    for t, st in states.items():
        values = st.drop(columns=["time"]).reset_index()
        values = values.rename(columns={c: f"{t}:{c}" for c in values.columns if c not in ("id", "snapshot")})
        cells = cells.merge(values, on=["id", "snapshot"], how="left")
    return cells


class FileSource(Source):
    """A finished (or stopped) run's HDF5 file, read once into memory; fields are read per frame."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        attrs = read_attrs(self.path)
        doc = read_stored_scenario(self.path)
        with open_output(self.path) as fh:
            n = committed_snapshots(fh)
            g = fh["fields"]
            dx = float(g["x"][1] - g["x"][0]) if g["x"].shape[0] > 1 else 1.0
            state_types = list(fh["cells/state"]) if "cells/state" in fh else []
            self._has_fields = bool(attrs.get("write_fields", True)) and g["time"].shape[0] > 0
        all_cells = read_cells(self.path, snapshot=None)
        states = {t: read_states(self.path, t, snapshot=None) for t in state_types}
        all_cells = _with_states(all_cells, states)
        all_cells["type"] = all_cells["type"].astype(str)
        all_cells["death"] = all_cells["death"].astype(str)
        self._by_snapshot = {int(k): df.reset_index(drop=True) for k, df in all_cells.groupby("snapshot", sort=True)}
        self._all = all_cells
        self._times = np.asarray([float(self._by_snapshot[k]["time"].iloc[0]) for k in range(n)])
        self._population = read_population(self.path)
        self._events = read_events(self.path)
        self._ranges: dict[str, tuple[float, float]] = {}
        size = [float(str(s).split()[0]) for s in doc["domain"]["size"]]
        self.meta = {
            "scenario": attrs.get("scenario", ""),
            "dim": int(attrs["dim"]),
            "size": size,
            "dx": dx,
            "cell_types": list(attrs.get("cell_types", [])),
            "substrates": list(attrs.get("substrates", [])) if self._has_fields else [],
            "units": species_units(self.path),
            "colors": type_colors_of(doc),
            "event_kinds": [str(k) for k in self._events["kind"].cat.categories],
            "source": str(self.path),
        }
        complete = bool(attrs.get("complete", False))
        last = float(self._times[-1]) if n else 0.0
        self.progress = {
            "running": False,
            "time": last,
            "duration": last,
            "state": "complete" if complete else "incomplete (the run stopped early)",
        }

    def n_snapshots(self) -> int:
        return len(self._times)

    def times(self) -> np.ndarray:
        return self._times

    def cells(self, k: int) -> pd.DataFrame:
        return self._by_snapshot[k]

    def field(self, k: int, species: str) -> np.ndarray | None:
        if not self._has_fields or species not in self.meta["substrates"]:
            return None
        with open_output(self.path) as fh:
            g = fh["fields"]
            t = g["time"][:]
            i = int(np.argmin(np.abs(t - self._times[k])))
            data = np.asarray(g["concentration"][i, self.meta["substrates"].index(species)])
        return data if data.ndim == 3 else data[None]

    def field_range(self, species: str) -> tuple[float, float]:
        if species not in self._ranges:
            from tme_sim.plotting import field_range

            self._ranges[species] = field_range(self.path, species)
        return self._ranges[species]

    def population(self) -> pd.DataFrame:
        return self._population

    def event_counts(self) -> pd.DataFrame:
        return cumulative_events(self._events, self._times, self.meta["event_kinds"])

    def history(self, cell_id: int) -> pd.DataFrame:
        return self._all[self._all["id"] == cell_id].sort_values("time")

    def column_range(self, column: str) -> tuple[float, float]:
        if column not in self._all:
            return 0.0, 1.0
        v = self._all[column].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            return 0.0, 1.0
        lo, hi = float(v.min()), float(v.max())
        return lo, hi if hi > lo else lo + 1e-12


def cumulative_events(events: pd.DataFrame, times: np.ndarray, kinds: list[str]) -> pd.DataFrame:
    """Cumulative count of each event kind at each of ``times`` (min)."""
    out = {}
    for kind in kinds:
        t = np.sort(events.loc[events["kind"] == kind, "time"].to_numpy())
        out[kind] = np.searchsorted(t, times + 1e-9, side="right")
    return pd.DataFrame(out, index=pd.Index(times, name="time"))
