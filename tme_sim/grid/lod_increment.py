"""Numba kernels of LOD in increment form (``scheme = "lod"``, ``lod_form = "increment"``).

BioFVM's LOD step is ``c⁺ = P⁻¹ (c + dt·sources)`` with ``P = (I + dt B) Π_a (I + dt A_a)`` the
product of its 1-D implicit factors (``A_a`` diffusion along axis ``a`` plus ``λ/dim``) and the
cells' uptake ``B``. Since ``P = M + E`` with ``M = I − dt·L`` the unsplit backward-Euler matrix
(``L c = D∇²c − (λ + B) c``) and ``E = dt²·(A_x A_y + …) + …`` the splitting's cross products,
its fixed point solves ``L c + f = E c / dt``, not ``L c + f = 0``: with ``D dt/dx² = 2.5``
(O2, dx 20 µm, dt 0.01 min) O2 20 µm from a 3D vessel is ~33 % (line) and ~63 % (point) too low
(``benchmarks/lod_splitting.py``). The increment form applies the same factors to the residual::

    ρ  = dt·(D∇²c − λc + A − Bc + C)                    (0 at Dirichlet voxels)
    δ  = P⁻¹ ρ + ω ρ / J ,   J = 1 + 2·dim·D dt/dx² + dt λ + dt B ,   ω = 1/2
    c⁺ = max(c + δ, 0)

so its fixed point is ``ρ = 0``: the exact discrete steady state (the ``implicit`` scheme's, to
rounding) for any ``dt``. ``P⁻¹ ρ`` alone is Douglas' approximate factorisation; in 3D it leaves
the shortest wavelengths almost undamped once ``D dt/dx²`` is large (per step ``1 − Σa/Π(1+a)``
with ``a ≈ 4 D dt/dx²`` per axis: 0.976 at dt 0.01 min, ~1 at dt 1 min), so the second term — a
half-weighted Jacobi step of the unsplit system — damps them (amplification ~0 for the
checkerboard mode). ``ω = 1/2`` is fixed by that analysis (Jacobi with weight ½ is convergent for
any diagonally dominant ``M``), not fitted. ``J`` uses the interior neighbour count everywhere, so
where no cells act it is one number per substrate and ``Σ δ = Σ ρ``: mass is conserved to
rounding in a closed box without decay (each 1-D factor with zero-flux ends preserves the sum).

The 1-D factors are the LOD sweeps of :mod:`tme_sim.grid.kernels` with the increment's
homogeneous data: Dirichlet faces add nothing (their value enters through ``ρ``), lines through
Dirichlet voxels are solved with those voxels as identity rows of value 0, so vessels keep their
value exactly. Cost per substep: one residual pass, LOD's sweeps on the increment and one update
pass (``benchmarks/diffusion.py``).

Passes (3D): A, parallel over y-rows — residual of the row, cell coupling and Dirichlet voxels
of that row; B, over z-planes — the Jacobi term into ``c``, then x and y sweeps of ``δ``; C, over
y-rows — z sweep, the uptake factor ``1/(1 + dt B)`` and ``c ← max(c + δ, 0)``. 2D: the same with
column blocks (A, C) and row blocks (B) of :data:`~tme_sim.grid.kernels.BLOCK`. Every value is
computed by the same arithmetic whichever thread runs it and nothing is reduced across work
items, so serial and parallel compilations agree bit for bit.
"""

from __future__ import annotations

from numba import njit, prange

from tme_sim.grid.kernels import BLOCK, _save_lines, _solve_saved_lines, _sweep_x, _sweep_y, _sweep_z

__all__ = ["OMEGA", "increment_2d_parallel", "increment_2d_serial", "increment_3d_parallel", "increment_3d_serial"]

OMEGA = 0.5
"""Weight of the Jacobi term (dimensionless; see the module docstring)."""


