"""Benchmark of the diffusion–reaction grid (issue 2).

Run ``python benchmarks/diffusion.py`` (``--quick`` for a short run). Prints, per grid, dtype
and thread count, voxel·substrate updates per second of :meth:`Microenvironment.advance`, beside
the bound that memory bandwidth puts on the solver:

* bytes per voxel·substrate update: the 3D solver makes two read+write passes over the field
  array per substep (x+y sweeps of a z-plane in cache; z sweep of a y-row slab in cache), the 2D
  solver two as well (x sweep, y sweep) -> ``4 * itemsize`` bytes (32 B float64, 16 B float32);
  the cell coupling and the Dirichlet voxels touch only their sparse voxels and are left out;
* bandwidth: a large ``numpy.copyto`` (256 MiB) measured in the same run, counted as read +
  write;
* bound = bandwidth / bytes per update; "of bound" = measured / bound. Grids that fit in the
  last-level cache (32 MiB here) can beat the DRAM bound.

The last table compares the 3D schemes as a run uses them (:func:`schemes_3d`): BioFVM's LOD at
its 0.01 min step, LOD in increment form (exact steady state) at the same step, and the implicit
scheme (the 3D default) at the flagship's 0.1 min step, as simulated minutes per second and as
updates per second against each scheme's own bound (``--schemes`` runs only that table).

"updates/s" is wall-clock; "per cpu-s" (serial rows only) divides by the process CPU time, which
does not count time the process lost to other processes on a shared machine.

Kernels: "serial" and "parallel" are forced; "auto" is the default ``parallel=None``, which
times both on its own calls and keeps the faster (it re-tries the other every 50 calls).

Timings use the best of several repeats (the machine is shared, the best is the least disturbed
one), each repeat one compiled call of ``n_steps`` substeps. "full" grids have Dirichlet faces
for the first substrate, a ball/disk of cells (~10 % of the voxels, uptake + secretion of every
substrate) and 1 % vessel voxels (Dirichlet mask); "bare" grids have none of that.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tme_sim.grid import Microenvironment, get_substrate

NAMES_2D = ["oxygen", "glucose", "IFNG", "TNF", "CXCL9", "lactate", "IL10", "TGFB1", "CCL2", "VEGFA"]
NAMES_3D = ["oxygen", "glucose"]


def make_grid(
    shape: tuple[int, ...], n_sub: int, dtype, full: bool, seed: int = 0, scheme: str = "lod", lod_form: str = "biofvm"
) -> Microenvironment:
    """A grid of ``shape`` voxels (nx, ny[, nz]) of 20 µm with ``n_sub`` shipped substrates."""
    dx = 20.0
    names = (NAMES_2D if len(shape) == 2 else NAMES_3D)[:n_sub]
    subs = [get_substrate(n) for n in names]
    m = Microenvironment(tuple(n * dx for n in shape), dx, subs, dtype=dtype, scheme=scheme, lod_form=lod_form)
    if not full:
        return m
    rng = np.random.default_rng(seed)
    m.set_boundary(names[0], "all", "dirichlet", get_substrate(names[0]).initial)
    centres = m.voxel_centres(np.arange(m.n_voxels))
    mid = np.array([*m.domain, 0.0][:3]) / 2
    if m.dim == 2:
        centres[:, 2] = 0.0
    dist = np.linalg.norm(centres - mid, axis=1)
    cells = np.flatnonzero(dist < np.quantile(dist, 0.10))
    n, S = cells.size, m.n_substrates
    m.set_cell_coupling(
        cells,
        np.full(n, 2494.0),
        rng.uniform(0.0, 0.01, (n, S)),
        rng.uniform(0.0, 1.0, (n, S)),
        rng.uniform(0.0, 1.0, (n, S)),
        np.zeros((n, S)),
    )
    vessels = np.zeros(m.n_voxels, dtype=bool)
    vessels[rng.choice(m.n_voxels, max(1, m.n_voxels // 100), replace=False)] = True
    for name in names[:2]:
        m.set_dirichlet_mask(name, vessels.reshape(m.shape), get_substrate(name).initial)
    return m


def best_time(fn, repeats: int) -> float:
    """Best wall time of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    return best_times([fn], repeats)[0]


