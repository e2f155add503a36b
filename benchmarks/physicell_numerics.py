"""Diffusion numerics on an imported PhysiCell project: what the cells see with a longer diffusion
step, against PhysiCell's own numerics (BioFVM LOD at 0.01 min, ten substeps per mechanics step).

Run:  python benchmarks/physicell_numerics.py [--project rules_sample] [--days 1 3] [--minutes 60]

Runs the imported project with PhysiCell's numerics to each of ``--days``; there the cells are
frozen (positions, volumes, rates) and, from the same fields, the grid alone advances ``--minutes``
with each numerics of :data:`NUMERICS`. Prints per substrate the concentration each live cell sees
(its voxel): the largest and the mean difference from PhysiCell's numerics (BioFVM LOD at
0.01 min) and from the converged solution (ADI at 0.01 min: exact steady state, small step),
relative to the largest value under PhysiCell's numerics, and the CPU seconds of each grid
advance. A numerics-only comparison: the cells and the rules are the same.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from physicell_runs import import_scenario

from tme_sim.config import parse_set_options
from tme_sim.runner import build_scenario_model, prepare

#: PhysiCell's numerics (the reference) and the candidates, as ``--set`` items on top of the import
NUMERICS = {
    "LOD 0.01 min (PhysiCell)": ["time.diffusion_scheme=lod", "time.diffusion_dt=0.01 min"],
    "ADI 0.01 min (converged)": ["time.diffusion_scheme=adi", "time.diffusion_dt=0.01 min"],
    "ADI 0.1 min (--diffusion adi)": ["time.diffusion_scheme=adi", "time.diffusion_dt=0.1 min"],
    "LOD 0.1 min": ["time.diffusion_scheme=lod", "time.diffusion_dt=0.1 min"],
    "ADI 0.6 min": ["time.diffusion_scheme=adi", "time.diffusion_dt=0.6 min"],
}
REFERENCES = ("LOD 0.01 min (PhysiCell)", "ADI 0.01 min (converged)")


def _grid_run(model, minutes: float) -> float:
    """Advance ``model``'s grid alone (cells frozen) ``minutes``; returns CPU s."""
    steps = round(minutes / model.dt_mech)
    t = time.process_time()
    for k in range(steps):
        if k % model.diff_every == 0:
            model.micro.advance(model.dt_diff, model.diff_substeps)
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default="rules_sample", choices=["rules_sample", "immune_function", "template"])
    ap.add_argument("--days", type=float, nargs="+", default=[1.0, 3.0], help="when to freeze the cells")
    ap.add_argument("--minutes", type=float, default=60.0, help="grid-only advance after freezing (min)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    scenario = import_scenario(args.project, Path(tempfile.mkdtemp(prefix="numerics_")) / f"{args.project}.toml")
    models = {k: build_scenario_model(prepare(scenario, overrides=parse_set_options(v))[0], seed=args.seed)
              for k, v in NUMERICS.items()}  # fmt: skip
    driver = models[REFERENCES[0]]  # the cells move under PhysiCell's numerics
    print(f"# {args.project}: cells from a run with {REFERENCES[0]}; then frozen, grid alone for {args.minutes:g} min")
    print("\n| day | substrate | range at cells (PhysiCell numerics) | numerics | grid CPU s "
          "| max / mean abs diff vs PhysiCell | max / mean abs diff vs converged |")  # fmt: skip
    print("|---:|---|---|---|---:|---:|---:|")
    done = 0.0
    for day in sorted(args.days):
        driver.run_for((day - done) * 1440.0)
        done = day
        state = driver.state_dict()
        live = driver.store.death[: driver.store.n] == 0
        pos = driver.store.position[: driver.store.n][live]
        seen, cpu = {}, {}
        for name, m in models.items():
            m.load_state_dict(state)
            m.update_coupling()
            cpu[name] = _grid_run(m, args.minutes)
            seen[name] = m.micro.sample(pos)
        for s, sub in enumerate(driver.substrate_names):
            ref = seen[REFERENCES[0]][:, s]
            scale = float(np.max(np.abs(ref)))
            if scale == 0.0:
                continue
            for name in NUMERICS:
                diffs = [np.abs(seen[name][:, s] - seen[r][:, s]) / scale for r in REFERENCES]
                cells = [f"{float(np.max(d)):.1e} / {float(np.mean(d)):.1e}" for d in diffs]
                print(f"| {day:g} | {sub} | {np.min(ref):.3g}–{np.max(ref):.3g} | {name} | {cpu[name]:.2f} | "
                      + " | ".join(cells) + " |")  # fmt: skip
        driver.load_state_dict(state)  # continue from the frozen state (the grid-only minutes discarded)


if __name__ == "__main__":
    main()
