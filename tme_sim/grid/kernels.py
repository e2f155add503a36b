"""Numba kernels of the diffusion–reaction solver (plain functions on arrays).

Layout: one C-contiguous array ``c`` of shape ``(S, nz, ny, nx)`` (species first, x fastest);
``c2 = c.reshape(S, nz*ny*nx)`` is the same memory with a flat voxel index
``v = (k*ny + j)*nx + i``.

Scheme per substep of ``dt`` (locally one-dimensional splitting, as BioFVM): implicit Euler in x,
then y, then (3D) z, each with decay ``λ/dim``; then the cell coupling, after which Dirichlet
voxels (vessels) are re-imposed. Inside the sweeps, Dirichlet voxels are known values, not
unknowns: a line that crosses one is solved again from its saved right-hand side with its own
factorisation in which the voxel is an identity row (:func:`dirichlet_line_factors`), so a vessel
holds its value within every implicit solve (BioFVM instead solves it as a free unknown and resets
it afterwards, which drains it within the sweep when ``D dt/dx² > 1``). Each 1D implicit problem is the tridiagonal
system ``-r x[i-1] + d_i x[i] - r x[i+1] = rhs[i]`` with ``r = D dt / dx²`` and
``d_i = 1 + dt λ/dim + r·(#neighbours) + 2r·(#Dirichlet faces)``. Its Thomas factorisation is the
same for every line of an axis, so it is computed once (:func:`thomas_coefficients`) and a sweep
is, per line::

    forward   y[0] = rhs[0]*inv[0] + add_lo ;  y[i] = rhs[i]*inv[i] + g[i]*y[i-1]
              y[n-1] += add_hi
    backward  x[n-1] = y[n-1]            ;  x[i] = y[i] + g[i]*x[i+1]

with ``inv = 1/denominator``, ``g = r*inv``, ``add = 2 r c_face inv`` at a Dirichlet face.
All terms are non-negative, so the sweep can never create a negative value.

Memory traffic (3D): pass 1 does the x and y sweeps of one z-plane while it sits in cache (one
read and one write of the array), pass 2 the z sweep of one (z, x) slab per y-row (again one read
and one write) followed by the coupling of the occupied voxels of that row while they are in
cache. The coupling touches only occupied voxels, the masks only Dirichlet voxels.

Parallelism: over z-planes (pass 1) and y-rows (pass 2) in 3D, over fixed-size row/column blocks
in 2D. Every line is computed by the same arithmetic whatever thread runs it, and no reduction
crosses lines, so results are bit-identical for any thread count. No ``fastmath`` (no FMA
contraction) for the same reason: the serial and the parallel compilations round identically.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "BLOCK",
    "build_coupling",
    "coupling_row_order",
    "dirichlet_line_factors",
    "first_bad",
    "first_bad_serial",
    "step_2d_parallel",
    "step_2d_serial",
    "step_3d_parallel",
    "step_3d_serial",
    "thomas_coefficients",
]

BLOCK = 32
"""Rows / columns per parallel work item in 2D (fixed, so results do not depend on threads)."""


@njit(cache=True)
def thomas_coefficients(n, r, a, dir_lo, dir_hi, c_lo, c_hi):  # pragma: no cover - numba
    """Factorisation of one axis: returns ``inv (n,)``, ``g (n,)``, ``add_lo``, ``add_hi`` (float64).

    ``n`` voxels, ``r = D dt/dx²``, ``a = dt λ / dim``, ``dir_lo/dir_hi`` whether the low/high face
    is Dirichlet with face value ``c_lo/c_hi``.
    """
    inv = np.empty(n, np.float64)
    g = np.empty(n, np.float64)
    prev = 0.0
    for i in range(n):
        nb = 0.0
        if i > 0:
            nb += 1.0
        if i < n - 1:
            nb += 1.0
        d = 1.0 + a + r * nb
        if i == 0 and dir_lo:
            d += 2.0 * r
        if i == n - 1 and dir_hi:
            d += 2.0 * r
        denom = d if i == 0 else d - r * r * prev
        prev = 1.0 / denom
        inv[i] = prev
        g[i] = r * prev
    add_lo = 2.0 * r * c_lo * inv[0] if dir_lo else 0.0
    add_hi = 2.0 * r * c_hi * inv[n - 1] if dir_hi else 0.0
    return inv, g, add_lo, add_hi


# ----------------------------------------------------------------------------------------------
# line sweeps (inlined into the step kernels)


@njit(cache=True, inline="always")
def _sweep_x_rows(c, s, k, j0, j1, inv, g, alo, ahi):  # pragma: no cover - numba
    """x sweep of rows ``j0:j1`` of plane ``k`` of substrate ``s``, one row at a time (the
    remainder of :func:`_sweep_x`)."""
    nx = c.shape[3]
    for j in range(j0, j1):
        r = c[s, k, j]
        a = r[0] * inv[0] + alo
        if nx == 1:
            a += ahi
        r[0] = a
        for i in range(1, nx):
            a = r[i] * inv[i] + g[i] * a
            if i == nx - 1:
                a += ahi
            r[i] = a
        for i in range(nx - 2, -1, -1):
            a = r[i] + g[i] * a
            r[i] = a


@njit(cache=True, inline="always")
def _sweep_x(c, s, k, j0, j1, inv, g, alo, ahi):  # pragma: no cover - numba
    """x sweep of rows ``j0:j1`` of plane ``k`` of substrate ``s``.

    The recurrence runs along contiguous memory, so it cannot be vectorised within a row; eight
    rows are swept together as eight independent scalar chains, which hides the multiply–add
    latency (~1.3x over four chains, ~1.8x over one row at a time: rules_sample grid, measured).
    Same arithmetic per element as one row at a time.
    """
    nx = c.shape[3]
    inv0 = inv[0]
    j = j0
    while j + 8 <= j1:
        r0, r1, r2, r3 = c[s, k, j], c[s, k, j + 1], c[s, k, j + 2], c[s, k, j + 3]
        r4, r5, r6, r7 = c[s, k, j + 4], c[s, k, j + 5], c[s, k, j + 6], c[s, k, j + 7]
        a0, a1, a2, a3 = r0[0] * inv0 + alo, r1[0] * inv0 + alo, r2[0] * inv0 + alo, r3[0] * inv0 + alo
        a4, a5, a6, a7 = r4[0] * inv0 + alo, r5[0] * inv0 + alo, r6[0] * inv0 + alo, r7[0] * inv0 + alo
        if nx == 1:
            a0, a1, a2, a3 = a0 + ahi, a1 + ahi, a2 + ahi, a3 + ahi
            a4, a5, a6, a7 = a4 + ahi, a5 + ahi, a6 + ahi, a7 + ahi
        r0[0], r1[0], r2[0], r3[0], r4[0], r5[0], r6[0], r7[0] = a0, a1, a2, a3, a4, a5, a6, a7
        for i in range(1, nx):
            ii = inv[i]
            gi = g[i]
            a0, a1, a2, a3 = r0[i] * ii + gi * a0, r1[i] * ii + gi * a1, r2[i] * ii + gi * a2, r3[i] * ii + gi * a3
            a4, a5, a6, a7 = r4[i] * ii + gi * a4, r5[i] * ii + gi * a5, r6[i] * ii + gi * a6, r7[i] * ii + gi * a7
            if i == nx - 1:
                a0, a1, a2, a3 = a0 + ahi, a1 + ahi, a2 + ahi, a3 + ahi
                a4, a5, a6, a7 = a4 + ahi, a5 + ahi, a6 + ahi, a7 + ahi
            r0[i], r1[i], r2[i], r3[i], r4[i], r5[i], r6[i], r7[i] = a0, a1, a2, a3, a4, a5, a6, a7
        for i in range(nx - 2, -1, -1):
            gi = g[i]
            a0, a1, a2, a3 = r0[i] + gi * a0, r1[i] + gi * a1, r2[i] + gi * a2, r3[i] + gi * a3
            a4, a5, a6, a7 = r4[i] + gi * a4, r5[i] + gi * a5, r6[i] + gi * a6, r7[i] + gi * a7
            r0[i], r1[i], r2[i], r3[i], r4[i], r5[i], r6[i], r7[i] = a0, a1, a2, a3, a4, a5, a6, a7
        j += 8
    _sweep_x_rows(c, s, k, j, j1, inv, g, alo, ahi)


@njit(cache=True, inline="always")
def _sweep_y(c, s, k, i0, i1, inv, g, alo, ahi):  # pragma: no cover - numba
    """y sweep of columns ``i0:i1`` of plane ``k`` of substrate ``s`` (vectorised over x).

    Rows are taken as slices (``c[s, k, j, i0:i1]``): indexing the 4D array element by element
    with a computed column index keeps LLVM from vectorising the loop over x (negative-index
    wraparound); the slices vectorise (~2x, measured). Same arithmetic per element.
    """
    ny = c.shape[2]
    inv0 = inv[0]
    r = c[s, k, 0, i0:i1]
    for i in range(r.shape[0]):
        r[i] = r[i] * inv0 + alo
    for j in range(1, ny):
        jj = inv[j]
        gj = g[j]
        r = c[s, k, j, i0:i1]
        p = c[s, k, j - 1, i0:i1]
        for i in range(r.shape[0]):
            r[i] = r[i] * jj + gj * p[i]
    if ahi != 0.0:
        r = c[s, k, ny - 1, i0:i1]
        for i in range(r.shape[0]):
            r[i] += ahi
    for j in range(ny - 2, -1, -1):
        gj = g[j]
        r = c[s, k, j, i0:i1]
        p = c[s, k, j + 1, i0:i1]
        for i in range(r.shape[0]):
            r[i] = r[i] + gj * p[i]


@njit(cache=True, inline="always")
def _sweep_z(c, s, j, inv, g, alo, ahi):  # pragma: no cover - numba
    """z sweep of the (z, x) slab at row ``j`` of substrate ``s`` (vectorised over x, rows as
    slices as in :func:`_sweep_y`)."""
    nz = c.shape[1]
    inv0 = inv[0]
    r = c[s, 0, j, :]
    for i in range(r.shape[0]):
        r[i] = r[i] * inv0 + alo
    for k in range(1, nz):
        kk = inv[k]
        gk = g[k]
        r = c[s, k, j, :]
        p = c[s, k - 1, j, :]
        for i in range(r.shape[0]):
            r[i] = r[i] * kk + gk * p[i]
    if ahi != 0.0:
        r = c[s, nz - 1, j, :]
        for i in range(r.shape[0]):
            r[i] += ahi
    for k in range(nz - 2, -1, -1):
        gk = g[k]
        r = c[s, k, j, :]
        p = c[s, k + 1, j, :]
        for i in range(r.shape[0]):
            r[i] = r[i] + gk * p[i]


@njit(cache=True, inline="always")
def _impose_dirichlet(conc, s, ptr, flat, value, lo, hi):  # pragma: no cover - numba
    """Set the Dirichlet voxels ``ptr[s, lo]:ptr[s, hi]`` (flat indices ``flat``, values ``value``)
    of substrate ``s`` of ``conc (S, n_voxels)``."""
    for e in range(ptr[s, lo], ptr[s, hi]):
        conc[s, flat[e]] = value[e]


@njit(cache=True, inline="always")
def _exchange_with_cells(conc, occupied_voxels, gain, implicit_factor, export, lo, hi):  # pragma: no cover - numba
    """Cell secretion/uptake at occupied voxels ``occupied_voxels[lo:hi]`` of ``conc (S, n_voxels)``:
    ``ρ ← (ρ + gain)·implicit_factor + export`` with ``gain = dt·A``, ``implicit_factor =
    1/(1 + dt·B)``, ``export = dt·C`` (each ``(S, M)``, see :func:`build_coupling`)."""
    S = conc.shape[0]
    for s in range(S):
        for m in range(lo, hi):
            v = occupied_voxels[m]
            conc[s, v] = (conc[s, v] + gain[s, m]) * implicit_factor[s, m] + export[s, m]


@njit(cache=True)
def dirichlet_line_factors(sub, length, offset, fixed, value, rdt, adt, dir_lo, dir_hi, c_lo, c_hi,
                           inv, g, add):  # fmt: skip  # pragma: no cover - numba
    """Thomas factorisations of the grid lines that cross Dirichlet voxels (one axis).

    Line ``L`` of substrate ``sub[L]`` has ``length[L]`` voxels whose entries start at
    ``offset[L]`` in the concatenated per-voxel arrays ``fixed`` (bool: a Dirichlet voxel) and
    ``value`` (its value). A Dirichlet voxel is an identity row (``x = value``); its free
    neighbours keep ``r`` on their diagonal and get ``r·value`` on the right-hand side — the value
    is known, so the line splits into independent segments bounded by exact values. Writes
    ``inv``, ``g``, ``add`` (same length as ``fixed``) for the recurrence of
    :func:`_solve_saved_lines`; ``rdt, adt (S,)`` are ``D dt/dx²`` and ``dt λ/dim``;
    ``dir_lo/dir_hi (S,)`` whether the axis' low/high face is Dirichlet with values ``c_lo/c_hi``.
    """
    for L in range(sub.shape[0]):
        s = sub[L]
        n = length[L]
        o = offset[L]
        r = rdt[s]
        a = adt[s]
        g_prev = 0.0
        for i in range(n):
            e = o + i
            if fixed[e]:
                inv[e] = 0.0
                g[e] = 0.0
                add[e] = value[e]
                g_prev = 0.0
                continue
            d = 1.0 + a + r * ((i > 0) + (i < n - 1))
            face = 0.0
            if i == 0 and dir_lo[s]:
                d += 2.0 * r
                face += 2.0 * r * c_lo[s]
            if i == n - 1 and dir_hi[s]:
                d += 2.0 * r
                face += 2.0 * r * c_hi[s]
            iv = 1.0 / (d - r * g_prev)
            inv[e] = iv
            g[e] = r * iv
            add[e] = face * iv
            g_prev = r * iv


@njit(cache=True, inline="always")
def _save_lines(conc, s, lines, lo, hi):  # pragma: no cover - numba
    """Copy the right-hand sides of Dirichlet lines ``lines[0][s, lo]:lines[0][s, hi]`` of
    substrate ``s`` into the table's buffer (before the shared sweep overwrites them)."""
    ptr, base, stride, length, offset, buf = lines[0], lines[1], lines[2], lines[3], lines[4], lines[8]
    for L in range(ptr[s, lo], ptr[s, hi]):
        b = base[L]
        st = stride[L]
        o = offset[L]
        for i in range(length[L]):
            buf[o + i] = conc[s, b + i * st]


