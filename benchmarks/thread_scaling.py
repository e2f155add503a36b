"""1 → 2-thread scaling of every hot kernel that has a serial and a parallel twin, per size.

Run (2 numba threads, under the timing lock on a shared machine):

    NUMBA_NUM_THREADS=2 flock -x /work/timing.lock python benchmarks/thread_scaling.py [--quick]

Each kernel is called through its serial compilation (= the 1-thread figure: the serial twins
are what one thread runs) and its parallel one with 2 threads, round-robin, and the best wall time
of a few calls is printed with the speed-up. Cells: a packed 3D spheroid (FCC lattice,
:mod:`tme_sim.model.packing`) of 10³ … 10⁶ cells, as in ``tumor_immune_3d_large.toml``.
Kernels: Verlet-list build, pair coefficients, velocities (force sum: two passes over the half
lists and their transpose, with the coefficient array, and with the constants computed in the
loop — the model's path), the transposed-index build, AB2 position update, and
the implicit diffusion substep (backward Euler + CG) on 3D grids of 10³ … 10⁶ voxels × 2
substrates. Contacts, motility and the phenotype step have no parallel twin (they are serial
numpy/numba) and are not listed. The table is what the kernel chooser's thresholds
(``mechanics.PARALLEL_MIN_CELLS``, ``grid.microenvironment.PARALLEL_MIN_UPDATES``) are set from.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.diffusion import best_times, make_grid
from tme_sim import mechanics as mech
from tme_sim.model.packing import packed_ball

RADIUS = 8.412710547954228  # PhysiCell's default cell radius (µm)


def spheroid(n_cells: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions (n, 3) of a packed spheroid of about ``n_cells`` cells and the domain size (3,)."""
    spacing = 2 * RADIUS
    radius = (n_cells / (math.sqrt(2) / spacing**3) * 3 / (4 * math.pi)) ** (1 / 3)
    side = 2 * radius + 100.0
    pos = packed_ball(np.full(3, side / 2), radius, spacing, 3, rng)
    return pos, np.full(3, side)


def mechanics_kernels(n_cells: int, repeats: int) -> list[tuple[str, int, float, float]]:
    """(kernel, cells, serial s, parallel s) of the mechanics kernels at ``n_cells`` cells."""
    rng = np.random.default_rng(0)
    pos, domain = spheroid(n_cells, rng)
    n = len(pos)
    radius = np.full(n, RADIUS)
    ctype = np.zeros(n, np.int16)
    dead = np.zeros(n, np.int8)
    rep_t, adh_t, arel_t = np.array([10.0]), np.array([0.4]), np.array([1.25])
    cl = mech.CellList(domain, 3, 2 * RADIUS * 1.25)
    cl.ensure(pos, n, force=True)
    order = cl.order
    pos = np.ascontiguousarray(pos[order])  # locality, as the model's periodic re-sort gives
    cl.ensure(pos, n, force=True)
    margins = np.full(1, 0.5 * cl.skin)

    def lists(par):
        return mech.neighbor_lists(pos, radius, ctype, arel_t, n, cl.start, cl.order, cl.nbins, cl.bin_size, 3,
                                   cl.skin, parallel=par, capacity=40 * n, margins=margins)  # fmt: skip

    nstart, nbr = lists(False)
    vl = mech.reverse_lists(nstart, nbr, n)  # the transposed index both force paths read
    coef = np.empty((5, nbr.size))
    work = np.empty(nbr.size)
    vel = np.zeros((n, 3))
    x = pos.copy()
    prev = np.zeros((n, 3))
    out = []
    fns = {
        "Verlet lists": lambda par: lists(par),
        "pair coefficients": lambda par: mech.pair_coefficients(
            radius, ctype, dead, n, rep_t, adh_t, arel_t, nstart, nbr, out=coef, parallel=par
        ),
        "velocities": lambda par: mech.listed_velocities(
            pos, radius, ctype, n, rep_t, coef, vl, domain, 3, vel, parallel=par, work=work
        ),
        "reverse lists": lambda par: mech.reverse_lists(nstart, nbr, n, parallel=par),
        "velocities, model's loop": lambda par: mech.direct_velocities(
            pos, radius, ctype, dead, n, rep_t, adh_t, arel_t, vl, domain, 3, vel, parallel=par, work=work
        ),
        "AB2 update": lambda par: mech.ab2_update(x, vel * 0, prev, n, 0.1, domain, 3, parallel=par),
    }
    for name, fn in fns.items():
        s, p = best_times([lambda fn=fn: fn(False), lambda fn=fn: fn(True)], repeats)
        out.append((name, n, s, p))
    return out


def diffusion_kernel(side: int, repeats: int) -> tuple[str, int, float, float]:
    """(kernel, voxels, serial s, parallel s) of one implicit substep on a side³ × 2 grid."""
    grids = [make_grid((side, side, side), 2, np.float64, True, scheme="implicit") for _ in range(2)]
    grids[0].parallel, grids[1].parallel = False, True
    s, p = best_times([lambda: grids[0].advance(0.1), lambda: grids[1].advance(0.1)], repeats)
    return ("implicit diffusion (x2 subst.)", side**3, s, p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10³ and 10⁴ only, few repeats (a check that it runs)")
    ap.add_argument("--sizes", type=int, nargs="+", help="cell counts (default 10³ 10⁴ 10⁵ 10⁶)")
    ap.add_argument("--no-grid", action="store_true", help="skip the diffusion rows")
    args = ap.parse_args(argv)
    threads = numba.get_num_threads()
    if threads < 2:
        print("error: run with NUMBA_NUM_THREADS=2 (the parallel twin needs two threads)")
        return 2
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    sides = [10, 22] if args.quick else [10, 22, 46, 100]
    if args.sizes:
        sizes = args.sizes
    if args.no_grid:
        sides = []
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"numba threads: {threads} ({numba.config.THREADING_LAYER} layer requested); load average {' '.join(load)}")
    rows = []
    c0, t0 = time.process_time(), time.perf_counter()
    for n in sizes:
        rows += mechanics_kernels(n, 2 if n >= 10**6 else 5)
    for side in sides:
        rows.append(diffusion_kernel(side, 2 if side >= 100 else 5))
    print(f"\n{'kernel':30s} {'size':>9s} {'1 thread ms':>12s} {'2 threads ms':>13s} {'speed-up':>9s}")
    for name, size, s, p in rows:
        print(f"{name:30s} {size:9,d} {1e3 * s:12.3f} {1e3 * p:13.3f} {s / p:8.2f}x")
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    print(f"\n(best of repeats, wall; process CPU {cpu:.1f} s over {wall:.1f} s wall)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
