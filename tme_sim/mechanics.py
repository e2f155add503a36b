"""Off-lattice centre-based mechanics (PhysiCell's potentials), numba kernels on arrays.

Forces, as velocities in µm/min (overdamped), between cells i and j at distance d with
R = r_i + r_j:

* repulsion  (1 − d/R)² · √(rep_i·rep_j)          for d < R
* adhesion   (1 − d/R_a)² · √(adh_i·adh_j)        for d < R_a = a_rel·R (dead cells do not adhere)

along the unit vector from j to i (Macklin et al. 2018, PhysiCell). Domain walls push cells
with the same repulsion law as a cell of equal radius at the wall. Positions are updated with
Adams–Bashforth 2, x ← x + dt·(3/2·v − 1/2·v_prev), as PhysiCell does.

Neighbour search: a uniform cell list (bins of edge ``cutoff + skin``) built by counting sort;
it is rebuilt only when some cell has moved more than ``skin/2`` since the last build, or when
cells were added or removed. Each cell sums its own neighbours in the fixed bin order, so the
result does not depend on the number of threads (no shared accumulators, no atomics).

All kernels take plain arrays; positions are (n, 3) float64 (z = 0 in 2D).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def bin_coordinates(pos, n, bin_size, nbins):
    """Integer bin coordinates (n, 3) of the first n positions, clipped to the bin grid."""
    out = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        for a in range(3):
            b = int(pos[i, a] / bin_size)
            if b < 0:
                b = 0
            elif b >= nbins[a]:
                b = nbins[a] - 1
            out[i, a] = b
    return out


@njit(cache=True)
def build_cell_list(pos, n, bin_size, nbins):
    """Counting sort of cells into bins.

    Returns ``(start, order)``: cells of flat bin b are ``order[start[b]:start[b+1]]`` in
    ascending slot order (deterministic).
    """
    nb = nbins[0] * nbins[1] * nbins[2]
    coords = bin_coordinates(pos, n, bin_size, nbins)
    flat = np.empty(n, dtype=np.int64)
    counts = np.zeros(nb + 1, dtype=np.int64)
    for i in range(n):
        f = (coords[i, 2] * nbins[1] + coords[i, 1]) * nbins[0] + coords[i, 0]
        flat[i] = f
        counts[f + 1] += 1
    for b in range(nb):
        counts[b + 1] += counts[b]
    start = counts.copy()
    fill = counts[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        f = flat[i]
        order[fill[f]] = i
        fill[f] += 1
    return start, order


#: below this many cells the serial kernels are used (thread start-up and sync cost more than
#: they save; measured in benchmarks/cells.py)
PARALLEL_MIN_CELLS = 20_000


@njit(cache=True, inline="always")
def _cell_velocity(
    i, pos, radius, ctype, dead, rep_t, adh_t, adh_rel_t, start, order, nbins, bin_size, domain, dim, vel
):
    zr = 1 if dim == 3 else 0
    xi = pos[i, 0]
    yi = pos[i, 1]
    zi = pos[i, 2]
    ri = radius[i]
    ti = ctype[i]
    rep_i = rep_t[ti]
    adh_i = 0.0 if dead[i] != 0 else adh_t[ti]
    arel_i = adh_rel_t[ti]
    bx = min(max(int(xi / bin_size), 0), nbins[0] - 1)
    by = min(max(int(yi / bin_size), 0), nbins[1] - 1)
    bz = min(max(int(zi / bin_size), 0), nbins[2] - 1)
    vx = 0.0
    vy = 0.0
    vz = 0.0
    for dz in range(-zr, zr + 1):
        cz = bz + dz
        if cz < 0 or cz >= nbins[2]:
            continue
        for dy in range(-1, 2):
            cy = by + dy
            if cy < 0 or cy >= nbins[1]:
                continue
            for dx in range(-1, 2):
                cx = bx + dx
                if cx < 0 or cx >= nbins[0]:
                    continue
                b = (cz * nbins[1] + cy) * nbins[0] + cx
                for k in range(start[b], start[b + 1]):
                    j = order[k]
                    if j == i:
                        continue
                    ddx = xi - pos[j, 0]
                    ddy = yi - pos[j, 1]
                    ddz = zi - pos[j, 2]
                    d2 = ddx * ddx + ddy * ddy + ddz * ddz
                    big_r = ri + radius[j]
                    tj = ctype[j]
                    ra = 0.5 * (arel_i + adh_rel_t[tj]) * big_r
                    if d2 >= ra * ra:
                        continue
                    d = np.sqrt(d2)
                    if d < 1e-5:
                        d = 1e-5
                    f = 0.0
                    if d < big_r:
                        t = 1.0 - d / big_r
                        f = t * t * np.sqrt(rep_i * rep_t[tj])
                    adh_j = 0.0 if dead[j] != 0 else adh_t[tj]
                    ta = 1.0 - d / ra
                    f -= ta * ta * np.sqrt(adh_i * adh_j)
                    s = f / d
                    vx += s * ddx
                    vy += s * ddy
                    vz += s * ddz
    # walls: repel as a cell of the same radius mirrored at the wall
    for a in range(dim):
        c = pos[i, a]
        lo = c
        hi = domain[a] - c
        push = 0.0
        if lo < ri:
            t = 1.0 - max(lo, 0.0) / ri
            push += t * t * rep_i
        if hi < ri:
            t = 1.0 - max(hi, 0.0) / ri
            push -= t * t * rep_i
        if a == 0:
            vx += push
        elif a == 1:
            vy += push
        else:
            vz += push
    vel[i, 0] = vx
    vel[i, 1] = vy
    vel[i, 2] = vz


@njit(cache=True)
def _velocities_serial(
    pos, radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, start, order, nbins, bin_size, domain, dim, vel
):
    for i in range(n):
        _cell_velocity(
            i,
            pos,
            radius,
            ctype,
            dead,
            rep_t,
            adh_t,
            adh_rel_t,
            start,
            order,
            nbins,
            bin_size,
            domain,
            dim,
            vel,
        )


@njit(cache=True, parallel=True)
def _velocities_parallel(
    pos, radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, start, order, nbins, bin_size, domain, dim, vel
):
    for i in prange(n):
        _cell_velocity(
            i,
            pos,
            radius,
            ctype,
            dead,
            rep_t,
            adh_t,
            adh_rel_t,
            start,
            order,
            nbins,
            bin_size,
            domain,
            dim,
            vel,
        )


def interaction_velocities(
    pos,
    radius,
    ctype,
    dead,
    n,
    rep_t,
    adh_t,
    adh_rel_t,
    start,
    order,
    nbins,
    bin_size,
    domain,
    dim,
    vel,
    parallel=None,
):
    """Velocity (µm/min) of each of the first n cells from neighbours and walls, into ``vel``.

    ``rep_t``, ``adh_t`` (µm/min) and ``adh_rel_t`` are per-type tables indexed by ``ctype``;
    ``dead[i] != 0`` disables adhesion. ``domain`` is (3,) box size in µm. Each cell sums its own
    neighbours in a fixed order, so serial and parallel give bit-identical results.
    """
    par = n >= PARALLEL_MIN_CELLS if parallel is None else parallel
    kernel = _velocities_parallel if par else _velocities_serial
    kernel(pos, radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, start, order, nbins, bin_size, domain, dim, vel)


@njit(cache=True, inline="always")
def _ab2_cell(i, pos, vel, prev_vel, dt, domain, dim):
    d2 = 0.0
    for a in range(dim):
        x = pos[i, a] + dt * (1.5 * vel[i, a] - 0.5 * prev_vel[i, a])
        if x < 0.0:
            x = 0.0
        elif x > domain[a]:
            x = domain[a]
        d2 += (x - pos[i, a]) ** 2
        pos[i, a] = x
        prev_vel[i, a] = vel[i, a]
    return d2


@njit(cache=True)
def _ab2_serial(pos, vel, prev_vel, n, dt, domain, dim):
    m = 0.0
    for i in range(n):
        d2 = _ab2_cell(i, pos, vel, prev_vel, dt, domain, dim)
        if d2 > m:
            m = d2
    return np.sqrt(m)


@njit(cache=True, parallel=True)
def _ab2_parallel(pos, vel, prev_vel, n, dt, domain, dim):
    disp = np.empty(n)
    for i in prange(n):
        disp[i] = _ab2_cell(i, pos, vel, prev_vel, dt, domain, dim)
    m = 0.0
    for i in range(n):
        if disp[i] > m:
            m = disp[i]
    return np.sqrt(m)


def ab2_update(pos, vel, prev_vel, n, dt, domain, dim, parallel=None) -> float:
    """Adams–Bashforth 2 position update, clamped into the domain; ``prev_vel`` ← ``vel``.

    Returns the largest displacement (µm) of this step (an order-free max).
    """
    par = n >= PARALLEL_MIN_CELLS if parallel is None else parallel
    return (_ab2_parallel if par else _ab2_serial)(pos, vel, prev_vel, n, dt, domain, dim)


class CellList:
    """Cell-list neighbour search with a Verlet skin (rebuilds only when needed).

    ``cutoff`` is the largest interaction distance (µm), ``skin`` the extra margin; a rebuild
    happens when cells were added/removed or the accumulated maximum displacement exceeds
    ``skin / 2``.
    """

    def __init__(self, domain: np.ndarray, dim: int, cutoff: float, skin: float | None = None) -> None:
        self.domain = np.asarray(domain, dtype=np.float64)
        self.dim = dim
        self.set_cutoff(cutoff, skin)
        self.start = np.zeros(2, dtype=np.int64)
        self.order = np.zeros(0, dtype=np.int64)
        self.n_built = -1
        self.moved = np.inf
        self.rebuilds = 0

    def set_cutoff(self, cutoff: float, skin: float | None = None) -> None:
        self.cutoff = float(cutoff)
        self.skin = float(skin if skin is not None else 0.25 * cutoff)
        self.bin_size = self.cutoff + self.skin
        nb = np.maximum(np.ceil(self.domain / self.bin_size).astype(np.int64), 1)
        if self.dim == 2:
            nb[2] = 1
        self.nbins = nb
        self.moved = np.inf

    def invalidate(self) -> None:
        self.moved = np.inf

    def note_displacement(self, d: float) -> None:
        self.moved += d

    def ensure(self, pos: np.ndarray, n: int) -> bool:
        """Rebuild if needed; returns True when it rebuilt."""
        if n == self.n_built and self.moved <= 0.5 * self.skin:
            return False
        self.start, self.order = build_cell_list(pos, n, self.bin_size, self.nbins)
        self.n_built = n
        self.moved = 0.0
        self.rebuilds += 1
        return True

    def bin_order(self) -> np.ndarray:
        """Slots sorted by bin (for reordering the store for locality)."""
        return self.order