@njit(cache=True, inline="always")
def _residual_span(c, w, s, k, j, i0, i1, r, a, kind, val):  # pragma: no cover - numba
    """``w[s, k, j, i] = r·h²∇²c − a·c`` for ``i0 <= i < i1`` (``r = D dt/dx²``, ``a = dt λ``);
    a missing neighbour is zero flux, a Dirichlet face ``f`` (``kind[s, f] != 0``) adds
    ``2(val[s, f] − c)``. The y/z neighbours come from rows chosen once per span (the row itself
    where a neighbour is missing, so its difference is an exact 0), the x ends are done apart:
    the inner loop has no branch."""
    _, nz, ny, nx = c.shape
    row = c[s, k, j]
    rjm = c[s, k, j - 1] if j > 0 else row
    rjp = c[s, k, j + 1] if j < ny - 1 else row
    rkm = c[s, k - 1, j] if k > 0 else row
    rkp = c[s, k + 1, j] if k < nz - 1 else row
    fsum = 0.0  # Dirichlet faces met by the whole row: lap += fsum − fcnt·u
    fcnt = 0.0
    if j == 0 and kind[s, 2] != 0:
        fsum += 2.0 * val[s, 2]
        fcnt += 2.0
    if j == ny - 1 and kind[s, 3] != 0:
        fsum += 2.0 * val[s, 3]
        fcnt += 2.0
    if nz > 1 and k == 0 and kind[s, 4] != 0:
        fsum += 2.0 * val[s, 4]
        fcnt += 2.0
    if nz > 1 and k == nz - 1 and kind[s, 5] != 0:
        fsum += 2.0 * val[s, 5]
        fcnt += 2.0
    out = w[s, k, j]
    lo = max(i0, 1)
    hi = min(i1, nx - 1)
    for i in range(lo, hi):
        u = row[i]
        lap = (row[i - 1] - u) + (row[i + 1] - u) + (rjm[i] - u) + (rjp[i] - u) + (rkm[i] - u) + (rkp[i] - u)
        out[i] = r * (lap + (fsum - fcnt * u)) - a * u
    for i in (0, nx - 1):  # the x ends (once if nx == 1)
        if i < i0 or i >= i1:
            continue
        u = row[i]
        lap = (rjm[i] - u) + (rjp[i] - u) + (rkm[i] - u) + (rkp[i] - u) + (fsum - fcnt * u)
        if i > 0:
            lap += row[i - 1] - u
        elif kind[s, 0] != 0:
            lap += 2.0 * (val[s, 0] - u)
        if i < nx - 1:
            lap += row[i + 1] - u
        elif kind[s, 1] != 0:
            lap += 2.0 * (val[s, 1] - u)
        out[i] = r * lap - a * u
        if nx == 1:
            break


@njit(cache=True, inline="always")
def _coupling_and_vessels(c2, w2, occ, F, dtB, lo, hi, dir_ptr, dir_flat, g):  # pragma: no cover - numba
    """Add the cells' ``dt·(A + C) − dt·B·c`` of occupied voxels ``occ[lo:hi]`` to the residual and
    zero it at the Dirichlet voxels of work item ``g`` (every substrate)."""
    S = c2.shape[0]
    for s in range(S):
        for m in range(lo, hi):
            v = occ[m]
            w2[s, v] += F[s, m] - dtB[s, m] * c2[s, v]
        for e in range(dir_ptr[s, g], dir_ptr[s, g + 1]):
            w2[s, dir_flat[e]] = 0.0


@njit(cache=True, inline="always")
def _jacobi_span(c, w, s, k, j, i0, i1, jac0):  # pragma: no cover - numba
    """``c += ω·w / J`` over ``(k, j, i0:i1)`` where no cell acts (``J = jac0``; Dirichlet voxels
    have ``w = 0``); occupied voxels are corrected by :func:`_occupied_pass_c`."""
    f = OMEGA / jac0
    for i in range(i0, i1):
        c[s, k, j, i] += f * w[s, k, j, i]


