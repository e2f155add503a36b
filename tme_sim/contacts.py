"""Contacts on the cell list (numba): how many live cells of each type touch each cell, and the
PhysiCell "simple pressure" each cell feels.

Picking one touching partner (killing, phagocytosis) lives in :mod:`tme_sim.celltypes.neighbors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from tme_sim.mechanics import dist2, home_bin, stencil_range, stencil_rows

if TYPE_CHECKING:
    from tme_sim.model import TMEModel


@njit(cache=True)
def _contact_counts(query, pos, radius, ctype, dead, n_types, start, order, nbins, bin_size, dim, reach):
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


def cell_list_search(model: TMEModel) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """The up-to-date cell list as kernel arguments: ``(start, order, nbins, bin_size, dim)``."""
    st = model.store
    cl = model.cell_list
    cl.ensure(st.position, st.n)
    return cl.start, cl.order, cl.nbins, cl.bin_size, model.dim


def contact_counts(model: TMEModel, slots: np.ndarray, reach: float = 1.1) -> np.ndarray:
    """(len(slots), n_types) number of live touching cells of each type."""
    st = model.store
    search = cell_list_search(model)
    query = np.asarray(slots, dtype=np.int64)
    return _contact_counts(query, st.position, st.radius, st.type, st.death, len(model.type_names), *search, reach)


SIMPLE_PRESSURE_SCALE = 0.027288820670331
"""PhysiCell's normalisation of the simple pressure: ``12·(1 − √(π/(2√3)))²``, the sum for 12
neighbours at close-packing distance (PhysiCell ``Cell::add_potentials``)."""


@njit(cache=True, error_model="numpy")
def _simple_pressure(query, pos, radius, start, order, nbins, bin_size, dim):
    """``Σ_j (1 − d_ij/(r_i + r_j))² / SIMPLE_PRESSURE_SCALE`` over every cell j overlapping i."""
    out = np.zeros(query.size)
    for q in range(query.size):
        i = query[q]
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
        out[q] = acc / SIMPLE_PRESSURE_SCALE
    return out


def simple_pressure(model: TMEModel, slots: np.ndarray) -> np.ndarray:
    """PhysiCell's dimensionless simple pressure ``(len(slots),)`` on each cell from all overlapping
    cells (live or dead: both push); 1 ≈ twelve neighbours at close-packing distance in 3D (a
    confluent 2D sheet at that spacing gives ~0.5)."""
    st = model.store
    search = cell_list_search(model)
    return _simple_pressure(np.asarray(slots, dtype=np.int64), st.position, st.radius, *search)
