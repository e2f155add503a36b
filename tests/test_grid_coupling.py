"""Cell coupling, determinism (cell order, threads), masks, sampling and checkpoints of the grid."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tme_sim.errors import GridError
from tme_sim.grid import Microenvironment, SubstrateParams, get_substrate
from tme_sim.grid import kernels as K

ROOT = Path(__file__).resolve().parents[1]


def _grid(dim=3, dtype=np.float64, parallel=None):
    domain = (200.0, 160.0, 120.0) if dim == 3 else (400.0, 300.0)
    m = Microenvironment(domain, 20.0, [get_substrate("oxygen"), get_substrate("IFNG")], dtype=dtype, parallel=parallel)
    m.set_boundary("oxygen", "all", "dirichlet", 38.0)
    m.set_boundary("IFNG", "xmax", "dirichlet", 0.5)
    return m


def _random_cells(m: Microenvironment, n: int, seed: int):
    """Random cells, many per voxel (crowded into a quarter of the domain)."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0.0, 1.0, (n, 3)) * np.array([*m.domain, 1.0][:3]) * 0.5
    S = m.n_substrates
    return dict(
        voxel=m.voxel_index(pos),
        cell_volume=rng.uniform(1000.0, 3000.0, n),
        secretion=rng.uniform(0.0, 0.5, (n, S)),
        saturation=rng.uniform(0.0, 40.0, (n, S)),
        uptake=rng.uniform(0.0, 1.0, (n, S)),
        export=rng.uniform(0.0, 5.0, (n, S)),
    )


def _permuted(cells: dict, perm: np.ndarray) -> dict:
    return {k: v[perm] for k, v in cells.items()}


# ---------------------------------------------------------------------------------------------
# coupling


def test_coupling_single_cell_matches_formula():
    m = Microenvironment((100.0, 100.0), 20.0, [SubstrateParams("a", "nM", 0.0, 0.0, initial=2.0)])
    v = m.voxel_index(np.array([[30.0, 50.0, 0.0]]))
    Vc, Sr, rho, U, E = 1500.0, 0.3, 10.0, 0.7, 40.0
    m.set_cell_coupling(v, np.array([Vc]), np.array([[Sr]]), np.array([[rho]]), np.array([[U]]), np.array([[E]]))
    dt = 0.1
    m.advance(dt, 1)
    f = Vc / m.voxel_volume
    expected = (2.0 + dt * f * Sr * rho) / (1.0 + dt * f * (Sr + U)) + dt * E / m.voxel_volume
    flat = m.field("a").reshape(-1)
    assert flat[v[0]] == pytest.approx(expected, rel=1e-14)
    assert np.all(np.delete(flat, v[0]) == 2.0)  # D = 0, λ = 0: nothing else changes


def test_coupling_drives_towards_saturation_and_depletes_with_uptake():
    sub = SubstrateParams("a", "nM", 0.0, 0.0, initial=1.0)
    m = Microenvironment((40.0, 20.0), 20.0, [sub])
    vc = m.voxel_volume
    m.set_cell_coupling(
        np.array([0, 1]), np.array([vc, vc]), np.array([[1.0], [0.0]]), np.array([[5.0], [0.0]]),
        np.array([[0.0], [1.0]]), np.zeros((2, 1)),
    )  # fmt: skip
    m.advance(0.1, 500)
    f = m.field("a").reshape(-1)
    assert f[0] == pytest.approx(5.0, rel=1e-9)
    assert f[1] == pytest.approx((1 / 1.1) ** 500, rel=1e-9)


@pytest.mark.parametrize("dim", [2, 3])
def test_cell_order_does_not_change_fields_bitwise(dim):
    base = _grid(dim)
    cells = _random_cells(base, 3000, seed=3)
    assert np.bincount(cells["voxel"]).max() > 5  # many cells share voxels
    results = []
    for seed in (None, 1, 2):
        m = _grid(dim)
        c = cells if seed is None else _permuted(cells, np.random.default_rng(seed).permutation(3000))
        m.set_cell_coupling(**c)
        m.advance(0.01, 30)
        results.append(m.species_first())
    for r in results[1:]:
        assert np.array_equal(r, results[0])