@njit(cache=True, inline="always")
def _solve_saved_lines(conc, s, lines, lo, hi):  # pragma: no cover - numba
    """Solve the Dirichlet lines ``lines[0][s, lo]:lines[0][s, hi]`` of substrate ``s`` from their
    saved right-hand sides with their own factorisations (:func:`dirichlet_line_factors`),
    overwriting what the shared sweep wrote there. Forward ``y[i] = rhs[i]·inv[i] + g[i]·y[i-1] +
    add[i]``, backward ``x[i] = y[i] + g[i]·x[i+1]``; Dirichlet rows give ``x = value`` exactly."""
    ptr, base, stride, length, offset = lines[0], lines[1], lines[2], lines[3], lines[4]
    inv, g, add, buf = lines[5], lines[6], lines[7], lines[8]
    for L in range(ptr[s, lo], ptr[s, hi]):
        b = base[L]
        st = stride[L]
        o = offset[L]
        n = length[L]
        y = buf[o] * inv[o] + add[o]
        conc[s, b] = y
        for i in range(1, n):
            e = o + i
            y = buf[e] * inv[e] + g[e] * y + add[e]
            conc[s, b + i * st] = y
        for i in range(n - 2, -1, -1):
            e = o + i
            y = conc[s, b + i * st] + g[e] * y
            conc[s, b + i * st] = y


