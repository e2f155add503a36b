"""Determinism: the same scenario and seed give identical datasets at 1 and 2 numba threads.

Each run is a separate ``tme run`` process with ``NUMBA_NUM_THREADS`` set. The tiny scenarios
are far below the sizes at which the kernels switch to their multi-threaded variants, so the
runs lower those thresholds to 0 first: at 2 threads the parallel diffusion, mechanics and
Boolean-network kernels really run on two threads (at 1 thread the grid stays serial and the
rest run their parallel code on one thread). The Boolean scenario draws per-cell random numbers
inside the network kernel, which must not depend on the thread schedule.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

_RUN = """
import sys
import tme_sim.grid.microenvironment as grid
import tme_sim.intracellular.boolean.network as boolnet
import tme_sim.mechanics as mech
grid.PARALLEL_MIN_UPDATES = 0
mech.PARALLEL_MIN_CELLS = 0
boolnet.PARALLEL_MIN_CELLS = 0
import numba
assert numba.get_num_threads() == int(sys.argv[1]), numba.get_num_threads()
from tme_sim.cli import main
sys.argv = ["tme", *sys.argv[2:]]
main()
"""


def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as fh:
        for g in ("cells", "fields", "population", "events"):
            fh[g].visititems(
                lambda n, o, g=g: out.__setitem__(f"{g}/{n}", o[()]) if isinstance(o, h5py.Dataset) else None
            )
    return out


def _start(threads: int, scenario: Path, out: Path, extra: list[str]) -> subprocess.Popen:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-c", _RUN, str(threads), "run", str(scenario), "-q", "--out", str(out), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("scenario", "extra"),
    [
        # 2 substrates x 50 x 50 voxels and ~70 motile, dividing cells
        ("tiny_spheroid.toml", ["--set", "domain.dx=4 um", "--duration", "12 min"]),
        ("tiny_tnf.toml", []),
    ],
)
def test_one_and_two_threads_give_identical_outputs(tmp_path: Path, scenario: str, extra: list[str]) -> None:
    sc = ROOT / "tests" / "data" / scenario
    outs = {t: tmp_path / f"t{t}.h5" for t in (1, 2)}
    procs = {t: _start(t, sc, outs[t], extra) for t in (1, 2)}  # side by side: the 2 cores are shared
    for t, p in procs.items():
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, f"{t} threads: {stderr[-2000:]}"
    d1, d2 = _datasets(outs[1]), _datasets(outs[2])
    assert sorted(d1) == sorted(d2)
    for k in d1:
        assert d1[k].dtype == d2[k].dtype and d1[k].shape == d2[k].shape, k
        assert np.array_equal(d1[k], d2[k], equal_nan=d1[k].dtype.kind == "f"), k
    assert d1["events/time"].size > 0  # something stochastic happened
