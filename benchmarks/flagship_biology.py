"""Biology metrics of flagship runs (issue #20), each beside the literature value it is checked against.

Usage::

    tme run tumor_immune --seed 7 --out s7.h5 --set "output.interval=120 min"
    python benchmarks/flagship_biology.py s7.h5 [s8.h5 ...]

Per run (the last snapshot unless stated):

* necrotic core: number of necrotic tumor cells and the core's radius (µm), that of a disc (ball in
  3D) holding them at the tumor's packing — the equivalent radius; since macrophages clear dead
  cells, also the core emptied of live tumor cells (5th percentile of the live tumor cells'
  distance from the initial tumor centre) and the rim's width (95th − 5th percentile);
* viable rim: distance (µm) from the nearest vessel voxel centre to the live tumor cells (95th
  percentile: how deep viable tissue reaches) and to the necrotic ones (5th percentile: where
  necrosis starts); literature 100–200 µm (Thomlinson & Gray, Br J Cancer 1955, 9:539: ~150 µm);
* viable depth from the stroma: distance (µm) of live tumor cells from the nearest voxel outside the
  tumor (95th percentile; Thomlinson & Gray measured the viable rim of tumor cords from the vascular
  stroma around them), and the O2 (mmHg) live tumor cells sit at (5th percentile; fraction below the
  0.75 mmHg necrosis threshold, where they die at up to 1/(6 h)); the tumor's edge voxels: their
  distance to the nearest vessel and their O2 by that distance (how far the stroma carries O2);
* lactate (mM) in hypoxic voxels (O2 < 5 mmHg) that hold tumor cells: mean and maximum;
  literature 5–25 mM in hypoxic tumor regions (Walenta et al., Cancer Res 2000, 60:916: 4–40 mM
  in cervical cancers);
* T-cell lactate suppression: mean of the T-cell rule's factor ``1/(1 + (lactate/10 mM)²)`` over
  live T cells (last snapshot) and the fraction of T cells suppressed by more than 20 % (lactate > 5 mM);
* O2 (mmHg) of tumor voxels: minimum, mean;
* CAF (fibroblast) count: live at the start and at the end, change (target ±20 %);
* T-cell kills per T cell per day (kill events / mean live T cells / days); literature: ~2–16
  kills per CTL per day in vivo (Halle et al., Immunity 2016, 44:233 report hours per kill);
* tumor growth curve: live tumor cells per day;
* speeds (µm/min) when the run has snapshots ≤ 2 min apart: mean displacement per minute of live
  T cells and macrophages between consecutive snapshots, beside their mean ``migration_speed``.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tme_sim import io
from tme_sim.cells import NECROTIC_SWELLING
from tme_sim.plotting import vessel_voxels_of


def _nearest(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Distance from each point ``(N, 3)`` to the nearest target ``(M, 3)`` (µm)."""
    if len(points) == 0:
        return np.zeros(0)
    from scipy.spatial import cKDTree

    return cKDTree(targets).query(points)[0]


def _necrotic_radius_by_day(cells, times, xyz: list[str], dim: int) -> list[tuple[float, float]]:
    """(day, radius µm) of a disc (ball in 3D) holding the necrotic tumor cells at the tumor's mean
    packing, at every whole day and the last snapshot."""
    out = []
    for t in times:
        if not (t % 1440 < 1e-6 or t == times[-1]):
            continue
        tum = cells[(cells["time"] == t) & (cells["type"] == "tumor")]
        nec = int((tum["dead"].astype(int) >= NECROTIC_SWELLING).sum())
        span = tum[xyz].to_numpy()
        r_t = np.quantile(np.linalg.norm(span - span.mean(axis=0), axis=1), 0.95) if len(tum) else 0.0
        size = (np.pi * r_t**2 if dim == 2 else 4 / 3 * np.pi * r_t**3) * nec / max(len(tum), 1)
        radius = np.sqrt(size / np.pi) if dim == 2 else (3 * size / (4 * np.pi)) ** (1 / 3)
        out.append((round(float(t) / 1440.0, 2), round(float(radius), 1)))
    return out