@njit(cache=True, inline="always")
def _save_occupied(w2, occ, rho_occ, lo, hi):  # pragma: no cover - numba
    """Keep the residual of occupied voxels ``occ[lo:hi]`` (for their Jacobi term in pass C)."""
    for s in range(w2.shape[0]):
        for m in range(lo, hi):
            rho_occ[s, m] = w2[s, occ[m]]


@njit(cache=True, inline="always")
def _occupied_pass_c(c2, w2, occ, q, occ_jac, rho_occ, lo, hi):  # pragma: no cover - numba
    """Occupied voxels ``occ[lo:hi]``: the uptake factor of ``P⁻¹`` on the swept increment and the
    difference between their Jacobi weight and the uniform one already added."""
    for s in range(w2.shape[0]):
        for m in range(lo, hi):
            v = occ[m]
            w2[s, v] *= q[s, m]
            c2[s, v] += occ_jac[s, m] * rho_occ[s, m]


@njit(inline="always")
def _step_3d(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y, inv_z, g_z,
             lines_x, lines_y, lines_z, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac, rho_occ):  # fmt: skip
    """``n_steps`` increment-form LOD substeps on a 3D grid (passes in the module docstring).

    ``c, w (S, nz, ny, nx)`` fields and increment (``c2, w2`` the same memory as ``(S, N)``);
    ``rdt, adt, jac0 (S,)`` = D dt/dx², dt λ and ``J`` of a voxel without cells; ``kind, val
    (S, 6)`` faces; ``inv_*, g_*`` the axis factorisations; ``lines_*`` the Dirichlet-line tables
    built with zero values; Dirichlet voxels ``dir_*`` and occupied voxels ``occ`` (``occ_ptr``)
    grouped by y-row; ``F = dt(A + C)``, ``dtB``, ``q = 1/(1 + dt B)`` and ``occ_jac = ω/J − ω/jac0``
    ``(S, M)``; ``rho_occ (S, M)`` scratch.
    """
    S, nz, ny, nx = c.shape
    for _ in range(n_steps):
        for j in prange(ny):
            for s in range(S):
                for k in range(nz):
                    _residual_span(c, w, s, k, j, 0, nx, rdt[s], adt[s], kind, val)
            _coupling_and_vessels(c2, w2, occ, F, dtB, occ_ptr[j], occ_ptr[j + 1], dir_ptr, dir_flat, j)
            _save_occupied(w2, occ, rho_occ, occ_ptr[j], occ_ptr[j + 1])
        for k in prange(nz):
            for s in range(S):
                for j in range(ny):
                    _jacobi_span(c, w, s, k, j, 0, nx, jac0[s])
                _save_lines(w2, s, lines_x, k, k + 1)
                _sweep_x(w, s, k, 0, ny, inv_x[s], g_x[s], 0.0, 0.0)
                _solve_saved_lines(w2, s, lines_x, k, k + 1)
                _save_lines(w2, s, lines_y, k, k + 1)
                _sweep_y(w, s, k, 0, nx, inv_y[s], g_y[s], 0.0, 0.0)
                _solve_saved_lines(w2, s, lines_y, k, k + 1)
        for j in prange(ny):
            for s in range(S):
                _save_lines(w2, s, lines_z, j, j + 1)
                _sweep_z(w, s, j, inv_z[s], g_z[s], 0.0, 0.0)
                _solve_saved_lines(w2, s, lines_z, j, j + 1)
            _occupied_pass_c(c2, w2, occ, q, occ_jac, rho_occ, occ_ptr[j], occ_ptr[j + 1])
            for s in range(S):
                for k in range(nz):
                    for i in range(nx):
                        v = c[s, k, j, i] + w[s, k, j, i]
                        c[s, k, j, i] = v if v > 0.0 else 0.0


