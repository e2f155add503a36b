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
cells were added or removed. The Verlet lists are *half* lists: each pair is listed once, in the
row of whichever of its cells comes first in the cell list (scanning a forward half stencil),
and each cell's sum has a fixed order: its half row in bin order, then the pairs listed in other
rows by ascending slot. Each pair's force is computed once, by the cell whose half row lists it,
into a per-pair buffer; a second pass adds each cell's share of the pairs listed in other rows
through a transposed index (:func:`reverse_lists`). The model's force loop
(:func:`direct_velocities`) computes each pair's constants from the radii, types and death states
in the loop; the per-pair coefficient path (:func:`listed_velocities`) reads them from an array.
Both give the same bits, at any number of threads (no shared accumulators, no atomics).

All kernels take plain arrays; positions are (n, 3) float64 (z = 0 in 2D). They are compiled
with ``error_model="numpy"``: no divisor here can be zero, and numba's default Python error
model would add a zero check to every division (it doubled the cost of the force loop).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from tme_sim.parallel import KernelChooser


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
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
ADAPTIVE_MIN_CELLS = 10_000
"""From this many cells on, the model times both compilations of the force and Verlet-list kernels
and keeps the faster (:class:`tme_sim.parallel.KernelChooser`). At 10⁴ cells (3D) a force call is
~2 ms and a list build ~3.4 ms serial, so a fork/join of tens of µs on an idle machine is a few
per cent; below that the serial kernels always run (at 10³ cells a 2-thread call measured 15-40 ms
against 0.05-0.3 ms serial on the loaded 2-core machine, ``benchmarks/thread_scaling.py``)."""
SKIN_FRACTION = 0.25  # Verlet skin as a fraction of the cutoff (benchmarks/cells.py)


@njit(cache=True, inline="always")
def home_bin(x, y, z, bin_size, nbins):
    """Bin coordinates ``(bx, by, bz)`` of a position (µm), clipped into the grid of bins."""
    bx = min(max(int(x / bin_size), 0), nbins[0] - 1)
    by = min(max(int(y / bin_size), 0), nbins[1] - 1)
    bz = min(max(int(z / bin_size), 0), nbins[2] - 1)
    return bx, by, bz


@njit(cache=True, inline="always")
def dist2(pos, i, j):
    """Squared distance (µm²) between cells ``i`` and ``j`` of ``pos (n, 3)``."""
    dx = pos[i, 0] - pos[j, 0]
    dy = pos[i, 1] - pos[j, 1]
    dz = pos[i, 2] - pos[j, 2]
    return dx * dx + dy * dy + dz * dz


@njit(cache=True, inline="always")
def stencil_rows(dim):
    """Number of stencil rows around a bin: 3 in 2D, 9 in 3D (see :func:`stencil_range`)."""
    return 9 if dim == 3 else 3


@njit(cache=True, inline="always")
def stencil_range(r, bx, by, bz, nbins, dim, start):
    """``(lo, hi)``: the slice of ``order`` holding the cells of stencil row ``r`` around bin
    ``(bx, by, bz)`` — the (up to) three bins x−1, x, x+1 of one (z, y) row are contiguous in the
    cell list. Rows run z outer, y inner, so scanning ``r = 0 … stencil_rows(dim) − 1`` visits
    candidates in ascending flat bin, then slot, order (every kernel sums in that order). An
    out-of-grid row is empty."""
    dz = r // 3 - 1 if dim == 3 else 0
    cz = bz + dz
    cy = by + r % 3 - 1
    if cz < 0 or cz >= nbins[2] or cy < 0 or cy >= nbins[1]:
        return 0, 0
    row = (cz * nbins[1] + cy) * nbins[0]
    return start[row + max(bx - 1, 0)], start[row + min(bx + 1, nbins[0] - 1) + 1]


@njit(cache=True, inline="always")
def forward_segments(dim):
    """Number of forward stencil segments (:func:`forward_range`): 2 in 2D, 5 in 3D."""
    return 5 if dim == 3 else 2


@njit(cache=True, inline="always")
def forward_range(r, ki, bx, by, bz, nbins, dim, start):
    """``(lo, hi)``: segment ``r`` of the cell list that follows position ``ki`` (a cell in bin
    ``(bx, by, bz)``) within its stencil — the rest of its (z, y) row up to bin x+1, the row y+1
    (bins x−1 … x+1), and in 3D the rows y−1 … y+1 of plane z+1. Every cell of the stencil that
    comes after ``ki`` in the cell list is in exactly one segment, and the segments run in
    ascending cell-list order (half the candidates of :func:`stencil_range`)."""
    nbx = nbins[0]
    if r == 0:
        row = (bz * nbins[1] + by) * nbx
        return ki + 1, start[row + min(bx + 1, nbx - 1) + 1]
    if r == 1:
        cz = bz
        cy = by + 1
    else:
        cz = bz + 1
        cy = by + r - 3
    if cz >= nbins[2] or cy < 0 or cy >= nbins[1]:
        return 0, 0
    row = (cz * nbins[1] + cy) * nbx
    return start[row + max(bx - 1, 0)], start[row + min(bx + 1, nbx - 1) + 1]


