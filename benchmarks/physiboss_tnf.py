"""The PhysiBoSS TNF tutorial imported and run: cell fates under continuous TNF, TNF pulses, no TNF.

Imports ``sample_projects_intracellular/boolean/tutorial/config/simple_tnf/{1_Long_TNF,2_Short_TNF}.xml``
with ``tme import physicell`` (the ``maboss`` translator and the ``treatment_*`` pulse), writes
one scenario per condition and seed, runs each with ``tme run`` in a subprocess (one thread) and
prints, per condition, the fates of every cell that ever lived (initial cells + divisions):
apoptosis, necrosis (PhysiBoSS's ``NonACD`` output) and alive at the end, with the live count
over time and the CPU seconds of the runs.

Conditions (TNF = 10 on the four faces while on; zero flux while off):

* ``continuous``: ``1_Long_TNF`` (on 10500 of every 11000 min, 10000 min simulated: always on);
* ``pulses``: ``2_Short_TNF`` (on 2000 min, off 1440 min, period 3440 min, 12000 min simulated);
* ``none``: ``2_Short_TNF`` with the pulse removed (control), 3000 min.

The tutorial's 0.01 min diffusion and 0.1 min mechanics steps are coarsened (``--diffusion-dt``,
``--mechanics-dt``; default 0.5 min) so a run takes seconds; the network updates every 1440 min
as in the tutorial, so these steps do not touch the network's clock.

    python benchmarks/physiboss_tnf.py --seeds 0 1 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from tme_sim.importers.physicell import import_physicell
from tme_sim.importers.toml_writer import dumps

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = (
    ROOT.parent / "shared" / "anchors" / "physicell-1.14.1" / "sample_projects_intracellular" / "boolean" / "tutorial"
)
#: condition -> (settings file, keep the TNF pulse, duration or None for the file's max_time)
CONDITIONS = {
    "continuous": ("1_Long_TNF.xml", True, None),
    "pulses": ("2_Short_TNF.xml", True, None),
    # without death the population grows exponentially: 3000 min (two network updates) suffices
    "none": ("2_Short_TNF.xml", False, "3000 min"),
}


def scenario(tutorial: Path, xml: str, keep_pulse: bool) -> dict:
    """The imported scenario of one tutorial settings file (pulse removed for the control)."""
    doc = import_physicell(tutorial / "config" / "simple_tnf" / xml).doc
    if not keep_pulse:
        for sub in doc["substrates"].values():
            sub.pop("pulse", None)
    return doc


def run(toml: Path, h5: Path, seed: int, dt_diff: str, dt_mech: str, duration: str | None) -> tuple[float, float]:
    """``tme run`` one scenario; (CPU s, wall s) of the subprocess."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "tme_sim", "run", str(toml), "--allow-outside-paths", "--seed", str(seed)]
    cmd += ["--set", f"time.diffusion_dt={dt_diff}", "--set", f"time.mechanics_dt={dt_mech}"]
    cmd += ["-o", str(h5), "--force", "-q", "--no-plot"] + (["--duration", duration] if duration else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()  # the runs are quiet: a few lines at most
    _, status, usage = os.wait4(proc.pid, 0)  # reaped here so its own rusage is read
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: {toml.name} seed {seed}: {err.strip().splitlines()[-1] if err.strip() else 'failed'}")
    return usage.ru_utime + usage.ru_stime, wall


def fates(h5: Path) -> dict:
    """Fates of every cell that ever lived, and the live count every 1000 min."""
    with h5py.File(h5) as f:
        kinds = json.loads(f["events"].attrs["kinds"])
        kind = f["events/kind"][:]
        counts = {name: int((kind == i).sum()) for i, name in enumerate(kinds)}
        live = f["population/counts"][:, :, 0].sum(axis=1)
        t = f["population/time"][:]
    ever = int(live[0]) + counts["division"]
    return {
        "ever": ever,
        "apoptosis": counts["apoptosis"] / ever,
        "necrosis": counts["necrosis"] / ever,
        "alive": int(live[-1]) / ever,
        "live_end": int(live[-1]),
        "live_by_1000": [int(live[min(np.searchsorted(t, x), len(t) - 1)]) for x in range(0, int(t[-1]) + 1, 1000)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tutorial", type=Path, default=TUTORIAL)
    ap.add_argument("--out", type=Path, default=Path("physiboss_tnf_runs"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--conditions", nargs="+", choices=list(CONDITIONS), default=list(CONDITIONS))
    ap.add_argument("--diffusion-dt", default="0.5 min")
    ap.add_argument("--mechanics-dt", default="0.5 min")
    args = ap.parse_args()
    if not args.tutorial.is_dir():
        raise SystemExit(f"error: PhysiBoSS tutorial not found at {args.tutorial}")
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for name in args.conditions:
        xml, keep, duration = CONDITIONS[name]
        toml = args.out / f"{name}.toml"
        toml.write_text(dumps(scenario(args.tutorial, xml, keep)))
        jobs += [(name, seed, toml, args.out / f"{name}_seed{seed}.h5", duration) for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        timings = list(pool.map(lambda j: run(j[2], j[3], j[1], args.diffusion_dt, args.mechanics_dt, j[4]), jobs))
    print(
        "| condition | seed | cells ever | apoptosis | necrosis (NonACD) | alive at end"
        " | live cells every 1000 min | CPU s | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, seed, _, h5, _), (cpu, wall) in zip(jobs, timings, strict=True):
        r = fates(h5)
        live = " ".join(str(n) for n in r["live_by_1000"])
        print(
            f"| {name} | {seed} | {r['ever']} | {r['apoptosis']:.3f} | {r['necrosis']:.3f} | {r['alive']:.3f}"
            f" ({r['live_end']}) | {live} | {cpu:.1f} | {wall:.1f} |"
        )


if __name__ == "__main__":
    main()
