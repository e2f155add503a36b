"""Compare runs side by side: macrophage polarization over time and tumor / immune outcomes.

``tme compare A.h5 B.h5 [...] --out compare.png`` reads each output with the public readers of
:mod:`tme_sim.io` and writes one figure plus a CSV table (``compare.csv`` beside the figure).
An argument is one run (``path.h5``, labelled by the scenario name stored in it) or a labelled
group of replicate runs (``LABEL=a.h5,b.h5,...``, e.g. the same arm under several seeds), which
are shown as mean with min–max band and summarised as mean ± sd.

Figure (2 × 3 panels): polarization (0 = M1-like, 1 = M2-like) of live cells of the polarized
type over time as median with 25–75 % and 10–90 % bands, pooled over replicates; its
distribution at the last common time (x range fitted to the data); the mean over cells (± the
cell-to-cell sd) over time; live tumor cells over time; live immune cells (macrophages, CD8 T cells) over time; and
cumulative tumor-cell deaths by cause (T-cell kills, phagocytosis of live tumor cells).

Times are in hours in the figure and table (outputs store minutes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tme_sim.errors import ConfigError, OutputError
from tme_sim.io import (
    open_fields,
    read_attrs,
    read_cells,
    read_events,
    read_population,
    read_stored_scenario,
    snapshot_times,
)
from tme_sim.progress import track

#: polarization below this is counted M1-like, above 1 − this M2-like
M1_CUT = 1.0 / 3.0
#: substrates whose mean local concentration at the polarized cells goes into the table
LOCAL_SPECIES = ("IFNG", "TNF", "IL10", "TGFB1", "IL4", "CSF1", "lactate")
_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclass
class RunData:
    """What the comparison needs from one output file (times in minutes)."""

    path: Path
    times: np.ndarray  # (k,) snapshot times, min
    polarization: list[np.ndarray]  # per snapshot: polarization of live cells of the polarized type
    local: dict[str, float]  # mean concentration (substrate unit) at those cells, last snapshot
    population: pd.DataFrame  # read_population
    events: pd.DataFrame  # read_events
    types: list[str]


@dataclass
class Arm:
    """One label and its replicate runs."""

    label: str
    runs: list[RunData] = field(default_factory=list)


def parse_run_args(items: Sequence[str]) -> list[tuple[str | None, list[Path]]]:
    """``["a.h5", "rules=r1.h5,r2.h5"]`` → ``[(None, [a.h5]), ("rules", [r1.h5, r2.h5])]``."""
    out: list[tuple[str | None, list[Path]]] = []
    for item in items:
        label, sep, rest = item.partition("=")
        if sep and not Path(item).exists():
            label = label.strip()
            if not label:
                raise ConfigError(f"compare: {item!r}: empty label before '='; expected LABEL=a.h5,b.h5")
            paths = [Path(p.strip()) for p in rest.split(",") if p.strip()]
            if not paths:
                raise ConfigError(f"compare: {item!r}: no file after '='; expected LABEL=a.h5,b.h5")
            out.append((label, paths))
        else:
            out.append((None, [Path(item)]))
    return out


def load_run(path: str | Path, cell_type: str = "macrophage", *, progress: bool = False) -> RunData:
    """Read snapshot times, polarization of live ``cell_type`` cells, population and events."""
    path = Path(path)
    attrs = read_attrs(path)
    types = list(attrs.get("cell_types", []))
    if cell_type not in types:
        raise OutputError(f"{path}: has no cell type {cell_type!r} (types: {', '.join(types) or 'none'})")
    times = np.asarray(snapshot_times(path), dtype=np.float64)
    if times.size == 0:
        raise OutputError(f"{path}: holds no committed snapshot")
    pol = []
    for k in track(range(times.size), f"reading {path.name}", enabled=progress):
        cells = read_cells(path, snapshot=k)
        sel = (cells["type"] == cell_type).to_numpy() & (cells["death"] == "alive").to_numpy()
        pol.append(cells["polarization"].to_numpy(dtype=np.float64)[sel])
    return RunData(path, times, pol, _local_means(path, cells[sel]), read_population(path), read_events(path), types)


def local_concentrations(path: str | Path, cells: pd.DataFrame, species: Sequence[str]) -> pd.DataFrame:
    """Concentration (substrate unit) of ``species`` in the voxel of each cell (rows of ``cells``, a
    :func:`~tme_sim.io.read_cells` frame) at the field frame nearest the cells' snapshot time."""
    ds = open_fields(path)
    try:
        names = [str(v) for v in ds["species"].values]
        have = [s for s in species if s in names]
        out = pd.DataFrame(index=cells.index, columns=have, dtype=np.float64)
        if not have or len(cells) == 0 or ds.sizes.get("time", 0) == 0:
            return out
        t = float(cells["time"].iloc[0])
        k = int(np.argmin(np.abs(ds["time"].values - t)))
        idx = []
        for ax in ("z", "y", "x"):
            if ax in ds.dims:
                grid = np.asarray(ds[ax].values, dtype=np.float64)
                pos = cells[ax].to_numpy(dtype=np.float64)
                idx.append(np.clip(np.rint((pos - grid[0]) / (grid[1] - grid[0])).astype(np.int64), 0, grid.size - 1))
        conc = ds["concentration"].isel(time=k).values  # (species, (z,) y, x)
        for s in have:
            out[s] = conc[names.index(s)][tuple(idx)]
        return out
    finally:
        ds.close()