@njit(cache=True, inline="always", error_model="numpy")
def _scan_neighbors(ki, sorted_xyzr, sorted_type, arel_pp, start, order, nbins, dim, margins, out, base):
    """Cells j after the cell at position ``ki`` of the cell list ``order`` closer to it than
    their adhesion reach ½(a_i + a_j)·(r_i + r_j) plus the list ``margins`` (µm, per type) of both
    cells' types, in ascending cell-list order
    (flat bin, then slot); written (as slots) to ``out[base:]`` when ``out`` is non-empty — every
    candidate of the stencil is written there, each over the last unless it is near (no branch
    to mispredict), so ``out`` needs room for :func:`_candidates` entries from ``base``. ``sorted_xyzr``
    (n, 4): x, y, z, radius and ``sorted_type`` (n,): type, both in cell-list order (read as a stream).
    Returns how many. Each pair is listed once, by the cell that comes first in the cell list (a
    forward half stencil, :func:`forward_range`)."""
    xi = sorted_xyzr[ki, 0]
    yi = sorted_xyzr[ki, 1]
    zi = sorted_xyzr[ki, 2]
    ri = sorted_xyzr[ki, 3]
    ti = sorted_type[ki]
    mi = margins[ti]
    bx, by, bz = _home(ki, start, nbins)  # the bin the cell was sorted into (bins may be stale)
    fill = out.size > 0
    c = 0
    for r in range(forward_segments(dim)):
        lo, hi = forward_range(r, ki, bx, by, bz, nbins, dim, start)
        if fill:  # branch-free: every candidate is written, and kept (c advances) when it is near
            for k in range(lo, hi):
                ddx = xi - sorted_xyzr[k, 0]
                ddy = yi - sorted_xyzr[k, 1]
                ddz = zi - sorted_xyzr[k, 2]
                d2 = ddx * ddx + ddy * ddy + ddz * ddz
                tj = sorted_type[k]
                reach = arel_pp[ti, tj] * (ri + sorted_xyzr[k, 3]) + mi + margins[tj]
                out[base + c] = order[k]
                c += 1 if d2 <= reach * reach else 0
        else:
            for k in range(lo, hi):
                ddx = xi - sorted_xyzr[k, 0]
                ddy = yi - sorted_xyzr[k, 1]
                ddz = zi - sorted_xyzr[k, 2]
                d2 = ddx * ddx + ddy * ddy + ddz * ddz
                tj = sorted_type[k]
                reach = arel_pp[ti, tj] * (ri + sorted_xyzr[k, 3]) + mi + margins[tj]
                c += 1 if d2 <= reach * reach else 0
    return c


@njit(cache=True, inline="always", error_model="numpy")
def _wall_push(c, extent, ri, rep_i):
    """Wall repulsion speed (µm/min) along one axis of a cell at coordinate ``c`` µm of radius
    ``ri`` in a domain ``[0, extent]``: each wall repels as a cell of the same radius mirrored at it."""
    push = 0.0
    lo = c
    hi = extent - c
    if lo < ri:
        t = 1.0 - max(lo, 0.0) / ri
        push += t * t * rep_i
    if hi < ri:
        t = 1.0 - max(hi, 0.0) / ri
        push -= t * t * rep_i
    return push


@njit(cache=True, inline="always", error_model="numpy")
def _sorted_cells(pos, radius, ctype, order, n):
    """Positions and radii ``(n, 4)`` and types ``(n,)`` in cell-list order, and each cell's rank."""
    sorted_xyzr = np.empty((n, 4))
    sorted_type = np.empty(n, dtype=ctype.dtype)
    rank = np.empty(n, dtype=np.int64)
    for k in range(n):
        j = order[k]
        sorted_xyzr[k, 0] = pos[j, 0]
        sorted_xyzr[k, 1] = pos[j, 1]
        sorted_xyzr[k, 2] = pos[j, 2]
        sorted_xyzr[k, 3] = radius[j]
        sorted_type[k] = ctype[j]
        rank[j] = k
    return sorted_xyzr, sorted_type, rank


@njit(cache=True, inline="always", error_model="numpy")
def _reach_tables(adh_rel_t):
    """Mean adhesion-distance ratio per type pair."""
    nt = adh_rel_t.size
    arel_pp = np.empty((nt, nt))
    for a in range(nt):
        for b in range(nt):
            arel_pp[a, b] = 0.5 * (adh_rel_t[a] + adh_rel_t[b])
    return arel_pp


