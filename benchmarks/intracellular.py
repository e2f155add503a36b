"""Benchmark: Boolean-network engine vs MaBoSS on the TNF cell-fate model.

A *cell-update* advances one cell's network by one intracellular step of 6 min at time_scale = 1
(6 network time units, exact asynchronous Gillespie). Its cost depends on how much the network
moves, so two phases are timed separately, both with TNF switched on at step 1 from the model's
initial state:

* **switching**: steps 1-3 after TNF is switched on (the cascade: ~12, ~6, ~1 transitions per
  cell, ~6.4 on average) - the expensive case;
* **settled**: steps 11-20 (most cells at a fixed point; ~0.05 transitions per cell).

Rows: the bare kernel single-threaded (``BooleanNetwork.advance(parallel=False)``), the bare kernel
multi-threaded (``parallel=True``), and the full coupled ``BooleanIntracellular.update()`` (float32
state matrix as the simulation stores it, TNF threshold input, 3 output maps; kernel chosen
automatically: multi-threaded from ``PARALLEL_MIN_CELLS`` cells).

MaBoSS reference, measured in the same run: cMaBoSS (``maboss.load(..., cmaboss=True)``) on the same
``.bnd``/``.cfg`` with ``TNF.istate = 1``, one thread, cost per trajectory = time of a run /
sample_count, for ``max_time = 100`` (the whole TNF response: what a MaBoSS trajectory costs) and
``max_time = 6`` (one intracellular step, what PhysiBoSS asks MaBoSS per cell and step).

Timing: wall (``perf_counter``) and CPU (``process_time``, all threads of this process). Every
figure is the best of ``--repeats`` runs, for MaBoSS and for us alike; MaBoSS is timed before and
after the engine runs. Ratios are MaBoSS CPU per trajectory / our CPU per cell-update (the
machine is shared, CPU time is the robust figure); "wall" ratios are given beside them.

``--corpus DIR`` instead benchmarks every model of a MaBoSS corpus (``../shared/data/maboss-models``):
for each ``.bnd`` with the first ``.cfg`` of its folder that both engines accept, the *first load*
(a fresh process with an empty kernel cache: parse, build and compile this network, then advance 10
cells; wall, CPU of the process, peak memory) and the *whole trajectory* like for like: ``--samples``
trajectories from the .cfg's initial state to its ``max_time`` (capped at 100), one thread, CPU per
trajectory for cMaBoSS (``sample_count``, ``thread_count = 1``, ``run(only_final_state=True)``: its
per-run set-up, the initial-state draws and the trajectories; its output is the final-state
distribution) and for us (one call: the initial-state draws, the per-call set-up and the
trajectories; on the state-table kernels ``BooleanNetwork.final_state_counts``, which counts the
final states inside the kernel as MaBoSS's output is, elsewhere ``BooleanNetwork.sample``, which
returns every cell's final state), each the best
of ``--repeats`` runs (ours and MaBoSS's alternate); "transitions" is our mean per trajectory.
"kernels" names the engine that ran (``BooleanNetwork.kernel_name``: states, bits, clauses, table or
generic).

Usage::

    python benchmarks/intracellular.py            # 1e3 .. 1e6 cells
    python benchmarks/intracellular.py --quick    # 1e3 .. 1e5 cells, fewer repeats
    python benchmarks/intracellular.py --corpus ../shared/data/maboss-models
    python benchmarks/intracellular.py --synthetic 133   # a random 133-node network, same columns
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
from tme_sim.intracellular.boolean import network as netmod  # noqa: E402

NETWORKS = ROOT / "tme_sim" / "scenarios" / "networks"
BND = NETWORKS / "tnf_cellfate.bnd"
CFG = NETWORKS / "tnf_cellfate.cfg"
STEP = 6.0  # network time units per step (6 min x 1 unit/min)
SWITCHING = (0, 3)  # steps [0, 3): the first three steps after TNF is switched on
SETTLED = (10, 20)  # steps [10, 20)


def maboss_cost(max_time: float, samples: int) -> tuple[float, float] | None:
    """(wall, CPU) seconds per MaBoSS trajectory for one run, or None without maboss."""
    try:
        import maboss
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "tnf_on.cfg"
        text, k = re.subn(r"(?m)^TNF\.istate = 0;", "TNF.istate = 1;", CFG.read_text())
        assert k == 1, "TNF.istate line not found in the .cfg"
        cfg.write_text(text)
        sim = maboss.load(str(BND), str(cfg), cmaboss=True)
        sim.update_parameters(sample_count=samples, thread_count=1, max_time=max_time, time_tick=0.5)
        t0, c0 = time.perf_counter(), time.process_time()
        res = sim.run(only_final_state=True)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        probs = res.get_last_states_probtraj()
        assert "Apoptosis" in " ".join(map(str, probs.columns)), "MaBoSS run did not reach the read-outs"
    return wall / samples, cpu / samples


class Timer:
    """Accumulates wall and CPU seconds and transitions over the steps of one phase."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.updates = self.events = 0

    def per_update(self) -> tuple[float, float, float]:
        return self.wall / self.updates, self.cpu / self.updates, self.events / self.updates