# ----------------------------------------------------------------------------------------------
# one compiled call for n substeps


@njit(inline="always")
def _step_3d(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, inv_z, g_z, add_z,
             lines_x, lines_y, lines_z, dir_row_ptr, dir_row_flat, dir_row_value,
             occ_ptr, occ, gain, implicit_factor, export):  # fmt: skip
    """``n_steps`` LOD substeps on a 3D grid.

    ``add_*`` are ``(S, 2)`` (low, high face). Lines that cross Dirichlet voxels (vessels) are
    solved with their own factorisations, the voxels held as known values inside the solve:
    ``lines_x``, ``lines_y`` are grouped by (substrate, z-plane), ``lines_z`` by (substrate, y-row)
    (tables of :meth:`Microenvironment._dirichlet_lines`). The Dirichlet voxels, as CSR over
    (substrate, y-row) ``dir_row_*``, are re-imposed after the cell coupling. The occupied voxels
    ``occ`` (with ``gain, implicit_factor, export (S, M)``) are grouped by y-row,
    ``occ_ptr (ny+1,)``. Pass 1 (parallel over z-planes): x and y sweeps; pass 2 (parallel over
    y-rows): z sweep, then the cell coupling of that row's voxels.
    """
    S, nz, ny, nx = c.shape
    for _ in range(n_steps):
        for k in prange(nz):
            for s in range(S):
                _save_lines(c2, s, lines_x, k, k + 1)
                _sweep_x(c, s, k, 0, ny, inv_x[s], g_x[s], add_x[s, 0], add_x[s, 1])
                _solve_saved_lines(c2, s, lines_x, k, k + 1)
                _save_lines(c2, s, lines_y, k, k + 1)
                _sweep_y(c, s, k, 0, nx, inv_y[s], g_y[s], add_y[s, 0], add_y[s, 1])
                _solve_saved_lines(c2, s, lines_y, k, k + 1)
        for j in prange(ny):
            for s in range(S):
                _save_lines(c2, s, lines_z, j, j + 1)
                _sweep_z(c, s, j, inv_z[s], g_z[s], add_z[s, 0], add_z[s, 1])
                _solve_saved_lines(c2, s, lines_z, j, j + 1)
            if occ_ptr[j + 1] > occ_ptr[j]:
                _exchange_with_cells(c2, occ, gain, implicit_factor, export, occ_ptr[j], occ_ptr[j + 1])
                for s in range(S):
                    _impose_dirichlet(c2, s, dir_row_ptr, dir_row_flat, dir_row_value, j, j + 1)


