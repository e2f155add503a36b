"""The 10⁶-cell 3D scenario (tumor_immune_3d_large.toml) run at 10⁴ cells through ``--set``: the
same file, shrunk (domain, tumor radius, T-cell shell, avascular core) so that CI stays fast."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tme_sim import io
from tme_sim.config import load_scenario
from tme_sim.runner import run_scenario
from tme_sim.scenarios import resolve

SCENARIO = resolve("tumor_immune_3d_large")
R_TUMOR = 200.0  # µm, the 10⁴-cell tumor
CENTRE = 280.0  # µm, domain centre
SMALL = {
    "domain.size": '["560 um", "560 um", "560 um"]',
    "initial_cells.0.radius": f'"{R_TUMOR:g} um"',
    "initial_cells.1.inner_radius": '"205 um"',
    "initial_cells.1.radius": '"240 um"',
    # the whole small tumor and its T-cell shell are avascular, as the large one's core (at 210 µm the
    # vessels ring the tumor and 90 min make 7 cells necrotic instead of 227, seed 5)
    "vessels.exclude_radius": '"240 um"',
    # PhysiCell's necrosis thresholds (5 → 2.5 mmHg): the shipped ones (anoxia only, 0.75 → 0.075 mmHg)
    # need hours before cells die, longer than this 90-min run
    "cell_types.tumor.death.necrosis_o2_threshold": '"5 mmHg"',
    "cell_types.tumor.death.necrosis_o2_critical": '"2.5 mmHg"',
    "output.interval": '"30 min"',
}


def test_full_size_avascular_core_is_inside_the_tumor():
    """The avascular core sits at the domain's centre, where the tumor is, at full size and shrunk
    (it once inherited (200, 200, 200) µm from a 400-µm file: outside the 930-µm tumor)."""
    from tme_sim.vessels import place_vessel_voxels

    for overrides in ({}, SMALL):
        sc = load_scenario(SCENARIO, overrides=overrides)
        dx = sc.domain.dx
        nx, ny, nz = (round(L / dx) for L in sc.domain.size)
        v = place_vessel_voxels(sc.vessels, (nz, ny, nx), dx, 3, np.random.default_rng(1))
        c = (np.stack([v % nx, (v // nx) % ny, v // (nx * ny)], 1) + 0.5) * dx
        centre = np.array(sc.domain.size) / 2
        gap = np.linalg.norm(c - centre, axis=1).min()
        assert sc.vessels.exclude_radius <= gap < sc.vessels.exclude_radius + 2 * dx
    # at full size the core is the tumor's centre, not all of it (the 10⁴-cell version is all core)
    full = load_scenario(SCENARIO)
    assert full.vessels.exclude_radius < full.initial_cells[0].radius / 1.5


def test_full_size_file_is_a_million_cells():
    sc = load_scenario(SCENARIO)
    from tme_sim.model.setup import placement_count

    n = sum(placement_count(p, 3, sc) for p in sc.initial_cells)
    assert n >= 10**6
    assert set(sc.cell_types) == {"tumor", "cd8_t_cell", "macrophage", "fibroblast"}
    assert len(sc.substrates) == 12 and sc.vessels.density > 0
    assert sc.cell_types["macrophage"].intracellular is not None  # the surrogate-polarized macrophages


def test_tumor_cycles_at_the_in_vivo_potential_doubling_time():
    """Mean Ki67-basic cycle = 1/entry + Ki67+ duration = Tpot ≈ 5 days (Rew & Wilson 2000), so the
    steady-state Ki67+ fraction is 930/7200 ≈ 13 %; the culture default (20-h cycle) would fail."""
    cycle = load_scenario(SCENARIO).cell_types["tumor"].cycle
    tpot = 5 * 24 * 60.0  # min
    assert 1.0 / cycle.entry_rate + cycle.ki67_positive_duration == pytest.approx(tpot, rel=1e-3)
    assert cycle.ki67_positive_duration / tpot == pytest.approx(0.13, abs=0.005)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("large3d") / "large.h5"
    run_scenario(SCENARIO, out, overrides=SMALL, duration="90 min", seed=5)
    return out


def _radius(cells) -> np.ndarray:
    return np.sqrt((cells["x"] - CENTRE) ** 2 + (cells["y"] - CENTRE) ** 2 + (cells["z"] - CENTRE) ** 2).to_numpy()


def test_ten_thousand_cells_necrotic_core_and_infiltrating_t_cells(small_run):
    first, last = io.read_cells(small_run, snapshot=0), io.read_cells(small_run)
    assert 9_000 < len(first) < 12_000
    assert set(first["type"]) == {"tumor", "cd8_t_cell", "macrophage", "fibroblast"}
    # T cells start outside the tumor and infiltrate it (chemotaxis to CXCL9, random motility)
    t0, t1 = first[first["type"] == "cd8_t_cell"], last[last["type"] == "cd8_t_cell"]
    assert _radius(t0).min() > R_TUMOR - 5
    assert (_radius(t1) < R_TUMOR - 40).sum() >= 20
    # the avascular core turns hypoxic and necrotic: dead tumor cells sit deeper than live ones
    tumor = last[last["type"] == "tumor"]
    necrotic = tumor["death"].isin(["necrotic", "lysed"]).to_numpy()
    assert necrotic.sum() >= 20
    r = _radius(tumor)
    assert np.median(r[necrotic]) < 0.7 * np.median(r[~necrotic])  # measured 0.56 (seed 5)


def test_output_complete_and_readable(small_run):
    ds = io.open_fields(small_run)
    assert ds["concentration"].dims == ("time", "species", "z", "y", "x")
    assert ds.sizes["time"] == 4 and ds.sizes["species"] == 12  # 0, 30, 60, 90 min
    assert float(ds["concentration"].sel(species="oxygen").isel(time=-1).min()) < 5.0  # hypoxic core
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    res = subprocess.run(
        [sys.executable, "-m", "tme_sim", "info", str(small_run)], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    assert "complete" in res.stdout and "tumor_immune_3d_large" in res.stdout