@njit(inline="always")
def _step_2d(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y,
             lines_x, lines_y, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac, rho_occ):  # fmt: skip
    """``n_steps`` increment-form LOD substeps on a 2D grid (``nz == 1``); arguments as
    :func:`_step_3d`, grouped by column block (residual, y sweeps) and row block (x sweeps)."""
    S, _, ny, nx = c.shape
    nrow = (ny + BLOCK - 1) // BLOCK
    ncol = (nx + BLOCK - 1) // BLOCK
    for _ in range(n_steps):
        for b in prange(ncol):
            i0, i1 = b * BLOCK, min(nx, (b + 1) * BLOCK)
            for s in range(S):
                for j in range(ny):
                    _residual_span(c, w, s, 0, j, i0, i1, rdt[s], adt[s], kind, val)
            _coupling_and_vessels(c2, w2, occ, F, dtB, occ_ptr[b], occ_ptr[b + 1], dir_ptr, dir_flat, b)
            _save_occupied(w2, occ, rho_occ, occ_ptr[b], occ_ptr[b + 1])
        for b in prange(nrow):
            j0, j1 = b * BLOCK, min(ny, (b + 1) * BLOCK)
            for s in range(S):
                for j in range(j0, j1):
                    _jacobi_span(c, w, s, 0, j, 0, nx, jac0[s])
                _save_lines(w2, s, lines_x, b, b + 1)
                _sweep_x(w, s, 0, j0, j1, inv_x[s], g_x[s], 0.0, 0.0)
                _solve_saved_lines(w2, s, lines_x, b, b + 1)
        for b in prange(ncol):
            i0, i1 = b * BLOCK, min(nx, (b + 1) * BLOCK)
            for s in range(S):
                _save_lines(w2, s, lines_y, b, b + 1)
                _sweep_y(w, s, 0, i0, i1, inv_y[s], g_y[s], 0.0, 0.0)
                _solve_saved_lines(w2, s, lines_y, b, b + 1)
            _occupied_pass_c(c2, w2, occ, q, occ_jac, rho_occ, occ_ptr[b], occ_ptr[b + 1])
            for s in range(S):
                for j in range(ny):
                    for i in range(i0, i1):
                        v = c[s, 0, j, i] + w[s, 0, j, i]
                        c[s, 0, j, i] = v if v > 0.0 else 0.0


# Serial and parallel twins are separate functions on purpose (numba's disk cache does not tell a
# function's serial and parallel compilations apart; see tme_sim/grid/kernels.py).


@njit(cache=True)
def increment_3d_serial(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y, inv_z, g_z,
                        lines_x, lines_y, lines_z, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac,
                        rho_occ):  # fmt: skip
    """Serial compilation of :func:`_step_3d`."""
    _step_3d(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y, inv_z, g_z,
             lines_x, lines_y, lines_z, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac, rho_occ)  # fmt: skip


@njit(cache=True, parallel=True)
def increment_3d_parallel(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y, inv_z, g_z,
                          lines_x, lines_y, lines_z, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac,
                          rho_occ):  # fmt: skip
    """Parallel compilation of :func:`_step_3d` (prange over y-rows / z-planes)."""
    _step_3d(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y, inv_z, g_z,
             lines_x, lines_y, lines_z, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac, rho_occ)  # fmt: skip


@njit(cache=True)
def increment_2d_serial(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y,
                        lines_x, lines_y, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac, rho_occ):  # fmt: skip
    """Serial compilation of :func:`_step_2d`."""
    _step_2d(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y,
             lines_x, lines_y, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac, rho_occ)  # fmt: skip


@njit(cache=True, parallel=True)
def increment_2d_parallel(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y,
                          lines_x, lines_y, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac, rho_occ):  # fmt: skip
    """Parallel compilation of :func:`_step_2d` (prange over column / row blocks)."""
    _step_2d(c, c2, w, w2, n_steps, rdt, adt, jac0, kind, val, inv_x, g_x, inv_y, g_y,
             lines_x, lines_y, dir_ptr, dir_flat, occ_ptr, occ, F, dtB, q, occ_jac, rho_occ)  # fmt: skip