@njit(inline="always")
def _step_2d(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, lines_x, lines_y,
             dir_block_ptr, dir_block_flat, dir_block_value, occ_ptr, occ, gain, implicit_factor, export):  # fmt: skip
    """``n_steps`` LOD substeps on a 2D grid (``nz == 1``).

    Lines crossing Dirichlet voxels are solved with their own factorisations (``lines_x`` grouped
    by (substrate, row block), ``lines_y`` by (substrate, column block)). The Dirichlet voxels
    ``dir_block_*`` (CSR over (substrate, column block)) and occupied voxels (``occ_ptr
    (ncol+1,)``) are grouped by column block of :data:`BLOCK` columns. Pass 1 (parallel over row
    blocks): x sweeps; pass 2 (parallel over column blocks): y sweeps, cell coupling, Dirichlet
    voxels.
    """
    S, _, ny, nx = c.shape
    nrow = (ny + BLOCK - 1) // BLOCK
    ncol = (nx + BLOCK - 1) // BLOCK
    for _ in range(n_steps):
        for b in prange(nrow):
            for s in range(S):
                _save_lines(c2, s, lines_x, b, b + 1)
                _sweep_x(c, s, 0, b * BLOCK, min(ny, (b + 1) * BLOCK), inv_x[s], g_x[s],
                         add_x[s, 0], add_x[s, 1])  # fmt: skip
                _solve_saved_lines(c2, s, lines_x, b, b + 1)
        for b in prange(ncol):
            for s in range(S):
                _save_lines(c2, s, lines_y, b, b + 1)
                _sweep_y(c, s, 0, b * BLOCK, min(nx, (b + 1) * BLOCK), inv_y[s], g_y[s],
                         add_y[s, 0], add_y[s, 1])  # fmt: skip
                _solve_saved_lines(c2, s, lines_y, b, b + 1)
            if occ_ptr[b + 1] > occ_ptr[b]:
                _exchange_with_cells(c2, occ, gain, implicit_factor, export, occ_ptr[b], occ_ptr[b + 1])
                for s in range(S):
                    _impose_dirichlet(c2, s, dir_block_ptr, dir_block_flat, dir_block_value, b, b + 1)


