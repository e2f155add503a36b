"""Packed initial tissues (tme_sim.model.packing) and the ``packing = "lattice"`` placement."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.spatial import cKDTree

from tme_sim.config import validate_scenario
from tme_sim.errors import ConfigError
from tme_sim.model import TMEModel
from tme_sim.model.packing import assign_types, expected_count, packed_ball


@pytest.mark.parametrize("dim", [2, 3])
def test_lattice_is_close_packed_at_the_spacing_and_cut_to_the_ball(dim: int):
    rng = np.random.default_rng(0)
    center = np.array([500.0, 500.0, 500.0 if dim == 3 else 0.0])
    pts = packed_ball(center, 120.0, 16.0, dim, rng, jitter=0.0)
    d, _ = cKDTree(pts).query(pts, 13 if dim == 3 else 7)
    assert np.allclose(d[:, 1], 16.0)  # nearest neighbour at the spacing, never closer
    inner = np.linalg.norm(pts - center, axis=1) < 80.0
    assert np.allclose(d[inner, -1], 16.0)  # 12 (3D) / 6 (2D) touching neighbours inside: close packed
    assert np.linalg.norm(pts - center, axis=1).max() < 120.0
    assert (pts[:, 2] == 0).all() == (dim == 2)
    assert abs(len(pts) - expected_count(120.0, 16.0, dim)) < 0.1 * len(pts)


def test_shell_jitter_and_a_million_cells_in_seconds():
    rng = np.random.default_rng(1)
    shell = packed_ball(np.zeros(3), 100.0, 16.0, 3, rng, inner_radius=60.0, jitter=0.1)
    r = np.linalg.norm(shell, axis=1)
    assert r.min() >= 60.0 - 0.1 * 16 * np.sqrt(3) and r.max() < 100.0 + 0.1 * 16 * np.sqrt(3)
    t0 = time.process_time()
    big = packed_ball(np.zeros(3), 930.0, 16.8, 3, rng)
    assert len(big) > 10**6 and time.process_time() - t0 < 10.0  # CPU seconds (the machine may be shared)


def test_assign_types_takes_the_mix_fractions():
    types = assign_types(10_000, 0, {1: 0.02, 2: 0.05}, np.random.default_rng(2))
    assert np.bincount(types).tolist() == [9300, 200, 500]
    with pytest.raises(ValueError, match="more than"):
        assign_types(10, 0, {1: 0.7, 2: 0.7}, np.random.default_rng(2))


def _scenario(placement: dict) -> dict:
    return {
        "name": "packed",
        "duration": "1 min",
        "domain": {"size": ["400 um", "400 um", "400 um"], "dx": "40 um"},
        "substrates": {"oxygen": {}},
        "cell_types": {"tumor": {"rules": "tumor"}, "cd8_t_cell": {"rules": "generic"}},
        "initial_cells": [placement],
    }


def test_model_builds_a_packed_mixed_ball():
    sc = validate_scenario(
        _scenario(
            {"type": "tumor", "shape": "ball", "radius": "100 um", "packing": "lattice", "mix": {"cd8_t_cell": 0.05}}
        )
    )
    model = TMEModel(sc, seed=3)
    st = model.store
    n = st.n
    assert abs(n - expected_count(100.0, 2 * 8.412710547954228, 3)) < 0.1 * n
    counts = np.bincount(st.type[:n], minlength=2)
    assert counts[1] == round(0.05 * n)
    d, _ = cKDTree(st.position[:n]).query(st.position[:n], 2)
    assert d[:, 1].min() > 0.6 * 2 * 8.41  # confluent, no overlapping pairs (jitter ≤ 0.1 spacing per axis)
    again = TMEModel(sc, seed=3)
    assert np.array_equal(again.store.position[:n], st.position[:n])  # seeded


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"shape": "box", "packing": "lattice"}, "needs shape 'disc' or 'ball'"),
        ({"packing": "lattice", "count": 10}, "remove count"),
        ({"mix": {"cd8_t_cell": 0.1}}, "need packing = 'lattice'"),
        ({"packing": "lattice", "mix": {"nk_cell": 0.1}}, "mix.nk_cell: unknown cell type"),
        ({"packing": "lattice", "mix": {"cd8_t_cell": 0.6, "tumor": 0.6}}, "add up to more than 1"),
        ({"packing": "lattice", "jitter": 0.9}, "jitter"),
    ],
)
def test_bad_lattice_placements_are_config_errors(extra: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        validate_scenario(_scenario({"type": "tumor", "shape": "ball", "radius": "100 um", **extra}))


def test_inner_radius_beyond_the_radius_is_a_config_error():
    sc = validate_scenario(
        _scenario(
            {"type": "tumor", "shape": "ball", "radius": "100 um", "packing": "lattice", "inner_radius": "150 um"}
        )
    )
    with pytest.raises(ConfigError, match="inner_radius"):
        TMEModel(sc, seed=0)
