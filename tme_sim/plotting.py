"""Figures from an output file: cells over a field, population curves, an animated GIF."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.patches import Circle, Rectangle

from tme_sim.config import validate_scenario
from tme_sim.errors import OutputError
from tme_sim.io import read_attrs, read_cells, read_population, read_stored_scenario
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


def vessel_voxels_of(path: str | Path) -> tuple[np.ndarray, float] | None:
    """Vessel voxel centres ``(N, 3)`` µm and the voxel edge of a run (rebuilt from its scenario and
    seed; see :func:`tme_sim.vessels.layout_from_scenario`), or None without vessels."""
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
    return ves.centres, float(sc.domain.dx)


def _draw_vessels(ax: plt.Axes, path: str | Path) -> bool:
    found = vessel_voxels_of(path)
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


def _field_slice(path: str | Path, name: str, snapshot_time: float) -> tuple[np.ndarray, float, str] | None:
    with h5py.File(path, "r") as fh:
        g = fh["fields"]
        if g["time"].shape[0] == 0:
            return None
        species = [s.decode() if isinstance(s, bytes) else s for s in g["species"][:]]
        if name not in species:
            raise OutputError(f"{path}: no field {name!r} (fields: {', '.join(species)})")
        t = g["time"][:]
        k = int(np.argmin(np.abs(t - snapshot_time)))
        data = g["concentration"][k, species.index(name)]
        units = json.loads(g["concentration"].attrs["units"])
        dx = float(g["x"][1] - g["x"][0]) if g["x"].shape[0] > 1 else 1.0
        if data.ndim == 3:  # 3D: the middle z plane
            data = data[data.shape[0] // 2]
        return data, dx, units[name]


def plot_snapshot(
    path: str | Path,
    snapshot: int = -1,
    field: str | None = "oxygen",
    color_by: str = "type",
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """Cells as discs (true radii) coloured by type (dead cells in death colours) over a field."""
    cells = read_cells(path, snapshot)
    attrs = read_attrs(path)
    sc = read_stored_scenario(path)
    size = [float(str(s).split()[0]) for s in sc["domain"]["size"]]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.2, 6.2), dpi=130)
    else:
        fig = ax.figure
    t = float(cells["time"].iloc[0]) if len(cells) else float(attrs.get("last_time", 0))
    n_total = len(cells)
    if attrs["dim"] == 3 and len(cells):
        zmid = size[2] / 2
        cells = cells[np.abs(cells["z"] - zmid) < cells["radius"]]
    if field:
        fs = _field_slice(path, field, t)
        if fs is not None:
            data, _, unit = fs
            im = ax.imshow(
                data,
                origin="lower",
                extent=(0, size[0], 0, size[1]),
                cmap="Blues_r",
                alpha=0.75,
                vmin=0.0,
                vmax=max(float(np.max(data)), 1e-12),
            )
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=f"{field} ({unit})")
    colors = type_colors(path)
    if color_by == "type":
        facecolors = [
            colors[str(ty)] if de == "alive" else DEAD_COLORS.get(str(de), "#999999")
            for ty, de in zip(cells["type"], cells["death"], strict=True)
        ]
        patches = [Circle((x, y), r) for x, y, r in zip(cells["x"], cells["y"], cells["radius"], strict=True)]
        ax.add_collection(PatchCollection(patches, facecolors=facecolors, edgecolors="k", linewidths=0.15))
        live = cells[cells["death"] == "alive"]["type"].value_counts()
        handles = [
            plt.Line2D([], [], marker="o", ls="", color=c, label=f"{n} ({int(live.get(n, 0))})")
            for n, c in colors.items()
        ]
        dead_present = set(map(str, cells["death"].unique())) - {"alive"}
        handles += [
            plt.Line2D([], [], marker="o", ls="", color=c, label=n) for n, c in DEAD_COLORS.items() if n in dead_present
        ]
        if _draw_vessels(ax, path):
            handles.append(
                plt.Line2D([], [], marker="s", ls="", mfc="none", color=DEFAULT_COLORS["vessel"], label="vessel")
            )
        ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.22, 1.0), fontsize=7, framealpha=0.9, borderaxespad=0.0
        )
    else:
        if color_by not in cells.columns:
            raise OutputError(f"--color-by {color_by!r}: not a cell column ({', '.join(cells.columns)})")
        patches = [Circle((x, y), r) for x, y, r in zip(cells["x"], cells["y"], cells["radius"], strict=True)]
        pc = PatchCollection(patches, cmap="viridis", edgecolors="k", linewidths=0.15)
        pc.set_array(cells[color_by].to_numpy(dtype=float))
        ax.add_collection(pc)
        fig.colorbar(pc, ax=ax, fraction=0.046, pad=0.02, label=color_by)
        _draw_vessels(ax, path)
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
    ax.set_title(f"{attrs['scenario']} — t = {t / 60:.1f} h, {where}")
    return fig


def plot_population(path: str | Path) -> plt.Figure:
    """Live cells per type over time (log scale), with dead cells dashed."""
    pop = read_population(path)
    colors = type_colors(path)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=130)
    for name, df in pop.groupby("type", sort=False):
        c = colors.get(str(name), "k")
        ax.plot(df["time"] / 60, df["live"], color=c, lw=2, label=f"{name} live")
        dead = df["apoptotic"] + df["necrotic"] + df["lysed"]
        if dead.any():
            ax.plot(df["time"] / 60, dead, color=c, lw=1, ls="--", label=f"{name} dead")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("cells")
    if pop["live"].max() > 0:
        ax.set_yscale("symlog", linthresh=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title(f"{read_attrs(path)['scenario']}: population")
    fig.tight_layout()
    return fig


def plot_overview(path: str | Path, field: str | None = "oxygen") -> plt.Figure:
    """A 2 × 2 figure for a paper: snapshots at the start, middle and end, and live cells per type."""
    with h5py.File(path, "r") as fh:
        n = int(fh["cells/offset"].shape[0])
    if n == 0:
        raise OutputError(f"{path}: holds no cell snapshots")
    picks = sorted({0, n // 2, n - 1})
    fig, axes = plt.subplots(2, 2, figsize=(13.5, 11), dpi=150)
    flat = axes.ravel()
    for ax, k in zip(flat, picks, strict=False):
        plot_snapshot(path, k, field, "type", ax=ax)
    for ax in flat[len(picks) : 3]:
        ax.axis("off")
    pop = read_population(path)
    colors = type_colors(path)
    ax = flat[3]
    for name, df in pop.groupby("type", sort=False):
        c = colors.get(str(name), "k")
        ax.plot(df["time"] / 60, df["live"], color=c, lw=2, label=f"{name}")
        dead = df["apoptotic"] + df["necrotic"] + df["lysed"]
        if dead.any():
            ax.plot(df["time"] / 60, dead, color=c, lw=1, ls="--")
    ax.plot([], [], color="k", lw=1, ls="--", label="dead (same colour)")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("cells")
    if pop["live"].max() > 0:
        ax.set_yscale("symlog", linthresh=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("population")
    fig.tight_layout()
    return fig


def plot_run(
    path: str | Path,
    field: str | None = None,
    color_by: str = "type",
    snapshots: list[int] | None = None,
    movie: bool = False,
    out_dir: Path | None = None,
) -> list[Path]:
    """Write the standard figures for a run; returns their paths."""
    path = Path(path)
    attrs = read_attrs(path)
    out_dir = Path(out_dir) if out_dir else path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = path.stem
    field = field or ("oxygen" if "oxygen" in attrs["substrates"] else None)
    written = []
    for k in snapshots or [-1]:
        fig = plot_snapshot(path, k, field, color_by)
        p = out_dir / f"{stem}_snapshot{'_last' if k == -1 else f'_{k:04d}'}.png"
        fig.savefig(p, bbox_inches="tight")
        plt.close(fig)
        written.append(p)
    fig = plot_population(path)
    p = out_dir / f"{stem}_population.png"
    fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    written.append(p)
    if color_by == "type":
        fig = plot_overview(path, field)
        p = out_dir / f"{stem}_overview.png"
        fig.savefig(p, bbox_inches="tight")
        plt.close(fig)
        written.append(p)
    if movie:
        written.append(write_movie(path, out_dir / f"{stem}.gif", field, color_by))
    return written


def write_movie(path: Path, out: Path, field: str | None, color_by: str = "type") -> Path:
    """An animated GIF with one frame per snapshot (imageio)."""
    import imageio.v3 as iio

    with h5py.File(path, "r") as fh:
        n = fh["cells/offset"].shape[0]
    frames = []
    for k in range(n):
        fig = plot_snapshot(path, k, field, color_by)
        fig.set_dpi(80)
        fig.canvas.draw()
        frames.append(np.asarray(fig.canvas.buffer_rgba())[..., :3].copy())
        plt.close(fig)
    if not frames:
        raise OutputError(f"{path}: no snapshots to animate")
    shape = frames[0].shape
    frames = [f[: shape[0], : shape[1]] for f in frames if f.shape[0] >= shape[0] and f.shape[1] >= shape[1]]
    iio.imwrite(out, np.stack(frames), duration=400, loop=0)
    return out