# Serial and parallel variants are separate functions on purpose: numba's on-disk cache is keyed by
# the function (qualified name and line), not by the ``parallel`` flag, so jitting one function
# twice with different flags would let one variant load the other's cached machine code.


@njit(cache=True)
def step_3d_serial(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, inv_z, g_z, add_z,
                   lines_x, lines_y, lines_z, dir_row_ptr, dir_row_flat, dir_row_value,
                   occ_ptr, occ, gain, implicit_factor, export):  # fmt: skip
    """Serial compilation of :func:`_step_3d`."""
    _step_3d(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, inv_z, g_z, add_z,
             lines_x, lines_y, lines_z, dir_row_ptr, dir_row_flat, dir_row_value,
             occ_ptr, occ, gain, implicit_factor, export)  # fmt: skip


@njit(cache=True, parallel=True)
def step_3d_parallel(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, inv_z, g_z, add_z,
                     lines_x, lines_y, lines_z, dir_row_ptr, dir_row_flat, dir_row_value,
                     occ_ptr, occ, gain, implicit_factor, export):  # fmt: skip
    """Parallel compilation of :func:`_step_3d` (prange over z-planes / y-rows)."""
    _step_3d(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, inv_z, g_z, add_z,
             lines_x, lines_y, lines_z, dir_row_ptr, dir_row_flat, dir_row_value,
             occ_ptr, occ, gain, implicit_factor, export)  # fmt: skip


