"""Packed initial tissues: cells on a jittered close-packed lattice cut to a ball (3D) or disc (2D).

A tumor of 10⁶ cells cannot be grown from a seed in reasonable time, and cells drawn uniformly
in a ball overlap freely (the first mechanics steps then push them apart violently). Placing them
on a close-packed lattice — face-centred cubic in 3D (packing fraction π/(3√2) ≈ 0.74 for touching
spheres), hexagonal in 2D — with centre spacing about one cell diameter gives a confluent,
nearly force-free tissue in one vectorised pass: 10⁶ cells take well under a second.

All functions are plain numpy on arrays; random numbers come from the caller's Generator.
"""

from __future__ import annotations

import math

import numpy as np

#: centre spacing of a packed placement as a multiple of the cell diameter (touching spheres);
#: PhysiCell's equilibrium spacing of two cells with default adhesion is ~0.95-1.0 diameter
DEFAULT_SPACING_DIAMETERS = 1.0
FCC_FRACTION = math.pi / (3.0 * math.sqrt(2.0))
HEX_FRACTION = math.pi / (2.0 * math.sqrt(3.0))


def expected_count(radius: float, spacing: float, dim: int, inner_radius: float = 0.0) -> int:
    """Cells of a packed ball/disc (or shell ``inner_radius`` … ``radius``, µm) at centre
    ``spacing`` (µm), from the lattice's density (exact up to the cut at the surface)."""
    if dim == 3:
        per_volume = math.sqrt(2.0) / spacing**3  # FCC: 4 sites per cube of edge spacing·√2
        n = per_volume * 4.0 / 3.0 * math.pi * (radius**3 - inner_radius**3)
    else:
        per_area = 2.0 / (math.sqrt(3.0) * spacing**2)
        n = per_area * math.pi * (radius**2 - inner_radius**2)
    return int(min(n, 1e15))


def lattice_in_ball(radius: float, spacing: float, dim: int, inner_radius: float = 0.0) -> np.ndarray:
    """``(k, 3)`` offsets (µm) of the close-packed lattice sites with ``inner_radius ≤ |x| < radius``
    (z = 0 in 2D): FCC in 3D, hexagonal in 2D, centre spacing ``spacing``, one site at the origin."""
    if dim == 3:
        a = spacing * math.sqrt(2.0)  # cube edge of the FCC cell
        m = math.ceil(radius / a) + 1
        i = np.arange(-m, m + 1, dtype=np.float64) * a
        basis = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]]) * a
        parts = []
        for b in basis:  # one basis point at a time: peak memory ~ one (2m+1)³ grid of float64 triples
            x = i + b[0]
            y = i + b[1]
            z = i + b[2]
            # keep whole z-planes only where they can meet the ball, then cut
            gx, gy, gz = np.meshgrid(x, y, z, indexing="ij")
            pts = np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)
            r2 = np.einsum("ij,ij->i", pts, pts)
            parts.append(pts[(r2 < radius * radius) & (r2 >= inner_radius * inner_radius)])
        return np.concatenate(parts)
    h = spacing * math.sqrt(3.0) / 2.0
    mx = math.ceil(radius / spacing) + 1
    my = math.ceil(radius / h) + 1
    jj, ii = np.meshgrid(np.arange(-my, my + 1), np.arange(-mx, mx + 1), indexing="ij")
    x = (ii + 0.5 * (jj % 2)) * spacing
    y = jj * h
    pts = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    r2 = pts[:, 0] ** 2 + pts[:, 1] ** 2
    return pts[(r2 < radius * radius) & (r2 >= inner_radius * inner_radius)]


def packed_ball(
    center: np.ndarray,
    radius: float,
    spacing: float,
    dim: int,
    rng: np.random.Generator,
    *,
    jitter: float = 0.1,
    inner_radius: float = 0.0,
) -> np.ndarray:
    """``(k, 3)`` positions (µm): the close-packed lattice of :func:`lattice_in_ball` around
    ``center`` (3,), each site moved by a uniform random offset of up to ``jitter · spacing`` per
    axis (breaks the lattice's symmetry; 0 keeps it exact), in a random order of sites (so that
    types assigned to the first/last rows are not spatially ordered)."""
    pts = lattice_in_ball(radius, spacing, dim, inner_radius)
    if jitter > 0 and len(pts):
        pts[:, :dim] += rng.uniform(-jitter * spacing, jitter * spacing, (len(pts), dim))
    pts = pts[rng.permutation(len(pts))]
    pts += np.asarray(center, dtype=np.float64)
    return pts


def assign_types(n: int, main: int, mix: dict[int, float], rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` int16 types: each of ``mix`` (type → fraction of the n sites) gets round(fraction·n)
    sites drawn at random, the rest are ``main``."""
    types = np.full(n, main, dtype=np.int16)
    counts = [(t, round(f * n)) for t, f in mix.items()]
    total = sum(c for _, c in counts)
    if total > n:
        raise ValueError(f"mix fractions add up to more than the placement's {n} cells")
    picks = rng.permutation(n)[:total]
    k = 0
    for t, c in counts:
        types[picks[k : k + c]] = t
        k += c
    return types
