"""Numba kernels of the implicit scheme (``scheme = "implicit"``): one backward-Euler step of the
whole unsplit discrete problem per substep, solved by warm-started, Jacobi-preconditioned
conjugate gradients.

Same layout as :mod:`tme_sim.grid.kernels`: fields ``(S, nz, ny, nx)`` C-contiguous (``nz == 1``
in 2D), flat voxel ``v = (k*ny + j)*nx + i``.

Why a third scheme. LOD (BioFVM's splitting) has an ``O(dt)`` steady-state bias that is tens of
per cent around vessels and consuming tissue at dt = 0.01 min; the Douglas ADI scheme
(:mod:`tme_sim.grid.adi`) is exact at steady state but, in 3D, its three factors do not commute
with the per-voxel uptake and it oscillates at dt ≳ 0.1 min (measured: no converged steady state
at dt = 1 min). Backward Euler on the unsplit operator is unconditionally stable, positivity
preserving (the matrix is an M-matrix) and its fixed point is the exact discrete steady state.
Per substep and substrate, in increment form::

    M δ = dt·(A c + f − R c) ,   c⁺ = max(c + δ, 0) ,   M = (1 + dt λ + dt R) I − dt D ∇²_h

with ``∇²_h`` the 5/7-point Laplacian (zero-flux faces; a Dirichlet face adds ``2 D/dx²`` to the
diagonal), ``R`` the cells' linear uptake ``B`` (per occupied voxel) and ``f`` their source
``A_cell + C``. Dirichlet voxels (vessels) are eliminated: their increment is zero (their inverse
diagonal is 0, so no search direction ever moves them) and their value enters the neighbours'
right-hand side through the residual, so they hold their value exactly inside the solve. ``M`` is
symmetric positive definite on the free voxels, hence CG. Warm start: the previous substep's
increment. Stop when ``max |r_i| ≤ tol`` (an absolute tolerance in the field's unit, set from the
field's scale by the caller) or after ``max_iter`` iterations: ``M`` is a diagonally dominant
M-matrix with diagonal ≥ 1, so ``‖M⁻¹‖∞ ≤ 1`` and every increment is then within ``tol`` of the
exact backward-Euler increment (and mass within ``n_voxels·tol``).

Determinism: every dot product is summed per z-plane (3D) or row (2D) and the partial sums are
added in plane order, so serial and parallel compilations give bit-identical results (no
``fastmath``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["implicit_parallel", "implicit_serial", "inverse_diagonal"]


@njit(cache=True)
def inverse_diagonal(inv_diag, s, r, a, kind, dir_flat, dir_lo, dir_hi, occ, dtB):  # pragma: no cover - numba
    """Fill ``inv_diag (nz, ny, nx)`` with ``1 / M_ii`` of substrate ``s`` (0 at Dirichlet voxels).

    ``r = D dt/dx²``, ``a = dt λ``, ``kind (S, 6)`` face kinds (1 = Dirichlet), Dirichlet voxels
    ``dir_flat[dir_lo:dir_hi]``, occupied voxels ``occ (M,)`` with ``dtB (S, M)`` = dt·B.
    """
    nz, ny, nx = inv_diag.shape
    flat = inv_diag.reshape(-1)
    for k in range(nz):
        nbk = (k > 0) + (k < nz - 1) + 2.0 * ((k == 0) * (kind[s, 4] != 0) + (k == nz - 1) * (kind[s, 5] != 0))
        if nz == 1:
            nbk = 0.0
        for j in range(ny):
            nbj = (j > 0) + (j < ny - 1) + 2.0 * ((j == 0) * (kind[s, 2] != 0) + (j == ny - 1) * (kind[s, 3] != 0))
            for i in range(nx):
                nbi = (i > 0) + (i < nx - 1) + 2.0 * ((i == 0) * (kind[s, 0] != 0) + (i == nx - 1) * (kind[s, 1] != 0))
                inv_diag[k, j, i] = 1.0 + a + r * (nbi + nbj + nbk)
    for m in range(occ.shape[0]):
        flat[occ[m]] += dtB[s, m]
    for e in range(flat.shape[0]):
        flat[e] = 1.0 / flat[e]
    for e in range(dir_lo, dir_hi):
        flat[dir_flat[e]] = 0.0


@njit(cache=True, inline="always")
def _residual_plane(c, res, k, r, a, kind, val, s):  # pragma: no cover - numba
    """``res = dt·(D∇²c − λc)`` on plane ``k`` of one substrate's field ``c (nz, ny, nx)``; a
    missing neighbour is zero flux, a Dirichlet face ``f`` (``kind[s, f]``) adds
    ``2(val[s, f] − c)``."""
    nz, ny, nx = c.shape
    for j in range(ny):
        for i in range(nx):
            u = c[k, j, i]
            lap = 0.0
            if i > 0:
                lap += c[k, j, i - 1] - u
            elif kind[s, 0] != 0:
                lap += 2.0 * (val[s, 0] - u)
            if i < nx - 1:
                lap += c[k, j, i + 1] - u
            elif kind[s, 1] != 0:
                lap += 2.0 * (val[s, 1] - u)
            if j > 0:
                lap += c[k, j - 1, i] - u
            elif kind[s, 2] != 0:
                lap += 2.0 * (val[s, 2] - u)
            if j < ny - 1:
                lap += c[k, j + 1, i] - u
            elif kind[s, 3] != 0:
                lap += 2.0 * (val[s, 3] - u)
            if nz > 1:
                if k > 0:
                    lap += c[k - 1, j, i] - u
                elif kind[s, 4] != 0:
                    lap += 2.0 * (val[s, 4] - u)
                if k < nz - 1:
                    lap += c[k + 1, j, i] - u
                elif kind[s, 5] != 0:
                    lap += 2.0 * (val[s, 5] - u)
            res[k, j, i] = r * lap - a * u


@njit(cache=True, inline="always")
def _matvec_plane(p, q, inv_diag, k, r):  # pragma: no cover - numba
    """``q = M p`` on plane ``k`` (``M_ii = 1/inv_diag``, off-diagonals ``−r``); returns the plane's
    ``Σ p·q``. Dirichlet voxels (``inv_diag == 0``) have ``p = 0`` and are skipped."""
    nz, ny, nx = p.shape
    acc = 0.0
    for j in range(ny):
        for i in range(nx):
            idg = inv_diag[k, j, i]
            if idg == 0.0:
                q[k, j, i] = 0.0
                continue
            nb = 0.0
            if i > 0:
                nb += p[k, j, i - 1]
            if i < nx - 1:
                nb += p[k, j, i + 1]
            if j > 0:
                nb += p[k, j - 1, i]
            if j < ny - 1:
                nb += p[k, j + 1, i]
            if k > 0:
                nb += p[k - 1, j, i]
            if k < nz - 1:
                nb += p[k + 1, j, i]
            v = p[k, j, i] / idg - r * nb
            q[k, j, i] = v
            acc += p[k, j, i] * v
    return acc


@njit(inline="always")
def _solve(x, rr, p, q, inv_diag, r, tol, max_iter, part):  # pragma: no cover - numba
    """Preconditioned CG for ``M x = rhs`` where ``rr`` holds ``rhs − M x`` on entry (``x`` the
    warm start); returns the iteration count. ``part (nz,)`` scratch for per-plane sums. Stops when
    ``max |rr| ≤ tol`` over the free voxels."""
    nz, ny, nx = x.shape
    # z = rr·inv_diag ; p = z ; rz = Σ rr·z ; zmax = max |z|
    for k in prange(nz):
        acc = 0.0
        for j in range(ny):
            for i in range(nx):
                z = rr[k, j, i] * inv_diag[k, j, i]
                p[k, j, i] = z
                acc += rr[k, j, i] * z
        part[k] = acc
    rz = 0.0
    for k in range(nz):
        rz += part[k]
    rmax = 0.0
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                if inv_diag[k, j, i] != 0.0 and abs(rr[k, j, i]) > rmax:
                    rmax = abs(rr[k, j, i])
    it = 0
    part_max = np.zeros(nz)
    while rmax > tol and it < max_iter and rz > 0.0:
        for k in prange(nz):
            part[k] = _matvec_plane(p, q, inv_diag, k, r)
        pq = 0.0
        for k in range(nz):
            pq += part[k]
        if not pq > 0.0:
            break
        alpha = rz / pq
        for k in prange(nz):
            acc = 0.0
            rm = 0.0
            for j in range(ny):
                for i in range(nx):
                    x[k, j, i] += alpha * p[k, j, i]
                    rv = rr[k, j, i] - alpha * q[k, j, i]
                    rr[k, j, i] = rv
                    acc += rv * rv * inv_diag[k, j, i]
                    if inv_diag[k, j, i] != 0.0 and abs(rv) > rm:
                        rm = abs(rv)
            part[k] = acc
            part_max[k] = rm
        rz_new = 0.0
        rmax = 0.0
        for k in range(nz):
            rz_new += part[k]
            if part_max[k] > rmax:
                rmax = part_max[k]
        it += 1
        if rmax <= tol:
            break
        beta = rz_new / rz
        rz = rz_new
        for k in prange(nz):
            for j in range(ny):
                for i in range(nx):
                    p[k, j, i] = rr[k, j, i] * inv_diag[k, j, i] + beta * p[k, j, i]
    return it


@njit(inline="always")
def _implicit(c, c2, x, rr, p, q, inv_diag, n_steps, rdt, adt, kind, val, dir_ptr, dir_flat,
              occ, F, B, tol, max_iter, iters):  # fmt: skip
    """``n_steps`` backward-Euler substeps, substrate by substrate.

    ``c (S, nz, ny, nx)`` fields (``c2`` the same memory as ``(S, n_voxels)``); ``x`` the
    increments of the last substep (warm start, same shape as ``c``); ``rr, p, q`` scratch of
    one substrate's shape; ``inv_diag (S, nz, ny, nx)`` from :func:`inverse_diagonal`;
    ``rdt, adt (S,)`` = D dt/dx², dt λ; ``kind, val (S, 6)`` faces; Dirichlet voxels
    ``dir_flat[dir_ptr[s, 0]:dir_ptr[s, -1]]``; occupied voxels ``occ (M,)`` with ``F = dt·(A +
    C)``, ``B = dt·B`` ``(S, M)``; ``tol (S,)`` absolute tolerances; ``iters (S,)`` receives the
    iterations of the last substep.
    """
    S, nz, ny, nx = c.shape
    part = np.zeros(nz)
    for _ in range(n_steps):
        for s in range(S):
            cs = c[s]
            xs = x[s]
            ids = inv_diag[s]
            r = rdt[s]
            for k in prange(nz):
                _residual_plane(cs, rr, k, r, adt[s], kind, val, s)
            rr2 = rr.reshape(-1)
            for m in range(occ.shape[0]):
                v = occ[m]
                rr2[v] += F[s, m] - B[s, m] * c2[s, v]
            for e in range(dir_ptr[s, 0], dir_ptr[s, dir_ptr.shape[1] - 1]):
                rr2[dir_flat[e]] = 0.0
                xs.reshape(-1)[dir_flat[e]] = 0.0
            # rr ← rhs − M·x (warm start): q = M x
            for k in prange(nz):
                _matvec_plane(xs, q, ids, k, r)
            for k in prange(nz):
                for j in range(ny):
                    for i in range(nx):
                        rr[k, j, i] -= q[k, j, i]
            iters[s] = _solve(xs, rr, p, q, ids, r, tol[s], max_iter, part)
            for k in prange(nz):
                for j in range(ny):
                    for i in range(nx):
                        v = cs[k, j, i] + xs[k, j, i]
                        cs[k, j, i] = v if v > 0.0 else 0.0


# Serial and parallel twins are separate functions on purpose (numba's disk cache does not tell a
# function's serial and parallel compilations apart; see tme_sim/grid/kernels.py).


@njit(cache=True)
def implicit_serial(c, c2, x, rr, p, q, inv_diag, n_steps, rdt, adt, kind, val, dir_ptr, dir_flat,
                    occ, F, B, tol, max_iter, iters):  # fmt: skip
    """Serial compilation of :func:`_implicit`."""
    _implicit(c, c2, x, rr, p, q, inv_diag, n_steps, rdt, adt, kind, val, dir_ptr, dir_flat,
              occ, F, B, tol, max_iter, iters)  # fmt: skip


@njit(cache=True, parallel=True)
def implicit_parallel(c, c2, x, rr, p, q, inv_diag, n_steps, rdt, adt, kind, val, dir_ptr, dir_flat,
                      occ, F, B, tol, max_iter, iters):  # fmt: skip
    """Parallel compilation of :func:`_implicit` (prange over z-planes)."""
    _implicit(c, c2, x, rr, p, q, inv_diag, n_steps, rdt, adt, kind, val, dir_ptr, dir_flat,
              occ, F, B, tol, max_iter, iters)  # fmt: skip