def run_kernel(net, n: int, parallel: bool, seed: int) -> dict[str, Timer]:
    """Bare ``BooleanNetwork.advance`` over SETTLED[1] steps; timers per phase."""
    rng = np.random.default_rng(seed)
    s = net.initial_state(n, rng)
    s[:, net.index("TNF")] = 1
    timers = {"switching": Timer(), "settled": Timer()}
    for step in range(SETTLED[1]):
        t0, c0 = time.perf_counter(), time.process_time()
        ev = net.advance(s, STEP, rng, clamp=net.node_mask(["TNF"]), parallel=parallel)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        for name, (a, b) in (("switching", SWITCHING), ("settled", SETTLED)):
            if a <= step < b:
                tm = timers[name]
                tm.wall += wall
                tm.cpu += cpu
                tm.updates += n
                tm.events += int(ev.sum())
    return timers


def make_model() -> BooleanIntracellular:
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
    return BooleanIntracellular.from_config(cfg, ROOT)


def run_update(model: BooleanIntracellular, n: int, seed: int) -> dict[str, Timer]:
    """Full ``BooleanIntracellular.update`` (float32 state, TNF signal 1) over SETTLED[1] steps."""
    rng = np.random.default_rng(seed)
    state = model.initial_state(n, rng)
    sig = Signals(names=["TNF"], values=np.ones((n, 1)))
    apo = model.network.index("Apoptosis")
    timers = {"switching": Timer(), "settled": Timer()}
    for step in range(SETTLED[1]):
        t0, c0 = time.perf_counter(), time.process_time()
        model.update(sig, state, 6.0, rng)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        for name, (a, b) in (("switching", SWITCHING), ("settled", SETTLED)):
            if a <= step < b:
                tm = timers[name]
                tm.wall += wall
                tm.cpu += cpu
                tm.updates += n
                tm.events += int(model.last_transitions.sum())
    assert 0.9 < state[:, apo].mean() < 1.0, "TNF response did not happen"
    return timers


_FIRST_LOAD = """
import resource, sys, time
w0, c0 = time.perf_counter(), time.process_time()
import numpy as np
from tme_sim.intracellular.boolean import load_network
net = load_network(sys.argv[1], sys.argv[2:])
rng = np.random.default_rng(0)
net.advance(net.initial_state(10, rng), 1.0, rng, parallel=False)
kind = net.kernel_name
r = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - w0, time.process_time() - c0, r.ru_maxrss / 1024, net.n_nodes, kind)
"""


def corpus_runs(root: Path) -> list[tuple[Path, Path]]:
    """(bnd, cfg): each .bnd with the first .cfg of its folder that we load (MaBoSS is asked later)."""
    runs = []
    for bnd in sorted(root.rglob("*.bnd")):
        for cfg in sorted(bnd.parent.glob("*.cfg")):
            try:
                load_network(bnd, cfg)
            except Exception:
                continue
            runs.append((bnd, cfg))
            break
    return runs