def test_aggregation_is_order_independent_where_naive_sums_are_not():
    rng = np.random.default_rng(0)
    n = 200
    sec = rng.uniform(0, 1, (n, 1)) * 10.0 ** rng.integers(-8, 8, (n, 1))
    ones = np.ones((n, 1))
    zeros = np.zeros((n, 1))
    vol = np.full(n, 1000.0)
    voxel = np.zeros(n, np.int64)
    sums = set()
    naive = set()
    for seed in range(20):
        perm = np.random.default_rng(seed).permutation(n)
        rows = (vol, sec[perm], ones, zeros, zeros)
        _, A, B, _, _ = K.build_coupling(
            voxel, voxel, *rows, 1e-3, np.zeros(1, np.int64), 1, 1, K.coupling_row_order(*rows)
        )
        sums.add((A[0, 0], B[0, 0]))
        acc = 0.0
        for x in sec[perm, 0]:
            acc += x
        naive.add(acc)
    assert len(sums) == 1
    assert len(naive) > 1  # the test would notice an order-dependent sum


def test_zero_cells_clears_coupling():
    m = _grid(2)
    m.set_cell_coupling(**_random_cells(m, 50, seed=0))
    empty = {k: v[:0] for k, v in _random_cells(m, 50, seed=0).items()}
    m.set_cell_coupling(**empty)
    ref = _grid(2)
    m.advance(0.01, 10)
    ref.advance(0.01, 10)
    assert np.array_equal(m.species_first(), ref.species_first())


# ---------------------------------------------------------------------------------------------
# threads


@pytest.mark.parametrize("dim", [2, 3])
def test_serial_and_parallel_kernels_agree_bitwise(dim):
    out = []
    for parallel in (False, True):
        m = _grid(dim, parallel=parallel)
        m.set_cell_coupling(**_random_cells(m, 500, seed=5))
        mask = np.zeros(m.shape, bool)
        mask.reshape(-1)[::37] = True
        m.set_dirichlet_mask("IFNG", mask, 2.0)
        m.advance(0.01, 25)
        out.append(m.species_first())
    assert np.array_equal(out[0], out[1])


