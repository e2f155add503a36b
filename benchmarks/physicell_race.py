"""Same-model race: one PhysiCell project in PhysiCell and, imported, in tme-sim, in one invocation.

Run:  python benchmarks/physicell_race.py [--project rules_sample] [--days 5] [--repeats 3]
                                         [--tme-repeats N] [--threads 1 2] [--build /tmp/pc_race]

Builds PhysiCell 1.14.1 from ../shared (outside the project), imports the project with
``tme import physicell``, then for each thread count runs the two simulators alternately
(PhysiCell, tme-sim, PhysiCell, …) ``--repeats`` times each, the same simulated time, the same
snapshot interval (PhysiCell: full data, SVG off; tme-sim: HDF5 snapshots and its default
checkpoints). Prints per run and as medians: whole-process wall and CPU seconds (start-up, output,
everything) and the simulation loop alone (PhysiCell's "Total simulation runtime"; tme-sim's
``wall_seconds`` in the output file), and the PhysiCell / tme-sim ratios. ``--days`` shortens the
runs on a busy machine (the ratios are per same simulated time); ``--json`` saves the numbers;
``--adi`` adds a tme-sim arm with its own diffusion numerics (ADI at 0.1 min) beside the imported
scenario's PhysiCell numerics (LOD at 0.01 min).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from physicell_runs import ADI, build_physicell, import_scenario, run_physicell, run_tme


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", default="rules_sample", choices=["rules_sample", "immune_function", "template"])
    ap.add_argument("--days", type=float, default=5.0, help="simulated days per run (default 5)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--tme-repeats",
        type=int,
        default=None,
        help="tme-sim runs per thread count (default: --repeats); PhysiCell runs --repeats times, alternating while"
        " both have runs left",
    )
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--build", type=Path, default=Path(tempfile.gettempdir()) / "pc_race", help="PhysiCell build folder"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument(
        "--adi",
        action="store_true",
        help="also race tme-sim with its ADI diffusion at 0.1 min (imported: LOD 0.01 min)",
    )
    args = ap.parse_args()

    minutes = args.days * 1440.0
    tme_repeats = args.repeats if args.tme_repeats is None else args.tme_repeats
    where = build_physicell(args.project, args.build)
    work = Path(tempfile.mkdtemp(prefix="race_"))
    scenario = import_scenario(args.project, work / f"{args.project}.toml")
    print(f"# {args.project}: {args.days:g} simulated days, {args.repeats} PhysiCell / {tme_repeats} tme-sim repeats")
    print(f"# PhysiCell in {where}; tme-sim scenario {scenario}")
    print("\n| run | simulator | threads | wall s | CPU s | loop s |")
    print("|---:|---|---:|---:|---:|---:|")
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    sims = ["PhysiCell", "tme-sim"] + (["tme-sim ADI"] if args.adi else [])
    for th in args.threads:
        for rep in range(max(args.repeats, tme_repeats)):
            for sim in sims:
                if rep >= (args.repeats if sim == "PhysiCell" else tme_repeats):
                    continue
                if sim == "PhysiCell":
                    t = run_physicell(where, minutes, th, args.seed, work / f"pc_{th}_{rep}")
                else:
                    extra = ADI if sim == "tme-sim ADI" else ()
                    arm = "adi" if sim == "tme-sim ADI" else "imported"  # each arm its own file (and checkpoint)
                    t = run_tme(scenario, minutes, th, args.seed, work / f"tme_{th}_{rep}_{arm}.h5", extra)
                results.setdefault(str(th), {}).setdefault(sim, []).append(vars(t))
                print(f"| {rep + 1} | {sim} | {th} | {t.wall:.2f} | {t.cpu:.2f} | {t.loop:.2f} |", flush=True)

    print("\n## Medians and ratios (PhysiCell / tme-sim; > 1: tme-sim faster)\n")
    print("| threads | tme-sim arm | PhysiCell wall s | tme-sim wall s | wall ratio | PhysiCell CPU s | tme-sim CPU s "
          "| CPU ratio | PhysiCell loop s | tme-sim loop s | loop ratio |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for th, by_sim in results.items():
        med = {
            s: {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "loop")} for s, runs in by_sim.items()
        }
        pc = med["PhysiCell"]
        for arm in sims[1:]:
            tm = med[arm]
            cells = []
            for k in ("wall", "cpu", "loop"):
                cells += [f"{pc[k]:.2f}", f"{tm[k]:.2f}", f"{pc[k] / tm[k]:.1f}×" if tm[k] > 0 else "n/a"]
            label = "ADI 0.1 min" if arm.endswith("ADI") else "as imported (LOD 0.01 min)"
            print(f"| {th} | {label} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"project": args.project, "days": args.days, "results": results}, indent=1))


if __name__ == "__main__":
    main()
