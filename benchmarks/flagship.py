"""Wall time of the flagship 5-day run (the README's main command), beside PhysiCell's figure.

Runs ``tme run scenarios/tumor_immune.toml`` as separate processes at 1 and 2 numba threads (one
after the other, same machine, same seed) and prints a table: wall and CPU seconds, peak memory,
and the population at the end, with the ratio to PhysiCell's comparable 2D sample measured on this
machine (5 simulated days, ~1300 cells, 5 substrates: 263 s wall on 2 threads). Each process
first runs a 1-hour warm-up of the same scenario so that numba's on-disk cache is populated and
compilation is not timed; the timed part is ``run_scenario``, the code path of ``tme run``
(HDF5 output every 6 h, no plots).

Run: ``python benchmarks/flagship.py`` (``--duration 1d`` for a shorter run, ``--threads 2``
for one thread count only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # before benchmarks/: its surrogates.py is no package

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "tme_sim" / "scenarios" / "tumor_immune.toml"
PHYSICELL_WALL_S = 263.0  # PhysiCell's 2D TME sample, 5 days, 2 threads, this machine

_CHILD = """
import json, resource, sys, time
import numba
from tme_sim.io.observers import Observer
from tme_sim.runner import run_scenario

class Final(Observer):
    def on_finish(self, model):
        self.summary = model.summary()

path, duration, out = sys.argv[1], sys.argv[2], sys.argv[3]
run_scenario(path, out + ".warm.h5", duration="1h")  # warm-up: numba caches, not timed
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
final = Final()
w0, c0 = time.perf_counter(), cpu()
run_scenario(path, out, duration=duration, extra_observers=[final])
wall, cpu_s = time.perf_counter() - w0, cpu() - c0
print(json.dumps({"threads": numba.get_num_threads(), "wall": wall, "cpu": cpu_s, "summary": final.summary,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(threads: int, duration: str) -> dict:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flagship.h5"
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(FLAGSHIP), duration, str(out)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"flagship run at {threads} thread(s) failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="5d", help="simulated time (default 5d, the flagship's)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    from tme_sim.units import parse_duration

    minutes = parse_duration(a.duration)
    rows = [run(t, a.duration) for t in a.threads]
    print(f"\nflagship {FLAGSHIP.name}, {a.duration} simulated, output written as `tme run` does")
    print(
        f"PhysiCell's 2D TME sample: {PHYSICELL_WALL_S:g} s wall for 5 days on 2 threads (ratio scaled to the duration)"
    )
    print(f"{'threads':>7s} {'wall s':>8s} {'cpu s':>8s} {'peak MB':>8s} {'vs PhysiCell':>12s}  population at the end")
    for r in rows:
        scale = minutes / 7200.0  # PhysiCell's figure is for 5 days
        ratio = PHYSICELL_WALL_S * scale / r["wall"]
        pop = " ".join(f"{k}={v}" for k, v in r["summary"].items())
        print(f"{r['threads']:7d} {r['wall']:8.1f} {r['cpu']:8.1f} {r['rss_mb']:8.0f} {ratio:11.2f}x  {pop}")


if __name__ == "__main__":
    main()
