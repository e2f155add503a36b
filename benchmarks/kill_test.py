"""Crash-safety of ``tme run``: SIGKILL runs at random moments and inside snapshot writes.

Usage::

    python benchmarks/kill_test.py                      # 20 random kills + every write point, table
    python benchmarks/kill_test.py --trials 10 --dir D --json D/results.json   # (used by the tests)

How it works. The driver imports ``cli`` once and then ``fork()``s one child per trial; the child
runs exactly ``tme run <scenario> --out <file> ...`` (``cli.main`` with that argv), so a trial
costs the run, not the ~10 s of imports. The parent first lets one child finish (the reference
file and its wall time ``T``), then:

* ``random`` trials: a child is killed with SIGKILL after ``u * 0.9 * T`` seconds, ``u`` spread
  evenly over [0, 1) with jitter (so kills fall during start-up, file creation, steps and
  snapshot writes alike);
* ``write-point`` trials: the child patches the output writer so that, in the middle of the
  snapshot ``--point-snapshot``, it SIGKILLs itself right after the i-th HDF5 operation of that
  snapshot (each dataset resize, each data write, the final flush) — every point of a snapshot
  write is hit once.

Every file left behind is then opened with ``h5py`` in SWMR read mode (a killed SWMR writer
leaves "open for write" flags that plain readers refuse) and with
``xarray.open_dataset(f, group="fields", engine="h5netcdf", driver_kwds={"swmr": True})``; the committed snapshots
(:func:`tme_sim.io.committed_snapshots`) must have consistent lengths and be bit-identical to
the same snapshots of the reference run. The table says, per trial, when it was killed, whether
the file opened, how many snapshots it holds and whether they match.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the project first, before this folder: benchmarks/surrogates.py would shadow the package
sys.path.insert(0, str(ROOT))

DEFAULT_SCENARIO = ROOT / "tests" / "data" / "tiny_spheroid.toml"
#: a short run with a snapshot every mechanics step: writes are a large share of the time
DEFAULT_SET = ["duration=8 min", "output.interval=0.1 min", "output.checkpoint_interval=2 min"]
#: random kill moments are spread over [0, KILL_HORIZON) x the reference run's wall time (below 1
#: so that, despite timing noise on a shared machine, nearly every trial is really killed)
KILL_HORIZON = 0.9
#: exit status of a write-point child whose point lies past the end of the snapshot write
PAST_LAST_POINT = 42


def _child_run(argv: list[str], kill_point: tuple[int, int] | None) -> None:
    """In the forked child: run ``tme`` with ``argv`` and leave with os._exit (never returns)."""
    code = 1
    try:
        os.environ["NUMBA_NUM_THREADS"] = os.environ.get("NUMBA_NUM_THREADS", "1")
        if kill_point is not None:
            _arm_write_point(*kill_point)
        from tme_sim import cli

        sys.argv = ["tme", *argv]
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # pragma: no cover - reported through the exit code
        import traceback

        traceback.print_exc()
        code = 3
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _arm_write_point(snapshot: int, point: int) -> None:
    """Make the child SIGKILL itself after HDF5 operation ``point`` of snapshot ``snapshot``."""
    import h5py

    from tme_sim import io

    state = {"snap": -1, "ops": 0}
    orig_snapshot = io.OutputWriter.snapshot
    orig_append = io._append
    orig_flush = h5py.File.flush

    def tick() -> None:
        if state["snap"] == snapshot:
            if state["ops"] == point:
                os.kill(os.getpid(), signal.SIGKILL)
            state["ops"] += 1

    def snapshot_patched(self, model):
        state["snap"] = self.n_snapshots
        state["ops"] = 0
        orig_snapshot(self, model)
        if state["snap"] == snapshot:  # the point lies past this snapshot's last operation
            os._exit(PAST_LAST_POINT)
        state["snap"] = -1

    def append_patched(ds, values):
        n = ds.shape[0]
        ds.resize(n + values.shape[0], axis=0)
        tick()
        ds[n:] = values
        tick()

    def flush_patched(self):
        tick()
        orig_flush(self)
        tick()

    assert orig_append is not None
    io.OutputWriter.snapshot = snapshot_patched
    io._append = append_patched
    h5py.File.flush = flush_patched


def run_trial(
    argv: list[str],
    *,
    kill_after: float | None = None,
    kill_point: tuple[int, int] | None = None,
    timeout: float = 600.0,
) -> dict:
    """Fork a child running ``tme argv``; kill it after ``kill_after`` s (or let it kill itself)."""
    sys.stdout.flush()
    sys.stderr.flush()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        _child_run(argv, kill_point)
    status = None
    killed_by_us = False
    while True:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            break
        elapsed = time.perf_counter() - t0
        if kill_after is not None and elapsed >= kill_after:
            os.kill(pid, signal.SIGKILL)
            killed_by_us = True
            _, status = os.waitpid(pid, 0)
            break
        if elapsed > timeout:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            raise RuntimeError(f"child {argv} ran over {timeout} s")
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    signalled = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return {
        "wall": wall,
        "killed": bool(signalled),
        "killed_by_parent": killed_by_us and signalled,
        "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status),
    }


def first_snapshot_with_events(ref: Path) -> int:
    """Index of the first snapshot (after the initial one) that writes events, else 3."""
    import h5py
    import numpy as np

    with h5py.File(ref, "r") as fh:
        times = fh["cells/snapshot_time"][:]
        ev = fh["events/time"][:]
    for k in range(1, len(times)):
        if np.any((ev > times[k - 1] + 1e-9) & (ev <= times[k] + 1e-9)):
            return k
    return min(3, len(times) - 1)


def checkpoint_file(out: Path) -> Path:
    return out.with_suffix(out.suffix + ".ckpt")


def check_file(path: Path, reference: Path | None) -> dict:
    """Open ``path`` with h5py and xarray; compare its committed snapshots with ``reference``."""
    import h5py
    import numpy as np
    import xarray as xr

    from tme_sim.io import CELL_COLUMNS, committed_snapshots

    out = {
        "exists": path.exists(),
        "h5py": False,
        "xarray": False,
        "snapshots": 0,
        "consistent": False,
        "match": False,
        "complete": False,
        "error": "",
    }
    if not out["exists"]:
        out.update(consistent=True, match=True)
        return out
    try:
        # a killed writer leaves SWMR "open for write" flags: plain readers refuse, SWMR readers open it
        with h5py.File(path, "r", swmr=True, locking=False) as fh:
            out["h5py"] = True
            if "cells" not in fh or "population" not in fh or "fields" not in fh:
                # killed while the file was being created: nothing was committed yet
                out["error"] = "created, no groups yet"
                out.update(consistent=True, match=True)
                return out
            k = committed_snapshots(fh)
            out["snapshots"] = k
            out["complete"] = bool(fh.attrs.get("complete", False))
            g, c, p = fh["fields"], fh["cells"], fh["population"]
            ok = (
                g["time"].shape[0] >= k
                and g["concentration"].shape[0] >= k
                and c["snapshot_time"].shape[0] >= k
                and p["counts"].shape[0] >= k
                and (
                    k == 0 or min(c[n].shape[0] for n, _ in CELL_COLUMNS) >= int(c["offset"][k - 1] + c["count"][k - 1])
                )
            )
            out["consistent"] = bool(ok)
            if reference is not None:
                with h5py.File(reference, "r") as ref:
                    kr = committed_snapshots(ref)
                    same = k <= kr
                    if same and k:
                        end = int(c["offset"][k - 1] + c["count"][k - 1])
                        same &= np.array_equal(g["concentration"][:k], ref["fields/concentration"][:k])
                        same &= np.array_equal(g["time"][:k], ref["fields/time"][:k])
                        same &= np.array_equal(p["counts"][:k], ref["population/counts"][:k])
                        same &= np.array_equal(c["snapshot_time"][:k], ref["cells/snapshot_time"][:k])
                        for name, _ in CELL_COLUMNS:
                            same &= np.array_equal(c[name][:end], ref["cells"][name][:end], equal_nan=True)
                    out["match"] = bool(same)
            else:
                out["match"] = True
        ds = xr.open_dataset(path, group="fields", engine="h5netcdf", driver_kwds={"swmr": True, "locking": False})
        try:
            ds["concentration"].isel(time=slice(0, out["snapshots"])).values  # noqa: B018
            out["xarray"] = True
        finally:
            ds.close()
    except Exception as exc:
        out["error"] = f"{exc.__class__.__name__}: {exc}"[:120]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20, help="random-moment kills")
    ap.add_argument("--no-points", action="store_true", help="skip the kill-at-every-write-point trials")
    ap.add_argument(
        "--point-snapshot",
        type=int,
        default=-1,
        help="snapshot during which write points are hit (default: the first with events)",
    )
    ap.add_argument("--point-stride", type=int, default=1, help="hit every n-th write point only")
    ap.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    ap.add_argument("--set", action="append", default=None, help="scenario override (repeatable)")
    ap.add_argument("--dir", type=Path, default=None, help="folder for the files (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="write the per-trial results here")
    ap.add_argument("--seed", type=int, default=12345, help="seed of the kill moments")
    args = ap.parse_args(argv)

    import tempfile

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="tme_kill_"))
    workdir.mkdir(parents=True, exist_ok=True)
    sets = args.set if args.set is not None else DEFAULT_SET
    base = ["run", str(args.scenario), "-q", "--force"]
    for s in sets:
        base += ["--set", s]

    # the warm-up below runs compiled kernels before fork(): GNU OpenMP is not fork-safe, numba's
    # own workqueue layer is (and with one thread it runs everything inline anyway)
    os.environ["NUMBA_NUM_THREADS"] = "1"
    os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    from tme_sim import cli  # noqa: F401 - warm the imports once; children inherit them
    from tme_sim.config import load_scenario, parse_set_options
    from tme_sim.model import TMEModel

    # load every compiled kernel once (numba cache) so that a child starts running at once
    warm = load_scenario(args.scenario, parse_set_options(sets))
    TMEModel(warm).run_for(2 * warm.time.phenotype_dt)

    ref = workdir / "reference.h5"
    r = run_trial([*base, "--out", str(ref)])
    if r["exit"] != 0:
        print(f"reference run failed (exit {r['exit']})", file=sys.stderr)
        return 1
    full = r["wall"]
    rng = random.Random(args.seed)
    results = []
    for i in range(args.trials):
        u = (i + rng.random()) / args.trials
        f = workdir / f"random_{i:02d}.h5"
        for attempt in range(4):
            at = u * KILL_HORIZON * full
            tr = run_trial([*base, "--out", str(f)], kill_after=at)
            if tr["killed"] or attempt == 3:
                break
            # the run finished before the kill (it ran faster than the reference on this noisy
            # machine): take its time as the new estimate and try the same moment of the run again
            full = min(full, tr["wall"])
        tr.update(kind="random", trial=i, file=str(f), at=at, frac=u * KILL_HORIZON, attempts=attempt + 1)
        tr.update(check_file(f, ref))
        results.append(tr)
    if args.point_snapshot < 0:
        args.point_snapshot = first_snapshot_with_events(ref)
    if not args.no_points:
        for point in range(0, 1000, max(args.point_stride, 1)):
            f = workdir / f"point_{point:02d}.h5"
            tr = run_trial([*base, "--out", str(f)], kill_point=(args.point_snapshot, point))
            if tr["exit"] == PAST_LAST_POINT:  # every operation of the snapshot has been hit
                f.unlink(missing_ok=True)
                checkpoint_file(f).unlink(missing_ok=True)
                break
            tr.update(kind="write-point", trial=point, file=str(f), at=tr["wall"], frac=float("nan"))
            tr.update(check_file(f, ref))
            results.append(tr)

    print(f"reference run: {full:.2f} s wall, file {ref}; write points hit in snapshot {args.point_snapshot}")
    hdr = (
        f"{'kind':<12}{'#':>3} {'kill at':>8} {'of run':>7} {'killed':>7} {'h5py':>5} {'xarray':>7} "
        f"{'snaps':>6} {'consist':>8} {'match':>6}  note"
    )
    print(hdr)
    print("-" * len(hdr))
    for t in results:
        frac = "" if t["kind"] == "write-point" else f"{t['frac']:.0%}"
        print(
            f"{t['kind']:<12}{t['trial']:>3} {t['at']:>7.2f}s {frac:>7} {t['killed']!s:>7} "
            f"{t['h5py'] if t['exists'] else '-'!s:>5} {t['xarray'] if t['exists'] else '-'!s:>7} "
            f"{t['snapshots']:>6} {t['consistent']!s:>8} {t['match']!s:>6}  "
            f"{'' if t['exists'] else 'no file yet '}{'complete ' if t['complete'] else ''}{t['error']}"
        )
    bad = [
        t
        for t in results
        if t["exists"] and not (t["consistent"] and t["match"] and (t["h5py"] and (t["xarray"] or t["error"])))
    ]
    killed = sum(t["killed"] for t in results)
    print(f"\n{len(results)} trials, {killed} ended by SIGKILL, {len(bad)} with an unreadable or wrong file")
    if args.json:
        args.json.write_text(json.dumps({"reference": str(ref), "full_wall": full, "trials": results}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
