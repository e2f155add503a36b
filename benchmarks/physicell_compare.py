"""Same results? A PhysiCell project in PhysiCell and, imported, in tme-sim, over several seeds.

Run:  python benchmarks/physicell_compare.py [--projects rules_sample immune_function] [--days 5]
                                            [--seeds 5] [--threads 2] [--build /tmp/pc_race]

Builds PhysiCell 1.14.1 from ../shared (outside the project), imports each project with
``tme import physicell`` and runs both simulators for ``--days`` simulated days with seeds
1…``--seeds``. Prints, per project, per cell type and per simulated day, mean ± sd (over seeds) of
the live cells in each simulator and flags rows whose means differ by more than the two seed
spreads together (|Δ| > sd_PhysiCell + sd_tme-sim, and more than 2 cells); then the final spatial
extent of the tumor (largest distance of a live tumor cell from the tumor's centroid, µm).
``--days`` below 5 shortens the comparison on a busy machine.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from physicell_runs import (
    PHYSICELL_SRC,
    build_physicell,
    import_scenario,
    physicell_counts,
    run_physicell,
    run_tme,
    tme_counts,
)

TUMOR = {"rules_sample": "malignant epithelial cell", "immune_function": "tumor cell", "template": "default"}


def _types(project: str) -> list[str]:
    from xml.etree import ElementTree as ET

    root = ET.parse(PHYSICELL_SRC / "sample_projects" / project / "config" / "PhysiCell_settings.xml").getroot()
    defs = sorted(root.iter("cell_definition"), key=lambda d: int(d.get("ID")))
    return [d.get("name") for d in defs]


def _at_days(times: np.ndarray, counts: np.ndarray, days: list[float]) -> np.ndarray:
    return np.array([counts[int(np.argmin(np.abs(times - d * 1440.0)))] for d in days])


def compare(project: str, days: float, seeds: int, threads: int, build: Path) -> None:
    types = _types(project)
    ids = ["_".join(t.split()) for t in types]
    tumor = TUMOR[project]
    where = build_physicell(project, build)
    work = Path(tempfile.mkdtemp(prefix=f"compare_{project}_"))
    scenario = import_scenario(project, work / f"{project}.toml")
    marks = [float(d) for d in range(0, int(days) + 1)] if days >= 1 else [0.0, days]
    pc, tm, pc_ext, tm_ext = [], [], [], []
    for seed in range(1, seeds + 1):
        out = work / f"pc_{seed}"
        t_pc = run_physicell(where, days * 1440.0, threads, seed, out)
        times, counts, ext = physicell_counts(out, types, tumor)
        pc.append(_at_days(times, counts, marks))
        pc_ext.append(ext[-1])
        h5 = work / f"tme_{seed}.h5"
        t_tm = run_tme(scenario, days * 1440.0, threads, seed, h5)
        times, counts, ext = tme_counts(h5, ids, "_".join(tumor.split()))
        tm.append(_at_days(times, counts, marks))
        tm_ext.append(ext[-1])
        print(f"# {project} seed {seed}: PhysiCell {t_pc.wall:.1f} s wall / {t_pc.cpu:.1f} s CPU, "
              f"tme-sim {t_tm.wall:.1f} s wall / {t_tm.cpu:.1f} s CPU", flush=True)  # fmt: skip
    pc_a, tm_a = np.array(pc, dtype=float), np.array(tm, dtype=float)  # (seeds, days, types)
    print(f"\n## {project}: live cells, mean ± sd over {seeds} seeds ({threads} threads)\n")
    print("| type | day | PhysiCell | tme-sim | within spread |")
    print("|---|---:|---:|---:|---|")
    for j, name in enumerate(types):
        for k, d in enumerate(marks):
            m1, s1 = pc_a[:, k, j].mean(), pc_a[:, k, j].std(ddof=1) if seeds > 1 else 0.0
            m2, s2 = tm_a[:, k, j].mean(), tm_a[:, k, j].std(ddof=1) if seeds > 1 else 0.0
            ok = abs(m1 - m2) <= max(s1 + s2, 2.0)
            print(f"| {name} | {d:g} | {m1:.1f} ± {s1:.1f} | {m2:.1f} ± {s2:.1f} | {'yes' if ok else '**no**'} |")
    e1, e2 = np.array(pc_ext), np.array(tm_ext)
    print(f"\nfinal tumor extent (µm): PhysiCell {e1.mean():.1f} ± {e1.std(ddof=1) if seeds > 1 else 0:.1f}, "
          f"tme-sim {e2.mean():.1f} ± {e2.std(ddof=1) if seeds > 1 else 0:.1f}\n")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--projects", nargs="+", default=["rules_sample", "immune_function"], choices=list(TUMOR))
    ap.add_argument("--days", type=float, default=5.0)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", type=Path, default=Path(tempfile.gettempdir()) / "pc_race")
    args = ap.parse_args()
    for project in args.projects:
        compare(project, args.days, args.seeds, args.threads, args.build)


if __name__ == "__main__":
    main()
