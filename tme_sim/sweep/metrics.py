"""Summary metrics of one run, computed from its output tables.

Each metric is a plain function of the run's tables (pandas DataFrames as returned by
:mod:`tme_sim.io`) and a :class:`MetricContext`, returning a flat ``{column: float}`` dict, so
they are unit-tested on small synthetic tables. :class:`MetricSet` is the picklable callable the
executor ships to the workers: ``MetricSet(...)(path)`` reads the HDF5 file lazily (only the
tables its metrics need) and merges the columns.

Columns (units in :data:`METRIC_UNITS`):

``final_cells``          ``final_<type>`` live cells of each type at the last output time,
                         ``final_dead_<type>`` apoptotic + necrotic + lysed ones.
``tumor_auc``            ``tumor_auc``: area under the live-tumor-cell curve (cell·h);
                         ``tumor_fold_change``: final / initial live tumor cells.
``tcell_infiltration``   ``tcell_infiltration``: fraction of live T cells inside the tumor at the
                         last snapshot (inside the sphere, or disc in 2D, centred on the tumor
                         centroid whose radius is that of a uniform ball with the tumor cells'
                         radius of gyration); ``tcells_in_tumor``, ``tcells_live``.
``kills``                ``kills``: number of kill events.
``events``               ``n_<kind>`` for every event kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from tme_sim.io import read_cells, read_events, read_population

EVENT_KINDS = ("division", "apoptosis", "necrosis", "kill", "recruitment", "phagocytosis", "lysis")
TUMOR_NAMES = ("tumor",)
TCELL_NAMES = ("tcell", "t_cell", "cd8", "cd8_t_cell", "cd8_tcell")


@dataclass(frozen=True)
class MetricContext:
    """Which cell types count as tumor and as T cells."""

    tumor_types: tuple[str, ...] = TUMOR_NAMES
    tcell_types: tuple[str, ...] = TCELL_NAMES


class RunTables:
    """The tables of one run, read on first use (``population``, ``events``, ``cells``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @cached_property
    def population(self) -> pd.DataFrame:
        return read_population(self.path)

    @cached_property
    def events(self) -> pd.DataFrame:
        return read_events(self.path)

    @cached_property
    def cells(self) -> pd.DataFrame:
        return read_cells(self.path, -1)


# ---------------------------------------------------------------------------------------------
# metric functions


def final_cells(t: RunTables, ctx: MetricContext) -> dict[str, float]:
    """Live and dead cells of each type at the last output time."""
    pop = t.population
    if pop.empty:
        return {}
    last = pop[pop["time"] == pop["time"].max()]
    out: dict[str, float] = {}
    for typ, g in last.groupby("type", sort=True):
        out[f"final_{typ}"] = float(g["live"].sum())
        dead = sum(float(g[c].sum()) for c in ("apoptotic", "necrotic", "lysed") if c in g)
        out[f"final_dead_{typ}"] = dead
    return out


def _tumor_series(pop: pd.DataFrame, tumor_types: Iterable[str]) -> pd.Series:
    """Live tumor cells per output time (min), summed over tumor types; 0 where absent."""
    times = np.sort(pop["time"].unique())
    sel = pop[pop["type"].isin(list(tumor_types))]
    return sel.groupby("time")["live"].sum().reindex(times, fill_value=0).astype(np.float64)


def tumor_auc(t: RunTables, ctx: MetricContext) -> dict[str, float]:
    """Area under the live-tumor-cell curve (cell·h, trapezoid rule) and the fold change."""
    pop = t.population
    if pop.empty:
        return {"tumor_auc": np.nan, "tumor_fold_change": np.nan}
    s = _tumor_series(pop, ctx.tumor_types)
    x = s.index.to_numpy(dtype=np.float64) / 60.0
    y = s.to_numpy()
    auc = float(np.trapezoid(y, x)) if len(y) > 1 else 0.0
    fold = float(y[-1] / y[0]) if y[0] > 0 else np.nan
    return {"tumor_auc": auc, "tumor_fold_change": fold}


def _live(cells: pd.DataFrame) -> pd.Series:
    if "dead" in cells:
        return ~cells["dead"].astype(bool)
    return pd.Series(True, index=cells.index)


def tcell_infiltration(t: RunTables, ctx: MetricContext) -> dict[str, float]:
    """Fraction of live T cells inside the tumor at the last snapshot (see module docstring)."""
    cells = t.cells
    live = cells[_live(cells)]
    tumor = live[live["type"].isin(ctx.tumor_types)]
    tcells = live[live["type"].isin(ctx.tcell_types)]
    n_t = len(tcells)
    if n_t == 0 or len(tumor) == 0:
        return {"tcell_infiltration": np.nan, "tcells_in_tumor": 0.0, "tcells_live": float(n_t)}
    cols = [c for c in ("x", "y", "z") if c in cells]
    pos = tumor[cols].to_numpy(dtype=np.float64)
    if "z" in cols and np.ptp(pos[:, -1]) == 0.0 and np.ptp(tcells["z"].to_numpy(dtype=np.float64)) == 0.0:
        cols = cols[:2]
        pos = pos[:, :2]
    centre = pos.mean(axis=0)
    rg2 = float(np.mean(np.sum((pos - centre) ** 2, axis=1)))
    # uniform ball: Rg^2 = 3/5 R^2; uniform disc: Rg^2 = 1/2 R^2
    radius = np.sqrt(rg2 * (5.0 / 3.0 if len(cols) == 3 else 2.0))
    d2 = np.sum((tcells[cols].to_numpy(dtype=np.float64) - centre) ** 2, axis=1)
    inside = int(np.count_nonzero(d2 <= radius * radius))
    return {"tcell_infiltration": inside / n_t, "tcells_in_tumor": float(inside), "tcells_live": float(n_t)}


def kills(t: RunTables, ctx: MetricContext) -> dict[str, float]:
    """Number of kill events."""
    ev = t.events
    return {"kills": float(np.count_nonzero(ev["kind"].to_numpy() == "kill")) if len(ev) else 0.0}


def events(t: RunTables, ctx: MetricContext) -> dict[str, float]:
    """Number of events of each kind."""
    ev = t.events
    counts = ev["kind"].value_counts() if len(ev) else pd.Series(dtype=np.int64)
    kinds = list(EVENT_KINDS) + sorted(set(counts.index) - set(EVENT_KINDS))
    return {f"n_{k}": float(counts.get(k, 0)) for k in kinds}


METRICS: dict[str, Callable[[RunTables, MetricContext], dict[str, float]]] = {
    "final_cells": final_cells,
    "tumor_auc": tumor_auc,
    "tcell_infiltration": tcell_infiltration,
    "kills": kills,
    "events": events,
}

METRIC_UNITS: dict[str, str] = {
    "final_*": "cells",
    "final_dead_*": "cells",
    "tumor_auc": "cell*h",
    "tumor_fold_change": "1",
    "tcell_infiltration": "1",
    "tcells_in_tumor": "cells",
    "tcells_live": "cells",
    "kills": "events",
    "n_*": "events",
}


def context_for(
    types: Mapping[str, str],
    tumor_types: Sequence[str] | None = None,
    tcell_types: Sequence[str] | None = None,
) -> MetricContext:
    """Pick tumor / T-cell types: explicit lists, else by ``rules``, else by conventional name."""

    def pick(explicit: Sequence[str] | None, rules: str, names: tuple[str, ...]) -> tuple[str, ...]:
        if explicit:
            return tuple(explicit)
        by_rules = tuple(n for n, r in types.items() if r == rules)
        if by_rules:
            return by_rules
        by_name = tuple(n for n in types if n in names)
        return by_name or names

    return MetricContext(
        tumor_types=pick(tumor_types, "tumor", TUMOR_NAMES),
        tcell_types=pick(tcell_types, "cd8_t_cell", TCELL_NAMES),
    )


@dataclass(frozen=True)
class MetricSet:
    """Picklable: ``MetricSet(names, ctx)(path)`` → ``{column: float}`` for one run file."""

    names: tuple[str, ...]
    context: MetricContext = field(default_factory=MetricContext)
    tables: type[RunTables] = RunTables

    def __post_init__(self) -> None:
        unknown = [n for n in self.names if n not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}")

    def __call__(self, path: str | Path) -> dict[str, float]:
        t = self.tables(path)
        out: dict[str, float] = {}
        for name in self.names:
            out.update(METRICS[name](t, self.context))
        return out
