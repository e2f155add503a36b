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

from tme_sim.cells import ALIVE
from tme_sim.config import apply_overrides, load_scenario, read_scenario, validate_scenario
from tme_sim.errors import ConfigError
from tme_sim.model import TMEModel

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


def _live(model: Any) -> list[int]:
    return [int(x) for x in model.population_counts()[:, ALIVE]]


def roles_of(scenario: Any) -> dict[str, str]:
    """Cell types with ``rules = "tumor"`` are tumor, every other type is healthy."""
    return {name: ("tumor" if ct.rules == "tumor" else "healthy") for name, ct in scenario.cell_types.items()}


def dose_grid(levels: dict[str, Sequence[float]]) -> list[dict[str, float]]:
    """Full factorial grid of per-drug levels (first drug varies slowest).

    A key naming several drugs joined by ``+`` (``"birinapant+venetoclax"``) gives them the same
    level at every point: one axis for a combination scaled as a whole.
    """
    names = list(levels)
    out = []
    for combo in itertools.product(*(levels[n] for n in names)):
        point: dict[str, float] = {}
        for key, v in zip(names, combo, strict=True):
            for d in key.split("+"):
                point[d.strip()] = float(v)
        out.append(point)
    return out


#: ``--reduced`` for scenarios/drug_combo.toml: the same tissue on a 500 × 500 µm domain (a quarter of
#: the area: tumor disc radius 140 µm, ~250 tumor cells; a quarter of the stromal and immune cells),
#: both drugs starting at 6 h instead of day 1. About 1 min per dose point for 2 days on one free core.
REDUCED_DRUG_COMBO: dict[str, str] = {
    "domain.size": '["500 um", "500 um"]',
    "vessels.exclude_center": '["250 um", "250 um"]',
    "vessels.exclude_radius": '"170 um"',
    "initial_cells.0.center": '["250 um", "250 um"]',
    "initial_cells.0.radius": '"140 um"',
    "initial_cells.1.count": "38",
    "initial_cells.2.count": "20",
    "initial_cells.3.count": "10",
    "drugs.given.birinapant.schedule.0.start": '"6 h"',
    "drugs.given.venetoclax.schedule.0.start": '"6 h"',
}


def plot_dose_response(result: SimulationResult, path: str | Path, title: str = "") -> Path:
    """Figure (PNG): live tumor cells over time per dose point (needs ``record_every``) and the
    final loss of every type against the dose (first varied drug on the x axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    tumor = [t for t, r in result.roles.items() if r == "tumor"]
    has_tl = all("timeline" in p.extra for p in result.points)
    fig, axes = plt.subplots(1, 2 if has_tl else 1, figsize=(11 if has_tl else 5.5, 4), squeeze=False)
    cmap = plt.get_cmap("viridis")
    x_drug = result.drugs[0]
    dose = np.array([p.doses[x_drug] for p in result.points])
    joint = all(len(set(p.doses.values())) == 1 for p in result.points)
    label = " + ".join(result.drugs) if joint else x_drug
    unit = "× schedule" if result.mode == "scale" else "nM plasma"
    ax_loss = axes[0, -1]
    if has_tl:
        ax = axes[0, 0]
        for k, p in enumerate(result.points):
            tl = p.extra["timeline"] / 60.0
            live = sum(p.extra["live"][t] for t in tumor)
            vals = ", ".join(f"{v:g}" for v in p.doses.values())
            ax.plot(tl, live, color=cmap(k / max(1, len(result.points) - 1)), label=vals)
        ax.set_xlabel("time (h)")
        ax.set_ylabel("live tumor cells")
        ax.legend(title=f"{', '.join(result.drugs)} ({unit})", fontsize=7, title_fontsize=7)
    positive = dose[dose > 0]
    floor = positive.min() / 3 if positive.size else 1.0
    xpos = np.where(dose > 0, dose, floor)
    for t, r in result.roles.items():
        loss = [100 * result.loss(p, t) for p in result.points]
        style = "-o" if r == "tumor" else "--s"
        ax_loss.plot(xpos, loss, style, label=f"{t} ({r})")
    ax_loss.set_xscale("log")
    ax_loss.set_xlabel(f"{label} ({unit}; leftmost = none)")
    ax_loss.set_ylabel("loss vs untreated at the end (%)")
    ax_loss.axhline(0, color="0.7", lw=0.8)
    ax_loss.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def point_scenario(
    scenario_path: str | Path, point: dict[str, float], mode: Mode, overrides: dict[str, Any] | None = None
) -> Any:
    """The scenario of one dose point: ``drugs.given.<d>.dose_scale = v`` (``mode="scale"``) or
    ``drugs.given.<d>.plasma = "v nM"`` with the schedule removed (``mode="plasma"``)."""
    path = Path(scenario_path)
    doc, text = read_scenario(path)
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
    record_every: float | None = None,
) -> SimulationResult:
    """Run the scenario once per dose point; ``duration`` (min) defaults to the scenario's.

    ``points``: drug → value (``dose_scale`` factor for ``mode="scale"``, plasma nM for
    ``mode="plasma"``). Every drug must be given in the scenario's ``[drugs]``. With
    ``record_every`` (min), each point's ``extra["timeline"]`` holds the times (min, (k,)) and the
    live cells per type at those times (``extra["live"]``: type → (k,) int array), start included.
    """
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
        extra: dict[str, Any] = {}
        if record_every is not None and record_every > 0:
            times, live = [0.0], [_live(model)]
            done = 0.0
            while done < minutes - 1e-9:
                chunk = min(record_every, minutes - done)
                model.run_for(chunk)
                done += chunk
                times.append(done)
                live.append(_live(model))
            extra["timeline"] = np.array(times)
            extra["live"] = {t: np.array([row[i] for row in live]) for i, t in enumerate(model.type_names)}
        else:
            model.run_for(minutes)
        counts = model.population_counts()
        final = {name: int(counts[i, ALIVE]) for i, name in enumerate(model.type_names)}
        dead = {name: int(counts[i].sum() - counts[i, ALIVE]) for i, name in enumerate(model.type_names)}
        results.append(PointResult(dict(p), initial, final, dead, time.perf_counter() - t0, extra))
        if progress is not None:
            progress(k + 1, len(points), results[-1])
    return SimulationResult(mode, drugs, minutes, roles_of(base), results)