def best_times(fns, repeats: int, cpu: list[float] | None = None) -> list[float]:
    """Best wall times of several variants, timed round-robin so that they see the same load.

    If ``cpu`` is a list, the best process CPU times are appended to it (meaningful for serial
    variants only: CPU time does not count time lost to other processes, but counts the spinning
    of idle OpenMP threads in parallel ones)."""
    for fn in fns:
        fn()  # warm-up (compilation is cached on disk; this also warms the caches)
    best = [np.inf] * len(fns)
    best_cpu = [np.inf] * len(fns)
    for _ in range(repeats):
        for v, fn in enumerate(fns):
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            best[v] = min(best[v], time.perf_counter() - t0)
            best_cpu[v] = min(best_cpu[v], time.process_time() - c0)
    if cpu is not None:
        cpu.extend(best_cpu)
    return best


def copy_bandwidth(repeats: int) -> float:
    """Bytes/s of a 256 MiB numpy copy (read + write counted)."""
    a = np.random.default_rng(0).random(32 * 1024 * 1024)
    b = np.empty_like(a)
    t = best_time(lambda: np.copyto(b, a), repeats)
    return 2 * a.nbytes / t


def schemes_3d(bw: float, repeats: int, threads: list[int], shape=(75, 75, 75), minutes: float = 2.0) -> None:
    """3D schemes on the "full" 75^3 x2 grid, float64: LOD at 0.01 min (BioFVM's step), LOD in increment form at 0.01
    min and the implicit scheme (backward Euler + CG) at 0.1 min (the 3D flagship's step), each advancing
    ``minutes`` of a transient from the initial fields (reset before every repeat, so the implicit scheme's
    warm start is not a converged field). Bytes per substep: LOD 4·itemsize per value (see the module
    docstring); LOD increment 10·itemsize (residual: c read, δ written; Jacobi term and x/y sweeps of a
    z-plane: c and δ read and written; z sweep and update of a y-row slab: δ and c read and written);
    implicit, per value, 10 passes for the residual, warm-start product and update plus 15 per CG iteration
    (product: p, inv_diag, q; update: x, p, r, q, inv_diag read, x, r written; direction: r, inv_diag, p read,
    p written) → itemsize·(10 + 15·it), ``it`` the measured mean iterations per substep."""
    print(f"\n3D schemes, {shape[0]}^3 x2 (full), float64, a {minutes:g}-min transient from the initial fields:")
    head = (
        f"  {'scheme':9s} {'dt':>5s} {'thr':>3s} {'sim min/s':>9s} {'cpu s':>6s} {'CG it':>5s} "
        f"{'updates/s':>10s} {'B/upd':>5s} {'bound/s':>9s} {'of bound':>8s}"
    )
    print(head)
    for scheme, form, dt in (("lod", "biofvm", 0.01), ("lod", "increment", 0.01), ("implicit", "biofvm", 0.1)):
        m = make_grid(shape, 2, np.float64, True, scheme=scheme, lod_form=form)
        label = "lod-inc" if form == "increment" else scheme
        start = m.species_first()
        n = round(minutes / dt)
        for t in threads:
            numba.set_num_threads(t)
            m.parallel = t > 1
            best, best_cpu, iters = np.inf, np.inf, 0.0
            for rep in range(repeats + 1):
                m._c[...] = start
                m._work = None
                total_it = 0
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(n):
                    m.advance(dt, 1)
                    total_it += int(m.last_iterations.sum())
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                if rep > 0 and wall < best:  # rep 0 warms up (compilation)
                    best, best_cpu, iters = wall, cpu, total_it / (n * m.n_substrates)
            values = m.n_voxels * m.n_substrates
            bpu = 8 * (10 + 15 * iters if scheme == "implicit" else 10 if form == "increment" else 4)
            rate = values * n / best
            bound = bw / bpu
            print(
                f"  {label:9s} {dt:5g} {t:3d} {minutes / best:9.2f} {best_cpu:6.2f} "
                f"{iters if scheme == 'implicit' else float('nan'):5.1f} {rate:10.3g} {bpu:5.0f} {bound:9.3g} "
                f"{rate / bound:8.0%}"
            )
    numba.set_num_threads(max(threads))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip 150^3")
    ap.add_argument("--schemes", action="store_true", help="only the 3D schemes table")
    args = ap.parse_args(argv)
    repeats = 4 if args.quick else 15
    max_threads = numba.config.NUMBA_NUM_THREADS
    threads = [t for t in (1, 2) if t <= max_threads]

    bw = copy_bandwidth(repeats)
    print(f"numpy copy bandwidth (256 MiB, read+write): {bw / 1e9:.1f} GB/s; numba threads available: {max_threads}")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (others share this machine)")
    if args.schemes:
        schemes_3d(bw, repeats, threads)
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
        return 0
    print("dt = 0.01 min; rates are voxel*substrate updates per second (best of repeats)\n")

    cases = [
        ("2D 50x50 x5", (50, 50), 5, True),
        ("2D 200x200 x5", (200, 200), 5, True),
        ("3D 75^3 x2 bare", (75, 75, 75), 2, False),
        ("3D 75^3 x2", (75, 75, 75), 2, True),
    ]
    if not args.quick:
        cases.append(("3D 150^3 x2", (150, 150, 150), 2, True))
    header = (
        f"{'grid':18s} {'dtype':7s} {'thr':>3s} {'kernel':8s} {'updates/s':>10s} {'per cpu-s':>10s} "
        f"{'B/upd':>5s} "
        f"{'bound/s':>9s} {'of bound':>8s}"
    )
    print(header)
    print("-" * len(header))
    for label, shape, n_sub, full in cases:
        for dtype in (np.float64, np.float32):
            m = make_grid(shape, n_sub, dtype, full)
            values = m.n_voxels * m.n_substrates
            n_steps = max(1, int(2e7 // values))

            def run(t, par, m=m, n=n_steps):
                numba.set_num_threads(t)
                m.parallel = par
                m.advance(0.01, n)

            variants = [(1, False)] + [(t, mode) for t in threads[1:] for mode in (True, None)]
            cpu: list[float] = []
            secs = best_times([lambda t=t, p=p: run(t, p) for t, p in variants], repeats, cpu)
            bpu = 4 * np.dtype(dtype).itemsize
            bound = bw / bpu
            for (t, par), sec, csec in zip(variants, secs, cpu, strict=True):
                rate = values * n_steps / sec
                kernel = {False: "serial", True: "parallel", None: "auto"}[par]
                per_cpu = f"{values * n_steps / csec:10.3g}" if t == 1 else f"{'-':>10s}"
                print(
                    f"{label:18s} {np.dtype(dtype).name:7s} {t:3d} {kernel:8s} {rate:10.3g} {per_cpu} "
                    f"{bpu:5d} {bound:9.3g} {rate / bound:8.0%}"
                )
    numba.set_num_threads(max_threads)

    print("\nsmall 2D grid 50x50 x10 substrates (full), float64, 100 substeps per call vs 1 per call:")
    m = make_grid((50, 50), 10, np.float64, True)
    for t in threads:
        numba.set_num_threads(t)
        m.parallel = None  # automatic choice (serial below PARALLEL_MIN_UPDATES)
        many, one = best_times([lambda m=m: m.advance(0.01, 100), lambda m=m: m.advance(0.01, 1)], repeats * 3)
        print(
            f"  {t} thread(s), automatic kernel (last used: {m.last_kernel}): "
            f"{many / 100 * 1e6:7.1f} us/substep at 100 substeps/call, {one * 1e6:7.1f} us per 1-substep call"
        )
        m.parallel = t > 1
        forced = best_time(lambda m=m: m.advance(0.01, 100), repeats * 3)
        print(
            f"  {t} thread(s), {'parallel' if t > 1 else 'serial'} kernel forced: {forced / 100 * 1e6:7.1f} us/substep"
        )
    numba.set_num_threads(max_threads)
    schemes_3d(bw, repeats, threads)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
