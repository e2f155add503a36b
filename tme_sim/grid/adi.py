"""Numba kernels of the Douglas–Rachford ADI scheme (``scheme = "adi"`` of a 2D grid).

Same layout as :mod:`tme_sim.grid.kernels`: ``c`` is C-contiguous ``(S, 1, ny, nx)``, ``c2`` the
same memory as ``(S, ny*nx)``; ``res`` / ``res2`` a work array of the same shape.

Why a second scheme. LOD (BioFVM's method, :mod:`~tme_sim.grid.kernels`) solves one implicit
problem per axis, ``(I − dt·A_x)(I − dt·A_y) c⁺ = c``, then applies the cell coupling. Its fixed
point is not the steady state of the PDE: expanding the product leaves ``dt²·A_x·A_y·c``, which does
not vanish when ``c⁺ = c``, so the steady state is off by ``O(dt·D·∂⁴c)``. For oxygen
(D = 1e5 µm²/min) consumed by a tumor this is ~15 % of the field at dt = 0.01 min and grows with
dt (``benchmarks/flagship_dt.py``). The Douglas scheme factorises the *increment* instead::

    (I − dt·A_x')(I − dt·A_y') δ = dt·(A c + f − R c) ,   c⁺ = c + δ ,   A_a' = A_a − (λ + R)/2

with ``A`` the full discrete Laplacian (zero-flux or Dirichlet faces) minus decay ``λ``, ``R`` the
cells' linear uptake ``B`` (per voxel, diagonal) and ``f`` their source ``A_cell + C``. At a fixed
point ``δ = 0`` the right-hand side vanishes: the field IS the steady state of the unsplit
discrete problem, for any dt. First order in time; conserves mass with zero-flux faces.

Design choices, each measured:

* ``R`` is shared between the two axis factors. As a third factor ``(I + dt·R)`` it does not
  commute with the sweeps and the scheme goes unstable at dt ≳ 0.05 min for tumor-scale oxygen
  uptake; with two factors it is the Douglas–Rachford splitting of two monotone operators,
  which is unconditionally stable (converged steady states at dt = 0.01 … 1 min in the tests).
* Dirichlet voxels (vessels) are a penalty ``κ (c_D − c)`` with ``κ·dt/2 = 5e11`` on the
  diagonal of both factors, so their rows are numerically identity rows (the increment there is
  ~1e-12 of its neighbours'); their values are re-imposed after each substep. Zeroing the
  increment between the sweeps (as LOD does with the field) breaks the fixed point and diverges.
* Because the diagonal varies per voxel, each axis has per-voxel Thomas factorisations
  (:func:`voxel_factors`; four field-sized arrays), rebuilt when dt, faces or masks change, and
  only on the lines whose diagonal changed when just the cells moved.
* Not positivity-preserving by construction: the update is ``c⁺ = max(c + δ, 0)`` (a limiter
  that only acts on under-resolved fronts).
* 2D only. In 3D the three factors do not commute with the per-voxel uptake: measured on a
  vessel line and a point vessel in packed tissue (tests/test_grid_vessels.py's setup), exact at
  dt = 0.01 min but 2–9 % off at 0.1 min and no converged state at 1 min (−40 … −98 %); 3D
  grids use the implicit scheme (:mod:`tme_sim.grid.implicit`).

Cost per substep: a residual pass, two sweeps of ``δ`` reading per-voxel coefficients and an
update pass (~2.5× an LOD substep), paid back because dt can be ~10× larger for better accuracy.
Parallel over row / column blocks like the LOD kernels, bit-identical for any thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from tme_sim.grid.kernels import BLOCK, _impose_dirichlet

__all__ = ["adi_2d_parallel", "adi_2d_serial", "voxel_factors"]


@njit(cache=True, inline="always")
def _factor_line(ext, inv, g, r, a, add_lo, add_hi):  # pragma: no cover - numba
    """Thomas factorisation of one grid line (1D views, any stride): diagonal
    ``1 + a + ext[i] + r·(#neighbours)`` plus ``add_lo``/``add_hi`` on the end voxels (``2r`` for a
    Dirichlet face), off-diagonals ``−r``; writes ``inv`` and ``g = r·inv``."""
    n = ext.shape[0]
    prev = 0.0
    for i in range(n):
        d = 1.0 + a + ext[i] + r * ((i > 0) + (i < n - 1))
        if i == 0:
            d += add_lo
        if i == n - 1:
            d += add_hi
        prev = 1.0 / (d if i == 0 else d - r * r * prev)
        inv[i] = prev
        g[i] = r * prev


@njit(cache=True)
def coupling_diagonal(base, mask, occ, B, scale, old, new, dirty_x, dirty_y, dirty_z):  # pragma: no cover - numba
    """The per-voxel diagonal term ``extra`` of :func:`voxel_factors` and the lines it changed.

    ``new (S, nz, ny, nx)`` = ``base`` (the Dirichlet penalty ``κ/dim`` on mask voxels, else 0)
    with ``scale·B[s, m]`` (``scale`` = dt/dim, ``B (S, M)`` the cells' uptake sums) written at
    the occupied voxels ``occ (M,)`` that are not masked (``mask``, same shape as ``base``).
    ``dirty_x (S, nz, ny)``, ``dirty_y (S, nz, nx)``, ``dirty_z (S, ny, nx)`` are set where a
    line has a voxel with ``new != old`` (a NaN ``old`` marks every line dirty).
    """
    S, nz, ny, nx = base.shape
    new[...] = base
    for m in range(occ.shape[0]):
        v = occ[m]
        i = v % nx
        j = (v // nx) % ny
        k = v // (nx * ny)
        for s in range(S):
            if not mask[s, k, j, i]:
                new[s, k, j, i] = scale * B[s, m]
    dirty_x[...] = False
    dirty_y[...] = False
    dirty_z[...] = False
    for s in range(S):
        for k in range(nz):
            for j in range(ny):
                for i in range(nx):
                    if new[s, k, j, i] != old[s, k, j, i]:
                        dirty_x[s, k, j] = True
                        dirty_y[s, k, i] = True
                        dirty_z[s, j, i] = True


@njit(cache=True)
def voxel_factors(extra, rdt, adt_axis, kind, dim, dirty_x, dirty_y, dirty_z,
                  inv_x, g_x, inv_y, g_y, inv_z, g_z):  # fmt: skip  # pragma: no cover - numba
    """Per-voxel Thomas factorisations of the axis factors ``I − dt·(A_a − (λ + R)/dim)``
    (written for any ``dim``; the ADI step kernels are 2D).

    ``extra (S, nz, ny, nx)`` = the per-voxel ``dt·(R + κ·mask)/dim``; ``rdt (S,)`` = D dt/dx²;
    ``adt_axis (S,)`` = dt λ/dim; ``kind (S, 6)`` face kinds (1 = Dirichlet: ``2r`` more on the
    diagonal of the face voxel). Refactors only the lines flagged in ``dirty_x (S, nz, ny)``,
    ``dirty_y (S, nz, nx)``, ``dirty_z (S, ny, nx)`` (z only in 3D), writing ``inv_*`` and ``g_*``
    (same shape as ``extra``) with the recurrence of
    :func:`~tme_sim.grid.kernels.thomas_coefficients`.
    """
    S, nz, ny, nx = extra.shape
    for s in range(S):
        r = rdt[s]
        a = adt_axis[s]
        face = np.empty(6)
        for f in range(6):
            face[f] = 2.0 * r * (kind[s, f] != 0)
        for k in range(nz):
            for j in range(ny):
                if dirty_x[s, k, j]:
                    _factor_line(extra[s, k, j, :], inv_x[s, k, j, :], g_x[s, k, j, :], r, a, face[0], face[1])
            for i in range(nx):
                if dirty_y[s, k, i]:
                    _factor_line(extra[s, k, :, i], inv_y[s, k, :, i], g_y[s, k, :, i], r, a, face[2], face[3])
        if dim == 3:
            for j in range(ny):
                for i in range(nx):
                    if dirty_z[s, j, i]:
                        _factor_line(extra[s, :, j, i], inv_z[s, :, j, i], g_z[s, :, j, i], r, a, face[4], face[5])


@njit(cache=True, inline="always")
def _residual_voxel(c, res, s, j, i, r, a, kind, val):  # pragma: no cover - numba
    """``res = dt·(D∇²c − λc)`` at voxel (j, i) of substrate ``s``, any position: a missing
    neighbour is zero flux, a Dirichlet face (``kind[s, face]``, value ``val[s, face]``, faces
    xmin, xmax, ymin, ymax) contributes ``2(c_face − c)`` (value on the face, half a voxel away)."""
    ny = c.shape[2]
    nx = c.shape[3]
    u = c[s, 0, j, i]
    lap = 0.0
    if i > 0:
        lap += c[s, 0, j, i - 1] - u
    elif kind[s, 0] != 0:
        lap += 2.0 * (val[s, 0] - u)
    if i < nx - 1:
        lap += c[s, 0, j, i + 1] - u
    elif kind[s, 1] != 0:
        lap += 2.0 * (val[s, 1] - u)
    if j > 0:
        lap += c[s, 0, j - 1, i] - u
    elif kind[s, 2] != 0:
        lap += 2.0 * (val[s, 2] - u)
    if j < ny - 1:
        lap += c[s, 0, j + 1, i] - u
    elif kind[s, 3] != 0:
        lap += 2.0 * (val[s, 3] - u)
    res[s, 0, j, i] = r * lap - a * u


@njit(cache=True, inline="always")
def _residual_rows(c, res, s, j0, j1, rdt, adt, kind, val):  # pragma: no cover - numba
    """``res = dt·(D∇²c − λc)`` on rows ``j0:j1`` of substrate ``s`` (``rdt (S,) = D dt/dx²``,
    ``adt (S,) = dt λ``, ``kind/val (S, 6)`` face kinds and values). Interior voxels take a
    branch-free 5-point stencil; the domain's edge voxels go through :func:`_residual_voxel`."""
    ny = c.shape[2]
    nx = c.shape[3]
    r = rdt[s]
    a = adt[s]
    for j in range(j0, j1):
        if j == 0 or j == ny - 1 or nx < 3:
            for i in range(nx):
                _residual_voxel(c, res, s, j, i, r, a, kind, val)
            continue
        _residual_voxel(c, res, s, j, 0, r, a, kind, val)
        _residual_voxel(c, res, s, j, nx - 1, r, a, kind, val)
        for i in range(1, nx - 1):
            u = c[s, 0, j, i]
            lap = (c[s, 0, j, i - 1] + c[s, 0, j, i + 1]) + (c[s, 0, j - 1, i] + c[s, 0, j + 1, i]) - 4.0 * u
            res[s, 0, j, i] = r * lap - a * u


@njit(cache=True, inline="always")
def _coupling_residual(c2, res2, occ, F, B, lo, hi):  # pragma: no cover - numba
    """``res += dt·(f − B·c)`` at occupied voxels ``occ[lo:hi]`` (``F = dt·f``, ``B = dt·B``)."""
    for s in range(c2.shape[0]):
        for m in range(lo, hi):
            v = occ[m]
            res2[s, v] += F[s, m] - B[s, m] * c2[s, v]


@njit(cache=True, inline="always")
def _sweep_x(res, s, k, j0, j1, inv, g):  # pragma: no cover - numba
    """x solves of rows ``j0:j1`` of plane ``k`` with per-voxel factors ``inv, g``; two rows at a
    time as independent chains (instruction-level parallelism), same arithmetic per element."""
    nx = res.shape[3]
    j = j0
    while j + 2 <= j1:
        a0 = res[s, k, j, 0] * inv[s, k, j, 0]
        a1 = res[s, k, j + 1, 0] * inv[s, k, j + 1, 0]
        res[s, k, j, 0] = a0
        res[s, k, j + 1, 0] = a1
        for i in range(1, nx):
            a0 = res[s, k, j, i] * inv[s, k, j, i] + g[s, k, j, i] * a0
            a1 = res[s, k, j + 1, i] * inv[s, k, j + 1, i] + g[s, k, j + 1, i] * a1
            res[s, k, j, i] = a0
            res[s, k, j + 1, i] = a1
        for i in range(nx - 2, -1, -1):
            a0 = res[s, k, j, i] + g[s, k, j, i] * a0
            a1 = res[s, k, j + 1, i] + g[s, k, j + 1, i] * a1
            res[s, k, j, i] = a0
            res[s, k, j + 1, i] = a1
        j += 2
    if j < j1:
        a0 = res[s, k, j, 0] * inv[s, k, j, 0]
        res[s, k, j, 0] = a0
        for i in range(1, nx):
            a0 = res[s, k, j, i] * inv[s, k, j, i] + g[s, k, j, i] * a0
            res[s, k, j, i] = a0
        for i in range(nx - 2, -1, -1):
            a0 = res[s, k, j, i] + g[s, k, j, i] * a0
            res[s, k, j, i] = a0


@njit(cache=True, inline="always")
def _sweep_y(res, s, k, i0, i1, inv, g):  # pragma: no cover - numba
    """y solves of columns ``i0:i1`` of plane ``k`` (vectorised over x)."""
    ny = res.shape[2]
    for i in range(i0, i1):
        res[s, k, 0, i] *= inv[s, k, 0, i]
    for j in range(1, ny):
        for i in range(i0, i1):
            res[s, k, j, i] = res[s, k, j, i] * inv[s, k, j, i] + g[s, k, j, i] * res[s, k, j - 1, i]
    for j in range(ny - 2, -1, -1):
        for i in range(i0, i1):
            res[s, k, j, i] = res[s, k, j, i] + g[s, k, j, i] * res[s, k, j + 1, i]


@njit(cache=True, inline="always")
def _apply_rows(c, res, s, k, j0, j1, i0, i1):  # pragma: no cover - numba
    """``c ← max(c + δ, 0)`` on rows ``j0:j1``, columns ``i0:i1`` of plane ``k``."""
    for j in range(j0, j1):
        for i in range(i0, i1):
            v = c[s, k, j, i] + res[s, k, j, i]
            c[s, k, j, i] = v if v > 0.0 else 0.0


@njit(inline="always")
def _adi_2d(c, c2, res, res2, n_steps, rdt, adt, kind, val, inv_x, g_x, inv_y, g_y,
            dir_ptr, dir_flat, dir_value, dir_zero, occ_ptr, occ, F, B):  # fmt: skip
    """``n_steps`` Douglas substeps on a 2D grid (``nz == 1``).

    Dirichlet voxels ``dir_*`` (``dir_zero``: zeros of the same length) and occupied voxels are
    grouped by column block of :data:`BLOCK` columns, as in the LOD kernel. Passes: residual
    (parallel over row blocks); coupling residual, zero residual at Dirichlet voxels (serial);
    x solves (row blocks); y solves, update, Dirichlet values (column blocks).
    """
    S, _, ny, nx = c.shape
    nrow = (ny + BLOCK - 1) // BLOCK
    ncol = (nx + BLOCK - 1) // BLOCK
    for _ in range(n_steps):
        for b in prange(nrow):
            for s in range(S):
                _residual_rows(c, res, s, b * BLOCK, min(ny, (b + 1) * BLOCK), rdt, adt, kind, val)
        _coupling_residual(c2, res2, occ, F, B, 0, occ_ptr[ncol])
        for s in range(S):
            _impose_dirichlet(res2, s, dir_ptr, dir_flat, dir_zero, 0, ncol)
        for b in prange(nrow):
            for s in range(S):
                _sweep_x(res, s, 0, b * BLOCK, min(ny, (b + 1) * BLOCK), inv_x, g_x)
        for b in prange(ncol):
            i0 = b * BLOCK
            i1 = min(nx, (b + 1) * BLOCK)
            for s in range(S):
                _sweep_y(res, s, 0, i0, i1, inv_y, g_y)
                _apply_rows(c, res, s, 0, 0, ny, i0, i1)
                _impose_dirichlet(c2, s, dir_ptr, dir_flat, dir_value, b, b + 1)


# Serial and parallel twins are separate functions on purpose (numba's disk cache does not tell a
# function's serial and parallel compilations apart; see tme_sim/grid/kernels.py).


@njit(cache=True)
def adi_2d_serial(c, c2, res, res2, n_steps, rdt, adt, kind, val, inv_x, g_x, inv_y, g_y,
                  dir_ptr, dir_flat, dir_value, dir_zero, occ_ptr, occ, F, B):  # fmt: skip
    """Serial compilation of :func:`_adi_2d`."""
    _adi_2d(c, c2, res, res2, n_steps, rdt, adt, kind, val, inv_x, g_x, inv_y, g_y,
            dir_ptr, dir_flat, dir_value, dir_zero, occ_ptr, occ, F, B)  # fmt: skip


@njit(cache=True, parallel=True)
def adi_2d_parallel(c, c2, res, res2, n_steps, rdt, adt, kind, val, inv_x, g_x, inv_y, g_y,
                    dir_ptr, dir_flat, dir_value, dir_zero, occ_ptr, occ, F, B):  # fmt: skip
    """Parallel compilation of :func:`_adi_2d`."""
    _adi_2d(c, c2, res, res2, n_steps, rdt, adt, kind, val, inv_x, g_x, inv_y, g_y,
            dir_ptr, dir_flat, dir_value, dir_zero, occ_ptr, occ, F, B)  # fmt: skip