@njit(cache=True, inline="always", error_model="numpy")
def _home(ki, start, nbins):
    """Bin coordinates of the cell at position ``ki`` of the cell list (the bin it was sorted into)."""
    flat = np.searchsorted(start, ki, side="right") - 1
    return flat % nbins[0], (flat // nbins[0]) % nbins[1], flat // (nbins[0] * nbins[1])


@njit(cache=True, inline="always", error_model="numpy")
def _candidates(ki, start, nbins, dim):
    """How many cells the forward stencil of the cell at position ``ki`` holds (a bound on its
    list length)."""
    bx, by, bz = _home(ki, start, nbins)
    c = 0
    for r in range(forward_segments(dim)):
        lo, hi = forward_range(r, ki, bx, by, bz, nbins, dim, start)
        c += hi - lo
    return c


@njit(cache=True, error_model="numpy")
def _neighbor_lists_serial(pos, radius, ctype, adh_rel_t, n, start, order, nbins, bin_size, dim, margins, capacity):
    # one pass into a buffer that grows when needed (the parallel twin counts first, then fills)
    arel_pp = _reach_tables(adh_rel_t)
    sorted_xyzr, sorted_type, rank = _sorted_cells(pos, radius, ctype, order, n)
    nstart = np.empty(n + 1, dtype=np.int64)
    nstart[0] = 0
    nbr = np.empty(max(capacity, n + 16), dtype=np.int32)
    for i in range(n):
        base = nstart[i]
        if nbr.size - base < n:  # a cell has at most n − 1 neighbours: never write past the end
            grown = np.empty(max(2 * nbr.size, base + n), dtype=np.int32)
            grown[:base] = nbr[:base]
            nbr = grown
        c = _scan_neighbors(rank[i], sorted_xyzr, sorted_type, arel_pp, start, order, nbins, dim, margins, nbr, base)
        nstart[i + 1] = base + c
    return nstart, nbr[: nstart[n]]


@njit(cache=True, parallel=True, error_model="numpy")
def _neighbor_lists_parallel(
    pos, radius, ctype, adh_rel_t, n, start, order, nbins, bin_size, dim, margins, capacity, n_chunks
):
    # one pass: each chunk of cells fills its own row of a buffer (a chunk that overflows its row
    # is redone serially into a larger one), then the rows are concatenated
    arel_pp = _reach_tables(adh_rel_t)
    sorted_xyzr, sorted_type, rank = _sorted_cells(pos, radius, ctype, order, n)
    n_chunks = min(max(n_chunks, 1), max(n, 1))
    bounds = np.linspace(0, n, n_chunks + 1).astype(np.int64)
    width = (capacity // n_chunks) + 64
    buf = np.empty((n_chunks, width), dtype=np.int32)
    count = np.zeros(n + 1, dtype=np.int64)
    used = np.zeros(n_chunks, dtype=np.int64)
    for c in prange(n_chunks):
        k = 0
        for i in range(bounds[c], bounds[c + 1]):
            if k + _candidates(rank[i], start, nbins, dim) > width:  # might not fit: redo below
                k = -1
                break
            cnt = _scan_neighbors(
                rank[i], sorted_xyzr, sorted_type, arel_pp, start, order, nbins, dim, margins, buf[c], k
            )
            count[i + 1] = cnt
            k += cnt
        used[c] = k
    nstart = np.empty(n + 1, dtype=np.int64)
    nstart[0] = 0
    spill = np.empty(0, dtype=np.int32)
    for c in range(n_chunks):
        if used[c] < 0:  # overflowed: count this chunk's cells again (rare: the guess was low)
            for i in range(bounds[c], bounds[c + 1]):
                count[i + 1] = _scan_neighbors(
                    rank[i], sorted_xyzr, sorted_type, arel_pp, start, order, nbins, dim, margins, spill, 0
                )
    for i in range(n):
        nstart[i + 1] = nstart[i] + count[i + 1]
    nbr = np.empty(nstart[n], dtype=np.int32)
    for c in prange(n_chunks):
        lo = nstart[bounds[c]]
        if used[c] >= 0:
            nbr[lo : lo + used[c]] = buf[c, : used[c]]
        else:  # the scan writes every candidate: through a scratch row, not past this cell's row
            for i in range(bounds[c], bounds[c + 1]):
                tmp = np.empty(_candidates(rank[i], start, nbins, dim), dtype=np.int32)
                cnt = _scan_neighbors(
                    rank[i], sorted_xyzr, sorted_type, arel_pp, start, order, nbins, dim, margins, tmp, 0
                )
                nbr[nstart[i] : nstart[i] + cnt] = tmp[:cnt]
    return nstart, nbr


def neighbor_lists(
    pos, radius, ctype, adh_rel_t, n, start, order, nbins, bin_size, dim, skin, parallel=None, capacity=0, margins=None
):
    """Half Verlet lists ``(nstart (n+1,) int64, nbr (m,) int32)``: ``nbr[nstart[i]:nstart[i+1]]``
    are the cells j after i in the cell list closer to cell i than ½(a_i + a_j)·(r_i + r_j) +
    m_i + m_j µm (a = ``adh_rel_t`` of the type: the adhesion reach, the largest interaction
    distance; m = ``margins`` of the type, µm, default ``skin / 2`` for every type), in ascending
    cell-list order (flat bin, then slot) — the order :func:`interaction_velocities` sums them in,
    whatever the number of threads. Each pair is listed once, in the row of the cell that comes
    first in the cell list (a forward half stencil, :func:`forward_range`). The bins
    (``start``, ``order``, edge ``bin_size``) must have been built at most
    ``bin_size − max reach − skin`` µm of motion ago. ``capacity`` is a first guess of m for
    the serial kernel (it grows its buffer when short)."""
    par = n >= PARALLEL_MIN_CELLS if parallel is None else parallel
    if margins is None:
        margins = np.full(len(adh_rel_t), 0.5 * float(skin))
    margins = np.ascontiguousarray(margins, dtype=np.float64)
    if par:
        return _neighbor_lists_parallel(
            pos, radius, ctype, adh_rel_t, n, start, order, nbins, bin_size, dim, margins,
            max(capacity, 16 * n), 4 * numba.get_num_threads(),
        )  # fmt: skip
    return _neighbor_lists_serial(
        pos, radius, ctype, adh_rel_t, n, start, order, nbins, bin_size, dim, margins, capacity
    )


@njit(cache=True, inline="always", error_model="numpy")
def _reverse_arrays(nbr, n):
    """Start of each cell's reverse row ``(n+1,)`` (a count of the pairs listing it, then a prefix
    sum), the next free entry of each row ``(n,)``, and the empty ``reverse_pair``, ``reverse_row``."""
    reverse_start = np.zeros(n + 1, dtype=np.int64)
    m = nbr.size
    for k in range(m):
        reverse_start[nbr[k] + 1] += 1
    for j in range(n):
        reverse_start[j + 1] += reverse_start[j]
    return reverse_start, reverse_start[:n].copy(), np.empty(m, dtype=np.int32), np.empty(m, dtype=np.int32)


@njit(cache=True, error_model="numpy")
def _reverse_lists(nstart, nbr, n):
    reverse_start, fill, reverse_pair, reverse_row = _reverse_arrays(nbr, n)
    for i in range(n):  # ascending i: each reverse row lists its partners by ascending slot
        for k in range(nstart[i], nstart[i + 1]):
            j = nbr[k]
            reverse_pair[fill[j]] = k
            reverse_row[fill[j]] = i
            fill[j] += 1
    return reverse_start, reverse_pair, reverse_row


@njit(cache=True, parallel=True, error_model="numpy")
def _reverse_lists_parallel(nstart, nbr, n, n_parts):
    # as _reverse_lists; part c fills the reverse rows of its cells [b_c, b_c+1) by scanning every
    # pair in ascending row order (the same entries in the same places)
    reverse_start, fill, reverse_pair, reverse_row = _reverse_arrays(nbr, n)
    bounds = np.linspace(0, n, n_parts + 1).astype(np.int64)
    for c in prange(n_parts):
        lo = bounds[c]
        hi = bounds[c + 1]
        for i in range(n):
            for k in range(nstart[i], nstart[i + 1]):
                j = nbr[k]
                if lo <= j < hi:
                    reverse_pair[fill[j]] = k
                    reverse_row[fill[j]] = i
                    fill[j] += 1
    return reverse_start, reverse_pair, reverse_row


class VerletLists(NamedTuple):
    """Half Verlet lists (:func:`neighbor_lists`) and their transpose (:func:`reverse_lists`):
    pair ``k`` joins cell i (``nstart[i] <= k < nstart[i+1]``) and ``nbr[k]``; cell j appears as
    the partner of pairs ``reverse_pair[reverse_start[j]:reverse_start[j+1]]``, listed in the rows
    of ``reverse_row[...]`` (by ascending row). ``nstart``, ``reverse_start`` (n+1,) int64;
    ``nbr``, ``reverse_pair``, ``reverse_row`` (m,) int32: 12 B per listed pair."""

    nstart: np.ndarray
    nbr: np.ndarray
    reverse_start: np.ndarray
    reverse_pair: np.ndarray
    reverse_row: np.ndarray


def reverse_lists(nstart: np.ndarray, nbr: np.ndarray, n: int, parallel: bool = False) -> VerletLists:
    """The half lists with their transpose: for each cell j, the pairs (i, j) listed in the rows of
    other cells i, by ascending i. O(n + m) serial; ``parallel``: each thread fills the reverse
    rows of its share of the cells (each scans all m pairs; the same arrays)."""
    if parallel:
        return VerletLists(nstart, nbr, *_reverse_lists_parallel(nstart, nbr, n, numba.get_num_threads()))
    return VerletLists(nstart, nbr, *_reverse_lists(nstart, nbr, n))


@njit(cache=True, error_model="numpy")
def _lists_stale(pos, radius, ctype, x_built, r_built, margins, n):
    """Whether a radius grew or a cell moved more than its type's list margin ``margins`` (µm) since
    the list build (one pass: the per-step test of :meth:`CellList.neighbors`)."""
    for i in range(n):
        if radius[i] > r_built[i]:
            return True
        d2 = (pos[i, 0] - x_built[i, 0]) ** 2 + (pos[i, 1] - x_built[i, 1]) ** 2 + (pos[i, 2] - x_built[i, 2]) ** 2
        m = margins[ctype[i]]
        if d2 > m * m:
            return True
    return False


@njit(cache=True, parallel=True, error_model="numpy")
def _lists_stale_parallel(pos, radius, ctype, x_built, r_built, margins, n):
    """:func:`_lists_stale` threaded (a count of the stale cells, no early exit)."""
    stale = 0
    for i in prange(n):
        d2 = (pos[i, 0] - x_built[i, 0]) ** 2 + (pos[i, 1] - x_built[i, 1]) ** 2 + (pos[i, 2] - x_built[i, 2]) ** 2
        m = margins[ctype[i]]
        if radius[i] > r_built[i] or d2 > m * m:
            stale += 1
    return stale > 0


def lists_stale(pos, radius, ctype, x_built, r_built, margins, n) -> bool:
    """Whether the Verlet lists must be rebuilt (:func:`_lists_stale`; threaded from
    ``PARALLEL_MIN_CELLS`` cells)."""
    kernel = _lists_stale_parallel if n >= PARALLEL_MIN_CELLS else _lists_stale
    return bool(kernel(pos, radius, ctype, x_built, r_built, margins, n))


def list_margins(
    skin: float, cutoff: float, adh_rel_t: np.ndarray, radius: np.ndarray, ctype: np.ndarray, n: int, motile=None
) -> np.ndarray:
    """Per-type Verlet margins (µm): ``skin / 2`` for every type, widened for motile types by the
    reach their cells leave unused, ``max a · (r_cut − R_t)`` (``r_cut = cutoff / (2 max a)``, the
    largest radius the bins were sized for; ``R_t`` the largest radius of type t now). Every pair
    then still fits the bins, ``reach + m_i + m_j ≤ cutoff + skin``, so the lists stay exact,
    while small fast cells (T cells) may move further before they force a rebuild."""
    nt = len(adh_rel_t)
    margins = np.full(nt, 0.5 * float(skin))
    if motile is None or not np.any(motile) or n == 0:
        return margins
    a_max = float(np.max(adh_rel_t))
    r_cut = float(cutoff) / (2.0 * a_max)
    r_type = np.zeros(nt)
    np.maximum.at(r_type, ctype[:n].astype(np.int64), radius[:n])
    grow = a_max * np.maximum(r_cut - r_type, 0.0)
    margins[np.asarray(motile, dtype=bool)] += grow[np.asarray(motile, dtype=bool)]
    return margins


@njit(cache=True, error_model="numpy")
def _pair_state_changed(radius, dead, ctype, r_snap, d_snap, t_snap, n):
    """Whether any radius, death state or type of the first n cells differs from the snapshot."""
    for i in range(n):
        if radius[i] != r_snap[i] or dead[i] != d_snap[i] or ctype[i] != t_snap[i]:
            return True
    return False


@njit(cache=True, inline="always", error_model="numpy")
def _pair_speed(d2, big_r, adhesion_reach, repulsion, adhesion):
    """One pair's force over its distance, ``f/d`` (1/min), at squared distance ``d2`` (µm²) inside
    the adhesion reach: repulsion below the contact distance ``big_r`` minus adhesion out to
    ``adhesion_reach`` (both µm), each quadratic in the overlap as in PhysiCell."""
    d = np.sqrt(d2)
    if d < 1e-5:
        d = 1e-5
    f = 0.0
    if d < big_r:
        t = 1.0 - d / big_r
        f = t * t * repulsion
    ta = 1.0 - d / adhesion_reach
    f -= ta * ta * adhesion
    return f / d


@njit(cache=True, inline="always", error_model="numpy")
def _row_forces(i, pos, coef, nstart, nbr, pair_speed, vel):
    """First pass for cell i: the force of each pair in its (half) row, as ``f/d`` (1/min) into
    ``pair_speed[k]`` (0 beyond reach), summed into ``vel[i]``."""
    xi = pos[i, 0]
    yi = pos[i, 1]
    zi = pos[i, 2]
    vx = 0.0
    vy = 0.0
    vz = 0.0
    for k in range(nstart[i], nstart[i + 1]):
        j = nbr[k]
        ddx = xi - pos[j, 0]
        ddy = yi - pos[j, 1]
        ddz = zi - pos[j, 2]
        d2 = ddx * ddx + ddy * ddy + ddz * ddz
        if d2 >= coef[0, k]:  # beyond the adhesion reach: most listed candidates
            pair_speed[k] = 0.0
            continue
        s = _pair_speed(d2, coef[1, k], coef[2, k], coef[3, k], coef[4, k])
        pair_speed[k] = s
        vx += s * ddx
        vy += s * ddy
        vz += s * ddz
    vel[i, 0] = vx
    vel[i, 1] = vy
    vel[i, 2] = vz


@njit(cache=True, inline="always", error_model="numpy")
def _reverse_forces_and_walls(
    i, pos, radius, ctype, rep_t, reverse_start, reverse_pair, reverse_row, pair_speed, domain, dim, vel
):
    """Second pass for cell i: its share (−f) of the pairs listed in other rows, then the walls."""
    xi = pos[i, 0]
    yi = pos[i, 1]
    zi = pos[i, 2]
    vx = vel[i, 0]
    vy = vel[i, 1]
    vz = vel[i, 2]
    for q in range(reverse_start[i], reverse_start[i + 1]):  # no test for s == 0: unpredictable, and
        s = pair_speed[reverse_pair[q]]  # adding ±0 leaves a sum unchanged
        p = reverse_row[q]
        vx += s * (xi - pos[p, 0])
        vy += s * (yi - pos[p, 1])
        vz += s * (zi - pos[p, 2])
    # walls: repel as a cell of the same radius mirrored at the wall
    ri = radius[i]
    rep_i = rep_t[ctype[i]]
    for a in range(dim):
        push = _wall_push(pos[i, a], domain[a], ri, rep_i)
        if a == 0:
            vx += push
        elif a == 1:
            vy += push
        else:
            vz += push
    vel[i, 0] = vx
    vel[i, 1] = vy
    vel[i, 2] = vz


@njit(cache=True, inline="always", error_model="numpy")
def _pair_tables(rep_t, adh_t, adh_rel_t):
    """Per type pair: √(rep_i·rep_j), √(adh_i·adh_j) and the mean adhesion-distance ratio."""
    nt = rep_t.size
    rep_pp = np.empty((nt, nt))
    adh_pp = np.empty((nt, nt))
    arel_pp = np.empty((nt, nt))
    for a in range(nt):
        for b in range(nt):
            rep_pp[a, b] = np.sqrt(rep_t[a] * rep_t[b])
            adh_pp[a, b] = np.sqrt(adh_t[a] * adh_t[b])
            arel_pp[a, b] = 0.5 * (adh_rel_t[a] + adh_rel_t[b])
    return rep_pp, adh_pp, arel_pp


@njit(cache=True, inline="always", error_model="numpy")
def _cell_coefficients(i, radius, ctype, dead, rep_pp, adh_pp, arel_pp, nstart, nbr, coef):
    ri = radius[i]
    ti = ctype[i]
    alive_i = dead[i] == 0
    for k in range(nstart[i], nstart[i + 1]):
        j = nbr[k]
        tj = ctype[j]
        big_r = ri + radius[j]
        ra = arel_pp[ti, tj] * big_r
        coef[0, k] = ra * ra
        coef[1, k] = big_r
        coef[2, k] = ra
        coef[3, k] = rep_pp[ti, tj]
        coef[4, k] = adh_pp[ti, tj] if alive_i and dead[j] == 0 else 0.0


@njit(cache=True, error_model="numpy")
def _coefficients_serial(radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, nstart, nbr, coef):
    rep_pp, adh_pp, arel_pp = _pair_tables(rep_t, adh_t, adh_rel_t)
    for i in range(n):
        _cell_coefficients(i, radius, ctype, dead, rep_pp, adh_pp, arel_pp, nstart, nbr, coef)


@njit(cache=True, parallel=True, error_model="numpy")
def _coefficients_parallel(radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, nstart, nbr, coef):
    rep_pp, adh_pp, arel_pp = _pair_tables(rep_t, adh_t, adh_rel_t)
    for i in prange(n):
        _cell_coefficients(i, radius, ctype, dead, rep_pp, adh_pp, arel_pp, nstart, nbr, coef)


def pair_coefficients(radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, nstart, nbr, out=None, parallel=None):
    """Per Verlet-list entry ``k`` (pair i → j = ``nbr[k]``), the constants of its force, ``(5, m)``:
    adhesion reach² (µm²), contact distance ``R = r_i + r_j`` (µm), adhesion reach ``½(a_i + a_j)·R``
    (µm), repulsion √(rep_i·rep_j) and adhesion √(adh_i·adh_j) (µm/min; 0 unless both alive).
    They change only with radii, types or death states, not with positions, so a model computes
    them when its lists or those arrays change (:meth:`CellList.coefficients`)."""
    m = nbr.size
    coef = out if out is not None and out.shape == (5, m) else np.empty((5, m))
    par = n >= PARALLEL_MIN_CELLS if parallel is None else parallel
    kernel = _coefficients_parallel if par else _coefficients_serial
    kernel(radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, nstart, nbr, coef)
    return coef


@njit(cache=True, error_model="numpy")
def _velocities_serial(
    pos,
    radius,
    ctype,
    n,
    rep_t,
    coef,
    nstart,
    nbr,
    reverse_start,
    reverse_pair,
    reverse_row,
    domain,
    dim,
    pair_speed,
    vel,
):
    for i in range(n):
        _row_forces(i, pos, coef, nstart, nbr, pair_speed, vel)
    for i in range(n):
        _reverse_forces_and_walls(
            i, pos, radius, ctype, rep_t, reverse_start, reverse_pair, reverse_row, pair_speed, domain, dim, vel
        )


@njit(cache=True, parallel=True, error_model="numpy")
def _velocities_parallel(
    pos,
    radius,
    ctype,
    n,
    rep_t,
    coef,
    nstart,
    nbr,
    reverse_start,
    reverse_pair,
    reverse_row,
    domain,
    dim,
    pair_speed,
    vel,
):
    for i in prange(n):
        _row_forces(i, pos, coef, nstart, nbr, pair_speed, vel)
    for i in prange(n):  # after every row's pairs are known
        _reverse_forces_and_walls(
            i, pos, radius, ctype, rep_t, reverse_start, reverse_pair, reverse_row, pair_speed, domain, dim, vel
        )


@njit(cache=True, inline="always", error_model="numpy")
def _pair_speed_masked(d2, big_r, ti, tj, both_alive, rep_pp, adh_pp, arel_pp):
    """:func:`_pair_speed` of a listed pair with its constants from the types' tables, or 0 beyond
    the adhesion reach ``arel_pp[ti, tj]·big_r`` — computed without branches (the in/out tests are
    ~50/50 and unpredictable in packed tissue): a masked term is multiplied by 0.0, which leaves a
    sum unchanged bit for bit (x + ±0 = x; a sum that starts at +0 never becomes −0), and by 1.0
    otherwise (exact). Symmetric in the two cells bit for bit (IEEE + and × commute)."""
    ra = arel_pp[ti, tj] * big_r
    inside = 1.0 if d2 < ra * ra else 0.0
    adhesion = adh_pp[ti, tj] * (1.0 if both_alive else 0.0)
    d = max(np.sqrt(d2), 1e-5)
    t = 1.0 - d / big_r
    f = t * t * rep_pp[ti, tj] * (1.0 if d < big_r else 0.0)
    ta = 1.0 - d / ra
    f -= ta * ta * adhesion
    return f / d * inside


@njit(cache=True, inline="always", error_model="numpy")
def _half_row_forces(i, pos, radius, ctype, dead, rep_pp, adh_pp, arel_pp, nstart, nbr, pair_speed, vel):
    """First pass for cell i: each pair k of its half row, its ``f/d`` (1/min; 0 beyond reach)
    from the radii, types and death states, computed without branches
    (:func:`_pair_speed_masked`), into ``pair_speed[k]`` and summed into ``vel[i]``."""
    xi = pos[i, 0]
    yi = pos[i, 1]
    zi = pos[i, 2]
    ri = radius[i]
    ti = ctype[i]
    alive_i = dead[i] == 0
    vx = 0.0
    vy = 0.0
    vz = 0.0
    for k in range(nstart[i], nstart[i + 1]):
        j = nbr[k]
        ddx = xi - pos[j, 0]
        ddy = yi - pos[j, 1]
        ddz = zi - pos[j, 2]
        d2 = ddx * ddx + ddy * ddy + ddz * ddz
        s = _pair_speed_masked(d2, ri + radius[j], ti, ctype[j], alive_i and dead[j] == 0, rep_pp, adh_pp, arel_pp)
        pair_speed[k] = s
        vx += s * ddx
        vy += s * ddy
        vz += s * ddz
    vel[i, 0] = vx
    vel[i, 1] = vy
    vel[i, 2] = vz


@njit(cache=True, error_model="numpy")
def _velocities_direct_serial(pos, radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, nstart, nbr, reverse_start,
                              reverse_pair, reverse_row, domain, dim, pair_speed, vel):  # fmt: skip
    rep_pp, adh_pp, arel_pp = _pair_tables(rep_t, adh_t, adh_rel_t)
    for i in range(n):
        _half_row_forces(i, pos, radius, ctype, dead, rep_pp, adh_pp, arel_pp, nstart, nbr, pair_speed, vel)
    for i in range(n):
        _reverse_forces_and_walls(
            i, pos, radius, ctype, rep_t, reverse_start, reverse_pair, reverse_row, pair_speed, domain, dim, vel
        )


@njit(cache=True, parallel=True, error_model="numpy")
def _velocities_direct_parallel(pos, radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, nstart, nbr, reverse_start,
                                reverse_pair, reverse_row, domain, dim, pair_speed, vel):  # fmt: skip
    rep_pp, adh_pp, arel_pp = _pair_tables(rep_t, adh_t, adh_rel_t)
    for i in prange(n):
        _half_row_forces(i, pos, radius, ctype, dead, rep_pp, adh_pp, arel_pp, nstart, nbr, pair_speed, vel)
    for i in prange(n):  # after every half row's forces are stored
        _reverse_forces_and_walls(
            i, pos, radius, ctype, rep_t, reverse_start, reverse_pair, reverse_row, pair_speed, domain, dim, vel
        )


def direct_velocities(
    pos, radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, lists: VerletLists, domain, dim, vel, parallel=None,
    work=None,
) -> None:  # fmt: skip
    """Velocity (µm/min) of each of the first n cells from neighbours and walls, into ``vel``
    (what the model's step loop calls), bit-identical to :func:`interaction_velocities` and
    :func:`listed_velocities` at any thread count: the same two passes, with each pair's constants
    computed in the first from ``radius``, ``ctype``, ``dead`` and the type tables instead of read
    from a per-pair coefficient array (40 B per listed pair, ~0.4 GB at 10⁶ cells in 3D).
    ``work``: an optional float64 buffer of at least m entries for the per-pair forces (8 B per
    listed pair, reused between calls; computing each force in both cells instead, with no
    buffer, took 15–25 % longer)."""
    par = n >= PARALLEL_MIN_CELLS if parallel is None else parallel
    m = lists.nbr.size
    pair_speed = work[:m] if work is not None and work.size >= m else np.empty(m)
    kernel = _velocities_direct_parallel if par else _velocities_direct_serial
    kernel(pos, radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, *lists, domain, dim, pair_speed, vel)


def listed_velocities(
    pos, radius, ctype, n, rep_t, coef, lists: VerletLists, domain, dim, vel, parallel=None, work=None
) -> None:
    """:func:`interaction_velocities` with the pair constants ``coef`` of :func:`pair_coefficients`
    already computed for these lists (what the model's step loop calls). ``work``: an optional
    float64 buffer of at least m entries for the per-pair forces (reused between calls)."""
    par = n >= PARALLEL_MIN_CELLS if parallel is None else parallel
    m = lists.nbr.size
    pair_speed = work[:m] if work is not None and work.size >= m else np.empty(m)
    kernel = _velocities_parallel if par else _velocities_serial
    kernel(pos, radius, ctype, n, rep_t, coef, *lists, domain, dim, pair_speed, vel)


def interaction_velocities(
    pos, radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, nstart, nbr, domain, dim, vel, parallel=None
):
    """Velocity (µm/min) of each of the first n cells from neighbours and walls, into ``vel``.

    ``rep_t``, ``adh_t`` (µm/min) and ``adh_rel_t`` are per-type tables indexed by ``ctype``;
    ``dead[i] != 0`` disables adhesion. ``domain`` is (3,) box size in µm. ``(nstart, nbr)`` are
    half Verlet lists (:meth:`CellList.neighbors`, :func:`neighbor_lists`) holding every pair
    within interaction distance once. Each pair force is computed once and each cell sums its
    pairs in a fixed order, so serial and parallel give bit-identical results.
    """
    lists = reverse_lists(nstart, nbr, n)
    coef = pair_coefficients(radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, nstart, nbr, parallel=parallel)
    listed_velocities(pos, radius, ctype, n, rep_t, coef, lists, domain, dim, vel, parallel=parallel)


@njit(cache=True, inline="always", error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def _ab2_serial(pos, vel, prev_vel, n, dt, domain, dim):
    m = 0.0
    for i in range(n):
        d2 = _ab2_cell(i, pos, vel, prev_vel, dt, domain, dim)
        if d2 > m:
            m = d2
    return np.sqrt(m)


@njit(cache=True, parallel=True, error_model="numpy")
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

    ``cutoff`` is the largest interaction distance (µm), ``skin`` the extra margin. The bins
    (``start``, ``order``; :meth:`ensure`, used by the contact kernels) are rebuilt when cells were
    added/removed or the accumulated maximum displacement ``moved`` exceeds ``skin / 2``.

    Besides the bins it keeps half Verlet lists (:meth:`neighbors`: each pair once, with the
    transposed index) of the pairs closer than their adhesion reach plus a margin ``list_skin``.
    A list build first rebuilds the bins if any cell moved since their last build, so
    ``list_skin = skin``. Each type has a margin m_t (:func:`list_margins`: ``list_skin / 2``,
    wider for small cells of ``motile_types``); a pair is listed when closer than its reach plus
    m_i + m_j. The lists are kept until some cell has moved more than its type's margin from where
    it was at the build (the true displacement, not the accumulated per-step maximum: fast cells
    differ from step to step), a radius grew, the
    population changed or the slots were permuted (:meth:`invalidate`); until then no pair can
    come within reach without being listed. Each list runs in cell-list order of its build. The
    lists are part of a checkpoint (:meth:`lists_state`), so a resumed run sums forces over the
    very same lists, in the same order, and rebuilds them on the same steps.
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
        self.list_builds = 0
        self._nbr_size = 0
        self._r_built = np.zeros(0)
        self._x_built = np.zeros((0, 3))
        self._margins = np.zeros(0)  # per-type list margins of the current lists (:func:`list_margins`)
        self.motile_types: np.ndarray | None = None  # bool per type: may get wider margins
        self.list_kernel = KernelChooser(ADAPTIVE_MIN_CELLS)  # serial or threaded list builds
        self._coef: np.ndarray | None = None  # pair constants of the lists (:meth:`coefficients`)
        self._coef_lists: tuple | None = None
        self._coef_snapshot = (np.zeros(0), np.zeros(0, np.int8), np.zeros(0, np.int16))
        self._pair_work = np.zeros(0)  # per-pair forces of the force loop (:meth:`pair_work`)

    # assigning the bins (a rebuild, a checkpoint restore) drops the Verlet lists
    @property
    def start(self) -> np.ndarray:
        return self._start

    @start.setter
    def start(self, value: np.ndarray) -> None:
        self._start = value
        self._nbr = None

    @property
    def order(self) -> np.ndarray:
        return self._order

    @order.setter
    def order(self, value: np.ndarray) -> None:
        self._order = value
        self._nbr = None

    def set_cutoff(self, cutoff: float, skin: float | None = None) -> None:
        self.cutoff = float(cutoff)
        self.skin = float(skin if skin is not None else SKIN_FRACTION * cutoff)
        self.bin_size = self.cutoff + self.skin
        self.list_skin = self.skin  # margin of the current Verlet lists (set at each list build)
        self._nbr = None  # new bins: new lists
        nb = np.maximum(np.ceil(self.domain / self.bin_size).astype(np.int64), 1)
        if self.dim == 2:
            nb[2] = 1
        self.nbins = nb
        self.moved = np.inf

    def invalidate(self) -> None:
        """Drop the bins and the lists (after the slots were permuted)."""
        self.moved = np.inf
        self._nbr = None

    def note_displacement(self, d: float) -> None:
        self.moved += d

    def ensure(self, pos: np.ndarray, n: int, force: bool = False) -> bool:
        """Rebuild the bins if needed (or ``force``); returns True when it rebuilt. The Verlet
        lists are kept: they do not depend on the bins once built."""
        if not force and n == self.n_built and self.moved <= 0.5 * self.skin:
            return False
        self._start, self._order = build_cell_list(pos, n, self.bin_size, self.nbins)
        self.n_built = n
        self.moved = 0.0
        self.rebuilds += 1
        return True

    def neighbors(
        self, pos: np.ndarray, n: int, radius: np.ndarray, ctype: np.ndarray, adh_rel_t: np.ndarray
    ) -> VerletLists:
        """Half Verlet lists of the first n cells with their transpose (:func:`neighbor_lists` with
        the per-type margins of :func:`list_margins`, :func:`reverse_lists`). Kept until a cell
        moved more than its type's margin since the build, a radius grew, n changed or
        :meth:`invalidate` (see the class notes)."""
        if (
            self._nbr is None
            or self._r_built.size != n
            or lists_stale(pos, radius, ctype, self._x_built, self._r_built, self._margins, n)
        ):
            self._nbr = None  # free the old lists before the new ones are built (~0.13 GB at 10⁶ cells)
            self.ensure(pos, n, force=self.moved > 0.0)
            self.list_skin = self.skin  # fresh bins hold every pair within reach + skin
            self._margins = list_margins(self.list_skin, self.cutoff, adh_rel_t, radius, ctype, n, self.motile_types)
            cap = int(1.25 * self._nbr_size) + n + 16
            self.list_kernel.min_work = min(ADAPTIVE_MIN_CELLS, PARALLEL_MIN_CELLS)  # read at call time
            par = self.list_kernel.use_parallel(n)
            t0 = time.perf_counter()
            half = neighbor_lists(
                pos,
                radius,
                ctype,
                adh_rel_t,
                n,
                self.start,
                self.order,
                self.nbins,
                self.bin_size,
                self.dim,
                self.list_skin,
                parallel=par,
                capacity=cap,
                margins=self._margins,
            )
            self.list_kernel.record(par, time.perf_counter() - t0, n)
            self._nbr = reverse_lists(*half, n, parallel=par)
            self._nbr_size = self._nbr.nbr.size
            self._r_built = radius[:n].copy()
            self._x_built = pos[:n].copy()
            self.list_builds += 1
        return self._nbr

    def pair_work(self) -> np.ndarray:
        """A float64 buffer of at least one entry per pair of the current lists, kept between
        steps (the force loop's ``work``, :func:`direct_velocities`); it grows with 10 % headroom."""
        m = 0 if self._nbr is None else self._nbr.nbr.size
        if self._pair_work.size < m:
            self._pair_work = np.empty(int(1.1 * m) + 16)
        return self._pair_work

    def coefficients(self, radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, parallel: bool | None = None) -> np.ndarray:
        """:func:`pair_coefficients` of the current lists, recomputed only when the lists were
        rebuilt or a radius, type or death state of the first n cells changed since."""
        nstart, nbr = self._nbr.nstart, self._nbr.nbr
        snap = self._coef_snapshot
        if (
            self._coef is None
            or self._coef_lists is not self._nbr
            or snap[0].size != n
            or _pair_state_changed(radius, dead, ctype, snap[0], snap[1], snap[2], n)
        ):
            self._coef = pair_coefficients(
                radius, ctype, dead, n, rep_t, adh_t, adh_rel_t, nstart, nbr, out=self._coef, parallel=parallel
            )
            self._coef_lists = self._nbr
            self._coef_snapshot = (radius[:n].copy(), dead[:n].copy(), ctype[:n].copy())
        return self._coef

    def state_dict(self) -> dict[str, object]:
        """Bins, Verlet lists and what decides their next rebuild (for checkpoints).

        The neighbour lists decide the order in which contact forces are summed, so a resumed run
        must continue with the very lists (and rebuild schedule) of the original one; the cutoff is
        widened during a run, and a restored list must not widen it again later than the original.
        """
        return {
            "cutoff": np.array(self.cutoff),
            "skin": np.array(self.skin),
            "start": np.asarray(self.start),
            "order": np.asarray(self.order),
            "n_built": np.array(self.n_built),
            "moved": np.array(self.moved),
            "rebuilds": np.array(self.rebuilds),
            "verlet_lists": self.lists_state(),
        }

    def load_state_dict(self, d: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.set_cutoff(float(d["cutoff"]), float(d["skin"]))
        self.start = np.asarray(d["start"], dtype=np.int64)
        self.order = np.asarray(d["order"], dtype=np.int64)
        self.n_built = int(d["n_built"])
        self.moved = float(d["moved"])
        self.rebuilds = int(d["rebuilds"])
        self.load_lists_state(d.get("verlet_lists", {}))

    def lists_state(self) -> dict[str, np.ndarray]:
        """The Verlet lists and what decides their next rebuild (for checkpoints); empty if none."""
        if self._nbr is None:
            return {}
        return {
            "nstart": self._nbr.nstart,
            "nbr": self._nbr.nbr,
            "half": np.array(True),
            "r_built": self._r_built,
            "x_built": self._x_built,
            "list_skin": np.array(self.list_skin),
            "margins": self._margins,
            "list_builds": np.array(self.list_builds),
        }

    def load_lists_state(self, d: dict[str, np.ndarray]) -> None:
        """Restore :meth:`lists_state` (call after the bins were restored)."""
        if not d or "margins" not in d:  # none saved, or lists of an older version: rebuild
            self._nbr = None
            return
        nstart, nbr = np.asarray(d["nstart"], np.int64), np.asarray(d["nbr"], np.int32)
        self._nbr = reverse_lists(nstart, nbr, nstart.size - 1)
        self._nbr_size = nbr.size
        self._r_built = np.asarray(d["r_built"], np.float64)
        self._x_built = np.asarray(d["x_built"], np.float64)
        self.list_skin = float(d["list_skin"])
        self._margins = np.asarray(d["margins"], np.float64)
        self.list_builds = int(d["list_builds"])

    def bin_order(self) -> np.ndarray:
        """Slots sorted by bin (for reordering the store for locality)."""
        return self.order