@njit(cache=True)
def step_2d_serial(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, lines_x, lines_y,
                   dir_block_ptr, dir_block_flat, dir_block_value,
                   occ_ptr, occ, gain, implicit_factor, export):  # fmt: skip
    """Serial compilation of :func:`_step_2d`."""
    _step_2d(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, lines_x, lines_y,
             dir_block_ptr, dir_block_flat, dir_block_value, occ_ptr, occ, gain, implicit_factor, export)  # fmt: skip


@njit(cache=True, parallel=True)
def step_2d_parallel(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, lines_x, lines_y,
                     dir_block_ptr, dir_block_flat, dir_block_value,
                     occ_ptr, occ, gain, implicit_factor, export):  # fmt: skip
    """Parallel compilation of :func:`_step_2d` (prange over row / column blocks)."""
    _step_2d(c, c2, n_steps, inv_x, g_x, add_x, inv_y, g_y, add_y, lines_x, lines_y,
             dir_block_ptr, dir_block_flat, dir_block_value, occ_ptr, occ, gain, implicit_factor, export)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# guard


@njit(inline="always")
def _first_bad(c1):  # pragma: no cover - numba
    """Smallest flat index ``e`` of ``c1`` (the whole array raveled) with ``not c1[e] >= 0``
    (NaN or negative), or -1. Each chunk is first scanned without an early exit (an OR of the
    comparisons, which vectorises: ~7x faster than the exiting loop, measured) and searched only
    when it holds a bad value."""
    n = c1.shape[0]
    chunk = 65536
    nchunk = (n + chunk - 1) // chunk
    found = np.full(nchunk, -1, np.int64)
    for b in prange(nchunk):
        lo = b * chunk
        hi = min(n, lo + chunk)
        bad = False
        for e in range(lo, hi):
            bad |= not c1[e] >= 0
        if not bad:
            continue
        for e in range(lo, hi):
            if not c1[e] >= 0:
                found[b] = e
                break
    for b in range(nchunk):
        if found[b] >= 0:
            return found[b]
    return -1


@njit(cache=True, parallel=True)
def first_bad(c1):  # pragma: no cover - numba
    """Parallel :func:`_first_bad`."""
    return _first_bad(c1)


@njit(cache=True)
def first_bad_serial(c1):  # pragma: no cover - numba
    """Serial :func:`_first_bad`."""
    return _first_bad(c1)


# ----------------------------------------------------------------------------------------------
# coupling aggregation (order independent)


