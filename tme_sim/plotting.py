"""Figures from an output file: cells over a field, population curves, an animated GIF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.patches import Circle, Rectangle

from tme_sim.config import validate_scenario
from tme_sim.config.suggest import close_match
from tme_sim.errors import OutputError
from tme_sim.io import (
    committed_snapshots,
    open_output,
    read_attrs,
    read_cells,
    read_events,
    read_population,
    read_stored_scenario,
    reading,
    snapshot_times,
    species_units,
)
from tme_sim.progress import track
from tme_sim.vessels import layout_from_scenario

DEFAULT_COLORS = {
    "tumor": "#c0392b",
    "cd8_t_cell": "#2471a3",
    "macrophage": "#28b463",
    "fibroblast": "#b7950b",
    "vessel": "#7d3c98",
}
PALETTE = ["#c0392b", "#2471a3", "#28b463", "#b7950b", "#7d3c98", "#e67e22", "#17a589", "#5d6d7e"]
DEAD_COLORS = {"apoptotic": "#f1948a", "necrotic": "#5d4037", "lysed": "#a1887f"}


def type_colors(path: str | Path) -> dict[str, str]:
    """Colour of each cell type: the scenario's ``color``, else one by rules, else a palette."""
    sc = read_stored_scenario(path)
    out = {}
    for i, (name, ct) in enumerate(sc["cell_types"].items()):
        out[name] = ct.get("color") or DEFAULT_COLORS.get(ct.get("rules", ""), PALETTE[i % len(PALETTE)])
    return out


def vessel_voxels_of(path: str | Path, time: float | None = None) -> tuple[np.ndarray, float] | None:
    """Vessel voxel centres ``(N, 3)`` µm and the voxel edge of a run (rebuilt from its scenario and
    seed; see :func:`tme_sim.vessels.layout_from_scenario`), or None without vessels.

    Vessels that regressed (``vessel_regression`` events) at or before ``time`` (min; None = the
    end of the file) are left out."""
    doc = read_stored_scenario(path)
    if not doc.get("vessels"):
        return None
    try:
        sc = validate_scenario(doc, str(path))
    except Exception:  # an output from an older schema: draw no vessels rather than fail
        return None
    ves = layout_from_scenario(sc, int(read_attrs(path).get("seed", sc.seed)))
    if ves is None or ves.count == 0:
        return None
    centres = ves.centres
    if sc.vessels is not None and sc.vessels.regression_rate > 0:
        ev = read_events(path)
        lost = ev[(ev["kind"].astype(str) == "vessel_regression") & (ev["time"] <= (np.inf if time is None else time))]
        centres = centres[~np.isin(ves.voxels, lost["id"].to_numpy())]
        if centres.shape[0] == 0:
            return None
    return centres, float(sc.domain.dx)


def _draw_vessels(ax: plt.Axes, path: str | Path, time: float | None = None) -> bool:
    found = vessel_voxels_of(path, time)
    if found is None:
        return False
    centres, dx = found
    if read_attrs(path)["dim"] == 3:  # only the vessel voxels cut by the drawn middle z plane
        size = [float(str(v).split()[0]) for v in read_stored_scenario(path)["domain"]["size"]]
        k_mid = min(int(size[2] / 2 / dx), round(size[2] / dx) - 1)
        centres = centres[np.abs(centres[:, 2] - (k_mid + 0.5) * dx) < dx / 2]
    squares = [Rectangle((x - dx / 2, y - dx / 2), dx, dx) for x, y in centres[:, :2]]
    ax.add_collection(
        PatchCollection(squares, facecolors="none", edgecolors=DEFAULT_COLORS["vessel"], linewidths=1.2, zorder=3)
    )
    return True


FIELD_CMAP = "viridis"  # dark = low, bright = high
COLUMN_CMAP = "plasma"
CELL_ALPHA = 0.55  # translucent discs: the field stays visible under the cells


def _species_index(path: str | Path, name: str) -> tuple[list[str], int]:
    with open_output(path) as fh:
        species = [s.decode() if isinstance(s, bytes) else s for s in fh["fields/species"][:]]
    if name not in species:
        hint = close_match(name, species)
        raise OutputError(
            f"{path}: no field {name!r}{f' (did you mean {hint!r}?)' if hint else ''} (fields: {', '.join(species)})"
        )
    return species, species.index(name)


