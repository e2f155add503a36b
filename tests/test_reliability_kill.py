"""Crash safety: ``tme run`` killed with SIGKILL at random moments and inside snapshot writes.

The driver ``benchmarks/kill_test.py`` forks one ``tme run`` per trial (10 random kill moments
spread over the run, plus kills after every 5th HDF5 operation inside one snapshot write); this
test then opens every file left behind with plain h5py and with xarray/h5netcdf and checks that
the committed snapshots have consistent lengths and equal the uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from tme_sim.io import (
    CELL_COLUMNS,
    committed_snapshots,
    describe,
    open_output,
    read_cells,
    read_events,
    read_population,
)

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "data" / "tiny_spheroid.toml"
pytestmark = pytest.mark.slow  # ~40 s on 2 idle cores (10 random kills + ~16 write-point kills)

SETS = ["duration=4 min", "output.interval=0.1 min", "output.checkpoint_interval=1 min"]


@pytest.fixture(scope="module")
def kill_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("kill")
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "kill_test.py"),
        "--trials",
        "10",
        "--point-stride",
        "5",
        "--dir",
        str(d),
        "--json",
        str(d / "results.json"),
        "--scenario",
        str(SCENARIO),
    ]
    for s in SETS:
        cmd += ["--set", s]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert (d / "results.json").exists(), proc.stdout + proc.stderr
    res = json.loads((d / "results.json").read_text())
    res["table"] = proc.stdout
    res["rc"] = proc.returncode
    return res


def _check_committed(path: Path, ref: Path) -> int:
    """Open ``path`` with h5py and xarray; committed snapshots consistent and equal to ``ref``."""
    with open_output(path) as fh:
        if "population" not in fh:  # killed while the file was being laid out: nothing committed
            return 0
        k = committed_snapshots(fh)
        c, g, p = fh["cells"], fh["fields"], fh["population"]
        for name in (
            "fields/time",
            "fields/concentration",
            "cells/snapshot_time",
            "cells/offset",
            "population/time",
            "population/counts",
        ):
            assert fh[name].shape[0] >= k, (path, name)
        with open_output(ref) as rf:
            assert k <= committed_snapshots(rf)
            if k:
                end = int(c["offset"][k - 1] + c["count"][k - 1])
                np.testing.assert_array_equal(g["concentration"][:k], rf["fields/concentration"][:k])
                np.testing.assert_array_equal(p["counts"][:k], rf["population/counts"][:k])
                for name, _ in CELL_COLUMNS:
                    np.testing.assert_array_equal(c[name][:end], rf["cells"][name][:end])
    with xr.open_dataset(path, group="fields", engine="h5netcdf", driver_kwds={"swmr": True, "locking": False}) as ds:
        assert ds.sizes["time"] >= k
        ds["concentration"].isel(time=slice(0, k)).load()
    return k


def test_every_killed_file_opens_and_holds_its_committed_snapshots(kill_results: dict) -> None:
    ref = Path(kill_results["reference"])
    trials = kill_results["trials"]
    random_trials = [t for t in trials if t["kind"] == "random"]
    point_trials = [t for t in trials if t["kind"] == "write-point"]
    assert len(random_trials) >= 10
    assert sum(t["killed_by_parent"] for t in random_trials) >= 9, kill_results["table"]
    # the kill moments are spread over the whole run
    fr = sorted(t["frac"] for t in random_trials)
    assert fr[0] < 0.2 and fr[-1] > 0.7
    # kills inside a snapshot write: the child killed itself at several HDF5 operations
    assert len(point_trials) >= 10 and all(t["killed"] for t in point_trials)
    with open_output(ref) as rf:
        n_ref = committed_snapshots(rf)
    seen = []
    for t in trials:
        f = Path(t["file"])
        if not f.exists():
            continue
        seen.append(_check_committed(f, ref))
    assert len(seen) >= 15
    assert any(0 < k < n_ref for k in seen), "no kill landed in the middle of the run"
    assert kill_results["rc"] == 0, kill_results["table"]


def test_write_point_kills_keep_exactly_the_snapshots_before(kill_results: dict) -> None:
    points = [t for t in kill_results["trials"] if t["kind"] == "write-point"]
    counts = [t["snapshots"] for t in points]
    # killed inside snapshot s: s snapshots (0..s-1) committed; only a kill after the final flush
    # of that snapshot may show s + 1
    assert min(counts) >= 1
    assert max(counts) - min(counts) <= 1, counts


def test_readers_and_info_on_a_killed_file(kill_results: dict) -> None:
    killed = [
        Path(t["file"])
        for t in kill_results["trials"]
        if t["killed"] and t["snapshots"] > 1 and Path(t["file"]).exists()
    ]
    assert killed
    f = killed[0]
    info = describe(f)
    assert "INCOMPLETE" in info and "last good snapshot" in info
    with open_output(f) as fh:
        k = committed_snapshots(fh)
        assert not fh.attrs["complete"]
    assert read_population(f)["time"].nunique() == k
    cells = read_cells(f)
    assert len(cells) > 0 and (cells["snapshot"] == k - 1).all()
    ev = read_events(f)
    assert (ev["time"] <= read_cells(f)["time"].iloc[0] + 1e-9).all()
