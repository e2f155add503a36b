"""Per-part cost of a step of the 10⁶-cell 3D scenario at 10⁵, 3·10⁵ and 10⁶ cells.

Run (one thread, under the timing lock on a shared machine):

    NUMBA_NUM_THREADS=1 flock -x /work/timing.lock python benchmarks/large_3d.py [--quick]
        [--sizes 100000 300000 1000000] [--minutes 6] [--threads 1]

Each size is ``tumor_immune_3d_large.toml`` itself, shrunk by ``--set`` overrides to the tumor
radius that holds that many cells (domain, T-cell shell and avascular core scaled with it; grid
spacing, substrates, cell types, vessels density unchanged), run by ``run_scenario`` for
``--minutes`` simulated minutes (default 6: 60 mechanics steps, 6 diffusion substeps, one
phenotype step — the shortest run that contains every part of the loop once per its clock) in a
separate process, so that its peak memory (max RSS) and CPU time are its own.

Printed: the wall time per mechanics step of each part — diffusion (implicit solve), coupling
(cell → grid refresh), lists (cell list and Verlet lists), mechanics (motility, forces, AB2),
phenotype (behaviours, rules, fates, division/removal), intracellular (the macrophages' surrogate),
contacts (killing, phagocytosis), bookkeeping (locality re-sorts) — averaged over the run's steps
(the phenotype-clock parts run once per 60 steps, so their per-step figure is a 60th of a call;
the macrophages' surrogate runs every 30 min: one evaluation is timed after the run and spread
over its 300 steps, in place of any that fell inside the run);
the time of one output snapshot and of one checkpoint (and its size); the build time; peak
memory; CPU seconds; the cost per cell-step and its growth against n log n; the whole-step cell
updates per second against PhysiCell's measured 3.1e4 mechanics updates/s (its 3D
``cancer_immune`` sample, 25,817 cells, 2 cores, issue #24); and the projected wall time of one
simulated day — **extrapolated** from the measured steps at the initial cell count (14,400
steps + 5 snapshots + 4 checkpoints), not a measured day.

``--day`` measures the day instead: it runs the full-size file through the ``tme`` command line for
its own duration (one simulated day, output and checkpoint every 6 h), times the whole process
(wall, CPU seconds, peak memory, build and numba's cache load included), then reads the output back
with ``tme info``, ``tme plot`` and xarray and prints the populations of every snapshot:

    python benchmarks/large_3d.py --day --threads 2 [--keep DIR] [--duration "1 day"]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

RADIUS = 8.412710547954228  # µm, the tumor cells' radius (PhysiCell default)
PHYSICELL_UPDATES_PER_S = 3.1e4  # issue #24: PhysiCell 3D cancer_immune, 2 cores
DAY_STEPS = 14_400  # one day of 0.1-min mechanics steps
DAY_SNAPSHOTS = 5  # every 6 h, start and end included
DAY_CHECKPOINTS = 4  # every 6 h
PARTS = ("diffusion", "coupling", "lists", "mechanics", "phenotype", "intracellular", "contacts", "bookkeeping")


def overrides(n_cells: int) -> dict[str, str]:
    """``--set`` overrides that shrink the large scenario to a tumor of about ``n_cells`` cells."""
    spacing = 2 * RADIUS
    r = (n_cells / (math.sqrt(2) / spacing**3) * 3 / (4 * math.pi)) ** (1 / 3)
    side = math.ceil((2 * r + 340) / 40) * 40  # whole 40-µm voxels; 930 µm → 2200 µm as in the file
    return {
        "domain.size": json.dumps([f"{side} um"] * 3),
        "initial_cells.0.radius": f'"{r:.1f} um"',
        "initial_cells.1.inner_radius": f'"{r + 5:.1f} um"',
        "initial_cells.1.radius": f'"{r + 45:.1f} um"',
        "vessels.exclude_radius": f'"{500 / 930 * r:.1f} um"',
    }


def _timed(obj, attr: str, part: str, acc: dict[str, float], inner: tuple[str, ...] = ()) -> None:
    """Replace ``obj.attr`` by a wrapper adding its wall time to ``acc[part]`` and its process CPU
    time to ``acc[part + " cpu"]`` (minus the parts in ``inner`` measured inside it, so that
    nothing is counted twice)."""
    fn = getattr(obj, attr)
    cpu = part + " cpu"

    def wrapper(*a, **k):
        before = sum(acc[p] for p in inner)
        before_cpu = sum(acc[p + " cpu"] for p in inner)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            acc[part] += time.perf_counter() - t0 - (sum(acc[p] for p in inner) - before)
            acc[cpu] += time.process_time() - c0 - (sum(acc[p + " cpu"] for p in inner) - before_cpu)

    setattr(obj, attr, wrapper)


def child(n_cells: int, minutes: float) -> dict:
    """Run one size in this process; returns the measurements."""
    from tme_sim.io import OutputWriter
    from tme_sim.io.observers import Observer
    from tme_sim.runner import run_scenario
    from tme_sim.scenarios import resolve

    acc: dict[str, float] = defaultdict(float)
    info: dict = {}
    before_run_end = before_run_end_cpu = 0.0

    snap = OutputWriter.snapshot

    def timed_snapshot(self, model):
        t0, c0 = time.perf_counter(), time.process_time()
        snap(self, model)
        info.setdefault("snapshots", []).append(time.perf_counter() - t0)
        info.setdefault("snapshots_cpu", []).append(time.process_time() - c0)

    OutputWriter.snapshot = timed_snapshot

    import tme_sim.io.observers as observers

    write_checkpoint = observers.write_checkpoint

    def timed_checkpoint(model, path, *a, **k):
        t0, c0 = time.perf_counter(), time.process_time()
        out = write_checkpoint(model, path, *a, **k)
        info["checkpoint_s"] = time.perf_counter() - t0
        info["checkpoint_cpu_s"] = time.process_time() - c0
        info["checkpoint_mb"] = Path(out).stat().st_size / 2**20
        return out

    observers.write_checkpoint = timed_checkpoint

    class Profile(Observer):
        def on_start(self, model) -> None:
            super().on_start(model)
            info["n"] = int(model.store.n)
            info["counts"] = model.summary()
            info["build_s"] = time.perf_counter() - t_start
            info["voxels"] = int(model.micro.n_voxels)
            info["substrates"] = int(model.micro.n_substrates)
            _timed(model.micro, "advance", "diffusion", acc)
            _timed(model, "update_coupling", "coupling", acc)
            _timed(model.cell_list, "neighbors", "lists", acc)
            _timed(model, "mechanics_step", "mechanics", acc, ("lists",))
            _timed(model.intracellular_step, "_update", "intracellular", acc)
            for rules in model.rules:
                _timed(rules, "interact", "contacts", acc)
            for table in model.rule_tables:
                _timed(table, "interact", "contacts", acc)
            _timed(model, "phenotype_step", "phenotype", acc, ("intracellular", "contacts"))
            _timed(model, "reorder_for_locality", "bookkeeping", acc)
            _timed(model, "step", "step", acc)

        def on_finish(self, model) -> None:
            nonlocal before_run_end, before_run_end_cpu
            before_run_end, before_run_end_cpu = acc["intracellular"], acc["intracellular cpu"]
            info["steps"] = int(model.n_mech_steps)
            info["n_end"] = int(model.store.n)
            info["list_builds"] = int(model.cell_list.list_builds)
            info["cg_iterations"] = [int(x) for x in model.micro.last_iterations]
            # the intracellular models run on their own clocks (the macrophages' surrogate every
            # 30 min = 300 steps): time one evaluation of each now and spread it over its period
            ist, st = model.intracellular_step, model.store
            amortized = amortized_cpu = 0.0
            for t, im in ist.models.items():
                period = im.dt or model.dt_pheno
                before, before_cpu = acc["intracellular"], acc["intracellular cpu"]
                ist._update(st, t, im, model.sample_conditions, period, model.signals_for, model.rng)
                amortized += (acc["intracellular"] - before) / (period / model.dt_mech)
                amortized_cpu += (acc["intracellular cpu"] - before_cpu) / (period / model.dt_mech)
            info["intracellular_per_step_s"] = amortized
            info["intracellular_per_step_cpu_s"] = amortized_cpu
            info["in_run_intracellular_s"] = before_run_end
            info["in_run_intracellular_cpu_s"] = before_run_end_cpu

    with tempfile.TemporaryDirectory() as tmp:
        t_start = time.perf_counter()
        out = Path(tmp) / "large.h5"
        run_scenario(
            resolve("tumor_immune_3d_large"),
            out,
            overrides={
                **overrides(n_cells),
                "output.interval": f'"{minutes:g} min"',
                "output.checkpoint_interval": f'"{minutes:g} min"',  # one checkpoint, at the end
            },
            duration=f"{minutes:g} min",
            seed=1,
            extra_observers=[Profile()],
        )
        info["file_mb"] = out.stat().st_size / 2**20
    info["total_s"] = time.perf_counter() - t_start
    parts = dict(acc)
    # per-step figures: the intracellular evaluations as amortized above, in place of those (if
    # any) that fell inside the short run
    steps = info["steps"]
    parts["intracellular"] = info["intracellular_per_step_s"] * steps
    parts["intracellular cpu"] = info["intracellular_per_step_cpu_s"] * steps
    parts["step"] += parts["intracellular"] - info["in_run_intracellular_s"]
    parts["step cpu"] += parts["intracellular cpu"] - info["in_run_intracellular_cpu_s"]
    # snapshots after the first and the checkpoint are written by observers inside a step: they
    # are reported on their own rows, not spread over the steps
    parts["step"] -= sum(info["snapshots"][1:]) + info.get("checkpoint_s", 0.0)
    parts["step cpu"] -= sum(info["snapshots_cpu"][1:]) + info.get("checkpoint_cpu_s", 0.0)
    info["parts"] = parts
    info["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info["cpu_s"] = time.process_time()
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10⁴ cells only (a check that it runs)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--minutes", type=float, default=6.0, help="simulated minutes per size (default 6)")
    ap.add_argument("--threads", type=int, default=1, help="NUMBA_NUM_THREADS of the runs (default 1)")
    ap.add_argument("--day", action="store_true", help="measure one simulated day of the full-size file")
    ap.add_argument("--duration", default=None, help="with --day: simulated duration (default: the file's, 1 day)")
    ap.add_argument("--keep", type=Path, help="with --day: folder that keeps the output (default: a temporary one)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.minutes)))
        return 0
    if args.day:
        return measured_day(args.threads, args.duration, args.keep)
    sizes, minutes = ([10_000], 6.0) if args.quick else (args.sizes, args.minutes)
    env = _env(args.threads)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"tumor_immune_3d_large at {', '.join(f'{n:,}' for n in sizes)} cells; {minutes:g} simulated min each;")
    print(f"{args.threads} numba thread(s); load average at start {' '.join(load)} (2-core machine, shared)")
    results = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--minutes", str(minutes)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print(f"error: the run at {n:,} cells failed:\n{res.stderr[-3000:]}")
            return 1
        results.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print_tables(results)
    return 0


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


def measured_day(threads: int, duration: str | None, keep: Path | None) -> int:
    """Run the full-size scenario through ``tme run`` (one process, everything included), check that
    its output reads back, and print the measured wall, CPU, memory and populations."""
    env = _env(threads)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep if keep is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / "large_day.h5"
        # not quiet and not captured: the run's own progress (an hour or more) reaches the terminal
        cmd = [sys.executable, "-m", "tme_sim", "run", "tumor_immune_3d_large", "-o", str(out), "--force"]
        cmd += ["--duration", duration] if duration else []
        print(f"{' '.join(cmd[1:])}\n{threads} numba thread(s); load average at start {' '.join(load)}")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=env)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            print(f"error: the run failed (exit {res.returncode}; its messages are above)")
            return 1
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        peak_mb = after.ru_maxrss / 1024
        return _check_day(out, folder, env, wall, cpu, peak_mb)


def _check_day(out: Path, folder: Path, env: dict[str, str], wall: float, cpu: float, peak_mb: float) -> int:
    """Read the day's output back (``tme info``, ``tme plot``, xarray) and print its table."""
    import numpy as np
    import xarray as xr

    from tme_sim import io

    tme = [sys.executable, "-m", "tme_sim"]
    info = subprocess.run([*tme, "info", str(out)], env=env, capture_output=True, text=True)
    plot = subprocess.run(
        [*tme, "plot", str(out), "-q", "--out-dir", str(folder / "figures")], env=env, capture_output=True, text=True
    )
    fields = xr.open_dataset(out, group="fields", engine="h5netcdf")
    times_h = io.snapshot_times(out) / 60.0
    pop = io.read_population(out)
    n_field_times = int(fields.sizes.get("time", 0))
    fields.close()
    per_time = pop.groupby("time")[["live", "apoptotic", "necrotic", "lysed"]].sum()
    agents = per_time[["live", "apoptotic", "necrotic"]].sum(axis=1).to_numpy(float)
    minutes = float(times_h[-1] * 60) if len(times_h) else 0.0
    steps = round(minutes / 0.1)
    mean_agents = float(np.trapezoid(agents, times_h) / times_h[-1]) if len(times_h) > 1 else float(agents[0])
    rate = steps * mean_agents / wall
    print(f"\n{'measured':34s}{'value':>16s}")
    rows = [
        ("simulated time h", f"{times_h[-1]:.1f}"),
        ("wall time", f"{wall / 60:.1f} min"),
        ("CPU time", f"{cpu / 60:.1f} min"),
        ("peak memory MB (RSS)", f"{peak_mb:,.0f}"),
        ("output file MB", f"{out.stat().st_size / 2**20:,.0f}"),
        ("snapshots at h", " ".join(f"{t:g}" for t in times_h)),
        ("field time points (xarray)", f"{n_field_times}"),
        ("tme info / tme plot exit", f"{info.returncode} / {plot.returncode}"),
        ("agents, mean over the day", f"{mean_agents:,.0f}"),
        ("cell updates per s (wall)", f"{rate:.3g}"),
        ("x PhysiCell (3.1e4/s)", f"{rate / PHYSICELL_UPDATES_PER_S:.0f}x"),
        ("day within 60 min wall", "yes" if wall <= 3600 and times_h[-1] >= 24 else "no"),
    ]
    for label, value in rows:
        print(f"{label:34s}{value:>16s}")
    print("\npopulation per snapshot (all types):")
    print(pop.pivot_table(index="time", columns="type", values="live").rename(lambda t: f"{t / 60:g} h").to_string())
    print("\nnecrotic + lysed per snapshot:")
    print((per_time["necrotic"] + per_time["lysed"]).rename(lambda t: f"{t / 60:g} h").to_string())
    return 0 if info.returncode == 0 and plot.returncode == 0 and n_field_times == len(times_h) else 1