def _hypoxia_by_day(cells, times, fields, xyz: list[str], dx: float) -> list[tuple[float, int, float | None]]:
    """(day, hypoxic tumor voxels, their mean lactate mM) every 12 h and at the end: voxels with
    O2 < 5 mmHg holding a tumor cell (live or dead)."""
    out = []
    for k, t in enumerate(times):
        if not (t % 720 < 1e-6 or t == times[-1]):
            continue
        o2 = fields["oxygen"].isel(time=k).to_numpy()
        lac = fields["lactate"].isel(time=k).to_numpy()
        tum = cells[(cells["time"] == t) & (cells["type"] == "tumor")][xyz].to_numpy() // dx
        occ = np.zeros(o2.shape, bool)
        idx = np.clip(tum.astype(int), 0, np.array(o2.shape[::-1]) - 1)
        occ[tuple(idx[:, ::-1].T)] = True
        hyp = occ & (o2 < 5.0)
        lac_mean = round(float(lac[hyp].mean()), 2) if hyp.any() else None
        out.append((round(float(t) / 1440.0, 2), int(hyp.sum()), lac_mean))
    return out


def _depth_from_stroma(tumor_xyz: np.ndarray, live_xyz: np.ndarray, shape: tuple, dx: float) -> np.ndarray:
    """Distance (µm) of each live tumor cell's voxel centre from the nearest voxel centre outside the
    tumor: the tumor is the voxels holding a tumor cell (live or dead), closed by one voxel and with
    its holes filled. Thomlinson & Gray's measure: viable depth from the stroma around a cord."""
    from scipy import ndimage

    if len(live_xyz) == 0:
        return np.zeros(0)
    hi = np.array(shape[::-1]) - 1
    dist = ndimage.distance_transform_edt(_tumor_mask(tumor_xyz, shape, dx)) * dx
    return dist[tuple(np.clip((live_xyz // dx).astype(int), 0, hi)[:, ::-1].T)]


def _tumor_mask(tumor_xyz: np.ndarray, shape: tuple, dx: float) -> np.ndarray:
    """Voxels holding a tumor cell (live or dead), closed by one voxel, holes filled."""
    from scipy import ndimage

    mask = np.zeros(shape, bool)
    hi = np.array(shape[::-1]) - 1
    mask[tuple(np.clip((tumor_xyz // dx).astype(int), 0, hi)[:, ::-1].T)] = True
    return ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=1))


def _edge_vs_vessels(tumor_xyz: np.ndarray, vessel_centres: np.ndarray, o2: np.ndarray, dx: float) -> dict:
    """The tumor's edge voxels (in the tumor, next to the stroma): their distance (µm) to the nearest
    vessel (50th, 95th percentiles) and their mean O2 (mmHg) by that distance (bands of 50 µm)."""
    from scipy import ndimage

    mask = _tumor_mask(tumor_xyz, o2.shape, dx)
    edge = mask & ~ndimage.binary_erosion(mask)
    if not edge.any():
        return {}
    idx = np.argwhere(edge)[:, ::-1]  # (x, y[, z]) voxel indices
    d = _nearest((idx + 0.5) * dx, vessel_centres)
    vals = o2[edge.nonzero()]
    bands = {}
    for lo in (0, 100, 200):
        sel = (d >= lo) & (d < lo + 50)
        bands[f"{lo}-{lo + 50}"] = round(float(vals[sel].mean()), 1) if sel.any() else None
    return {
        "tumor_edge_to_vessel_p50_p95_um": tuple(np.round(np.quantile(d, [0.5, 0.95]), 1).tolist()),
        "tumor_edge_o2_by_vessel_distance_mmHg": bands,
    }


def metrics(path: str) -> dict:
    attrs = io.read_attrs(path)
    dim = int(attrs["dim"])
    cells = io.read_cells(path, snapshot=None)
    times = np.sort(cells["time"].unique())
    last = cells[cells["time"] == times[-1]]
    first = cells[cells["time"] == times[0]]
    alive = ~last["dead"].astype(bool)
    tumor = last[last["type"] == "tumor"]
    necrotic = tumor[tumor["dead"].astype(int) >= NECROTIC_SWELLING]  # necrotic (swelling) or lysed debris
    live_tumor = tumor[~tumor["dead"].astype(bool)]
    xyz = ["x", "y", "z"][:dim]
    out: dict = {"file": Path(path).name, "days": float(times[-1]) / 1440.0}
    area = None
    if len(tumor):
        span = tumor[xyz].to_numpy()
        centre = span.mean(axis=0)
        r = np.linalg.norm(span - centre, axis=1)
        r_t = np.quantile(r, 0.95)
        per_cell = (np.pi * r_t**2 if dim == 2 else 4 / 3 * np.pi * r_t**3) / len(tumor)
        area = per_cell * len(necrotic)
    out["necrotic_tumor_cells"] = len(necrotic)
    out["necrotic_core_radius_by_day"] = _necrotic_radius_by_day(cells, times, xyz, dim)
    if len(live_tumor):
        centre0 = first[first["type"] == "tumor"][xyz].to_numpy().mean(axis=0)
        r_live = np.linalg.norm(live_tumor[xyz].to_numpy() - centre0, axis=1)
        # the core emptied of live tumor cells (necrotic cells are cleared by macrophages): the inner
        # edge of the viable rim, and the rim's width out to the tumor edge (5th/95th percentiles)
        out["core_without_live_tumor_radius_um"] = float(np.quantile(r_live, 0.05))
        out["viable_rim_width_um"] = float(np.quantile(r_live, 0.95) - np.quantile(r_live, 0.05))
        out["live_tumor_within_100um_of_centre"] = int((r_live < 100.0).sum())
    if area is not None:
        out["necrotic_core_radius_um"] = float(
            np.sqrt(area / np.pi) if dim == 2 else (3 * area / (4 * np.pi)) ** (1 / 3)
        )
    ves = vessel_voxels_of(path)  # the vessels still there at the end (regressed ones left out)
    ves0 = vessel_voxels_of(path, time=0.0)
    if ves is not None and ves0 is not None:
        out["vessels_start_end"] = (len(ves0[0]), len(ves[0]))
    if ves is not None:
        centres = ves[0][:, :dim]
        d_live = _nearest(live_tumor[xyz].to_numpy(), centres)
        d_nec = _nearest(necrotic[xyz].to_numpy(), centres)
        out["viable_depth_p95_um"] = float(np.quantile(d_live, 0.95)) if d_live.size else None
        out["necrosis_starts_p05_um"] = float(np.quantile(d_nec, 0.05)) if d_nec.size else None
    fields = io.read_fields(path)
    o2 = fields["oxygen"].isel(time=-1).to_numpy()
    lac = fields["lactate"].isel(time=-1).to_numpy() if "lactate" in fields else None
    xs = fields["x"].to_numpy()
    dx = float(xs[1] - xs[0])
    ijk = np.clip((live_tumor[xyz].to_numpy() // dx).astype(int), 0, None)
    if dim == 2:
        occ = np.zeros(o2.shape, bool)
        occ[ijk[:, 1], ijk[:, 0]] = True
    else:
        occ = np.zeros(o2.shape, bool)
        occ[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = True
    tum_all = tumor[xyz].to_numpy() // dx
    for row in tum_all.astype(int):
        occ[tuple(row[::-1])] = True
    depth = _depth_from_stroma(tumor[xyz].to_numpy(), live_tumor[xyz].to_numpy(), o2.shape, dx)
    out["viable_depth_from_stroma_p95_um"] = float(np.quantile(depth, 0.95)) if depth.size else None
    if ves is not None and len(tumor):
        out.update(_edge_vs_vessels(tumor[xyz].to_numpy(), ves[0][:, :dim], o2, dx))
    if len(live_tumor):
        live_ijk = np.clip((live_tumor[xyz].to_numpy() // dx).astype(int), 0, np.array(o2.shape[::-1]) - 1)
        o2_live = o2[tuple(live_ijk[:, ::-1].T)]
        out["live_tumor_o2_p05_mmHg"] = float(np.quantile(o2_live, 0.05))
        out["live_tumor_below_0.75mmHg"] = float((o2_live < 0.75).mean())
    out["tumor_o2_min_mmHg"] = float(o2[occ].min()) if occ.any() else None
    out["tumor_o2_mean_mmHg"] = float(o2[occ].mean()) if occ.any() else None
    if lac is not None:
        hyp = occ & (o2 < 5.0)
        out["hypoxic_tumor_voxels"] = int(hyp.sum())
        out["lactate_hypoxic_mean_mM"] = float(lac[hyp].mean()) if hyp.any() else None
        out["lactate_max_mM"] = float(lac.max())
        # lactate suppression of live T cells: the rule's factor 1/(1 + (lac/K)²), K = 10 mM
        tcells = last[(last["type"] == "cd8_t_cell") & alive]
        if len(tcells):
            tij = np.clip((tcells[xyz].to_numpy() // dx).astype(int), 0, np.array(lac.shape[::-1]) - 1)
            lac_t = lac[tuple(tij[:, ::-1].T)]
            factor = 1.0 / (1.0 + (lac_t / 10.0) ** 2)
            out["tcells_lactate_factor_mean"] = float(factor.mean())
            out["tcells_suppressed_gt_20pct"] = float((factor < 0.8).mean())
        out["hypoxia_by_day"] = _hypoxia_by_day(cells, times, fields, xyz, dx)
    fib0 = int(((first["type"] == "fibroblast") & ~first["dead"].astype(bool)).sum())
    fib1 = int(((last["type"] == "fibroblast") & alive).sum())
    out["caf_start"], out["caf_end"] = fib0, fib1
    out["caf_change"] = fib1 / fib0 - 1 if fib0 else None
    events = io.read_events(path)
    kills = int((events["kind"].astype(str) == "kill").sum()) if len(events) else 0
    tc = [((cells["time"] == t) & (cells["type"] == "cd8_t_cell") & ~cells["dead"].astype(bool)).sum() for t in times]
    mean_t = float(np.mean(tc)) if tc else 0.0
    out["kills"] = kills
    out["kills_per_tcell_per_day"] = kills / mean_t / out["days"] if mean_t and out["days"] else None
    growth = []
    for t in times:
        if t % 1440 < 1e-6 or t == times[-1]:
            n = int(((cells["time"] == t) & (cells["type"] == "tumor") & ~cells["dead"].astype(bool)).sum())
            growth.append((round(float(t) / 1440.0, 2), n))
    out["live_tumor_by_day"] = growth
    if len(times) > 1 and np.min(np.diff(times)) <= 2.0:
        for ctype in ("cd8_t_cell", "macrophage"):
            sp, cfg = [], []
            live = cells[(cells["type"] == ctype) & ~cells["dead"].astype(bool)]
            for a, b in itertools.pairwise(times):
                ca = live[live["time"] == a].set_index("id")
                cb = live[live["time"] == b].set_index("id")
                ids = ca.index.intersection(cb.index)
                if len(ids):
                    d = np.linalg.norm(cb.loc[ids, xyz].to_numpy() - ca.loc[ids, xyz].to_numpy(), axis=1)
                    sp.append(d / (b - a))
                    if "migration_speed" in ca:
                        cfg.append(ca.loc[ids, "migration_speed"].to_numpy())
            if sp:
                out[f"{ctype}_measured_speed"] = float(np.mean(np.concatenate(sp)))
            if cfg:
                out[f"{ctype}_migration_speed_column"] = float(np.mean(np.concatenate(cfg)))
    return out


def main(argv: list[str]) -> int:
    for path in argv:
        for key, value in metrics(path).items():
            print(f"{key:34s} {value if not isinstance(value, float) else round(value, 3)}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
