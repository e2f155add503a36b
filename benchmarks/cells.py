"""Cell-mechanics throughput, state size per cell, and a whole PhysiCell-TME-sized run.

Run:  python benchmarks/cells.py [--quick] [--skip-million] [--whole-run-only]

Prints three tables:

1. cell-mechanics updates per second (one update = one cell through one mechanics step: cell
   list upkeep, interaction velocities, motility, Adams–Bashforth position update) for confluent
   2D tissues of 1e3 … 1e6 cells and a 3D tissue of 1e5 cells, at 1 and 2 numba threads, timed on
   ``TMEModel.mechanics_step`` — the code path a simulation runs;
2. bytes of state per cell (every store column, the id map, intracellular rows);
3. the whole-process wall time of a 2D scenario sized like PhysiCell's TME sample
   (1000×1000 µm, 20 µm voxels, 5 substrates, ~1300 cells, 120 simulated minutes) after warm-up,
   with PhysiCell's diffusion numerics (LOD at 0.01 min) and with ours (ADI at 0.1 min).

References measured on this machine (2 cores): PhysiCell ~1.5e5 cell-mechanics updates/s at
1e5 cells (~10 µs per cell per step). The whole-run table measures PhysiCell in the same invocation
(``--physicell``: its rules sample, ~1300 cells and 5 substrates on the same 1000×1000 µm grid, for
the same simulated minutes, built from ../shared by benchmarks/physicell_runs.py); the same-model
race is benchmarks/physicell_race.py.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numba
import numpy as np

from tme_sim.config import load_scenario, validate_scenario
from tme_sim.model import TMEModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # before benchmarks/: its surrogates.py is no package

HERE = Path(__file__).resolve().parent
PHYSICELL_UPDATES_PER_S = 1.5e5


def tissue_scenario(n_cells: int, dim: int) -> dict:
    """A confluent box of ``n_cells`` tumor cells (2D or 3D), O2 only on a coarse grid."""
    r = 8.412710547954228
    if dim == 2:
        side = math.sqrt(n_cells * (1.9 * r) ** 2)
        size = [f"{math.ceil(side / 100) * 100} um"] * 2
    else:
        side = (n_cells * (1.7 * r) ** 3) ** (1 / 3)
        size = [f"{math.ceil(side / 100) * 100} um"] * 3
    return {
        "name": f"tissue_{dim}d_{n_cells}",
        "duration": "1 min",
        "domain": {"size": size, "dx": "100 um"},
        "time": {"diffusion_dt": "0.1 min", "mechanics_dt": "0.1 min", "phenotype_dt": "6 min"},
        "substrates": {"oxygen": {"initial": "38 mmHg"}},
        "cell_types": {"tumor": {"rules": "tumor"}},
        "initial_cells": [],
    }


def lattice(n_cells: int, dim: int, size: float, rng: np.random.Generator) -> np.ndarray:
    """A jittered hexagonal (2D) or cubic (3D) packing of ``n_cells`` cells filling a box."""
    r = 8.412710547954228
    if dim == 2:
        a = 1.9 * r
        nx = int(size / a)
        ny = int(size / (a * math.sqrt(3) / 2))
        j, i = np.divmod(np.arange(nx * ny), nx)
        pts = np.zeros((nx * ny, 3))
        pts[:, 0] = (i + 0.5 * (j % 2) + 0.25) * a
        pts[:, 1] = (j + 0.5) * a * math.sqrt(3) / 2
    else:
        a = 1.7 * r
        m = int(size / a)
        k, rest = np.divmod(np.arange(m**3), m * m)
        j, i = np.divmod(rest, m)
        pts = np.stack([(i + 0.5) * a, (j + 0.5) * a, (k + 0.5) * a], axis=1)
    pts = pts[:n_cells]
    pts[:, :dim] += rng.normal(0, 0.5, (len(pts), dim))
    return np.clip(pts, 0, size)


def time_mechanics(n_cells: int, dim: int, threads: int, steps: int) -> tuple[float, float, float, float]:
    """(updates/s, seconds per step, CPU seconds per step, bytes per cell) for ``steps`` steps.

    CPU time (all threads of this process) is reported beside wall time because these machines
    are shared: when CPU time per step is far below wall time, the process was starved.
    """
    numba.set_num_threads(threads)
    sc = validate_scenario(tissue_scenario(n_cells, dim))
    model = TMEModel(sc, seed=1)
    pos = lattice(n_cells, dim, sc.domain.size[0], model.rng)
    model.add_cells(np.zeros(len(pos), np.int16), pos, kind=None)
    model.phenotype_step(initial=True)
    model.reorder_for_locality()
    for _ in range(10):  # warm-up and relaxation of the packing (compilation is cached)
        model.mechanics_step()
    t0 = time.perf_counter()
    c0 = time.process_time()
    for _ in range(steps):
        model.mechanics_step()
    dt = (time.perf_counter() - t0) / steps
    cpu = (time.process_time() - c0) / steps
    return model.store.n / dt, dt, cpu, model.store.nbytes_per_cell()


DIFFUSION = {
    "LOD 0.01 min": {},  # the scenario as written: BioFVM's scheme and step, as PhysiCell runs it
    "ADI 0.1 min": {"time.diffusion_scheme": '"adi"', "time.diffusion_dt": '"0.1 min"'},
}
"""Diffusion settings of the whole-run table. ADI at 0.1 min is the more accurate of the two (its
steady state is exact; LOD's is off by O(dt), see benchmarks/flagship_dt.py)."""


def time_tme_run(threads: int, minutes: float, overrides: dict[str, str]) -> tuple[float, float, int]:
    numba.set_num_threads(threads)
    sc = load_scenario(HERE / "scenarios" / "physicell_tme_2d.toml", overrides)
    warm = TMEModel(sc, seed=1)
    warm.run_for(6.0)  # warm-up: compile/load every kernel the run uses
    model = TMEModel(sc, seed=1)
    t0 = time.perf_counter()
    c0 = time.process_time()
    model.run_for(minutes)
    return time.perf_counter() - t0, time.process_time() - c0, model.store.n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and steps")
    ap.add_argument("--skip-million", action="store_true", help="skip the 1e6-cell case")
    ap.add_argument("--whole-run-only", action="store_true", help="only the PhysiCell-TME-sized run")
    ap.add_argument("--physicell", action="store_true", help="also time PhysiCell's rules sample (builds it)")
    args = ap.parse_args()
    max_threads = numba.config.NUMBA_NUM_THREADS
    thread_counts = [1, 2] if max_threads >= 2 else [1]

    cases = [(1_000, 2), (10_000, 2), (100_000, 2), (1_000_000, 2), (100_000, 3)]
    if args.quick:
        cases = [(1_000, 2), (10_000, 2), (100_000, 2)]
    if args.skip_million:
        cases = [c for c in cases if c[0] < 1_000_000]
    if args.whole_run_only:
        cases = []

    print("\n## Cell mechanics (TMEModel.mechanics_step)\n")
    print("| cells | dim | threads | updates/s | ms/step | CPU ms/step | ×PhysiCell (1.5e5/s) | bytes/cell |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, dim in cases:
        for th in thread_counts:
            steps = max(3, min(200, int(2e6 / n))) if not args.quick else max(3, min(50, int(5e5 / n)))
            ups, spt, cpu, bpc = time_mechanics(n, dim, th, steps)
            print(
                f"| {n:.0e} | {dim} | {th} | {ups:.3g} | {spt * 1e3:.2f} | {cpu * 1e3:.2f} | "
                f"{ups / PHYSICELL_UPDATES_PER_S:.1f} | {bpc:.0f} |",
                flush=True,
            )

    print("\n## Mesa handles (created lazily on `model.agents`)\n")
    print("| cells | first `model.agents` (s) | µs per handle | mechanics ms/step without handles | with handles |")
    print("|---:|---:|---:|---:|---:|")
    for n in () if args.whole_run_only else (10_000,) if args.quick else (10_000, 100_000):
        numba.set_num_threads(thread_counts[-1])
        sc = validate_scenario(tissue_scenario(n, 2))
        model = TMEModel(sc, seed=1)
        model.add_cells(np.zeros(n, np.int16), lattice(n, 2, sc.domain.size[0], model.rng), kind=None)
        model.phenotype_step(initial=True)
        for _ in range(5):
            model.mechanics_step()
        t0 = time.perf_counter()
        for _ in range(10):
            model.mechanics_step()
        without = (time.perf_counter() - t0) / 10
        t0 = time.perf_counter()
        agents = model.agents
        create = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(10):
            model.mechanics_step()
        with_h = (time.perf_counter() - t0) / 10
        print(
            f"| {n:.0e} | {create:.3f} | {create / len(agents) * 1e6:.1f} | {without * 1e3:.2f} | {with_h * 1e3:.2f} |"
        )

    minutes = 30.0 if args.quick else 120.0
    physicell = {}
    if args.physicell:
        import tempfile

        from physicell_runs import build_physicell, run_physicell

        where = build_physicell("rules_sample", Path(tempfile.gettempdir()) / "pc_race")
        for th in thread_counts:
            t = run_physicell(where, minutes, th, 0, Path(tempfile.mkdtemp(prefix="pc_cells_")) / "out")
            physicell[th] = t.loop
    print(f"\n## Whole run: PhysiCell-TME-sized 2D scenario ({minutes:g} simulated minutes)\n")
    print(
        "| diffusion | threads | wall s (after warm-up) | CPU s | cells at end | PhysiCell loop s (same threads)"
        " | ratio (wall) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, overrides in DIFFUSION.items():
        for th in thread_counts:
            wall, cpu, n = time_tme_run(th, minutes, overrides)
            pc = physicell.get(th)
            pc_cells = f"{pc:.2f}" if pc else "not run (--physicell)"
            ratio = f"{pc / wall:.1f}×" if pc else "–"
            print(f"| {label} | {th} | {wall:.2f} | {cpu:.2f} | {n} | {pc_cells} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