def print_tables(results: list[dict]) -> None:
    print(f"\n{'ms per mechanics step':24s}" + "".join(f"{r['n']:>17,}" for r in results))
    print(f"{'':24s}" + "".join(f"{'wall':>10s} {'CPU':>6s}" for r in results))

    def row(label: str, values: list[tuple[float, float]]) -> None:
        print(f"{label:24s}" + "".join(f"{1e3 * w:10.2f} {1e3 * c:6.2f}" for w, c in values))

    for part in PARTS:
        row(
            part,
            [
                (r["parts"].get(part, 0.0) / r["steps"], r["parts"].get(part + " cpu", 0.0) / r["steps"])
                for r in results
            ],
        )
    row(
        "other (loop)",
        [
            (
                (r["parts"]["step"] - sum(r["parts"].get(p, 0.0) for p in PARTS)) / r["steps"],
                (r["parts"]["step cpu"] - sum(r["parts"].get(p + " cpu", 0.0) for p in PARTS)) / r["steps"],
            )
            for r in results
        ],
    )
    row("whole step", [(r["parts"]["step"] / r["steps"], r["parts"]["step cpu"] / r["steps"]) for r in results])
    print(f"{'output snapshot s':24s}" + "".join(f"{max(r['snapshots']):13.2f}" for r in results))
    print(f"{'checkpoint s':24s}" + "".join(f"{r.get('checkpoint_s', float('nan')):13.2f}" for r in results))
    print(f"{'checkpoint MB':24s}" + "".join(f"{r.get('checkpoint_mb', float('nan')):13.0f}" for r in results))
    print(f"{'build s':24s}" + "".join(f"{r['build_s']:13.1f}" for r in results))
    print(f"{'peak memory MB (RSS)':24s}" + "".join(f"{r['peak_rss_mb']:13.0f}" for r in results))
    print(f"{'output file MB':24s}" + "".join(f"{r['file_mb']:13.1f}" for r in results))
    print(f"{'steps, list builds':24s}" + "".join(f"{r['steps']:>8d}, {r['list_builds']:3d}" for r in results))
    print(f"{'voxels x substrates':24s}" + "".join(f"{r['voxels']:>8,d} x{r['substrates']:3d}" for r in results))
    base = results[0]
    per = [r["parts"]["step"] / r["steps"] / r["n"] for r in results]
    per_cpu = [r["parts"]["step cpu"] / r["steps"] / r["n"] for r in results]
    print(f"\n{'cells':>10s} {'µs/cell-step':>13s} {'(CPU)':>6s} {'vs smallest':>12s} {'n log n ratio':>14s} "
          f"{'updates/s':>10s} {'x PhysiCell':>12s} {'projected day':>14s} {'(CPU)':>7s}")  # fmt: skip
    for r, c, cc in zip(results, per, per_cpu, strict=True):
        nlogn = (r["n"] * math.log(r["n"])) / (base["n"] * math.log(base["n"])) * base["n"] / r["n"]
        rate = 1.0 / c
        io_s = DAY_SNAPSHOTS * max(r["snapshots"]) + DAY_CHECKPOINTS * r.get("checkpoint_s", 0.0)
        day = DAY_STEPS * r["parts"]["step"] / r["steps"] + io_s
        day_cpu = DAY_STEPS * r["parts"]["step cpu"] / r["steps"] + io_s
        print(f"{r['n']:10,d} {1e6 * c:13.3f} {1e6 * cc:6.3f} {cc / per_cpu[0]:11.2f}x {nlogn:13.2f}x {rate:10.3g} "
              f"{rate / PHYSICELL_UPDATES_PER_S:11.1f}x {day / 3600:12.2f} h {day_cpu / 3600:5.2f} h")  # fmt: skip
    print(
        "\n'vs smallest' is the CPU cost per cell-step relative to the smallest size; 'n log n ratio' is what\n"
        "it would be if the cost grew as n log n. 'projected day' is EXTRAPOLATED: 14,400 steps at the\n"
        "measured mean step time (initial cell count; the population grows over a day) plus 5 snapshots\n"
        "and 4 checkpoints — not a measured day. Updates/s: whole-step cell updates per second (every part\n"
        "of the loop), against PhysiCell's 3.1e4 mechanics updates/s on 2 cores (issue #24). Wall times\n"
        "are on a shared machine; CPU times are this process's own.\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
