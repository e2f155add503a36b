"""Running the same PhysiCell project in PhysiCell and in tme-sim (shared by physicell_race.py and
physicell_compare.py).

* :func:`build_physicell` copies PhysiCell's source from ``../shared`` to a build folder outside
  the project and builds one sample project there (``make <project>-sample && make``);
* :func:`run_physicell` runs it with a given duration, thread count and seed (SVG off, full data
  at the project's interval) and returns whole-process wall and CPU seconds and PhysiCell's own
  "Total simulation runtime" (its loop);
* :func:`import_scenario` translates the project with ``tme import physicell``;
* :func:`run_tme` runs ``tme run`` in a fresh process and returns the same numbers (the loop is
  the ``wall_seconds`` the output file records);
* :func:`physicell_counts` / :func:`tme_counts` read live cells per type per snapshot and the
  tumor's extent from each simulator's output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHYSICELL_SRC = ROOT.parent / "shared" / "anchors" / "physicell-1.14.1"
MAKE_TARGET = {"rules_sample": "rules-sample", "immune_function": "immune-function-sample", "template": "template"}


@dataclass
class Timing:
    """One run: whole process wall and CPU seconds (user + system, children included) and the loop."""

    wall: float
    cpu: float
    loop: float


def _timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[Timing, str]:
    """Run ``cmd``; wall from before the fork to after the wait (CPU: the caller's rusage delta)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return Timing(wall, 0.0, 0.0), out


def _cpu_children() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def build_physicell(project: str, build_root: Path, jobs: int = 2) -> Path:
    """A built PhysiCell ``project`` under ``build_root/<project>`` (reused when already built)."""
    if not PHYSICELL_SRC.is_dir():
        raise SystemExit(f"error: PhysiCell source not found at {PHYSICELL_SRC} (../shared/anchors)")
    where = build_root / project
    exe = where / "project"
    if exe.is_file():
        return where
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(PHYSICELL_SRC, where)
    subprocess.run(["make", MAKE_TARGET[project]], cwd=where, check=True, capture_output=True)
    subprocess.run(["make", f"-j{jobs}"], cwd=where, check=True, capture_output=True)
    if not exe.is_file():
        raise SystemExit(f"error: building PhysiCell {project} in {where} produced no ./project")
    return where


def _set(root: ET.Element, path: str, value: str) -> None:
    node = root.find(path)
    if node is None:
        raise SystemExit(f"error: PhysiCell settings have no <{path}>")
    node.text = value


def run_physicell(where: Path, minutes: float, threads: int, seed: int, out_dir: Path) -> Timing:
    """Run the built project for ``minutes`` on ``threads`` OpenMP threads with ``seed``; output in
    ``out_dir`` (full data at the project's interval, no SVG)."""
    cfg = where / "config" / "PhysiCell_settings.xml"
    tree = ET.parse(cfg)
    root = tree.getroot()
    _set(root, "overall/max_time", f"{minutes:g}")
    _set(root, "parallel/omp_num_threads", str(threads))
    _set(root, "save/folder", str(out_dir))
    _set(root, "save/SVG/enable", "false")
    _set(root, "save/full_data/enable", "true")
    _set(root, "options/random_seed", str(seed))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    run_cfg = where / "config" / f"race_{os.getpid()}.xml"
    tree.write(run_cfg)
    c0 = _cpu_children()
    try:
        timing, out = _timed(["./project", str(run_cfg)], where)
    finally:
        run_cfg.unlink(missing_ok=True)
    timing.cpu = _cpu_children() - c0
    m = re.search(r"Total simulation runtime:\s*(\d+) days?, (\d+) hours?, (\d+) minutes?, and ([\d.]+) seconds", out)
    if m:
        d, h, mi, s = (float(x) for x in m.groups())
        timing.loop = ((d * 24 + h) * 60 + mi) * 60 + s
    return timing


def import_scenario(project: str, dest: Path) -> Path:
    """``tme import physicell`` of the shipped ``project`` into ``dest`` (overwritten)."""
    from tme_sim.importers.physicell import import_physicell
    from tme_sim.importers.scenario_file import write_scenario

    result = import_physicell(PHYSICELL_SRC / "sample_projects" / project / "config")
    return write_scenario(result, dest, force=True)


#: tme-sim's own diffusion numerics: Douglas–Rachford ADI at 0.1 min (exact steady state; the
#: imported scenario keeps PhysiCell's LOD at 0.01 min)
ADI = ("time.diffusion_scheme='adi'", "time.diffusion_dt='0.1 min'")


def run_tme(
    scenario: Path, minutes: float, threads: int, seed: int, out: Path, overrides: tuple[str, ...] = ()
) -> Timing:
    """``tme run`` in a fresh process (imports, compilation cache, output, everything); ``overrides``
    are extra ``--set KEY=VALUE`` items."""
    import h5py

    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out.unlink(missing_ok=True)
    cmd = [
        sys.executable, "-m", "tme_sim", "run", str(scenario), "--out", str(out),
        "--set", f"duration='{minutes:g} min'", "--set", f"seed={seed}", "--quiet", "--force",
    ]  # fmt: skip
    for item in overrides:
        cmd += ["--set", item]
    c0 = _cpu_children()
    timing, _ = _timed(cmd, scenario.parent, env)
    timing.cpu = _cpu_children() - c0
    with h5py.File(out, "r") as fh:
        timing.loop = float(fh.attrs.get("wall_seconds", float("nan")))
    return timing


# ---------------------------------------------------------------------------------------------
# outputs


def _physicell_labels(xml_path: Path) -> dict[str, int]:
    root = ET.parse(xml_path).getroot()
    labels = {}
    for lab in root.iter("label"):
        labels[lab.text.strip()] = int(lab.get("index"))
    return labels


def physicell_counts(out_dir: Path, types: list[str], tumor: str) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """``(times (K,), live counts (K, T), tumor extents)`` from PhysiCell's ``output*.xml`` + ``*_cells.mat``.

    The extent is the largest distance of a live ``tumor`` cell from the live tumor cells' centroid (µm).
    """
    from scipy.io import loadmat

    times, counts, extents = [], [], []
    for xml_path in sorted(out_dir.glob("output[0-9]*.xml")):
        root = ET.parse(xml_path).getroot()
        t = float(root.find(".//current_time").text)
        labels = _physicell_labels(xml_path)
        mat = loadmat(str(xml_path.with_name(xml_path.stem + "_cells.mat")))
        data = mat["cells"] if "cells" in mat else next(v for k, v in mat.items() if not k.startswith("__"))
        ctype = data[labels["cell_type"]].astype(int)
        dead = data[labels["dead"]] > 0.5
        pos = data[labels["position"] : labels["position"] + 3].T
        times.append(t)
        counts.append([int(np.sum((ctype == i) & ~dead)) for i in range(len(types))])
        sel = (ctype == types.index(tumor)) & ~dead
        extents.append(_extent(pos[sel]))
    return np.array(times), np.array(counts), extents


def _extent(pos: np.ndarray) -> float:
    if pos.shape[0] == 0:
        return 0.0
    return float(np.max(np.linalg.norm(pos - pos.mean(axis=0), axis=1)))


def tme_counts(out: Path, types: list[str], tumor: str) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The same three from a tme-sim output file."""
    from tme_sim.io import read_cells, read_population

    pop = read_population(out)
    times = np.array(sorted(pop["time"].unique()))
    counts = np.array([[int(pop[(pop.time == t) & (pop.type == ty)]["live"].sum()) for ty in types] for t in times])
    cells = read_cells(out, snapshot=None)
    extents = []
    for k in range(times.size):
        c = cells[(cells.snapshot == k) & (cells.type == tumor) & (cells.death == "alive")]
        extents.append(_extent(c[["x", "y"]].to_numpy()))
    return times, counts, extents
