"""Benchmark: batched surrogate inference versus the Boolean engine and MaBoSS, side by side.

Run from the repository root::

    python benchmarks/surrogate_inference.py            # 1e3 ... 1e6 cells
    python benchmarks/surrogate_inference.py --quick    # 1e3, 1e4 cells, fewer repeats

What is timed (all in this one process, so ratios are comparable on a busy machine):

* ``tnf-fate MLP``: the distilled TNF cell-fate surrogate (16 inputs → 4 fate probabilities),
  one batched ``Surrogate.predict`` call for n cells with distinct random inputs;
* ``macrophage RNN``: the ligand-screen prior-knowledge network (60 ligands → 74 TFs, 1262
  nodes, iterated to steady state), same, with distinct random inputs (worst case);
* ``macrophage adapter``: :class:`SurrogateIntracellular.update` for n cells reading two smooth
  concentration fields (IFNG, IL4) — what a simulation step costs — with the precomputed
  33×33 interpolation grid (``interpolation_grid = 33``; its one-off load cost is printed) and
  with exact evaluation of the distinct quantised input rows (``input_resolution = 1/1024``);
* ``Boolean engine``: ``BooleanNetwork.advance`` of the TNF network, n cells, for the .cfg's
  ``max_time`` (the horizon the fate surrogate predicts) — per cell;
* ``MaBoSS``: ``maboss.load(bnd, cfg, cmaboss=True)`` with ``sample_count`` trajectories to the
  same horizon, one thread — time per trajectory.

A "cell-update" is one cell's decision for one intracellular step. Ratio = MaBoSS seconds per
trajectory / this row's seconds per cell. CUDA rows appear when a GPU is present.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# this file is named like the package it benchmarks: take its folder off the path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore", message=".*Sparse.*")

BND = ROOT / "scenarios" / "networks" / "tnf_cellfate.bnd"
CFG = ROOT / "scenarios" / "networks" / "tnf_cellfate.cfg"
MODELS = ROOT / "scenarios" / "models"


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up (compilation, allocator)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1e3 and 1e4 cells only, one repeat")
    ap.add_argument("--threads", type=int, default=None, help="torch/numba threads (default: all, max 2)")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="skip larger sizes of a row past this")
    args = ap.parse_args()

    import torch

    from surrogates.artifact import load_artifact
    from surrogates.train import set_threads

    threads = set_threads(args.threads)
    sizes = [10**3, 10**4] if args.quick else [10**3, 10**4, 10**5, 10**6]
    repeats = 1 if args.quick else 3
    rng = np.random.default_rng(0)
    rows: list[tuple[str, str, int, float]] = []  # (name, device, n, seconds)

    # ---- MaBoSS and the Boolean engine (per cell / per trajectory) -------------------------
    horizon = 100.0
    maboss_per = float("nan")
    try:
        import maboss

        n_traj = 500 if args.quick else 2000
        sim = maboss.load(str(BND), str(CFG), cmaboss=True)
        sim.update_parameters(sample_count=n_traj, thread_count=1, max_time=horizon)
        sim.mutate("TNF", "ON")
        sec = best_of(lambda: sim.run(only_final_state=True), repeats)
        maboss_per = sec / n_traj
        rows.append(("MaBoSS (TNF on, per trajectory)", "cpu 1 thread", n_traj, sec))
    except Exception as exc:  # maboss is a test-only dependency
        print(f"MaBoSS not timed: {type(exc).__name__}: {exc}")
    try:
        from tme_sim.intracellular.boolean import load_network

        net = load_network(BND, CFG)
        horizon = float(net.settings.get("max_time", horizon))
        ki = net.node_mask(["TNF"])
        for n in sizes[:3]:
            st0 = net.initial_state(n, rng)

            def run_bool(st0=st0):
                s = st0.copy()
                net.advance(s, horizon, rng, knockin=ki)

            rows.append(("Boolean engine (TNF on)", f"cpu {threads} thr", n, best_of(run_bool, repeats)))
    except Exception as exc:
        print(f"Boolean engine not timed: {type(exc).__name__}: {exc}")

    # ---- surrogates -------------------------------------------------------------------------
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    arts = [
        ("tnf-fate MLP", MODELS / "tnf_fate_surrogate.pt"),
        ("macrophage RNN", MODELS / "macrophage_ligand_screen.pt"),
    ]
    for name, path in arts:
        if not path.is_file():
            print(f"{name}: artifact {path} missing (see scenarios/models/README.md)")
            continue
        for dev in devices:
            sur = load_artifact(path, device=dev)
            k = len(sur.input_names)
            for n in sizes:
                u = rng.random((n, k), dtype=np.float32)
                if name.startswith("tnf"):
                    u[:, 2:] = u[:, 2:] > 0.9  # knock-out/-in flags are 0/1
                else:
                    u = (u > 0.8).astype(np.float32) * rng.random((n, k), dtype=np.float32)

                def run_pred(u=u, sur=sur, dev=dev):
                    sur.predict(u)
                    if dev == "cuda":
                        torch.cuda.synchronize()

                t0 = time.perf_counter()
                sec = best_of(run_pred, repeats)
                rows.append((name, f"{dev} {threads if dev == 'cpu' else ''} thr".replace("  ", " "), n, sec))
                if time.perf_counter() - t0 > args.max_seconds:
                    print(f"{name} on {dev}: stopping at n={n} (took > {args.max_seconds:.0f} s)")
                    break

    # ---- the macrophage adapter on smooth fields ---------------------------------------------
    macro = MODELS / "macrophage_ligand_screen.pt"
    if macro.is_file():
        from tme_sim.intracellular.base import Signals
        from tme_sim.intracellular.surrogate import SurrogateIntracellular, SurrogateIntracellularConfig

        for variant, extra in (("grid 33x33", {"interpolation_grid": 33}), ("dedup 1/1024", {})):
            raw = {
                "kind": "surrogate",
                "artifact": str(macro),
                "dt": "30 min",
                "inputs": [
                    {"signal": "ifng", "input": "IFNG", "K": 5.0},
                    {"signal": "il4", "input": "IL4", "K": 5.0},
                ],
                "outputs": [
                    {"behavior": "polarization", "up": ["STAT6", "STAT3", "PPARG"], "down": ["STAT1", "NFKB1", "IRF1"]}
                ],
                **extra,
            }
            cfg = SurrogateIntracellularConfig.model_validate(raw)
            t_load = time.perf_counter()
            im = SurrogateIntracellular.from_config(cfg, ROOT)
            t_load = time.perf_counter() - t_load
            print(f"macrophage adapter ({variant}): load incl. precomputation {t_load:.1f} s")
            t0 = time.perf_counter()
            for n in sizes:
                pos = rng.random((n, 2))
                vals = np.c_[10 * np.exp(-8 * ((pos - 0.3) ** 2).sum(1)), 10 * np.exp(-8 * ((pos - 0.7) ** 2).sum(1))]
                sig = Signals(["ifng", "il4"], vals)
                state = im.initial_state(n, rng)
                before = im.evaluations
                sec = best_of(lambda sig=sig, state=state, im=im: im.update(sig, state, 30.0, rng), repeats)
                rows_per = (im.evaluations - before) // (repeats + 1)
                label = f"macrophage adapter, {variant}" + ("" if extra else f" ({rows_per} rows)")
                rows.append((label, f"{im.surrogate.device.type}", n, sec))
                if time.perf_counter() - t0 > args.max_seconds:
                    print(f"adapter ({variant}): stopping at n={n} (took > {args.max_seconds:.0f} s)")
                    break

    # ---- table -------------------------------------------------------------------------------
    print()
    print(
        f"torch threads {threads}; horizon {horizon:g} network time units; best of {repeats} "
        f"(after one warm-up); machine shared with other jobs"
    )
    head = f"{'what':<46} {'device':<14} {'cells':>9} {'seconds':>9} {'cell-upd/s':>12} {'us/cell':>9} {'x MaBoSS':>9}"
    print(head)
    print("-" * len(head))
    for name, dev, n, sec in rows:
        per = sec / n
        ratio = maboss_per / per if np.isfinite(maboss_per) else float("nan")
        print(f"{name:<46} {dev:<14} {n:>9d} {sec:>9.4f} {n / sec:>12.3g} {per * 1e6:>9.3f} {ratio:>9.1f}")


if __name__ == "__main__":
    main()
