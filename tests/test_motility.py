"""Motility kernels (tme_sim/motility.py) against the numpy formulation they replaced."""

import numpy as np
import pytest

from tme_sim.errors import GridError
from tme_sim.grid import Microenvironment, SubstrateParams
from tme_sim.motility import (
    Motility,
    accumulate_gradient,
    add_motility,
    mix_chemotaxis,
    motile_slots,
    set_random_directions,
    turning_slots,
)
from tme_sim.phenotype import random_unit_vectors


def reference_update(st, micro, rng, dim, dt, persistence, chemotaxis):
    """The numpy implementation TMEModel._update_motility had before the kernels."""
    n = st["n"]
    motile = np.flatnonzero((st["speed"][:n] > 0) & (st["death"][:n] == 0))
    if motile.size == 0:
        return motile
    p_turn = -np.expm1(-dt / np.maximum(persistence[st["type"][motile]], 1e-9))
    fresh = np.linalg.norm(st["dir"][motile], axis=1) == 0
    turn = motile[(rng.random(motile.size) < p_turn) | fresh]
    if turn.size == 0:
        return motile
    direction = random_unit_vectors(rng, turn.size, dim)
    bias = st["bias"][turn]
    for t, chem in enumerate(chemotaxis):
        if chem is None:
            continue
        sel = np.flatnonzero((st["type"][turn] == t) & (bias > 0))
        if sel.size == 0:
            continue
        grad = micro.gradient(chem[0], st["pos"][turn[sel]]) * chem[1]
        norm = np.linalg.norm(grad, axis=1, keepdims=True)
        gdir = np.divide(grad, norm, out=np.zeros_like(grad), where=norm > 0)
        b = bias[sel, None]
        mixed = (1 - b) * direction[sel] + b * gdir
        mnorm = np.linalg.norm(mixed, axis=1, keepdims=True)
        direction[sel] = np.divide(mixed, mnorm, out=direction[sel], where=mnorm > 0)
    st["dir"][turn] = direction
    return motile


class Store:
    """The columns Motility.update reads, as a tiny stand-in for CellStore."""

    def __init__(self, d):
        self.n = d["n"]
        self.migration_speed = d["speed"]
        self.death = d["death"]
        self.type = d["type"]
        self.motility_dir = d["dir"]
        self.chemotaxis_bias = d["bias"]
        self.position = d["pos"]


def make_cells(dim, n=400, seed=0, size=200.0):
    rng = np.random.default_rng(seed)
    pos = np.zeros((n, 3))
    pos[:, :dim] = rng.random((n, dim)) * size
    pos[:5, 0] = [0.0, size, size - 1e-9, 5.0, 195.0]  # faces and first/last voxels
    d = {
        "n": n,
        "speed": np.where(rng.random(n) < 0.7, 2.0, 0.0),
        "death": np.where(rng.random(n) < 0.1, 1, 0).astype(np.int8),
        "type": rng.integers(0, 3, n).astype(np.int16),
        "dir": np.zeros((n, 3)),
        "bias": np.where(rng.random(n) < 0.2, 0.0, rng.random(n)),
        "pos": pos,
    }
    d["dir"][: n // 2, :dim] = random_unit_vectors(rng, n // 2, dim)[:, :dim]
    return d


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_update_matches_the_numpy_formulation_bit_for_bit(dim, dtype):
    size = (200.0, 200.0, 200.0)[:dim]
    subs = [SubstrateParams("a", "1", 100.0, 0.0), SubstrateParams("b", "1", 100.0, 0.0)]
    micro = Microenvironment(size, 20.0, subs, dtype=dtype)
    rng = np.random.default_rng(5)
    for name in ("a", "b"):
        micro.field(name)[...] = rng.random(micro.shape)
    persistence = np.array([5.0, 0.0, 20.0])
    chem = [("a", 1.0), None, ("b", -1.0)]
    mot = Motility(persistence, chem, 0.1)
    new, ref = make_cells(dim), make_cells(dim)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(5):
        m1 = mot.update(Store(new), micro, r1, dim, 0)
        m2 = reference_update(ref, micro, r2, dim, 0.1, persistence, chem)
        assert np.array_equal(m1, m2)
        assert np.array_equal(new["dir"], ref["dir"])
        new["pos"][:, :dim] += 3.0
        ref["pos"][:, :dim] += 3.0
    assert r1.random() == r2.random()  # the same random numbers were drawn


def test_small_kernels():
    speed = np.array([1.0, 0.0, 2.0, 3.0])
    death = np.array([0, 0, 1, 0], np.int8)
    motile = motile_slots(speed, death, 4, 0)
    assert motile.tolist() == [0, 3]
    d = np.zeros((4, 3))
    d[3] = [1.0, 0.0, 0.0]
    ctype = np.zeros(4, np.int16)
    # nobody turns by chance (p = 0) but a cell without direction always does
    assert turning_slots(motile, ctype, d, np.array([0.0]), np.array([0.5, 0.5])).tolist() == [0]
    assert turning_slots(motile, ctype, d, np.array([1.0]), np.array([0.5, 0.5])).tolist() == [0, 3]
    normals = np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 0.0]])
    set_random_directions(np.array([0, 1]), normals, 2, d)
    assert d[0].tolist() == [0.6, 0.8, 0.0] and d[1].tolist() == [0.0, 0.0, 0.0]
    vel = np.ones((4, 3))
    add_motility(motile, speed, d, vel)
    assert vel[0].tolist() == [1.6, 1.8, 1.0] and vel[3].tolist() == [4.0, 1.0, 1.0] and vel[1].tolist() == [1, 1, 1]