def maboss_trajectory_cpu(bnd: Path, cfg: Path, samples: int, max_time: float) -> float | None:
    """cMaBoSS CPU seconds per trajectory (1 thread), or None if MaBoSS is absent or rejects the files."""
    try:
        import maboss
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for f in (bnd, cfg):  # pymaboss decodes UTF-8; MaBoSS itself reads bytes
            data = f.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
            out = Path(tmp) / f.name
            out.write_text(text, encoding="utf-8")
            files.append(out)
        try:
            sim = maboss.load(str(files[0]), str(files[1]), cmaboss=True)
            sim.update_parameters(sample_count=samples, thread_count=1, max_time=max_time)
            c0 = time.process_time()
            sim.run(only_final_state=True)
            return (time.process_time() - c0) / samples
        except Exception:
            return None


def write_synthetic(folder: Path, n_nodes: int, seed: int = 0) -> None:
    """A random MaBoSS network of ``n_nodes`` nodes in ``folder`` (``synthetic_N.bnd`` / ``.cfg``).

    Node ``N{j}``: ``logic`` over 1-3 distinct random nodes (each negated with probability 0.3,
    joined by AND or OR at random), MaBoSS's default rates written out (``rate_up = @logic ? $u_Nj :
    0``, ``rate_down = @logic ? 0 : $d_Nj``, every ``$u``/``$d`` = 1), random initial states (MaBoSS's
    default), ``max_time = 100``. Seeded: the same network on every machine.
    """
    rng = np.random.default_rng(seed)
    bnd, cfg = [], ["max_time = 100;", "time_tick = 1;"]
    for j in range(n_nodes):
        inputs = rng.choice(n_nodes, size=int(rng.integers(1, 4)), replace=False)
        terms = [("!" if rng.random() < 0.3 else "") + f"N{i}" for i in inputs]
        expr = terms[0]
        for t in terms[1:]:
            expr = f"({expr} {'&' if rng.random() < 0.5 else '|'} {t})"
        bnd.append(f"Node N{j} {{\n  logic = {expr};\n  rate_up = @logic ? $u_N{j} : 0;\n")
        bnd.append(f"  rate_down = @logic ? 0 : $d_N{j};\n}}\n")
        cfg += [f"$u_N{j} = 1;", f"$d_N{j} = 1;"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"synthetic_{n_nodes}.bnd").write_text("".join(bnd), encoding="utf-8")
    (folder / f"synthetic_{n_nodes}.cfg").write_text("\n".join(cfg) + "\n", encoding="utf-8")


