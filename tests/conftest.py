"""Shared fixtures: paths, the shared data folder, small scenario builders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "tme_sim" / "scenarios"
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
