"""Contacts on the cell list (numba, serial, deterministic): who touches whom.

:class:`Neighbours` answers every contact question a behaviour may ask, on the up-to-date cell
list, without access to the rest of the model:

* :meth:`~Neighbours.counts` — how many live cells of each type touch each query cell;
* :meth:`~Neighbours.pressure` — PhysiCell's dimensionless "simple pressure" on each query cell;
* :meth:`~Neighbours.pick` — one touching cell among several target types, alive *or dead* (for
  phagocytosis of dead cells), chosen by a uniform drawn from the model's generator;
* :meth:`~Neighbours.accumulate` — for every touching (query, target) pair add the query's weight
  to the target (e.g. the M2 polarization of macrophages touching a tumor cell).

Touching means centre distance < ``reach``·(r_i + r_j) (µm). Candidates are enumerated in the
cell list's fixed bin order, so results do not depend on threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numba import njit, prange

from tme_sim.mechanics import PARALLEL_MIN_CELLS, dist2, home_bin, stencil_range, stencil_rows

if TYPE_CHECKING:
    from tme_sim.cells import CellStore
    from tme_sim.mechanics import CellList

#: default contact reach: cells touch when their centres are closer than 1.1·(r_i + r_j)
CONTACT_REACH = 1.1


@njit(cache=True)
def _count_touching_by_type(query, pos, radius, ctype, dead, n_types, start, order, nbins, bin_size, dim, reach):
    """Counts (len(query), n_types) of live cells within ``reach``·(r_i + r_j) of each query cell."""
    out = np.zeros((query.size, n_types), dtype=np.int64)
    for q in range(query.size):
        i = query[q]
        bx, by, bz = home_bin(pos[i, 0], pos[i, 1], pos[i, 2], bin_size, nbins)
        for r in range(stencil_rows(dim)):
            lo, hi = stencil_range(r, bx, by, bz, nbins, dim, start)
            for k in range(lo, hi):
                j = order[k]
                if j == i or dead[j] != 0:
                    continue
                d2 = dist2(pos, i, j)
                rr = reach * (radius[i] + radius[j])
                if d2 < rr * rr:
                    out[q, ctype[j]] += 1
    return out


@njit(cache=True)
def _scan_touching(i, is_target, want_dead, pick, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach):
    """Count matching touching cells around cell i and return candidate number ``pick`` (or −1)."""
    bx, by, bz = home_bin(pos[i, 0], pos[i, 1], pos[i, 2], bin_size, nbins)
    count = 0
    chosen = -1
    for r in range(stencil_rows(dim)):
        lo, hi = stencil_range(r, bx, by, bz, nbins, dim, start)
        for k in range(lo, hi):
            j = order[k]
            if j == i or not is_target[ctype[j]]:
                continue
            if (dead[j] != 0) != want_dead:
                continue
            d2 = dist2(pos, i, j)
            rr = reach * (radius[i] + radius[j])
            if d2 < rr * rr:
                if count == pick:
                    chosen = j
                count += 1
    return count, chosen


@njit(cache=True)
def _pick_touching(query, is_target, want_dead, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach, u):
    out = np.full(query.size, -1, dtype=np.int64)
    for q in range(query.size):
        i = query[q]
        total, _ = _scan_touching(
            i, is_target, want_dead, -1, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach
        )
        if total > 0:
            pick = min(int(u[q] * total), total - 1)
            _, chosen = _scan_touching(
                i,
                is_target,
                want_dead,
                pick,
                pos,
                radius,
                ctype,
                dead,
                start,
                order,
                nbins,
                bin_size,
                dim,
                reach,
            )
            out[q] = chosen
    return out


@njit(cache=True)
def _add_to_touching(
    query, weights, is_target, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach, acc
):
    for q in range(query.size):
        i = query[q]
        w = weights[q]
        if w == 0.0:
            continue
        bx, by, bz = home_bin(pos[i, 0], pos[i, 1], pos[i, 2], bin_size, nbins)
        for r in range(stencil_rows(dim)):
            lo, hi = stencil_range(r, bx, by, bz, nbins, dim, start)
            for k in range(lo, hi):
                j = order[k]
                if j == i or not is_target[ctype[j]] or dead[j] != 0:
                    continue
                d2 = dist2(pos, i, j)
                rr = reach * (radius[i] + radius[j])
                if d2 < rr * rr:
                    acc[j] += w
    return acc


SIMPLE_PRESSURE_SCALE = 0.027288820670331
"""PhysiCell's normalisation of the simple pressure: ``12·(1 − √(π/(2√3)))²``, the sum for 12
neighbours at close-packing distance (PhysiCell ``Cell::add_potentials``)."""


@njit(cache=True, inline="always", error_model="numpy")
def _simple_pressure_of(i, pos, radius, start, order, nbins, bin_size, dim):
    """``Σ_j (1 − d_ij/(r_i + r_j))² / SIMPLE_PRESSURE_SCALE`` over every cell j overlapping cell i,
    summed in stencil (bin, then slot) order."""
    bx, by, bz = home_bin(pos[i, 0], pos[i, 1], pos[i, 2], bin_size, nbins)
    acc = 0.0
    for r in range(stencil_rows(dim)):
        lo, hi = stencil_range(r, bx, by, bz, nbins, dim, start)
        for k in range(lo, hi):
            j = order[k]
            if j == i:
                continue
            d2 = dist2(pos, i, j)
            R = radius[i] + radius[j]
            if d2 < R * R:
                t = 1.0 - np.sqrt(d2) / R
                acc += t * t
    return acc / SIMPLE_PRESSURE_SCALE


@njit(cache=True, error_model="numpy")
def _simple_pressure_kernel(query, pos, radius, start, order, nbins, bin_size, dim):
    """:func:`_simple_pressure_of` of every cell in ``query``."""
    out = np.zeros(query.size)
    for q in range(query.size):
        out[q] = _simple_pressure_of(query[q], pos, radius, start, order, nbins, bin_size, dim)
    return out


@njit(cache=True, parallel=True, error_model="numpy")
def _simple_pressure_parallel(query, pos, radius, start, order, nbins, bin_size, dim):
    """:func:`_simple_pressure_kernel` threaded over the queried cells (each sum is one cell's own,
    in the same order: bit-identical at any thread count)."""
    out = np.zeros(query.size)
    for q in prange(query.size):
        out[q] = _simple_pressure_of(query[q], pos, radius, start, order, nbins, bin_size, dim)
    return out


class Neighbours:
    """Contact queries on a store's cells through its cell list (kept up to date on each query).

    Parameters
    ----------
    store:
        The cell store (positions µm, radii µm, types, death states).
    cell_list:
        The mechanics cell list over the same store (bins, order).
    dim:
        2 or 3.
    n_types:
        Number of cell types (width of :meth:`counts`).
    """

    def __init__(self, store: CellStore, cell_list: CellList, dim: int, n_types: int) -> None:
        self.store = store
        self.cell_list = cell_list
        self.dim = int(dim)
        self.n_types = int(n_types)

    def search(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
        """The up-to-date cell list as kernel arguments: ``(start, order, nbins, bin_size, dim)``."""
        st = self.store
        cl = self.cell_list
        cl.ensure(st.position, st.n)
        return cl.start, cl.order, cl.nbins, cl.bin_size, self.dim

    def type_mask(self, types: Sequence[int] | np.ndarray) -> np.ndarray:
        """Boolean ``(n_types,)`` mask with True at ``types``."""
        m = np.zeros(self.n_types, dtype=np.bool_)
        m[np.asarray(types, dtype=np.int64)] = True
        return m

    def counts(self, slots: np.ndarray, reach: float = CONTACT_REACH) -> np.ndarray:
        """``(len(slots), n_types)`` int64: number of live touching cells of each type."""
        st = self.store
        search = self.search()
        query = np.asarray(slots, dtype=np.int64)
        return _count_touching_by_type(query, st.position, st.radius, st.type, st.death, self.n_types, *search, reach)

    def pressure(self, slots: np.ndarray) -> np.ndarray:
        """PhysiCell's dimensionless simple pressure ``(len(slots),)`` on each cell from all
        overlapping cells (live or dead: both push); 1 ≈ twelve neighbours at close-packing distance
        in 3D (a confluent 2D sheet at that spacing gives ~0.5)."""
        st = self.store
        search = self.search()
        query = np.asarray(slots, dtype=np.int64)
        kernel = _simple_pressure_parallel if query.size >= PARALLEL_MIN_CELLS else _simple_pressure_kernel
        return kernel(query, st.position, st.radius, *search)

    def pick(
        self,
        slots: np.ndarray,
        is_target: np.ndarray,
        rng: np.random.Generator,
        *,
        dead: bool = False,
        reach: float = CONTACT_REACH,
    ) -> np.ndarray:
        """For each cell at ``slots``: the slot of one touching cell whose type is in ``is_target``
        (bool ``(n_types,)``) and that is dead (``dead=True``: apoptotic, necrotic or lysed) or alive;
        −1 where none. One uniform per query cell from ``rng``."""
        st = self.store
        search = self.search()
        slots = np.asarray(slots, dtype=np.int64)
        u = rng.random(slots.size)
        target = np.asarray(is_target, dtype=np.bool_)
        return _pick_touching(slots, target, bool(dead), st.position, st.radius, st.type, st.death, *search, reach, u)

    def accumulate(
        self, slots: np.ndarray, weights: np.ndarray, is_target: np.ndarray, reach: float = CONTACT_REACH
    ) -> np.ndarray:
        """``(n,)`` float64 over all live slots: the sum of ``weights[q]`` of the query cells ``slots[q]``
        touching each live cell whose type is in ``is_target`` (zero elsewhere)."""
        st = self.store
        search = self.search()
        acc = np.zeros(st.n, dtype=np.float64)
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size == 0:
            return acc
        w = np.asarray(weights, dtype=np.float64)
        target = np.asarray(is_target, dtype=np.bool_)
        return _add_to_touching(slots, w, target, st.position, st.radius, st.type, st.death, *search, reach, acc)