def _local_means(path: Path, cells: pd.DataFrame) -> dict[str, float]:
    try:
        loc = local_concentrations(path, cells, LOCAL_SPECIES)
    except OutputError:
        return {}
    return {s: float(loc[s].mean()) for s in loc.columns} if len(loc) else {}


def _label_of(run: RunData) -> str:
    try:
        return str(read_stored_scenario(run.path).get("name") or run.path.stem)
    except OutputError:
        return run.path.stem


def load_arms(items: Sequence[str], cell_type: str = "macrophage", *, progress: bool = False) -> list[Arm]:
    """Parse the command-line run arguments and read every file (labels made unique)."""
    parsed = parse_run_args(items)
    if len(parsed) < 1:
        raise ConfigError("compare: give at least one output file")
    arms: list[Arm] = []
    for label, paths in parsed:
        runs = [load_run(p, cell_type, progress=progress) for p in paths]
        arms.append(Arm(label or _label_of(runs[0]), runs))
    seen: dict[str, int] = {}
    for arm in arms:
        if arm.label in seen:
            seen[arm.label] += 1
            arm.label = f"{arm.label} ({seen[arm.label]})"
        else:
            seen[arm.label] = 1
    return arms


def common_times(arms: Sequence[Arm]) -> np.ndarray:
    """Snapshot times (min) present in every run (to 1e-6 min)."""
    sets = [np.round(r.times, 6) for a in arms for r in a.runs]
    common = sets[0]
    for s in sets[1:]:
        common = np.intersect1d(common, s)
    if common.size == 0:
        raise OutputError("compare: the runs share no snapshot time (use the same output interval)")
    return common


def live_counts(run: RunData, cell_type: str, times: np.ndarray) -> np.ndarray:
    """Live cells of ``cell_type`` at ``times`` (min); (len(times),) float64."""
    pop = run.population
    sub = pop[pop["type"] == cell_type]
    s = pd.Series(sub["live"].to_numpy(dtype=np.float64), index=np.round(sub["time"].to_numpy(), 6))
    return s.reindex(np.round(times, 6)).to_numpy()


def cumulative_events(run: RunData, kind: str, victim_type: str, times: np.ndarray) -> np.ndarray:
    """Events of ``kind`` whose cell (``id``) is of ``victim_type``, cumulative up to each time."""
    ev = run.events
    if len(ev) == 0:
        return np.zeros(times.size)
    sel = (ev["kind"] == kind).to_numpy() & (ev["type"] == victim_type).to_numpy()
    t = np.sort(ev["time"].to_numpy()[sel])
    return np.searchsorted(t, times + 1e-9, side="right").astype(np.float64)


def _pooled_polarization(arm: Arm, t: float) -> np.ndarray:
    parts = [r.polarization[int(np.argmin(np.abs(r.times - t)))] for r in arm.runs]
    return np.concatenate(parts) if parts else np.zeros(0)


