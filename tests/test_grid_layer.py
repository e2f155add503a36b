"""A 2D grid is a monolayer of a stated thickness: volume fractions, hence concentrations, do not
depend on dx (issue #20: with BioFVM's dx-deep slab the same 805 cells gave a centre O2 of
9.7 / 4.4 / 1.4 mmHg at dx 20 / 10 / 5 µm)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tme_sim.config import load_scenario
from tme_sim.errors import GridError
from tme_sim.grid import Microenvironment
from tme_sim.grid.substrates import SubstrateParams
from tme_sim.model.setup import layer_thickness

CELL_DIAMETER = 2 * 8.412710547954228  # PhysiCell's default cell, 2494 µm³


def _cluster() -> np.ndarray:
    """805 cells on a hexagonal lattice of one cell diameter, a disc of radius 250 µm at (400, 400)."""
    pts = [
        ((i + 0.5 * (j % 2)) * CELL_DIAMETER, j * CELL_DIAMETER * np.sqrt(3) / 2)
        for j in range(-40, 41)
        for i in range(-40, 41)
    ]
    xy = np.array([p for p in pts if p[0] ** 2 + p[1] ** 2 <= 250.0**2]) + 400.0
    pos = np.zeros((len(xy), 3))
    pos[:, :2] = xy
    return pos


def _centre_o2(dx: float, thickness: float | None) -> float:
    m = Microenvironment((800.0, 800.0), dx, [SubstrateParams("o", "mmHg", 1e5, 0.1)], scheme="implicit",
                         thickness=thickness)  # fmt: skip
    m.set_boundary("o", "all", "dirichlet", 38.0)
    m.set_field("o", 38.0)
    pos = _cluster()
    n = len(pos)
    zero = np.zeros((n, 1))
    m.set_cell_coupling(m.voxel_index(pos), np.full(n, 2494.0), zero, zero, zero + 10.0, zero)
    m.advance(1.0, 30)
    f = m.field("o")[0]
    centres = (np.arange(f.shape[0]) + 0.5) * dx
    x, y = np.meshgrid(centres, centres)
    return float(f[(x - 400.0) ** 2 + (y - 400.0) ** 2 <= 30.0**2].mean())


def test_2d_centre_oxygen_of_a_cell_cluster_does_not_depend_on_dx():
    assert len(_cluster()) == 805
    values = [_centre_o2(dx, CELL_DIAMETER) for dx in (20.0, 10.0, 5.0)]
    assert max(values) / min(values) - 1 < 0.05
    assert 5.0 < values[0] < 20.0  # a hypoxic centre, not a trivially saturated or empty field
    slab = [_centre_o2(dx, None) for dx in (20.0, 5.0)]  # BioFVM's dx-deep slab depends on dx
    assert slab[0] / slab[1] > 3.0


def test_thickness_sets_the_2d_voxel_volume_and_is_validated():
    m = Microenvironment((100.0, 100.0), 20.0, ["oxygen"], thickness=10.0)
    assert m.voxel_volume == pytest.approx(4000.0) and m.thickness == 10.0
    assert Microenvironment((100.0, 100.0), 20.0, ["oxygen"]).voxel_volume == 8000.0  # BioFVM default
    assert Microenvironment((100.0,) * 3, 20.0, ["oxygen"], thickness=10.0).voxel_volume == 8000.0  # 3D: cubes
    with pytest.raises(GridError, match="thickness must be > 0"):
        Microenvironment((100.0, 100.0), 20.0, ["oxygen"], thickness=0.0)


def test_scenario_layer_is_one_cell_diameter_and_small_voxels_warn():
    sc = load_scenario("tumor_immune")
    radius = sc.cell_types["tumor"].volume.radius  # the type placed in the largest number
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layer_thickness(sc) == pytest.approx(2 * radius)
    assert layer_thickness(load_scenario("tumor_immune", {"domain.thickness": '"12 um"'})) == 12.0
    assert layer_thickness(load_scenario("tumor_immune_3d")) is None
    small = load_scenario("tumor_immune", {"domain.dx": '"10 um"'})
    with pytest.warns(UserWarning, match="smaller than a cell"):
        layer_thickness(small)
