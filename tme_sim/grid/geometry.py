"""Voxel geometry of the uniform Cartesian grid (validation, index maths, face names).

The domain spans ``[0, Lx] x [0, Ly] (x [0, Lz])`` µm, voxels are cubes of edge ``dx`` µm with
centres at ``(i + 0.5) * dx``. Arrays are indexed ``(k, j, i)`` = ``(z, y, x)``; in 2D ``nz == 1``
and the voxel is a slab one ``dx`` thick (volume ``dx**3``, as BioFVM).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from tme_sim.errors import GridError

FACES: tuple[str, ...] = ("xmin", "xmax", "ymin", "ymax", "zmin", "zmax")
"""Face names, in the order of the per-substrate boundary arrays (axis = index // 2)."""

BOUNDARY_KINDS: tuple[str, ...] = ("neumann", "dirichlet")
"""``neumann`` = zero flux (default), ``dirichlet`` = fixed value on the boundary face."""

_AXES = "xyz"


def _finite_number(value: object, what: str) -> float:
    if isinstance(value, bool):
        raise GridError(f"{what} must be a number, got a boolean")
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise GridError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise GridError(f"{what} must be finite, got {out}")
    return out


def grid_shape(domain: Sequence[float], dx: float) -> tuple[tuple[int, int, int], int]:
    """Validate ``domain`` (µm) and ``dx`` (µm); return ``((nz, ny, nx), dim)``.

    Raises:
        GridError: ``dx`` not positive, a domain of the wrong length, a non-positive extent or an
            extent that is not a whole number of voxels (relative tolerance 1e-9).
    """
    dx = _finite_number(dx, "voxel size dx")
    if dx <= 0:
        raise GridError(f"voxel size dx must be > 0 um, got {dx:g}")
    try:
        dom = list(domain)
    except TypeError:
        raise GridError(f"domain must be (Lx, Ly) or (Lx, Ly, Lz) in um, got {domain!r}") from None
    if len(dom) not in (2, 3):
        raise GridError(f"domain must be (Lx, Ly) or (Lx, Ly, Lz) in um, got {len(dom)} values")
    counts = []
    for axis, length in zip(_AXES, dom, strict=False):
        length = _finite_number(length, f"domain L{axis}")
        if length <= 0:
            raise GridError(f"domain L{axis} must be > 0 um, got {length:g}")
        n = round(length / dx)
        if n < 1 or abs(n * dx - length) > 1e-9 * max(length, dx):
            raise GridError(f"domain L{axis} = {length:g} um is not a whole number of voxels of dx = {dx:g} um")
        counts.append(int(n))
    if len(counts) == 2:
        nx, ny = counts
        return (1, ny, nx), 2
    nx, ny, nz = counts
    return (nz, ny, nx), 3


def parse_faces(face: str, dim: int) -> list[int]:
    """Face name (or ``"all"``) -> list of face numbers into :data:`FACES`. GridError if unknown."""
    valid = FACES[: 2 * dim]
    if face == "all":
        return list(range(2 * dim))
    if face not in valid:
        raise GridError(f"unknown boundary face {face!r} for a {dim}D grid (use one of {', '.join(valid)}, all)")
    return [FACES.index(face)]


def parse_kind(kind: str) -> int:
    """Boundary kind -> 0 (neumann / zero-flux) or 1 (dirichlet). GridError if unknown."""
    k = kind.lower() if isinstance(kind, str) else kind
    if k in ("neumann", "zero-flux", "zero_flux", "noflux"):
        return 0
    if k == "dirichlet":
        return 1
    raise GridError(f"unknown boundary type {kind!r} (use 'neumann' (zero-flux) or 'dirichlet')")


@njit(cache=True, error_model="numpy")
def _ijk_kernel(pos, counts, dx, out):  # pragma: no cover - numba
    """Fill ``out (N, 3)`` with the clipped voxel indices of ``pos (N, 2|3)``; returns the first
    row with a non-finite coordinate on a gridded axis, or -1."""
    for r in range(pos.shape[0]):
        for col in range(3):
            n = counts[col]
            if n == 1 or col >= pos.shape[1]:
                out[r, col] = 0
                continue
            q = np.floor(pos[r, col] / dx)
            if not np.isfinite(q):
                return r
            out[r, col] = 0 if q < 0 else (n - 1 if q > n - 1 else int(q))
    return -1


@njit(cache=True, error_model="numpy")
def _flat_kernel(pos, counts, dx, out):  # pragma: no cover - numba
    """Fill ``out (N,)`` with the flat voxel index ``(k*ny + j)*nx + i`` of ``pos (N, 2|3)``,
    each axis clipped as in :func:`_ijk_kernel` (same floor and clip, so the same voxels);
    returns the first row with a non-finite coordinate on a gridded axis, or -1."""
    ijk = np.zeros(3, np.int64)
    for r in range(pos.shape[0]):
        for col in range(3):
            n = counts[col]
            ijk[col] = 0
            if n == 1 or col >= pos.shape[1]:
                continue
            q = np.floor(pos[r, col] / dx)
            if not np.isfinite(q):
                return r
            ijk[col] = 0 if q < 0 else (n - 1 if q > n - 1 else int(q))
        out[r] = (ijk[2] * counts[1] + ijk[1]) * counts[0] + ijk[0]
    return -1


def positions_to_flat(positions: np.ndarray, shape: tuple[int, int, int], dx: float) -> np.ndarray:
    """Flat voxel indices ``(N,)`` int64 ``(k*ny + j)*nx + i`` of positions ``(N, 2|3)`` µm: the
    voxels of :func:`positions_to_ijk` in one pass (no ``(N, 3)`` intermediate)."""
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise GridError(f"positions must have shape (N, 3) in um, got {pos.shape}")
    nz, ny, nx = shape
    out = np.empty(pos.shape[0], dtype=np.int64)
    bad = _flat_kernel(pos, np.array([nx, ny, nz], np.int64), float(dx), out)
    if bad >= 0:
        raise GridError(f"position {bad} is not finite: {pos[bad].tolist()}")
    return out


def positions_to_ijk(positions: np.ndarray, shape: tuple[int, int, int], dx: float) -> np.ndarray:
    """Voxel indices ``(N, 3)`` int64 columns ``(i, j, k)`` of positions ``(N, 2|3)`` µm, clipped
    into the domain (a point on a face belongs to the voxel inside). z ignored in 2D."""
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] not in (2, 3):
        raise GridError(f"positions must have shape (N, 3) in um, got {pos.shape}")
    nz, ny, nx = shape
    out = np.empty((pos.shape[0], 3), dtype=np.int64)
    bad = _ijk_kernel(pos, np.array([nx, ny, nz], np.int64), float(dx), out)
    if bad >= 0:
        raise GridError(f"position {bad} is not finite: {pos[bad].tolist()}")
    return out
