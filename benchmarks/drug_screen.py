"""Benchmark: drug-combination screen without the spatial simulation.

A 10×10 dose matrix for 3 drugs pairwise (3 pairs, 271 distinct dose points) across the 4 cell
types of ``scenarios/screens/tnf_toxicity.toml`` (Boolean TNF cell-fate network). Side by side in
one run: the batched engine (one model call per cell type for all dose points) against a loop of
one model call per dose point, plus the cost of the synergy scores (Bliss, HSA, Loewe, ZIP).

    python benchmarks/drug_screen.py            # 128 cells per dose point, full loop
    python benchmarks/drug_screen.py --quick    # 32 cells per dose, loop timed on 30 points

Timings are wall-clock on a shared machine: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tme_sim.screening.screen import load_screen, run_screen

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # before benchmarks/: its surrogates.py is no package

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tme_sim" / "scenarios" / "screens" / "tnf_toxicity.toml"
DRUGS = ["birinapant", "venetoclax", "tpca1"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer cells; per-point loop on a subset")
    ap.add_argument("--cells", type=int, default=None, help="cells per dose point")
    ap.add_argument("--doses", type=int, default=10, help="doses per drug (incl. 0)")
    args = ap.parse_args()
    cells = args.cells or (32 if args.quick else 128)

    scr = load_screen(CONFIG)
    for m in scr.cell_types:
        m.cells_per_dose = cells
    scr.config.n_doses = args.doses

    # warm-up: compile/load the network kernels once (not timed)
    run_screen(scr, DRUGS[:2], {d: np.array([0.0, 1.0]) for d in DRUGS[:2]}, synergy_methods=[])

    t0 = time.perf_counter()
    res = run_screen(scr, DRUGS)
    total = time.perf_counter() - t0

    # the same dose points, one model call per point
    grids = {d: scr.default_doses(scr.library.get(d)) for d in DRUGS}
    pts = []
    for pair in res.pairs:
        a, b = pair.drugs
        da, db = np.meshgrid(grids[a], grids[b], indexing="ij")
        block = np.zeros((da.size, len(DRUGS)))
        block[:, DRUGS.index(a)] = da.ravel()
        block[:, DRUGS.index(b)] = db.ravel()
        pts.append(block)
    uniq = np.unique(np.concatenate(pts), axis=0)
    n_loop = 30 if args.quick else uniq.shape[0]
    sel = np.random.default_rng(0).choice(uniq.shape[0], size=n_loop, replace=False)
    drugs = scr.library.select(DRUGS)
    rows = []
    for m in scr.cell_types:
        rng = np.random.default_rng(1)
        t1 = time.perf_counter()
        for i in sel:
            m.death_fraction(drugs, uniq[i : i + 1], scr.config.exposure, rng)
        loop = (time.perf_counter() - t1) * uniq.shape[0] / n_loop
        rows.append((m.name, m.role, res.timings[m.name], loop))

    n_pts = res.n_points
    print(
        f"drug screen: {', '.join(DRUGS)} pairwise, {args.doses}x{args.doses} doses, "
        f"{n_pts} distinct points, {cells} cells per point, {len(scr.cell_types)} cell types"
    )
    hdr = f"{'cell type':<12} {'role':<8} {'cells':>8} {'batched s':>10} {'per-point s':>12} {'speed-up':>9}"
    print(hdr)
    print("-" * len(hdr))
    for name, role, batched, loop in rows:
        print(f"{name:<12} {role:<8} {n_pts * cells:>8d} {batched:>10.3f} {loop:>12.3f} {loop / batched:>8.1f}x")
    bsum = sum(r[2] for r in rows)
    lsum = sum(r[3] for r in rows)
    print(f"{'all types':<12} {'':<8} {4 * n_pts * cells:>8d} {bsum:>10.3f} {lsum:>12.3f} {lsum / bsum:>8.1f}x")
    print(f"synergy (4 methods x {len(res.pairs)} pairs x {len(scr.cell_types)} types): {res.timings['synergy']:.3f} s")
    print(f"total screen (models + synergy): {total:.3f} s")
    if args.quick:
        print(f"(per-point column: {n_loop} points timed, scaled to {n_pts})")
    print()
    print(f"{'pair':<24} {'window':>7} {'max eff':>8} {'bliss tumor':>12} {'bliss worst tox':>16}")
    for p in res.pairs:
        tumor = p.synergy["tumor"]["bliss"].score
        tox = max(p.synergy[h]["bliss"].score for h in p.toxicity)
        print(
            f"{p.label:<24} {p.window_fraction:>7.2f} {p.efficacy.max():>8.2f} {100 * tumor:>+12.1f} "
            f"{100 * tox:>+16.1f}"
        )


if __name__ == "__main__":
    main()
