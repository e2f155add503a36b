"""Contact queries on the cell list: who touches whom, for all cells at once (numba)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from tme_sim.model import TMEModel


@njit(cache=True)
def _contact_counts(query, pos, radius, ctype, dead, n_types, start, order, nbins, bin_size, dim, reach):
    """Counts (len(query), n_types) of live cells within ``reach``·(r_i + r_j) of each query cell."""
    out = np.zeros((query.size, n_types), dtype=np.int64)
    zr = 1 if dim == 3 else 0
    for q in range(query.size):
        i = query[q]
        bx = min(max(int(pos[i, 0] / bin_size), 0), nbins[0] - 1)
        by = min(max(int(pos[i, 1] / bin_size), 0), nbins[1] - 1)
        bz = min(max(int(pos[i, 2] / bin_size), 0), nbins[2] - 1)
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
                        if j == i or dead[j] != 0:
                            continue
                        d2 = 0.0
                        for a in range(3):
                            d2 += (pos[i, a] - pos[j, a]) ** 2
                        rr = reach * (radius[i] + radius[j])
                        if d2 < rr * rr:
                            out[q, ctype[j]] += 1
    return out


@njit(cache=True)
def _scan_contacts(i, target_type, pick, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach):
    """Count touching live cells of ``target_type`` around cell i; also return candidate ``pick``."""
    zr = 1 if dim == 3 else 0
    bx = min(max(int(pos[i, 0] / bin_size), 0), nbins[0] - 1)
    by = min(max(int(pos[i, 1] / bin_size), 0), nbins[1] - 1)
    bz = min(max(int(pos[i, 2] / bin_size), 0), nbins[2] - 1)
    count = 0
    chosen = -1
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
                    if j == i or ctype[j] != target_type or dead[j] != 0:
                        continue
                    d2 = 0.0
                    for a in range(3):
                        d2 += (pos[i, a] - pos[j, a]) ** 2
                    rr = reach * (radius[i] + radius[j])
                    if d2 < rr * rr:
                        if count == pick:
                            chosen = j
                        count += 1
    return count, chosen


@njit(cache=True)
def _first_contact(query, target_type, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach, u):
    """For each query cell, a touching live cell of ``target_type`` chosen by the uniform ``u[q]``.

    Candidates are enumerated in the fixed bin order; the pick is candidate ⌊u·count⌋, so the
    choice is reproducible and independent of threads. −1 where none touches.
    """
    out = np.full(query.size, -1, dtype=np.int64)
    for q in range(query.size):
        i = query[q]
        total, _ = _scan_contacts(
            i, target_type, -1, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach
        )
        if total > 0:
            pick = min(int(u[q] * total), total - 1)
            _, chosen = _scan_contacts(
                i, target_type, pick, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach
            )
            out[q] = chosen
    return out


def contact_counts(model: TMEModel, slots: np.ndarray, reach: float = 1.1) -> np.ndarray:
    """(len(slots), n_types) number of live touching cells of each type."""
    st = model.store
    cl = model.cell_list
    cl.ensure(st.position, st.n)
    return _contact_counts(
        np.asarray(slots, dtype=np.int64),
        st.position,
        st.radius,
        st.type,
        st.death,
        len(model.type_names),
        cl.start,
        cl.order,
        cl.nbins,
        cl.bin_size,
        model.dim,
        reach,
    )


def pick_contact(model: TMEModel, slots: np.ndarray, target_type: int, reach: float = 1.1) -> np.ndarray:
    """For each cell at ``slots``, one touching live cell of ``target_type`` (slot) or −1."""
    st = model.store
    cl = model.cell_list
    cl.ensure(st.position, st.n)
    u = model.rng.random(len(slots))
    return _first_contact(
        np.asarray(slots, dtype=np.int64),
        target_type,
        st.position,
        st.radius,
        st.type,
        st.death,
        cl.start,
        cl.order,
        cl.nbins,
        cl.bin_size,
        model.dim,
        reach,
        u,
    )
