"""Contact counts on the cell list: how many live cells of each type touch each cell (numba).

Picking one touching partner (killing, phagocytosis) lives in :mod:`tme_sim.celltypes.neighbors`.
"""

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