_THREAD_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys
    import numpy as np, numba
    sys.path.insert(0, {root!r})
    from tests.test_grid_coupling import _grid, _random_cells
    for dim in (2, 3):
        for dtype in (np.float64, np.float32):
            m = _grid(dim, dtype=dtype, parallel=True)
            m.set_cell_coupling(**_random_cells(m, 800, seed=7))
            m.advance(0.01, 20)
            digest = hashlib.sha256(m.species_first().tobytes()).hexdigest()
            print(dim, np.dtype(dtype).name, numba.get_num_threads(), digest)
    """
)


def test_one_and_two_numba_threads_give_identical_fields():
    digests = {}
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        res = subprocess.run(
            [sys.executable, "-c", _THREAD_SCRIPT.format(root=str(ROOT))],
            env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        lines = [ln.split() for ln in res.stdout.strip().splitlines()]
        assert all(ln[2] == threads for ln in lines)
        digests[threads] = [(ln[0], ln[1], ln[3]) for ln in lines]
    assert digests["1"] == digests["2"]
    assert len(digests["1"]) == 4


# ---------------------------------------------------------------------------------------------
# masks, sampling, gradient


def test_dirichlet_mask_is_held_and_feeds_neighbours():
    m = Microenvironment((200.0, 200.0, 200.0), 20.0, [SubstrateParams("o", "mmHg", 1e4, 0.1)])
    mask = np.zeros(m.shape, bool)
    mask[5, 5, 5] = True
    m.set_dirichlet_mask("o", mask, 50.0)
    m.advance(0.01, 200)
    f = m.field("o")
    assert f[5, 5, 5] == 50.0
    assert f[5, 5, 4] > f[5, 5, 2] > f[5, 5, 0] > 0.0
    m.clear_dirichlet_mask("o")
    m.advance(0.01, 1)
    assert f[5, 5, 5] < 50.0


def test_dirichlet_mask_array_values():
    m = Microenvironment((100.0, 60.0), 20.0, [SubstrateParams("o", "mmHg", 0.0, 0.0)])
    mask = np.zeros(m.shape, bool)
    mask[0, 1, :] = True
    vals = np.arange(m.n_voxels, dtype=float).reshape(m.shape)
    m.set_dirichlet_mask("o", mask, vals)
    m.advance(0.1, 3)
    assert np.array_equal(m.field("o")[0, 1], vals[0, 1])
    m.set_dirichlet_mask("o", mask, np.full(5, 7.0))
    assert np.all(m.field("o")[0, 1] == 7.0)


def test_sample_returns_voxel_values_and_clips():
    m = _grid(3)
    rng = np.random.default_rng(0)
    for s, name in enumerate(m.names):
        m.set_field(name, rng.uniform(0, 10, m.shape) + s)
    pos = np.array([[10.0, 10.0, 10.0], [199.0, 159.0, 119.0], [-5.0, 500.0, 60.0], [25.0, 45.0, 65.0]])
    out = m.sample(pos)
    assert out.shape == (4, 2) and out.dtype == np.float64
    o = m.field("oxygen")
    assert out[0, 0] == o[0, 0, 0]
    assert out[1, 0] == o[-1, -1, -1]
    assert out[2, 0] == o[3, -1, 0]
    assert out[3, 1] == m.field("IFNG")[3, 2, 1]


@pytest.mark.parametrize("dim", [2, 3])
def test_gradient_of_linear_field_is_exact_including_walls(dim):
    m = _grid(dim)
    _nz, _ny, _nx = m.shape
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in m.shape), indexing="ij")
    slope = np.array([0.3, -0.2, 0.1 if dim == 3 else 0.0])
    x = (ii + 0.5) * m.dx
    y = (jj + 0.5) * m.dx
    z = (kk + 0.5) * m.dx
    m.set_field("IFNG", 100.0 + slope[0] * x + slope[1] * y + slope[2] * z)
    pos = np.array([[1.0, 1.0, 1.0], [m.domain[0] - 1, 150.0, 50.0], [90.0, 70.0, 30.0]])
    grad = m.gradient("IFNG", pos)
    assert grad.shape == (3, 3)
    np.testing.assert_allclose(grad, np.tile(slope, (3, 1)), rtol=1e-12, atol=1e-13)


def test_gradient_central_difference_in_interior_one_sided_at_wall():
    m = Microenvironment((100.0, 20.0), 20.0, [SubstrateParams("a", "1", 0.0, 0.0)])
    m.set_field("a", np.array([[[0.0, 1.0, 4.0, 9.0, 16.0]]]))
    g = m.gradient("a", np.array([[10.0, 10.0, 0.0], [50.0, 10.0, 0.0], [90.0, 10.0, 0.0]]))
    np.testing.assert_allclose(g[:, 0], [1.0 / 20, (9.0 - 1.0) / 40, 7.0 / 20])
    assert np.all(g[:, 1:] == 0.0)


# ---------------------------------------------------------------------------------------------
# checkpoints, float32, accessors


@pytest.mark.parametrize("dim", [2, 3])
def test_state_dict_continues_bit_identically(dim):
    m = _grid(dim)
    m.set_cell_coupling(**_random_cells(m, 300, seed=9))
    mask = np.zeros(m.shape, bool)
    mask.reshape(-1)[::53] = True
    m.set_dirichlet_mask("oxygen", mask, 60.0)
    m.advance(0.01, 10)
    state = m.state_dict()
    m.advance(0.01, 15)
    fresh = Microenvironment(m.domain, m.dx, m.substrates)
    fresh.load_state_dict(state)
    fresh.advance(0.01, 15)
    assert np.array_equal(fresh.species_first(), m.species_first())
    assert fresh.time == m.time
    assert fresh.boundary("IFNG") == m.boundary("IFNG")


def test_float32_tracks_float64():
    out = []
    for dtype in (np.float64, np.float32):
        m = _grid(3, dtype=dtype)
        m.set_cell_coupling(**_random_cells(m, 200, seed=1))
        m.advance(0.01, 50)
        assert m.field("oxygen").dtype == dtype
        out.append(m.species_first().astype(np.float64))
    np.testing.assert_allclose(out[1], out[0], rtol=1e-4, atol=1e-5)


def test_layout_and_accessors():
    m = _grid(3)
    assert m.shape == (6, 8, 10) and m.dim == 3 and m.n_substrates == 2
    assert m.voxel_volume == 8000.0
    f = m.field("IFNG")
    assert f.shape == m.shape and np.shares_memory(f, m._c)
    sf = m.species_first()
    assert sf.flags.c_contiguous and sf.shape == (2, *m.shape) and not np.shares_memory(sf, m._c)
    assert m.index("IFNG") == 1
    m2 = Microenvironment((100.0, 60.0), 20.0, ["oxygen"])
    assert m2.shape == (1, 3, 5) and m2.dim == 2 and m2.voxel_volume == 8000.0
    assert m2.field("oxygen")[0, 0, 0] == 38.0
    v = m.voxel_index(np.array([[30.0, 50.0, 70.0]]))
    assert v[0] == (3 * 8 + 2) * 10 + 1
    np.testing.assert_allclose(m.voxel_centres(v), [[30.0, 50.0, 70.0]])


def test_serial_and_parallel_kernels_are_distinct_cached_functions():
    # numba's disk cache is keyed by function name and line, not by the parallel flag: one Python
    # function jitted twice would let the serial variant load the parallel machine code or back
    for serial, parallel in (
        (K.step_2d_serial, K.step_2d_parallel),
        (K.step_3d_serial, K.step_3d_parallel),
        (K.first_bad_serial, K.first_bad),
    ):
        assert serial.py_func.__qualname__ != parallel.py_func.__qualname__
        assert parallel.targetoptions.get("parallel") and not serial.targetoptions.get("parallel")


def test_automatic_kernel_choice_tries_both_and_keeps_the_faster():
    import numba

    from tme_sim.grid.microenvironment import PARALLEL_MIN_UPDATES, RETUNE_EVERY

    if numba.get_num_threads() < 2:
        pytest.skip("needs 2 numba threads")
    big = Microenvironment((800.0, 800.0, 600.0), 20.0, ["oxygen"])  # 48000 values
    assert big._c.size >= PARALLEL_MIN_UPDATES
    ref = Microenvironment((800.0, 800.0, 600.0), 20.0, ["oxygen"], parallel=False)
    for m in (big, ref):
        m.set_boundary("oxygen", "xmin", "dirichlet", 50.0)
    used = []
    for _ in range(4):
        big.advance(0.01, 2)
        ref.advance(0.01, 2)
        used.append(big.last_kernel)
    assert used[:2] == ["serial", "parallel"]  # both timed first
    assert np.array_equal(big.species_first(), ref.species_first())  # the choice never changes results
    big._chooser.speed = [2.0, 1.0]  # pretend parallel is twice as fast
    big._chooser.next_retry = 0
    choices = []
    for _ in range(4 * RETUNE_EVERY):
        choices.append(big._use_parallel())
        big._chooser.calls += 1
    # the slower one is re-tried once every RETUNE_EVERY × (slow/fast) = 2 × RETUNE_EVERY calls
    assert choices.count(False) == 1
    small = Microenvironment((100.0, 100.0), 20.0, ["oxygen"])
    small.advance(0.01)
    small.advance(0.01)
    assert small.last_kernel == "serial"


def test_flat_voxel_index_matches_ijk_on_faces_outside_and_in_2d_and_3d():
    """``positions_to_flat`` (what :meth:`voxel_index` uses) gives the flat index of
    ``positions_to_ijk`` for points inside, on voxel faces, outside (clipped), 2 or 3 columns."""
    from tme_sim.grid.geometry import positions_to_flat, positions_to_ijk

    rng = np.random.default_rng(4)
    for shape in ((1, 50, 50), (7, 9, 11), (1, 1, 5)):
        _, ny, nx = shape
        pos = rng.uniform(-30.0, 1100.0, (2000, 3))
        pos[::5] = np.round(pos[::5] / 20.0) * 20.0  # exactly on faces
        for p in (pos, pos[:, :2]):
            ijk = positions_to_ijk(p, shape, 20.0)
            flat = positions_to_flat(p, shape, 20.0)
            assert np.array_equal(flat, (ijk[:, 2] * ny + ijk[:, 1]) * nx + ijk[:, 0])
    bad = np.array([[1.0, np.nan, 0.0]])
    with pytest.raises(GridError, match="position 0 is not finite"):
        positions_to_flat(bad, (1, 50, 50), 20.0)


def test_row_order_skips_constant_columns_without_changing_the_order():
    """Leaving out columns equal in every row gives exactly the full lexicographic order."""
    rng = np.random.default_rng(3)
    n, s = 500, 4
    vol = rng.choice([900.0, 1000.0, 1100.0], n)  # ties, so later columns matter
    sec = rng.choice([0.0, 0.5, 1.0], (n, s))
    sec[:, 1] = 0.25  # constant columns
    sat = np.ones((n, s))
    upt = rng.choice([0.0, 2.0], (n, s))
    exp = np.zeros((n, s))
    exp[::7, 2] = np.nan  # a column holding NaN is kept
    keys = np.column_stack([vol, sec, sat, upt, exp])
    full = np.lexsort(keys.T[::-1])
    np.testing.assert_array_equal(K.coupling_row_order(vol, sec, sat, upt, exp), full)
    same = np.full(n, 7.0)
    np.testing.assert_array_equal(K.coupling_row_order(same, sat, sat, sat, sat), np.arange(n))
    assert K.coupling_row_order(np.zeros(0), *(np.zeros((0, s)),) * 4).shape == (0,)
