"""Dose points through the full spatial simulation (``tme drugs simulate``).

:func:`simulate_doses` runs a scenario with a ``[drugs]`` section once per dose point and
returns the live cells of every type at the end, with the tumor/healthy role of each type. A dose
point sets, per drug, either ``dose_scale`` (the scenario's schedule × factor, PK included) or a
constant ``plasma`` level (nM, the spatial counterpart of a point of ``tme drugs screen``). Each
point is a fresh model with the same seed, so the points differ only by the dose (common random
numbers up to the divergence the dose itself causes).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tme_sim.errors import ConfigError

Mode = Literal["scale", "plasma"]


@dataclass
class PointResult:
    """One dose point: ``doses`` (drug → value: dose_scale factor or plasma nM), the live count per
    type at the start and at the end, dead-cell counts (apoptotic, necrotic, lysed) at the end and
    the wall time (s)."""

    doses: dict[str, float]
    initial: dict[str, int]
    final: dict[str, int]
    dead: dict[str, int]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimulationResult:
    """All points of :func:`simulate_doses`; ``roles`` maps each type to "tumor" or "healthy"."""

    mode: Mode
    drugs: list[str]
    duration: float
    roles: dict[str, str]
    points: list[PointResult]

    def control(self) -> PointResult | None:
        """The point where every varied drug is at 0, if it was run."""
        for p in self.points:
            if all(v == 0 for v in p.doses.values()):
                return p
        return None

    def loss(self, point: PointResult, cell_type: str) -> float:
        """Fractional loss of live ``cell_type`` cells against the control point (0 = none)."""
        ctl = self.control()
        ref = (ctl.final if ctl is not None else point.initial)[cell_type]
        return float(1.0 - point.final[cell_type] / ref) if ref > 0 else float("nan")

    def table(self) -> list[str]:
        """Printable lines: one row per point, live cells per type and loss vs the control."""
        types = list(self.roles)
        unit = "x dose" if self.mode == "scale" else "nM plasma"
        head = "  ".join(f"{d:>11}" for d in self.drugs)
        cols = "  ".join(f"{t[:12]:>12}" for t in types)
        loss = "  ".join(f"{'loss ' + t[:7]:>12}" for t in types)
        lines = [
            f"dose points ({unit}), live cells after {self.duration / 60:g} h; "
            f"roles: {', '.join(f'{t}={r}' for t, r in self.roles.items())}",
            f"{head}  {cols}  {loss}      s",
        ]
        for p in self.points:
            vals = "  ".join(f"{p.doses[d]:>11.4g}" for d in self.drugs)
            live = "  ".join(f"{p.final[t]:>12d}" for t in types)
            lo = "  ".join(f"{self.loss(p, t):>12.2f}" for t in types)
            lines.append(f"{vals}  {live}  {lo}  {p.seconds:5.1f}")
        return lines

    def to_rows(self) -> list[dict[str, Any]]:
        """Flat rows (CSV/JSON friendly)."""
        rows = []
        for p in self.points:
            r: dict[str, Any] = {f"{self.mode}:{d}": v for d, v in p.doses.items()}
            for t in self.roles:
                r[f"initial:{t}"] = p.initial[t]
                r[f"live:{t}"] = p.final[t]
                r[f"dead:{t}"] = p.dead[t]
                r[f"loss:{t}"] = self.loss(p, t)
            r["seconds"] = p.seconds
            rows.append(r)
        return rows


def roles_of(scenario: Any) -> dict[str, str]:
    """Cell types with ``rules = "tumor"`` are tumor, every other type is healthy."""
    return {name: ("tumor" if ct.rules == "tumor" else "healthy") for name, ct in scenario.cell_types.items()}


def dose_grid(levels: dict[str, Sequence[float]]) -> list[dict[str, float]]:
    """Full factorial grid of per-drug levels (first drug varies slowest)."""
    names = list(levels)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(levels[n] for n in names))]


def point_scenario(
    scenario_path: str | Path, point: dict[str, float], mode: Mode, overrides: dict[str, Any] | None = None
) -> Any:
    """The scenario of one dose point: ``drugs.given.<d>.dose_scale = v`` (``mode="scale"``) or
    ``drugs.given.<d>.plasma = "v nM"`` with the schedule removed (``mode="plasma"``)."""
    from tme_sim.config import apply_overrides, read_toml, validate_scenario

    path = Path(scenario_path)
    doc, text = read_toml(path)
    doc = apply_overrides(doc, overrides, str(path))
    drugs = doc.get("drugs")
    if not isinstance(drugs, dict):
        raise ConfigError(f"{path}: no [drugs] section; nothing to dose")
    given = drugs.get("given")
    if isinstance(given, list):
        given = {g: {} for g in given if isinstance(g, str)}
    if not isinstance(given, dict):
        raise ConfigError(f"{path}: drugs.given: expected [drugs.given.<name>] tables or a list of names")
    for d, v in point.items():
        g = dict(given.get(d) or {})
        if mode == "scale":
            g["dose_scale"] = float(v)
        else:
            g.pop("schedule", None)
            g.pop("dose_scale", None)
            g["plasma"] = f"{float(v)!r} nM"
        given[d] = g
    drugs["given"] = given
    sc = validate_scenario(doc, str(path))
    sc._source_path = path.resolve()  # type: ignore[attr-defined]
    sc._source_text = text  # type: ignore[attr-defined]
    return sc


def simulate_doses(
    scenario_path: str | Path,
    points: list[dict[str, float]],
    *,
    mode: Mode = "scale",
    duration: float | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
    progress: Any = None,
) -> SimulationResult:
    """Run the scenario once per dose point; ``duration`` (min) defaults to the scenario's.

    ``points``: drug → value (``dose_scale`` factor for ``mode="scale"``, plasma nM for
    ``mode="plasma"``). Every drug must be given in the scenario's ``[drugs]``.
    """
    from tme_sim.cells import ALIVE
    from tme_sim.config import load_scenario
    from tme_sim.model import TMEModel

    if mode not in ("scale", "plasma"):
        raise ConfigError(f"mode must be 'scale' or 'plasma', got {mode!r}")
    if not points:
        raise ConfigError("no dose points given")
    base = load_scenario(scenario_path, overrides)
    if base.drugs is None:
        raise ConfigError(f"{scenario_path}: no [drugs] section; nothing to dose")
    drugs = list(points[0])
    for p in points:
        if list(p) != drugs:
            raise ConfigError("every dose point must name the same drugs")
    for d in drugs:
        if d not in base.drugs.given:
            raise ConfigError(
                f"{scenario_path}: drug {d!r} is not given in [drugs] (given: {', '.join(base.drugs.given)})"
            )
    for p in points:
        for d, v in p.items():
            if not (np.isfinite(v) and v >= 0):
                raise ConfigError(f"dose of {d} must be finite and >= 0, got {v!r}")
    minutes = float(base.duration if duration is None else duration)
    if not minutes > 0:
        raise ConfigError("duration must be > 0")
    results = []
    for k, p in enumerate(points):
        sc = point_scenario(scenario_path, p, mode, overrides)
        t0 = time.perf_counter()
        model = TMEModel(sc, seed=seed)
        initial = model.summary()
        model.run_for(minutes)
        counts = model.population_counts()
        final = {name: int(counts[i, ALIVE]) for i, name in enumerate(model.type_names)}
        dead = {name: int(counts[i].sum() - counts[i, ALIVE]) for i, name in enumerate(model.type_names)}
        results.append(PointResult(dict(p), initial, final, dead, time.perf_counter() - t0))
        if progress is not None:
            progress(k + 1, len(points), results[-1])
    return SimulationResult(mode, drugs, minutes, roles_of(base), results)
