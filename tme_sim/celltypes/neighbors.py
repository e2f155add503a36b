"""Contact kernels the rule sets need beyond :mod:`tme_sim.contacts` (numba, serial, deterministic).

* :func:`pick_neighbor` — one touching cell among several target types, alive *or dead* (for
  phagocytosis of dead cells), chosen by a uniform drawn from ``model.rng``;
* :func:`accumulate_neighbors` — for every touching (query, target) pair add the query's weight to
  the target (e.g. the M2 polarization of macrophages touching a tumor cell).

Touching means centre distance < ``reach``·(r_i + r_j) (µm). Candidates are enumerated in the
cell list's fixed bin order, so results do not depend on threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from tme_sim.contacts import cell_list_search
from tme_sim.mechanics import dist2, home_bin, stencil_range, stencil_rows

if TYPE_CHECKING:
    from tme_sim.model import TMEModel


@njit(cache=True)
def _scan(i, is_target, want_dead, pick, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach):
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
def _pick(query, is_target, want_dead, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach, u):
    out = np.full(query.size, -1, dtype=np.int64)
    for q in range(query.size):
        i = query[q]
        total, _ = _scan(
            i, is_target, want_dead, -1, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach
        )
        if total > 0:
            pick = min(int(u[q] * total), total - 1)
            _, chosen = _scan(
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
def _accumulate(query, weights, is_target, pos, radius, ctype, dead, start, order, nbins, bin_size, dim, reach, acc):
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


def type_mask(model: TMEModel, types: list[int] | np.ndarray) -> np.ndarray:
    """Boolean ``(n_types,)`` mask with True at ``types``."""
    m = np.zeros(len(model.type_names), dtype=np.bool_)
    m[np.asarray(types, dtype=np.int64)] = True
    return m


def pick_neighbor(
    model: TMEModel, slots: np.ndarray, is_target: np.ndarray, *, dead: bool = False, reach: float = 1.1
) -> np.ndarray:
    """For each cell at ``slots``: the slot of one touching cell whose type is in ``is_target``
    (bool ``(n_types,)``) and that is dead (``dead=True``: apoptotic, necrotic or lysed) or alive;
    −1 where none. One uniform per query cell from ``model.rng``."""
    st = model.store
    search = cell_list_search(model)
    slots = np.asarray(slots, dtype=np.int64)
    u = model.rng.random(slots.size)
    target = np.asarray(is_target, dtype=np.bool_)
    return _pick(slots, target, bool(dead), st.position, st.radius, st.type, st.death, *search, reach, u)


def accumulate_neighbors(
    model: TMEModel, slots: np.ndarray, weights: np.ndarray, is_target: np.ndarray, reach: float = 1.1
) -> np.ndarray:
    """``(n,)`` float64 over all live slots: the sum of ``weights[q]`` of the query cells ``slots[q]``
    touching each live cell whose type is in ``is_target`` (zero elsewhere)."""
    st = model.store
    search = cell_list_search(model)
    acc = np.zeros(st.n, dtype=np.float64)
    slots = np.asarray(slots, dtype=np.int64)
    if slots.size == 0:
        return acc
    w = np.asarray(weights, dtype=np.float64)
    target = np.asarray(is_target, dtype=np.bool_)
    return _accumulate(slots, w, target, st.position, st.radius, st.type, st.death, *search, reach, acc)