def test_non_finite_position_raises_grid_error():
    micro = Microenvironment((100.0, 100.0), 20.0, [SubstrateParams("a", "1", 100.0, 0.0)])
    d = make_cells(2, n=10, size=100.0)
    d["speed"][:] = 1.0
    d["death"][:] = 0
    d["type"][:] = 0
    d["bias"][:] = 0.5
    d["dir"][:] = 0.0
    d["pos"][7, 0] = np.nan
    mot = Motility(np.array([5.0]), [("a", 1.0)], 0.1)
    with pytest.raises(GridError, match="slot 7"):
        mot.update(Store(d), micro, np.random.default_rng(0), 2, 0)
    acc = np.zeros((1, 3))
    args = (np.array([7]), d["type"], d["bias"], d["pos"], micro.field("a"), 20.0, 0, 1.0, False, acc)
    assert accumulate_gradient(*args) == 7


def _two_gradients():
    """A 5×5 grid (dx 20 µm): ``a = 2i`` (∂a/∂x = 4/40 = 0.1 per µm), ``b = j`` (∂b/∂y = 0.05)."""
    subs = [SubstrateParams("a", "1", 100.0, 0.0), SubstrateParams("b", "1", 100.0, 0.0)]
    micro = Microenvironment((100.0, 100.0), 20.0, subs)
    j, i = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
    micro.field("a")[0] = 2.0 * i
    micro.field("b")[0] = 1.0 * j
    return micro


def _one_cell(bias=1.0):
    return {
        "n": 1,
        "speed": np.array([1.0]),
        "death": np.zeros(1, np.int8),
        "type": np.zeros(1, np.int16),
        "dir": np.zeros((1, 3)),
        "bias": np.array([bias]),
        "pos": np.array([[50.0, 50.0, 0.0]]),  # voxel (2, 2)
    }


@pytest.mark.parametrize(
    ("sensitivities", "each", "expected"),
    [
        ({"a": 1.0, "b": 1.0}, False, [0.1, 0.05]),  # Σ w g = (0.1, 0.05) → (2, 1)/√5
        ({"a": 1.0, "b": 1.0}, True, [1.0, 1.0]),  # unit gradients first: (1, 1)/√2
        ({"a": 1.0, "b": -2.0}, False, [0.1, -0.1]),  # down b, twice as strong: (1, −1)/√2
        ({"a": 0.5, "b": 3.0}, True, [0.5, 3.0]),
        ({"b": -1.0}, False, [0.0, -1.0]),
        ({"a": 1.0, "b": 0.0}, False, [1.0, 0.0]),  # a zero weight is no term
    ],
)
def test_several_substrates_give_the_normalised_weighted_sum(sensitivities, each, expected):
    """PhysiCell's advanced chemotaxis: direction = normalize(Σ_s w_s g_s) (g_s unit first with
    normalize_each_gradient), hand-computed on two linear fields; with bias 1 it is the direction."""
    micro = _two_gradients()
    d = _one_cell(bias=1.0)
    mot = Motility(np.array([0.0]), [(sensitivities, each)], 0.1)  # persistence 0: it turns every step
    mot.update(Store(d), micro, np.random.default_rng(0), 2, 0)
    e = np.array([*expected, 0.0])
    assert d["dir"][0] == pytest.approx(e / np.linalg.norm(e), abs=1e-15)


def test_bias_mixes_the_summed_direction_into_the_random_one():
    acc = np.array([[0.3, -0.4, 0.0]])  # Σ w g → (0.6, −0.8)
    direction = np.array([[0.0, 1.0, 0.0]])
    mix_chemotaxis(np.array([0]), np.zeros(1, np.int16), np.array([0.5]), 0, acc, direction)
    m = np.array([0.5 * 0.0 + 0.5 * 0.6, 0.5 * 1.0 - 0.5 * 0.8, 0.0])  # (0.3, 0.1)
    assert direction[0] == pytest.approx(m / np.linalg.norm(m), abs=1e-15)
    # opposite gradients that cancel leave the random direction
    direction = np.array([[0.0, 1.0, 0.0]])
    mix_chemotaxis(np.array([0]), np.zeros(1, np.int16), np.array([0.5]), 0, np.zeros((1, 3)), direction)
    assert direction[0].tolist() == [0.0, 1.0, 0.0]


def test_one_substrate_forms_agree_bit_for_bit():
    """``(substrate, sign)`` and ``({substrate: sign}, False)`` are the same chemotaxis."""
    micro = _two_gradients()
    rng = np.random.default_rng(3)
    micro.field("b")[...] = rng.random(micro.shape)
    a, b = make_cells(2, n=300, size=100.0), make_cells(2, n=300, size=100.0)
    old = Motility(np.array([5.0, 1.0, 2.0]), [("b", -1.0), None, ("a", 1.0)], 0.1)
    new = Motility(np.array([5.0, 1.0, 2.0]), [({"b": -1.0}, False), None, ({"a": 1.0}, False)], 0.1)
    r1, r2 = np.random.default_rng(4), np.random.default_rng(4)
    for _ in range(3):
        old.update(Store(a), micro, r1, 2, 0)
        new.update(Store(b), micro, r2, 2, 0)
    assert np.array_equal(a["dir"], b["dir"])
