"""Where tme-sim's CPU goes on an imported PhysiCell project: CPU seconds per part of the loop.

Run:  python benchmarks/physicell_profile.py [--project rules_sample] [--days 1] [--seed 0]

Imports the project with ``tme import physicell`` (from ../shared; PhysiCell is not built), builds
the model in this process and runs ``--days`` simulated days on the threads numba is given
(``NUMBA_NUM_THREADS``; 1 for the race's 1-thread arm), timing each part with
``time.process_time`` (CPU seconds of this process, robust to a loaded machine): imports, model
set-up, the loop, and inside it the diffusion advance, the mechanics step (with its motility,
neighbour lists, velocity kernel, position update), the cell–grid coupling refresh, the phenotype
step (rules, interactions, fates) and locality re-sorts. No output file is written (the race's
whole-process figures include output). Parts nest (the mechanics lines are inside "mechanics").
"""

from __future__ import annotations

import time

T0 = time.process_time()

import argparse  # noqa: E402
import collections  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from physicell_runs import import_scenario  # noqa: E402

import tme_sim.model.model as model_module  # noqa: E402
from tme_sim.runner import build_scenario_model, prepare  # noqa: E402

IMPORTS = time.process_time() - T0


def _timed(acc: collections.Counter, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[label] += time.process_time() - t

    return wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default="rules_sample", choices=["rules_sample", "immune_function", "template"])
    ap.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="scenario override (as tme run)")
    args = ap.parse_args()

    t = time.process_time()
    scenario = import_scenario(args.project, Path(tempfile.mkdtemp(prefix="profile_")) / f"{args.project}.toml")
    from tme_sim.config import parse_set_options

    sc, _ = prepare(scenario, overrides=parse_set_options(args.set))
    model = build_scenario_model(sc, seed=args.seed)
    setup = time.process_time() - t

    acc: collections.Counter = collections.Counter()
    m = model
    m.micro.advance = _timed(acc, "diffusion (micro.advance)", m.micro.advance)
    m.mechanics_step = _timed(acc, "mechanics", m.mechanics_step)
    m.motility.update = _timed(acc, "  motility", m.motility.update)
    m.cell_list.neighbors = _timed(acc, "  neighbour lists", m.cell_list.neighbors)
    for name, label in (("direct_velocities", "  velocities"), ("ab2_update", "  position update")):
        setattr(model_module, name, _timed(acc, label, getattr(model_module, name)))
    m.update_coupling = _timed(acc, "cell-grid coupling", m.update_coupling)
    m.phenotype_step = _timed(acc, "phenotype (rules, interactions, fates)", m.phenotype_step)
    m.reorder_for_locality = _timed(acc, "locality re-sort", m.reorder_for_locality)

    t = time.process_time()
    m.run_for(args.days * 1440.0)
    loop = time.process_time() - t

    print(f"# {args.project}, {args.days:g} simulated days, seed {args.seed}: {m.store.n} cells at the end")
    print("\n| part | CPU s | % of loop |\n|---|---:|---:|")
    print(f"| imports | {IMPORTS:.2f} | |\n| project import + model set-up | {setup:.2f} | |")
    print(f"| loop | {loop:.2f} | 100 |")
    order = ["diffusion (micro.advance)", "mechanics", "  motility", "  neighbour lists", "  velocities"]
    order += ["  position update", "cell-grid coupling", "phenotype (rules, interactions, fates)", "locality re-sort"]
    for label in order:
        print(f"| {label} | {acc[label]:.2f} | {100 * acc[label] / loop:.1f} |")
    rest = loop - sum(acc[k] for k in order if not k.startswith(" "))
    print(f"| the rest (observers, step bookkeeping) | {rest:.2f} | {100 * rest / loop:.1f} |")


if __name__ == "__main__":
    main()
