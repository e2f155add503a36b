"""Accuracy cost of the flagship's diffusion time step (issue 4).

``scenarios/tumor_immune.toml`` runs with ``diffusion_dt = 0.02 min`` instead of BioFVM's 0.01 min.
This script measures what that costs (and what larger steps would cost), side by side in one run:

A. **Fields, cells frozen** (deterministic): the flagship is run ``--warmup`` hours at 0.1 min;
   its grid (fields + cell coupling) is copied and advanced ``--field-horizon`` minutes with the
   coupling frozen, at 0.01 min and at each tested step. Per substrate: max |Δ| and relative L2
   error versus the 0.01 min result, plus the error of the tumor-mean O2.
B. **Whole model** (stochastic): the flagship is run ``--horizon`` hours from t = 0 at each step,
   for each seed; tumor / T-cell / macrophage counts, kills and mean O2 at the tumor cells are
   compared with the 0.01 min runs of the same seed, beside the seed-to-seed spread at 0.01 min.
   CPU seconds per run are printed too (the machine is shared; wall times are noisy, CPU less so).

Run: ``NUMBA_NUM_THREADS=1 python benchmarks/flagship_dt.py --dts 0.02 0.05 0.1`` (``--quick`` for
1 h warm-up / 2 h / 1 seed). Finding (see the scenario header): the cytokines barely change, O2 does,
because the grid applies cell uptake after the diffusion sweeps (first-order splitting): the
sampled O2 in tumor voxels is biased low by roughly ``dt · Σ(Vc/Vv)·U`` relative to the limit.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tme_sim.cells import ALIVE
from tme_sim.config import load_scenario
from tme_sim.grid import Microenvironment
from tme_sim.model import TMEModel

FLAGSHIP = Path(__file__).resolve().parents[1] / "scenarios" / "tumor_immune.toml"
REFERENCE_DT = 0.01


def cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime


def model_at(dt: float, seed: int, hours: float = 0.0) -> TMEModel:
    sc = load_scenario(FLAGSHIP, {"time.diffusion_dt": f'"{dt} min"'})
    m = TMEModel(sc, seed=seed)
    if hours:
        m.run_for(hours * 60.0)
    return m


def clone_grid(m: TMEModel) -> Microenvironment:
    g = Microenvironment(tuple(m.scenario.domain.size), m.scenario.domain.dx, m.substrates, dtype=m.micro.dtype)
    g.load_state_dict(m.micro.state_dict())
    return g


def part_a(dts: list[float], warmup: float, horizon: float, seed: int) -> None:
    print(f"\nA. fields with frozen cells: warm-up {warmup:g} h at 0.1 min, then {horizon:g} min per step")
    m = model_at(0.1, seed, warmup)
    tumor = m.store.slots_of_type(m.type_names.index("tumor"))
    tumor = tumor[m.store.death[tumor] == ALIVE]
    pos = m.store.position[tumor]
    results = {}
    for dt in [REFERENCE_DT, *dts]:
        g = clone_grid(m)
        c0 = cpu()
        g.advance(dt, round(horizon / dt))
        results[dt] = (g.species_first(), g.sample(pos)[:, g.index("oxygen")].mean(), cpu() - c0)
    ref, ref_o2, ref_cpu = results[REFERENCE_DT]
    names = m.substrate_names
    print(f"{'substrate':10s} {'unit':6s} {'range (0.01)':>18s} " + " ".join(f"{'dt=' + str(dt):>22s}" for dt in dts))
    print(f"{'':10s} {'':6s} {'':>18s} " + " ".join(f"{'max|Δ|   relL2':>22s}" for _ in dts))
    for s, name in enumerate(names):
        r = ref[s]
        row = f"{name:10s} {m.substrate_units[s]:6s} {f'{r.min():.3g}..{r.max():.3g}':>18s} "
        for dt in dts:
            d = results[dt][0][s] - r
            rel = np.linalg.norm(d) / max(np.linalg.norm(r), 1e-30)
            row += f"{f'{np.abs(d).max():.2e}  {rel:.2e}':>22s} "
        print(row)
    print(f"{'tumor O2':10s} {'mmHg':6s} {ref_o2:18.4f} " + " ".join(f"{results[dt][1] - ref_o2:+22.4f}" for dt in dts))
    print(f"{'cpu s':10s} {'':6s} {ref_cpu:18.2f} " + " ".join(f"{results[dt][2]:22.2f}" for dt in dts))


def summarize(m: TMEModel) -> dict[str, float]:
    st = m.store
    n = st.n
    out = {}
    for name in ("tumor", "cd8_t_cell", "macrophage"):
        out[name] = float(np.sum((st.type[:n] == m.type_names.index(name)) & (st.death[:n] == ALIVE)))
    out["kills"] = float(m.events.totals["kill"])
    tum = np.flatnonzero((st.type[:n] == m.type_names.index("tumor")) & (st.death[:n] == ALIVE))
    conc = m.micro.sample(st.position[tum])
    out["O2@tumor"] = float(conc[:, m.substrate_names.index("oxygen")].mean())
    out["lactate@tumor"] = float(conc[:, m.substrate_names.index("lactate")].mean())
    return out


def part_b(dts: list[float], horizon: float, seeds: list[int]) -> None:
    print(f"\nB. whole model, {horizon:g} h from t = 0, seeds {seeds}")
    rows = {}
    for dt in [REFERENCE_DT, *dts]:
        for seed in seeds:
            c0, w0 = cpu(), time.perf_counter()
            m = model_at(dt, seed, horizon)
            rows[(dt, seed)] = {**summarize(m), "cpu s": cpu() - c0, "wall s": time.perf_counter() - w0}
    keys = list(next(iter(rows.values())))
    print(f"{'dt (min)':>8s} {'seed':>4s} " + " ".join(f"{k:>13s}" for k in keys))
    for (dt, seed), r in rows.items():
        print(f"{dt:8g} {seed:4d} " + " ".join(f"{r[k]:13.3f}" for k in keys))
    print("\nmean over seeds; Δ vs 0.01 min; seed spread (max − min) at 0.01 min for scale")
    ref = {k: np.mean([rows[(REFERENCE_DT, s)][k] for s in seeds]) for k in keys}
    spread = {k: np.ptp([rows[(REFERENCE_DT, s)][k] for s in seeds]) for k in keys}
    print(f"{'':13s} " + " ".join(f"{k:>13s}" for k in keys))
    print(f"{'0.01 mean':13s} " + " ".join(f"{ref[k]:13.3f}" for k in keys))
    print(f"{'seed spread':13s} " + " ".join(f"{spread[k]:13.3f}" for k in keys))
    for dt in dts:
        mean = {k: np.mean([rows[(dt, s)][k] for s in seeds]) for k in keys}
        print(f"{f'Δ dt={dt:g}':13s} " + " ".join(f"{mean[k] - ref[k]:+13.3f}" for k in keys))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dts", type=float, nargs="+", default=[0.02, 0.05, 0.1])
    ap.add_argument("--warmup", type=float, default=6.0, help="hours before the frozen-cell comparison")
    ap.add_argument("--field-horizon", type=float, default=60.0, help="minutes of the frozen-cell comparison")
    ap.add_argument("--horizon", type=float, default=6.0, help="hours of the whole-model comparison")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.warmup, a.horizon, a.seeds = 1.0, 2.0, [1]
    part_a(a.dts, a.warmup, a.field_horizon, a.seeds[0])
    if not a.skip_b:
        part_b(a.dts, a.horizon, a.seeds)


if __name__ == "__main__":
    main()