def summary_table(
    arms: Sequence[Arm],
    cell_type: str = "macrophage",
    tumor_type: str = "tumor",
    immune_types: Sequence[str] = ("macrophage", "cd8_t_cell"),
) -> pd.DataFrame:
    """One row per arm: outcomes at the last common time (mean ± sd over replicates as strings
    where there are several; plain numbers otherwise) — see :func:`summary_values`."""
    vals = summary_values(arms, cell_type, tumor_type, immune_types)
    rows = {}
    for label, reps in vals.items():
        row = {}
        for col in reps.columns:
            x = reps[col].to_numpy(dtype=np.float64)
            if len(x) == 1:
                row[col] = x[0]
            else:
                row[col] = f"{np.nanmean(x):.3g} ± {np.nanstd(x, ddof=1):.2g}"
        row["replicates"] = len(reps)
        rows[label] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def summary_values(
    arms: Sequence[Arm],
    cell_type: str = "macrophage",
    tumor_type: str = "tumor",
    immune_types: Sequence[str] = ("macrophage", "cd8_t_cell"),
) -> dict[str, pd.DataFrame]:
    """Per arm, one row per replicate: time_h, tumor_start, tumor_end, tumor_change_pct, immune
    live counts, polarization mean/sd/10th/90th percentile and M1/M2 fractions of live
    ``cell_type`` cells, cumulative T-cell kills, phagocytosed tumor cells and tumor divisions up to
    the last common time, and (where that is the run's last snapshot) the mean concentration of
    :data:`LOCAL_SPECIES` at those cells (``<species>_at_<type>``, substrate units)."""
    times = common_times(arms)
    t0, t1 = float(times[0]), float(times[-1])
    out: dict[str, pd.DataFrame] = {}
    for arm in arms:
        reps = []
        for r in arm.runs:
            ends = live_counts(r, tumor_type, np.array([t0, t1]))
            k = int(np.argmin(np.abs(r.times - t1)))
            p = r.polarization[k]
            row = {
                "time_h": t1 / 60.0,
                f"{tumor_type}_start": ends[0],
                f"{tumor_type}_end": ends[1],
                f"{tumor_type}_change_pct": 100.0 * (ends[1] - ends[0]) / max(ends[0], 1.0),
            }
            for it in immune_types:
                if it in r.types:
                    row[f"{it}_end"] = live_counts(r, it, np.array([t1]))[0]
            row["pol_mean"] = float(np.mean(p)) if p.size else np.nan
            row["pol_sd"] = float(np.std(p)) if p.size else np.nan
            row["pol_p10"] = float(np.quantile(p, 0.1)) if p.size else np.nan
            row["pol_p90"] = float(np.quantile(p, 0.9)) if p.size else np.nan
            row["frac_M1"] = float(np.mean(p < M1_CUT)) if p.size else np.nan
            row["frac_M2"] = float(np.mean(p > 1.0 - M1_CUT)) if p.size else np.nan
            tt = np.array([t1])
            row["kills"] = cumulative_events(r, "kill", tumor_type, tt)[0]
            row["phagocytosed_tumor"] = cumulative_events(r, "phagocytosis", tumor_type, tt)[0]
            row["tumor_divisions"] = cumulative_events(r, "division", tumor_type, tt)[0]
            if k == r.times.size - 1:  # local concentrations are read at the run's last snapshot
                row.update({f"{s}_at_{cell_type}": v for s, v in r.local.items()})
            reps.append(row)
        out[arm.label] = pd.DataFrame(reps)
    return out


def _band(ax, x: np.ndarray, ys: np.ndarray, color: str, label: str, ls: str = "-") -> None:
    """Mean line with min–max band over replicates (rows of ``ys``)."""
    ax.plot(x, np.nanmean(ys, 0), color=color, ls=ls, lw=1.8, label=label)
    if ys.shape[0] > 1:
        ax.fill_between(x, np.nanmin(ys, 0), np.nanmax(ys, 0), color=color, alpha=0.18, lw=0)


