"""Shared fixtures: paths, the shared data folder, small scenario builders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tme_sim" / "scenarios"
# Many tests write scenarios into tmp_path that name networks, artifacts and libraries of the
# repository by absolute path: allow that here (what --allow-outside-paths does); the tests of the
# confinement itself (test_security.py) remove it.
os.environ.setdefault("TME_ALLOW_OUTSIDE_PATHS", "1")
SHARED_DATA = Path(os.environ.get("TME_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def small_spheroid_overrides() -> dict[str, str]:
    """A small, fast 2D spheroid (400 µm box, ~200 cells, coarse diffusion step)."""
    return {
        "domain.size": '["400 um", "400 um"]',
        "initial_cells.0.center": '["200 um", "200 um"]',
        "initial_cells.0.radius": '"120 um"',
        "time.diffusion_dt": '"0.1 min"',
        "output.interval": '"30 min"',
    }


@pytest.fixture(autouse=True)
def _close_parked_hdf5_handles():
    """Tests inject write errors into healthy HDF5 files: close the handles a real failure parks
    (``tme_sim.io._POISONED``), so that later in-process CLI calls exit normally."""
    yield
    io = __import__("sys").modules.get("tme_sim.io")
    while io is not None and io._POISONED:
        fh = io._POISONED.pop()
        if fh.id.valid:
            fh.close()
