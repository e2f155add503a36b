"""Benchmark: Boolean-network engine vs MaBoSS on the TNF cell-fate model.

Definition of a *cell-update*: advancing one cell's network state by one intracellular step of
6 min at time_scale = 1 network unit per minute (6 network time units, exact asynchronous
Gillespie), averaged over the first K steps after TNF exposure starting from the model's
initial state. The first steps carry the transient (about 12 transitions per cell in step 1,
6 in step 2, then about 1 and fewer as cells reach fixed points), so the average depends on K;
the first-step cost is printed too.

MaBoSS reference, measured in the same run: cMaBoSS (``maboss.load(..., cmaboss=True)``), TNF on,
one thread, cost per trajectory = wall time of a run / sample_count, for max_time = 6 (one
intracellular step, what PhysiBoSS asks MaBoSS per cell and step) and max_time = 100.

Usage::

    python benchmarks/intracellular.py            # 1e3 .. 1e6 cells, K = 10
    python benchmarks/intracellular.py --quick    # 1e3 .. 1e5 cells, K = 3
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tme_sim.intracellular.base import Signals  # noqa: E402
from tme_sim.intracellular.boolean import (  # noqa: E402
    BooleanIntracellular,
    BooleanIntracellularConfig,
    load_network,
)

NETWORKS = ROOT / "scenarios" / "networks"
BND = NETWORKS / "tnf_cellfate.bnd"
CFG = NETWORKS / "tnf_cellfate.cfg"
STEP = 6.0  # network time units per step (6 min x 1 unit/min)


def maboss_cost(max_time: float, samples: int, repeats: int) -> tuple[float, float] | None:
    """(wall, CPU) seconds per MaBoSS trajectory (best of ``repeats``), or None without maboss."""
    try:
        import maboss
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "tnf_on.cfg"
        cfg.write_text(re.sub(r"(?m)^TNF\.istate = 0;", "TNF.istate = 1;", CFG.read_text()))
        best = [float("inf"), float("inf")]
        for _ in range(repeats):
            sim = maboss.load(str(BND), str(cfg), cmaboss=True)
            sim.update_parameters(sample_count=samples, thread_count=1, max_time=max_time, time_tick=0.5)
            t0, c0 = time.perf_counter(), time.process_time()
            sim.run(only_final_state=True)
            best = [min(best[0], time.perf_counter() - t0), min(best[1], time.process_time() - c0)]
    return best[0] / samples, best[1] / samples


def engine_cost(net, n: int, steps: int, parallel: bool, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    s = net.initial_state(n, rng)
    s[:, net.index("TNF")] = 1
    times = []
    cpu = []
    events = []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        ev = net.advance(s, STEP, rng, parallel=parallel)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        events.append(float(ev.mean()))
    return {
        "per_update": sum(times) / (n * steps),
        "cpu_per_update": sum(cpu) / (n * steps),
        "first": times[0] / n,
        "events": float(np.mean(events)),
        "apoptosis": float(s[:, net.index("Apoptosis")].mean()),
    }


def coupling_cost(n: int, steps: int, seed: int = 0) -> tuple[float, float]:
    """(wall, CPU) seconds per cell-update through BooleanIntracellular.update (same K steps)."""
    cfg = BooleanIntracellularConfig.model_validate(
        {
            "kind": "boolean",
            "bnd": str(BND),
            "cfg": str(CFG),
            "dt": "6 min",
            "inputs": [{"node": "TNF", "signal": "TNF", "threshold": 0.5}],
            "outputs": [
                {"node": "Apoptosis", "behavior": "apoptosis_rate", "value_on": "0.0035 1/min"},
                {"node": "NonACD", "behavior": "necrosis_rate", "value_on": "0.0035 1/min"},
                {"node": "Survival", "behavior": "cycle_rate", "value_on": "0.0011 1/min"},
            ],
        }
    )
    model = BooleanIntracellular.from_config(cfg, ROOT)
    rng = np.random.default_rng(seed)
    state = model.initial_state(n, rng)
    sig = Signals(names=["TNF"], values=np.ones((n, 1)))
    model.update(sig, model.initial_state(n, rng), 6.0, rng)  # warm-up (first-call costs)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.update(sig, state, 6.0, rng)
    return (time.perf_counter() - t0) / (n * steps), (time.process_time() - c0) / (n * steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (up to 1e5 cells, 3 steps)")
    args = ap.parse_args()
    sizes = [1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    steps = 3 if args.quick else 10
    samples = 2_000 if args.quick else 10_000
    repeats = 1 if args.quick else 3

    net = load_network(BND, CFG)
    t0 = time.perf_counter()
    warm = net.initial_state(300, np.random.default_rng(0))
    net.advance(warm, 1.0, np.random.default_rng(0), parallel=False)
    net.advance(warm, 1.0, np.random.default_rng(0), parallel=True)
    print(f"kernel load/compile: {time.perf_counter() - t0:.2f} s (cached on disk after the first run)")
    print(f"numba threads: {numba.get_num_threads()}, threading layer: {numba.threading_layer()}")

    m6 = maboss_cost(STEP, samples, repeats)
    m100 = maboss_cost(100.0, samples, repeats)
    if m6 is None or m100 is None:
        print("MaBoSS: not installed (pip install maboss cmaboss) - ratios omitted")
    else:
        print(
            f"MaBoSS per trajectory (1 thread, {samples} samples, best of {repeats}), wall / CPU: "
            f"max_time 6 -> {m6[0] * 1e6:.1f} / {m6[1] * 1e6:.1f} us, "
            f"max_time 100 -> {m100[0] * 1e6:.1f} / {m100[1] * 1e6:.1f} us"
        )
    print(
        f"\ncell-update = one cell advanced by one 6-min step (6 network units), mean of the first "
        f"{steps} steps after TNF exposure.\nRatios: MaBoSS CPU time per trajectory / our CPU time per "
        "cell-update (1 thread), or wall / wall (multi-threaded).\n"
    )
    head = (
        f"{'cells':>9} {'kernel':>7} {'updates/s':>10} {'ns/upd wall':>11} {'ns/upd CPU':>10} "
        f"{'1st step ns':>11} {'events/upd':>10} {'x MaBoSS(6)':>11} {'x MaBoSS(100)':>13}"
    )
    print(head)
    print("-" * len(head))
    for n in sizes:
        for parallel in (False, True):
            r = engine_cost(net, n, steps, parallel)
            ours = r["per_update"] if parallel else r["cpu_per_update"]
            k = 0 if parallel else 1
            x6 = f"{m6[k] / ours:.0f}x" if m6 else "-"
            x100 = f"{m100[k] / ours:.0f}x" if m100 else "-"
            cpu = "-" if parallel else f"{r['cpu_per_update'] * 1e9:.0f}"
            print(
                f"{n:>9,} {f'{numba.get_num_threads()} thr' if parallel else '1 thr':>7} {1 / r['per_update']:>10.3g} "
                f"{r['per_update'] * 1e9:>11.0f} {cpu:>10} {r['first'] * 1e9:>11.0f} "
                f"{r['events']:>10.2f} {x6:>11} {x100:>13}"
            )
    print("\nFull BooleanIntracellular.update() (threshold input, float32 state, 3 outputs; auto kernel):")
    for n in sizes:
        wall, cpu = coupling_cost(n, steps)
        ratio = f"; {m100[1] / cpu:.0f}x cheaper (CPU) than a MaBoSS trajectory (100)" if m100 else ""
        print(f"{n:>9,} cells: {wall * 1e9:8.0f} ns wall, {cpu * 1e9:8.0f} ns CPU per cell-update{ratio}")


if __name__ == "__main__":
    main()