def coupling_row_order(vol, sec, sat, upt, exp):
    """The cells ``(N,)`` int64 in lexicographic order of their rows (volume, then secretion,
    saturation, uptake and export of each substrate): the canonical summation order of
    :func:`build_coupling`. ``vol (N,)``, the others ``(N, S)``."""
    n = vol.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    # the columns as views, not one stacked (N, 1+4S) copy (0.4 GB at 10⁶ cells and 12 substrates);
    # a column equal in every row cannot break a tie, so leaving it out gives the same order with
    # fewer sort passes (about half of the 10⁶-cell scenario's columns; NaN compares unequal, so a
    # column holding NaN is kept)
    columns = [vol] + [a[:, j] for a in (sec, sat, upt, exp) for j in range(a.shape[1])]
    varying = [c for c in columns if not (c == c[0]).all()]
    if not varying:
        return np.arange(n, dtype=np.int64)
    return np.lexsort(varying[::-1]).astype(np.int64, copy=False)


@njit(cache=True)  # serial: N·3S additions; threads cost more than they save (flagship profile)
def build_coupling(
    rank, vox, vol, sec, sat, upt, exp, inv_vv, group_of_voxel, n_ranks, n_groups, by_row
):  # pragma: no cover - numba
    """Per-voxel coupling sums of all cells, grouped for the step kernels, in one pass.

    Args: ``rank (N,)`` the position of each cell's voxel in the kernel order (voxels grouped by
    second-pass work item, ascending inside a group), in ``[0, n_ranks)``; ``vox (N,)`` flat
    voxels; ``vol (N,)`` µm³; ``sec, sat, upt, exp (N, S)``; ``inv_vv`` = 1/voxel volume (1/µm³);
    ``group_of_voxel (n_voxels,)`` the work item of every voxel; ``n_groups`` the number of work
    items; ``by_row (N,)`` the cells in lexicographic order of their rows (volume, secretion,
    saturation, uptake, export: :func:`coupling_row_order`).

    Returns ``occ (M,)``, ``A, B, C (S, M)`` — ``A = Σ (Vc/Vv)·S·ρ*``, ``B = Σ (Vc/Vv)·(S+U)``,
    ``C = Σ E/Vv`` — and ``occ_ptr (n_groups+1,)``. Cells are grouped by a counting sort on
    ``rank`` (O(N + n_ranks)) that visits the cells in ``by_row`` order, so inside a voxel they are
    summed in lexicographic order of their rows (a canonical order of the multiset: identical
    rows are interchangeable) and any permutation of the cells gives bit-identical sums. The
    order is an argument because rows change only at phenotype steps while cells change voxel
    every step: the model sorts once and reuses it (the insertion sort per voxel that this
    replaces was two thirds of this kernel's time on rules_sample, measured).
    """
    n = rank.shape[0]
    S = sec.shape[1]
    count = np.zeros(n_ranks + 1, np.int64)
    for t in range(n):
        count[rank[t] + 1] += 1
    M = 0
    for r in range(n_ranks):
        if count[r + 1] > 0:
            M += 1
        count[r + 1] += count[r]
    order = np.empty(n, np.int64)
    fill = count[:n_ranks].copy()
    for q in range(n):
        t = by_row[q]
        order[fill[rank[t]]] = t
        fill[rank[t]] += 1
    starts = np.empty(M + 1, np.int64)
    m = 0
    for r in range(n_ranks):
        if count[r + 1] > count[r]:
            starts[m] = count[r]
            m += 1
    starts[M] = n
    occ = np.empty(M, np.int64)
    A = np.zeros((S, M))
    B = np.zeros((S, M))
    C = np.zeros((S, M))
    occ_ptr = np.zeros(n_groups + 1, np.int64)
    for m in range(M):
        lo = starts[m]
        first = order[lo]
        occ[m] = vox[first]
        occ_ptr[group_of_voxel[vox[first]] + 1] += 1
        for t in range(lo, starts[m + 1]):  # this voxel's cells, in canonical order
            r = order[t]
            frac = vol[r] * inv_vv
            for s in range(S):
                if sec[r, s] == 0.0 and upt[r, s] == 0.0 and exp[r, s] == 0.0:
                    continue  # most cells touch few substrates; adding exact zeros changes no sum
                A[s, m] += frac * sec[r, s] * sat[r, s]
                B[s, m] += frac * (sec[r, s] + upt[r, s])
                C[s, m] += exp[r, s] * inv_vv
    for g in range(n_groups):
        occ_ptr[g + 1] += occ_ptr[g]
    return occ, A, B, C, occ_ptr
