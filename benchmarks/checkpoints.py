"""Cost of the default checkpoints (every 6 simulated hours) on the flagship run.

Runs ``run_scenario`` (the code path of ``tme run``) on the flagship with checkpoints off
(``output.checkpoint_interval = 0``) and with the default, one after the other in this process
after a warm-up (numba's cache populated), and times one ``write_checkpoint`` of the final state
directly. Prints wall and CPU seconds per run, the checkpoint count, size and cost each.

Run: ``python benchmarks/checkpoints.py`` (``--duration 1d`` default; ``--duration 5d`` for the
README's run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tme_sim.config import load_scenario
from tme_sim.io.checkpoint import write_checkpoint
from tme_sim.model import TMEModel
from tme_sim.runner import run_scenario
from tme_sim.units import parse_duration


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", default="1d")
    ap.add_argument("--scenario", default="tumor_immune")
    args = ap.parse_args()
    minutes = parse_duration(args.duration)
    with tempfile.TemporaryDirectory() as tmp:
        run_scenario(args.scenario, Path(tmp) / "warm.h5", duration="1h")  # compile / load caches
        rows = []
        for label, interval in (("checkpoints off", "0 min"), ("default (6 h)", None)):
            over = {} if interval is None else {"output.checkpoint_interval": f'"{interval}"'}
            out = Path(tmp) / f"{label[:3]}.h5"
            _, wall, cpu = timed(lambda o=out, ov=over: run_scenario(args.scenario, o, overrides=ov,
                                                                     duration=args.duration))  # fmt: skip
            ckpt = out.with_suffix(".h5.ckpt")
            rows.append((label, wall, cpu, ckpt.stat().st_size / 2**20 if ckpt.exists() else 0.0))
        model = TMEModel(load_scenario(args.scenario), seed=1)
        model.run_for(60)
        _, w1, c1 = timed(lambda: write_checkpoint(model, Path(tmp) / "one.ckpt"))
    interval = load_scenario(args.scenario).output.checkpoint_interval
    n = int(minutes // interval)
    print(f"{args.scenario}, {args.duration} simulated, {n} default checkpoints (every {interval:g} min)")
    print(f"{'run':<18}{'wall s':>9}{'CPU s':>9}{'checkpoint MiB':>16}")
    for label, wall, cpu, size in rows:
        print(f"{label:<18}{wall:>9.1f}{cpu:>9.1f}{size:>16.2f}")
    print(f"one write_checkpoint (t = 1 h state): {w1 * 1000:.0f} ms wall, {c1 * 1000:.0f} ms CPU;"
          f" {n} of them ≈ {n * w1:.2f} s wall")  # fmt: skip


if __name__ == "__main__":
    main()