def plot_comparison(
    arms: Sequence[Arm],
    out: str | Path,
    cell_type: str = "macrophage",
    tumor_type: str = "tumor",
    immune_types: Sequence[str] = ("macrophage", "cd8_t_cell"),
    dpi: int = 150,
) -> Path:
    """Write the 2 × 3 comparison figure to ``out`` (PNG/PDF/SVG by suffix); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    times = common_times(arms)
    th = times / 60.0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), constrained_layout=True)
    ax_pol, ax_hist, ax_frac, ax_tum, ax_imm, ax_ev = axes.ravel()
    reps = {a.label: len(a.runs) for a in arms}
    last = np.concatenate([_pooled_polarization(a, float(times[-1])) for a in arms])
    lo, hi = (float(np.min(last)), float(np.max(last))) if last.size else (0.0, 1.0)
    pad = max(0.02, 0.1 * (hi - lo))
    bins = np.linspace(max(0.0, lo - pad), min(1.0, hi + pad), 31)
    for i, arm in enumerate(arms):
        c = colors[i % len(colors)]
        q = np.full((len(_QUANTILES), times.size), np.nan)
        mean = np.full((len(arm.runs), times.size), np.nan)
        sdev = np.full_like(mean, np.nan)
        for j, t in enumerate(times):
            p = _pooled_polarization(arm, t)
            if p.size:
                q[:, j] = np.quantile(p, _QUANTILES)
            for r_i, r in enumerate(arm.runs):
                pr = r.polarization[int(np.argmin(np.abs(r.times - t)))]
                if pr.size:
                    mean[r_i, j] = np.mean(pr)
                    sdev[r_i, j] = np.std(pr)
        ax_pol.fill_between(th, q[0], q[4], color=c, alpha=0.12, lw=0)
        ax_pol.fill_between(th, q[1], q[3], color=c, alpha=0.3, lw=0)
        ax_pol.plot(th, q[2], color=c, lw=2, label=f"{arm.label} (n={reps[arm.label]})")
        p_end = _pooled_polarization(arm, float(times[-1]))
        ax_hist.hist(p_end, bins=bins, density=True, histtype="stepfilled", alpha=0.35, color=c)
        ax_hist.hist(p_end, bins=bins, density=True, histtype="step", color=c, lw=1.5, label=arm.label)
        _band(ax_frac, th, mean, c, f"{arm.label}: mean")
        sd = np.nanmean(sdev, 0)
        ax_frac.plot(th, np.nanmean(mean, 0) - sd, color=c, lw=0.8, ls=":")
        ax_frac.plot(th, np.nanmean(mean, 0) + sd, color=c, lw=0.8, ls=":", label=f"{arm.label}: mean ± sd (cells)")
        _band(ax_tum, th, np.array([live_counts(r, tumor_type, times) for r in arm.runs]), c, arm.label)
        for it, ls in zip(immune_types, ("-", "--", ":", "-."), strict=False):
            ys = np.array(
                [live_counts(r, it, times) if it in r.types else np.full(times.size, np.nan) for r in arm.runs]
            )
            _band(ax_imm, th, ys, c, f"{arm.label}: {it}", ls=ls)
        for kind, ls in (("kill", "-"), ("phagocytosis", "--")):
            ys = np.array([cumulative_events(r, kind, tumor_type, times) for r in arm.runs])
            _band(ax_ev, th, ys, c, f"{arm.label}: {'T-cell kills' if kind == 'kill' else 'phagocytosed'}", ls=ls)
    ax_pol.set(
        xlabel="time (h)",
        ylabel=f"{cell_type} polarization (0 M1 … 1 M2)",
        ylim=(0, 1),
        title="polarization: median, 25–75 %, 10–90 %",
    )
    ax_hist.set(xlabel="polarization (range of the data)", ylabel="density", title=f"distribution at {th[-1]:.0f} h")
    ax_frac.set(xlabel="time (h)", ylabel="polarization", title="mean over cells (band: replicate min–max)")
    ax_tum.set(xlabel="time (h)", ylabel=f"live {tumor_type} cells", title="tumor burden")
    ax_imm.set(xlabel="time (h)", ylabel="live cells", title="immune cells")
    ax_ev.set(xlabel="time (h)", ylabel=f"cumulative {tumor_type} cells", title="tumor cells killed / eaten")
    for ax in axes.ravel():
        ax.legend(fontsize=7, frameon=False)
        ax.grid(alpha=0.25)
    note = "; ".join(f"{a.label}: {', '.join(r.path.name for r in a.runs)}" for a in arms)
    fig.suptitle(f"tme compare — {note}", fontsize=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def compare(
    items: Sequence[str],
    out: str | Path,
    cell_type: str = "macrophage",
    tumor_type: str = "tumor",
    table: str | Path | None = None,
    *,
    progress: bool = False,
) -> tuple[Path, pd.DataFrame]:
    """Read the runs named in ``items``, write the figure ``out`` and the CSV ``table`` (default:
    ``out`` with suffix ``.csv``); return the figure path and the summary table."""
    out = Path(out)
    if out.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ConfigError(f"compare --out {out}: expected a .png, .pdf or .svg file")
    arms = load_arms(items, cell_type, progress=progress)
    types = {t for a in arms for r in a.runs for t in r.types}
    if tumor_type not in types:
        raise OutputError(f"compare: no run has a cell type {tumor_type!r} (types: {', '.join(sorted(types))})")
    immune = tuple(t for t in ("macrophage", "cd8_t_cell") if t in types) or (cell_type,)
    fig = plot_comparison(arms, out, cell_type, tumor_type, immune)
    tab = summary_table(arms, cell_type, tumor_type, immune)
    tpath = Path(table) if table is not None else out.with_suffix(".csv")
    tab.to_csv(tpath)
    return fig, tab
