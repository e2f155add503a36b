"""Benchmark of the per-run overhead of sweeps on dask (issue 8).

Run ``python benchmarks/sweep_overhead.py`` (``--quick`` for a short run). Every engine executes
the same task, :func:`tme_sim.sweep.execute.run_one` with a :class:`SyntheticRun` (writes a small
HDF5 file to a temporary name, fsyncs and renames it) and a :class:`LinearResponse` metric (reads
it back), for N runs on W worker processes:

* ``serial``           the task in a loop in this process (the work itself, no engine);
* ``ProcessPool``      ``concurrent.futures.ProcessPoolExecutor(W)``: submit all, wait for all;
* ``dask raw``         ``LocalCluster(W processes)``: ``client.submit`` per run + ``as_completed``;
* ``dask executor``    ``LocalCluster``: :func:`execute_runs`, i.e. what ``tme sweep`` does per run
                       (unique keys, status handling, results), without the progress bar.

The table gives wall time, runs per second, wall time per run, and the overhead per run over the
serial work, ``(wall * W - serial) / N`` (the CPU time the engine adds to each run; it can be
negative when W > 1 hides work behind I/O), each engine timed with a warm pool (start-up is a
separate column). Runs are side by side in one process so the ratios are meaningful even on a
shared machine; the best of ``--repeats`` is kept.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tme_sim.sweep.design import RunSpec
from tme_sim.sweep.execute import execute_runs, run_one
from tme_sim.sweep.synthetic import LinearResponse, SyntheticRun


def make_specs(n: int) -> list[RunSpec]:
    return [RunSpec(f"p{i:05d}_r00", i, 0, 1000 + i, {"a": i / n}) for i in range(n)]


def fresh_dir(base: Path, name: str) -> Path:
    d = base / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def bench_serial(specs, run, metric, d: Path) -> float:
    t0 = time.perf_counter()
    for s in specs:
        r = run_one(s, run, metric, str(d))
        assert r.status == "done", r.error
    return time.perf_counter() - t0


def bench_pool(pool, specs, run, metric, d: Path) -> float:
    t0 = time.perf_counter()
    futs = [pool.submit(run_one, s, run, metric, str(d)) for s in specs]
    wait(futs)
    assert all(f.result().status == "done" for f in futs)
    return time.perf_counter() - t0


def bench_dask_raw(client, specs, run, metric, d: Path) -> float:
    from distributed import as_completed

    t0 = time.perf_counter()
    futs = [client.submit(run_one, s, run, metric, str(d), pure=False) for s in specs]
    for f in as_completed(futs):
        assert f.result().status == "done"
    return time.perf_counter() - t0


def bench_dask_executor(client, specs, run, metric, d: Path) -> float:
    t0 = time.perf_counter()
    res = execute_runs(specs, run, d, client, metrics_fn=metric, progress=False)
    assert all(r.status == "done" for r in res.values())
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs and repeats")
    ap.add_argument("--runs", type=int, default=None, help="runs per engine (default 1000, quick 150)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats, best kept (default 3, quick 2)")
    args = ap.parse_args(argv)
    n = args.runs or (150 if args.quick else 1000)
    w = args.workers
    reps = args.repeats or (2 if args.quick else 3)

    import distributed

    run, metric = SyntheticRun(), LinearResponse({"a": 1.0})
    base = Path(tempfile.mkdtemp(prefix="tme-sweep-bench-"))
    specs = make_specs(n)
    print(
        f"per-run overhead: {n} synthetic runs (HDF5 write + rename + metric read), {w} workers, "
        f"best of {reps}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n"
    )
    results: dict[str, tuple[float, float]] = {}
    try:
        bench_serial(specs[: min(20, n)], run, metric, fresh_dir(base, "warm"))  # imports, h5py init
        results["serial (1 process)"] = (
            0.0,
            min(bench_serial(specs, run, metric, fresh_dir(base, "s")) for _ in range(reps)),
        )

        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=w) as pool:
            list(pool.map(abs, range(w)))  # workers started
            startup = time.perf_counter() - t0
            bench_pool(pool, specs[: min(20, n)], run, metric, fresh_dir(base, "warm"))
            best = min(bench_pool(pool, specs, run, metric, fresh_dir(base, "p")) for _ in range(reps))
        results["ProcessPoolExecutor"] = (startup, best)

        t0 = time.perf_counter()
        with (
            distributed.LocalCluster(
                n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            client.wait_for_workers(w)
            startup = time.perf_counter() - t0
            bench_dask_raw(client, specs[: min(20, n)], run, metric, fresh_dir(base, "warm"))
            raw, exe = [], []
            for _ in range(reps):  # interleaved, so that both see the same machine load
                raw.append(bench_dask_raw(client, specs, run, metric, fresh_dir(base, "r")))
                exe.append(bench_dask_executor(client, specs, run, metric, fresh_dir(base, "e")))
            best_raw, best_exe = min(raw), min(exe)
        results["dask LocalCluster, raw submit"] = (startup, best_raw)
        results["dask LocalCluster, execute_runs"] = (startup, best_exe)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    serial = results["serial (1 process)"][1]
    pool = results["ProcessPoolExecutor"][1]
    head = (
        f"{'engine':34s} {'start-up s':>10s} {'wall s':>8s} {'runs/s':>8s} {'ms/run':>8s} "
        f"{'overhead ms/run':>16s} {'wall / pool':>11s}"
    )
    print(head)
    print("-" * len(head))
    for name, (startup, wall) in results.items():
        workers = 1 if name.startswith("serial") else w
        overhead = (wall * workers - serial) / n * 1e3
        print(
            f"{name:34s} {startup:10.2f} {wall:8.2f} {n / wall:8.0f} {wall / n * 1e3:8.2f} "
            f"{overhead:16.2f} {wall / pool:11.2f}"
        )
    print(
        f"\nserial work per run: {serial / n * 1e3:.2f} ms. A simulation run takes seconds to hours, so the "
        "dask overhead per run is what matters only for sweeps of very short runs."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