def corpus_benchmark(root: Path, samples: int, only: str | None = None, repeats: int = 3) -> None:
    import os
    import subprocess

    print(
        f"MaBoSS corpus {root}: {samples:,} trajectories per engine, 1 thread, max_time as in the .cfg "
        f"(capped at 100), best of {repeats} runs each. First load: fresh process, empty kernel cache "
        "(numba's package-level kernels are compiled once per machine and not counted). CPU in seconds; "
        "the machine may be shared.\n"
    )
    head = (
        f"{'model':<44} {'nodes':>5} {'kernels':>12} {'load wall':>9} {'load CPU':>8} {'load MB':>7} "
        f"{'transitions':>11} {'us/traj ours':>12} {'us/traj MaBoSS':>14} {'x MaBoSS':>8}"
    )
    print(head)
    print("-" * len(head))
    for bnd, cfg in corpus_runs(root):
        if only and only not in str(bnd):
            continue
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TME_SIM_CACHE_DIR": cache, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
            out = subprocess.run(
                [sys.executable, "-c", _FIRST_LOAD, str(bnd), str(cfg)], env=env, capture_output=True, text=True
            )
        if out.returncode != 0:
            print(f"{bnd.relative_to(root)!s:<44} first load failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        wall, cpu, mb, n_nodes, kind = out.stdout.split()
        net = load_network(bnd, cfg)
        max_time = min(float(net.settings.get("max_time", 100.0)), 100.0)
        rng = np.random.default_rng(0)
        net.advance(net.initial_state(10, rng), 1.0, rng, parallel=False)  # compile outside the timing
        hist = kind == "states"
        if hist:
            net.final_state_counts(10, max_time, rng, parallel=False)
        else:
            net.sample(10, max_time, rng, parallel=False)
        ours = mab = float("inf")
        events = 0.0
        for _ in range(repeats):
            # like MaBoSS's run, ours draws the initial states (MaBoSS samples each trajectory's
            # initial state inside its run: leaving ours out of the timing favoured us):
            # ``BooleanNetwork.sample``, start states and trajectories in one call
            c0 = time.process_time()
            if hist:  # MaBoSS's output: the final-state distribution, counted in the kernel
                _codes, _counts, ev_total = net.final_state_counts(samples, max_time, rng, parallel=False)
            else:
                _state, ev = net.sample(samples, max_time, rng, parallel=False)
                ev_total = int(ev.sum())
            ours = min(ours, (time.process_time() - c0) / samples)
            events = ev_total / samples
            m = maboss_trajectory_cpu(bnd, cfg, samples, max_time)
            mab = min(mab, m) if m is not None else None
            if mab is None:
                break
        ratio = f"{mab / ours:.0f}x" if mab else "-"
        mab_s = f"{mab * 1e6:.2f}" if mab else "-"
        name = str(bnd.relative_to(root))
        print(
            f"{name:<44} {n_nodes:>5} {kind:>12} {float(wall):>9.1f} {float(cpu):>8.1f} {float(mb):>7.0f} "
            f"{events:>11.1f} {ours * 1e6:>12.2f} {mab_s:>14} {ratio:>8}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=None, help="benchmark every model of this MaBoSS corpus")
    ap.add_argument("--samples", type=int, default=10_000, help="trajectories per engine with --corpus")
    ap.add_argument("--only", type=str, default=None, help="with --corpus: only .bnd paths containing this")
    ap.add_argument("--quick", action="store_true", help="1e3..1e5 cells, fewer repeats")
    ap.add_argument("--repeats", type=int, default=None, help="runs per figure (best is kept)")
    ap.add_argument("--sizes", type=str, default=None, help="comma-separated cell counts")
    ap.add_argument("--synthetic", type=int, default=None, help="like --corpus, on a random network of this many nodes")
    args = ap.parse_args()
    if args.synthetic is not None:
        with tempfile.TemporaryDirectory() as tmp:
            write_synthetic(Path(tmp) / "synthetic", args.synthetic)
            corpus_benchmark(Path(tmp), args.samples, None, args.repeats or 3)
        return
    if args.corpus is not None:
        corpus_benchmark(args.corpus, args.samples, args.only, args.repeats or 3)
        return
    sizes = [1_000, 10_000, 100_000] if args.quick else [1_000, 10_000, 100_000, 1_000_000]
    if args.sizes:
        sizes = [int(float(x)) for x in args.sizes.split(",")]
    repeats = args.repeats or (3 if args.quick else 5)
    samples = 5_000 if args.quick else 20_000

    net = load_network(BND, CFG)
    model = make_model()
    t0 = time.perf_counter()
    warm = net.initial_state(600, np.random.default_rng(0))
    for par in (False, True):
        net.advance(warm.copy(), 1.0, np.random.default_rng(0), parallel=par)
    run_update(model, 300, 0)
    print(f"kernel load/compile: {time.perf_counter() - t0:.2f} s (cached on disk after the first run)")
    print(
        f"engine: {'bit-packed' if net.uses_bit_engine else 'generic'}; numba threads: "
        f"{numba.get_num_threads()} ({numba.threading_layer()}); update() goes multi-threaded "
        f"from {netmod.PARALLEL_MIN_CELLS:,} cells"
    )

    mab: dict[float, list[tuple[float, float]]] = {6.0: [], 100.0: []}

    def time_maboss(reps: int) -> None:
        for _ in range(reps):
            for mt in mab:
                r = maboss_cost(mt, samples)
                if r is not None:
                    mab[mt].append(r)

    time_maboss(max(1, repeats // 2))

    results: dict[tuple[int, str, str], list[tuple[float, float, float]]] = {}
    for n in sizes:
        reps = repeats if n < 1_000_000 else max(2, repeats // 2)
        for r in range(reps):
            # single-threaded runs first: after a parallel region the OpenMP workers spin for a while,
            # and that CPU time would be charged to whatever is timed next
            runs = {
                "kernel 1 thr": run_kernel(net, n, False, seed=r),
                "update()": run_update(model, n, seed=r),
            }
            time.sleep(0.3)
            runs[f"kernel {numba.get_num_threads()} thr"] = run_kernel(net, n, True, seed=r)
            time.sleep(0.3)
            for path, timers in runs.items():
                for phase, tm in timers.items():
                    results.setdefault((n, path, phase), []).append(tm.per_update())
    time_maboss(repeats - max(1, repeats // 2))

    if mab[100.0]:
        m100 = (min(x[0] for x in mab[100.0]), min(x[1] for x in mab[100.0]))
        m6 = (min(x[0] for x in mab[6.0]), min(x[1] for x in mab[6.0]))
        print(
            f"MaBoSS per trajectory (cMaBoSS, 1 thread, {samples:,} samples, best of {len(mab[100.0])}), "
            f"wall / CPU: max_time 100 -> {m100[0] * 1e6:.2f} / {m100[1] * 1e6:.2f} us; "
            f"max_time 6 -> {m6[0] * 1e6:.2f} / {m6[1] * 1e6:.2f} us"
        )
    else:
        m100 = m6 = None
        print("MaBoSS: not installed (pip install maboss) - ratios omitted")
    # like for like: one whole trajectory (100 network units in one call), single-threaded
    n_traj = min(100_000, max(sizes))
    best = [float("inf"), float("inf"), 0.0]
    for r in range(repeats):
        rng = np.random.default_rng(r)
        s = net.initial_state(n_traj, rng)
        s[:, net.index("TNF")] = 1
        t0, c0 = time.perf_counter(), time.process_time()
        ev = net.advance(s, 100.0, rng, parallel=False)
        best = [min(best[0], time.perf_counter() - t0), min(best[1], time.process_time() - c0), float(ev.mean())]
    ratio = f"; {m100[1] / (best[1] / n_traj):.0f}x cheaper (CPU) than MaBoSS" if m100 else ""
    print(
        f"Our engine per whole trajectory (max_time 100 in one call, {n_traj:,} cells, 1 thread, "
        f"{best[2]:.1f} transitions), wall / CPU: {best[0] / n_traj * 1e6:.2f} / {best[1] / n_traj * 1e6:.2f} us"
        f"{ratio}"
    )
    print(
        f"\nPer cell-update (6 network units), best of {repeats} runs ({max(2, repeats // 2)} at 1e6 cells). "
        f"switching = steps {SWITCHING[0] + 1}-{SWITCHING[1]} after TNF on, settled = steps "
        f"{SETTLED[0] + 1}-{SETTLED[1]}.\n"
        "x MaBoSS = MaBoSS CPU per trajectory / our CPU per cell-update (wall/wall in brackets). "
        "events/upd: transitions per cell-update.\n"
    )
    head = (
        f"{'cells':>9} {'path':>13} {'phase':>9} {'events/upd':>10} {'ns/upd wall':>11} {'ns/upd CPU':>10} "
        f"{'x MaBoSS(100)':>17} {'x MaBoSS(6)':>15}"
    )
    print(head)
    print("-" * len(head))
    for (n, path, phase), vals in results.items():
        wall = min(v[0] for v in vals)
        cpu = min(v[1] for v in vals)
        ev = vals[0][2]
        x100 = f"{m100[1] / cpu:.0f}x ({m100[0] / wall:.0f}x)" if m100 else "-"
        x6 = f"{m6[1] / cpu:.0f}x ({m6[0] / wall:.0f}x)" if m6 else "-"
        print(f"{n:>9,} {path:>13} {phase:>9} {ev:>10.2f} {wall * 1e9:>11.0f} {cpu * 1e9:>10.0f} {x100:>17} {x6:>15}")


if __name__ == "__main__":
    main()