def field_range(path: str | Path, name: str) -> tuple[float, float]:
    """(min, max) of field ``name`` over every snapshot of the run: one colour scale for all figures."""
    _, j = _species_index(path, name)
    with open_output(path) as fh:
        conc = fh["fields/concentration"]
        k = min(committed_snapshots(fh), conc.shape[0])
        lo, hi = np.inf, -np.inf
        for i in range(k):
            frame = conc[i, j]
            lo, hi = min(lo, float(np.min(frame))), max(hi, float(np.max(frame)))
    if not np.isfinite(lo):
        return 0.0, 1.0
    lo = min(lo, 0.0)
    return lo, hi if hi > lo else lo + 1e-12


def column_range(path: str | Path, column: str) -> tuple[float, float]:
    """(min, max) of a cell column over every snapshot (one colour scale for all frames)."""
    values = read_cells(path, snapshot=None)[column].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    return lo, hi if hi > lo else lo + 1e-12


def _field_slice(path: str | Path, name: str, snapshot_time: float) -> tuple[np.ndarray, float, str] | None:
    _, j = _species_index(path, name)
    with open_output(path) as fh:
        g = fh["fields"]
        if g["time"].shape[0] == 0:
            return None
        t = g["time"][:]
        k = int(np.argmin(np.abs(t - snapshot_time)))
        data = g["concentration"][k, j]
        dx = float(g["x"][1] - g["x"][0]) if g["x"].shape[0] > 1 else 1.0
    if data.ndim == 3:  # 3D: the middle z plane
        data = data[data.shape[0] // 2]
    return data, dx, species_units(path).get(name, "")


def plot_snapshot(
    path: str | Path,
    snapshot: int = -1,
    field: str | None = "oxygen",
    color_by: str = "type",
    ax: plt.Axes | None = None,
    *,
    field_limits: tuple[float, float] | None = None,
    color_limits: tuple[float, float] | None = None,
    legend: str = "figure",
) -> plt.Figure:
    """Cells as translucent discs (true radii) over a field.

    ``color_by="type"``: discs in type colours (dead cells in death colours) with a legend, the
    field with its colourbar. ``color_by=<column>``: discs coloured by that column (its one
    colourbar), outlined in their type colour (type legend), over the field in grey (bright =
    high; its range in the legend). Colour scales are fixed over the run (``field_limits`` /
    ``color_limits`` default to the run's range), so snapshots can be compared.
    """
    cells = read_cells(path, snapshot)
    attrs = read_attrs(path)
    sc = read_stored_scenario(path)
    size = [float(str(s).split()[0]) for s in sc["domain"]["size"]]
    if ax is None:
        fig, ax = plt.subplots(figsize=(9.0, 6.2), dpi=130, layout="constrained")
    else:
        fig = ax.figure
    t = float(cells["time"].iloc[0]) if len(cells) else float(attrs.get("last_time", 0))
    n_total = len(cells)
    if attrs["dim"] == 3 and len(cells):
        zmid = size[2] / 2
        cells = cells[np.abs(cells["z"] - zmid) < cells["radius"]]
    by_type = color_by == "type"
    if not by_type and color_by not in cells.columns:
        numeric = [c for c in cells.columns if c not in ("type", "phase", "death")]
        hint = close_match(color_by, numeric)
        raise OutputError(
            f"--color-by {color_by!r}: not a cell column{f' (did you mean {hint!r}?)' if hint else ''}"
            f" (type, {', '.join(numeric)})"
        )
    handles: list = []
    if field:
        fs = _field_slice(path, field, t)
        if fs is not None:
            data, _, unit = fs
            lo, hi = field_limits or field_range(path, field)
            im = ax.imshow(
                data,
                origin="lower",
                extent=(0, size[0], 0, size[1]),
                cmap=FIELD_CMAP if by_type else "gray",
                vmin=lo,
                vmax=hi,
                interpolation="nearest",
                zorder=0,
            )
            if by_type:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=f"{field} ({unit})")
            else:
                handles.append(
                    Rectangle((0, 0), 1, 1, fc="0.7", ec="k", lw=0.5, label=f"{field}: grey, {lo:.3g}–{hi:.3g} {unit}")
                )
    colors = type_colors(path)
    patches = [Circle((x, y), r) for x, y, r in zip(cells["x"], cells["y"], cells["radius"], strict=True)]
    if by_type:
        facecolors = [
            colors[str(ty)] if de == "alive" else DEAD_COLORS.get(str(de), "#999999")
            for ty, de in zip(cells["type"], cells["death"], strict=True)
        ]
        ax.add_collection(
            PatchCollection(patches, facecolors=facecolors, edgecolors="k", linewidths=0.3, alpha=CELL_ALPHA, zorder=2)
        )
        live = cells[cells["death"] == "alive"]["type"].value_counts()
        handles += [
            plt.Line2D([], [], marker="o", ls="", color=c, label=f"{n} ({int(live.get(n, 0))})")
            for n, c in colors.items()
        ]
        dead_present = set(map(str, cells["death"].unique())) - {"alive"}
        handles += [
            plt.Line2D([], [], marker="o", ls="", color=c, label=n) for n, c in DEAD_COLORS.items() if n in dead_present
        ]
    else:
        lo, hi = color_limits or column_range(path, color_by)
        edge = [colors.get(str(ty), "k") for ty in cells["type"]]
        pc = PatchCollection(patches, cmap=COLUMN_CMAP, edgecolors=edge, linewidths=0.9, alpha=0.85, zorder=2)
        pc.set_array(cells[color_by].to_numpy(dtype=float))
        pc.set_clim(lo, hi)
        ax.add_collection(pc)
        fig.colorbar(pc, ax=ax, fraction=0.046, pad=0.02, label=color_by)
        handles += [
            plt.Line2D([], [], marker="o", ls="", mfc="none", mec=c, mew=1.5, label=f"{n} (outline)")
            for n, c in colors.items()
        ]
    if _draw_vessels(ax, path, t):
        handles.append(
            plt.Line2D([], [], marker="s", ls="", mfc="none", color=DEFAULT_COLORS["vessel"], label="vessel")
        )
    # the legend is a figure legend outside the axes, inside the canvas: never clipped (also in GIF frames)
    if legend == "figure":
        fig.legend(handles=handles, loc="outside right upper", fontsize=7, framealpha=0.9)
    elif legend == "axes":
        ax.legend(handles=handles, loc="upper left", fontsize=6, framealpha=0.8)
    ax.set_xlim(0, size[0])
    ax.set_ylim(0, size[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    where = (
        f"{len(cells)} of {n_total} cells in the z = {size[2] / 2:g} µm plane"
        if attrs["dim"] == 3
        else (f"{n_total} cells")
    )
    ax.set_title(f"{attrs['scenario']} — t = {t / 60:.1f} h, {where}", fontsize=10)
    return fig


def _deaths_by_type(path: str | Path, times: np.ndarray) -> dict[str, np.ndarray]:
    """Cumulative deaths (apoptosis + necrosis events) per type at each of ``times`` (min)."""
    ev = read_events(path)
    died = ev[ev["kind"].isin(["apoptosis", "necrosis"])]
    out = {}
    for name, df in died.groupby("type", observed=False):
        out[str(name)] = np.searchsorted(np.sort(df["time"].to_numpy()), times, side="right")
    return out


def _population_axes(ax: plt.Axes, path: str | Path) -> None:
    pop = read_population(path)
    colors = type_colors(path)
    for name, df in pop.groupby("type", sort=False):
        c = colors.get(str(name), "k")
        ax.plot(df["time"] / 60, df["live"], color=c, lw=2, label=f"{name}")
    for name, died in _deaths_by_type(path, pop["time"].unique()).items():
        if died.any():
            ax.plot(pop["time"].unique() / 60, died, color=colors.get(name, "k"), lw=1, ls="--")
    ax.plot([], [], color="k", lw=1, ls="--", label="deaths so far (events)")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("cells")
    if pop["live"].max() > 0:
        ax.set_yscale("symlog", linthresh=10)
    ax.grid(alpha=0.3)


def plot_population(path: str | Path) -> plt.Figure:
    """Live cells per type over time (solid) and cumulative deaths from the events table (dashed)."""
    fig, ax = plt.subplots(figsize=(8.5, 4), dpi=130, layout="constrained")
    _population_axes(ax, path)
    fig.legend(loc="outside right upper", fontsize=7)
    ax.set_title(f"{read_attrs(path)['scenario']}: population")
    return fig


def plot_overview(path: str | Path, field: str | None = "oxygen") -> plt.Figure:
    """A 2 × 2 figure for a paper: snapshots at the start, middle and end (one colour scale), and the population."""
    n = len(snapshot_times(path))
    if n == 0:
        raise OutputError(f"{path}: holds no cell snapshots")
    picks = sorted({0, n // 2, n - 1})
    fig, axes = plt.subplots(2, 2, figsize=(13.5, 11), dpi=150, layout="constrained")
    flat = axes.ravel()
    limits = field_range(path, field) if field else None
    for ax, k in zip(flat, picks, strict=False):
        plot_snapshot(path, k, field, "type", ax=ax, field_limits=limits, legend="axes")
    for ax in flat[len(picks) : 3]:
        ax.axis("off")
    _population_axes(flat[3], path)
    flat[3].legend(fontsize=8)
    flat[3].set_title("population")
    return fig


def figure_suffix(field: str | None, color_by: str) -> str:
    """The part of a figure's file name that says what it shows (so different figures never collide)."""
    parts = [field or "nofield"]
    if color_by != "type":
        parts.append(f"by-{color_by}")
    return "_".join(parts)


@reading
def plot_run(
    path: str | Path,
    field: str | None = None,
    color_by: str = "type",
    snapshots: list[int] | None = None,
    movie: bool = False,
    out_dir: Path | None = None,
    *,
    progress: bool = False,
) -> list[Path]:
    """Write the standard figures for a run; returns their paths.

    Names: ``<run>_snapshot_<k|last>_<field>[_by-<column>].png``, ``<run>_overview_<field>.png``,
    ``<run>_population.png``, ``<run>_<field>[_by-<column>].gif``.
    """
    path = Path(path)
    attrs = read_attrs(path)
    out_dir = Path(out_dir) if out_dir else path.parent
    stem = path.stem
    field = field or ("oxygen" if "oxygen" in attrs["substrates"] else None)
    suffix = figure_suffix(field, color_by)
    field_limits = field_range(path, field) if field else None
    color_limits = column_range(path, color_by) if color_by != "type" else None
    read_cells(path)  # a damaged file fails here, before anything is created
    read_population(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for k in snapshots or [-1]:
        fig = plot_snapshot(path, k, field, color_by, field_limits=field_limits, color_limits=color_limits)
        p = out_dir / f"{stem}_snapshot{'_last' if k == -1 else f'_{k:04d}'}_{suffix}.png"
        fig.savefig(p, bbox_inches="tight", pad_inches=0.1)
        plt.close(fig)
        written.append(p)
    fig = plot_population(path)
    p = out_dir / f"{stem}_population.png"
    fig.savefig(p, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    written.append(p)
    if color_by == "type":
        fig = plot_overview(path, field)
        p = out_dir / f"{stem}_overview_{field or 'nofield'}.png"
        fig.savefig(p, bbox_inches="tight", pad_inches=0.1)
        plt.close(fig)
        written.append(p)
    if movie:
        written.append(write_movie(path, out_dir / f"{stem}_{suffix}.gif", field, color_by, progress=progress))
    return written


def write_movie(path: Path, out: Path, field: str | None, color_by: str = "type", *, progress: bool = False) -> Path:
    """An animated GIF with one frame per snapshot (imageio); one colour scale and a fixed layout for all frames."""
    import imageio.v3 as iio

    n = len(snapshot_times(path))
    if n == 0:
        raise OutputError(f"{path}: no snapshots to animate")
    field_limits = field_range(path, field) if field else None
    color_limits = column_range(path, color_by) if color_by != "type" else None
    frames = []
    for k in track(range(n), f"movie {out.name}", total=n, enabled=progress):
        fig = plot_snapshot(path, k, field, color_by, field_limits=field_limits, color_limits=color_limits)
        fig.set_dpi(80)
        fig.canvas.draw()  # the whole fixed-size canvas: the figure legend lies inside it
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    part = out.with_name(out.name + ".part.gif")
    iio.imwrite(part, np.stack(frames), duration=400, loop=0)
    part.replace(out)
    return out
