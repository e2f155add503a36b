"""The Douglas–Rachford ADI scheme of the grid (``scheme = "adi"``, tme_sim/grid/adi.py).

Checked against the exact steady state of the unsplit discrete problem (a sparse direct solve),
which ADI must reach for any dt while LOD is off by O(dt); plus stability at large dt, mass
conservation, first-order convergence of a transient, incremental refactorisation and
serial/parallel identity.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spl

from tme_sim.errors import GridError
from tme_sim.grid import Microenvironment
from tme_sim.grid.substrates import SubstrateParams

L, DX, D, LAM = 400.0, 20.0, 1e5, 0.1


def _setup(scheme: str, *, parallel: bool | None = None, uptake: float = 10.0, seed: int = 0) -> Microenvironment:
    """Oxygen-like field: Dirichlet xmin face (38), a Dirichlet 'vessel' segment (20), decay, and a
    cluster of cells that take up fast and secrete slowly towards a saturation."""
    m = Microenvironment((L, L), DX, [SubstrateParams("o", "mmHg", D, LAM)], scheme=scheme, parallel=parallel)
    m.set_boundary("o", "xmin", "dirichlet", 38.0)
    m.set_field("o", 38.0)
    rng = np.random.default_rng(seed)
    n = 80
    pos = np.zeros((n, 3))
    pos[:, :2] = np.clip(rng.normal(L / 2, L / 6, (n, 2)), 1.0, L - 1.0)
    z = np.zeros((n, 1))
    m.set_cell_coupling(m.voxel_index(pos), np.full(n, 2494.0), z + 0.5, z + 5.0, np.full((n, 1), uptake), z)
    mask = np.zeros(m.shape, bool)
    mask[0, 3, 2:8] = True
    m.set_dirichlet_mask("o", mask, 20.0)
    return m


def _exact_steady_state(m: Microenvironment) -> np.ndarray:
    """Solve D∇²c − λc + A − Bc + C = 0 on the voxel grid (same face and mask treatment)."""
    _, ny, nx = m.shape
    N = nx * ny
    r = D / DX**2
    rows, cols, vals = [], [], []
    rhs = np.zeros(N)
    mask_vox, mask_val = m._masks[0]
    fixed = dict(zip(mask_vox.tolist(), mask_val.tolist(), strict=True))
    A = np.zeros(N)
    B = np.zeros(N)
    A[m._occ] = m._A[0] + m._C[0]
    B[m._occ] = m._B[0]
    kind, val = m._bc_kind[0], m._bc_value[0]
    for j in range(ny):
        for i in range(nx):
            v = j * nx + i
            if v in fixed:
                rows.append(v), cols.append(v), vals.append(1.0)
                rhs[v] = fixed[v]
                continue
            diag = -LAM - B[v]
            for di, dj, face in ((-1, 0, 0), (1, 0, 1), (0, -1, 2), (0, 1, 3)):
                ii, jj = i + di, j + dj
                if 0 <= ii < nx and 0 <= jj < ny:
                    rows.append(v), cols.append(jj * nx + ii), vals.append(r)
                    diag -= r
                elif kind[face]:
                    diag -= 2 * r
                    rhs[v] -= 2 * r * val[face]
            rows.append(v), cols.append(v), vals.append(diag)
            rhs[v] -= A[v]
    M = sp.csr_matrix((vals, (rows, cols)), shape=(N, N))
    return spl.spsolve(M, rhs).reshape(ny, nx)


@pytest.mark.parametrize("dt", [0.01, 0.1, 0.25])
def test_adi_reaches_the_exact_discrete_steady_state_for_any_dt(dt):
    m = _setup("adi")
    exact = _exact_steady_state(m)
    m.advance(dt, round(600 / dt))
    np.testing.assert_allclose(m.field("o")[0], exact, rtol=1e-7, atol=1e-7)


def test_lod_steady_state_error_grows_with_dt_and_adi_has_none():
    exact = _exact_steady_state(_setup("lod"))
    err = {}
    for dt in (0.01, 0.1):
        m = _setup("lod")
        m.advance(dt, round(120 / dt))
        err[dt] = np.abs(m.field("o")[0] - exact).max()
    assert err[0.1] > err[0.01] > 1.0  # LOD: an O(dt) bias of mmHg, already at 0.01 min
    m = _setup("adi")
    m.advance(0.1, 1200)
    assert np.abs(m.field("o")[0] - exact).max() < 1e-6 * err[0.01]


def test_adi_stays_stable_and_nonnegative_at_large_steps():
    m = _setup("adi", uptake=100.0)
    for _ in range(20):
        m.advance(1.0, 30)
        f = m.field("o")
        assert np.all(np.isfinite(f)) and f.min() >= 0.0 and f.max() <= 38.0 + 1e-9


def test_adi_conserves_mass_with_zero_flux_faces():
    m = Microenvironment(
        (600.0, 400.0), 20.0, [SubstrateParams("a", "1", 1e5, 0.0), SubstrateParams("b", "1", 300.0, 0.0)], scheme="adi"
    )
    # smooth data: on rough data the positivity limiter max(c + δ, 0) can act and add mass
    _, y, x = np.meshgrid([0.0], np.arange(20) + 0.5, np.arange(30) + 0.5, indexing="ij")
    for name in m.names:
        m.set_field(name, 5.0 + 4.0 * np.cos(np.pi * x / 30) * np.cos(2 * np.pi * y / 20))
    before = [m.total_amount(n) for n in m.names]
    m.advance(0.1, 300)
    for name, b in zip(m.names, before, strict=True):
        assert abs(m.total_amount(name) - b) / b < 1e-10
    assert np.ptp(m.field("a")) < 1e-6


def test_adi_transient_is_first_order_in_dt():
    """A decaying cosine mode between zero-flux walls: the error halves with dt."""
    Lx, k = 400.0, np.pi / 400.0
    Dc = 1000.0
    errs = []
    for dt in (0.2, 0.1, 0.05):
        m = Microenvironment((Lx, 40.0), 10.0, [SubstrateParams("c", "1", Dc, 0.0)], scheme="adi")
        x = (np.arange(40) + 0.5) * 10.0
        m.set_field("c", 1.0 + np.broadcast_to(np.cos(k * x), m.shape))
        T = 20.0
        m.advance(dt, round(T / dt))
        # exact decay rate of the discrete mode, so only the time error is measured
        lam_h = 4 * Dc / 10.0**2 * np.sin(k * 10.0 / 2) ** 2
        expected = 1.0 + np.exp(-lam_h * T) * np.cos(k * x)
        errs.append(np.abs(m.field("c")[0, 0] - expected).max())
    assert 1.7 < errs[0] / errs[1] < 2.3 and 1.7 < errs[1] / errs[2] < 2.3


def test_incremental_refactorisation_matches_a_full_rebuild():
    m = _setup("adi")
    m.advance(0.1, 5)
    rng = np.random.default_rng(3)
    n = 80
    pos = np.zeros((n, 3))
    pos[:, :2] = rng.uniform(1.0, L - 1.0, (n, 2))
    z = np.zeros((n, 1))
    m.set_cell_coupling(m.voxel_index(pos), np.full(n, 2494.0), z, z, np.full((n, 1), 3.0), z)
    incremental = [a.copy() for a in m._coupling_arrays(0.1)]
    m._adi_cache = None
    m._coupling_key = None
    full = m._coupling_arrays(0.1)
    for a, b in zip(incremental, full, strict=True):
        np.testing.assert_array_equal(a, b)


def test_adi_serial_and_parallel_kernels_agree_bit_for_bit():
    out = []
    for parallel in (False, True):
        m = _setup("adi", parallel=parallel)
        m.advance(0.1, 50)
        out.append(m.field("o").copy())
    np.testing.assert_array_equal(out[0], out[1])


def test_adi_is_2d_only_and_schemes_are_checked():
    with pytest.raises(GridError, match="2D"):
        Microenvironment((100.0, 100.0, 100.0), 20.0, ["oxygen"], scheme="adi")
    with pytest.raises(GridError, match="scheme must be one of"):
        Microenvironment((100.0, 100.0), 20.0, ["oxygen"], scheme="crank")


def test_adi_state_dict_round_trip_continues_identically():
    a = _setup("adi")
    a.advance(0.1, 20)
    b = Microenvironment((L, L), DX, [SubstrateParams("o", "mmHg", D, LAM)], scheme="adi")
    b.load_state_dict(a.state_dict())
    a.advance(0.1, 20)
    b.advance(0.1, 20)
    np.testing.assert_array_equal(a.field("o"), b.field("o"))
