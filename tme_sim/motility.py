"""Active motility of cells: persistent random walk with chemotaxis, as numba kernels on arrays.

Each mechanics step (``dt`` minutes) a live cell with ``migration_speed > 0`` keeps its unit
direction ``motility_dir`` or, with probability ``1 − exp(−dt / persistence)`` of its type (or
when it has none yet), turns: a new isotropic random unit vector, which for types with
chemotaxis and a cell with ``chemotaxis_bias`` b > 0 is mixed with the chemotactic direction d:
``normalize((1 − b)·random + b·d)``. ``d`` is the unit vector of ``Σ_s w_s g_s`` over the type's
chemotaxis substrates ``s`` with sensitivities ``w_s`` (one substrate: ``w = ±1`` by
``direction``; PhysiCell's advanced chemotaxis: any weights, each ``g_s`` made unit length first
with ``normalize_each_gradient``), ``g_s`` the gradient at the cell's voxel (central differences,
one-sided at the domain faces). The cell then adds
``migration_speed · motility_dir`` (µm/min) to its velocity.

Random numbers come from the model's Generator, drawn in numpy in a fixed order (one uniform per
motile cell, then ``dim`` normals per turning cell); the kernels only do arithmetic, so results
do not depend on threads. The gradient matches :meth:`Microenvironment.gradient` bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tme_sim.errors import GridError


@njit(cache=True)
def motile_slots(speed, death, n, alive):
    """Slots (int64, ascending) of the first n cells with ``speed > 0`` and ``death == alive``."""
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        if speed[i] > 0 and death[i] == alive:
            out[k] = i
            k += 1
    return out[:k]


@njit(cache=True)
def turning_slots(motile, ctype, direction, p_turn_t, u):
    """The motile cells that turn this step: ``u[q] < p_turn_t[type]`` or no direction yet."""
    out = np.empty(motile.size, dtype=np.int64)
    k = 0
    for q in range(motile.size):
        i = motile[q]
        x = direction[i, 0]
        y = direction[i, 1]
        z = direction[i, 2]
        fresh = np.sqrt(x * x + y * y + z * z) == 0
        if u[q] < p_turn_t[ctype[i]] or fresh:
            out[k] = i
            k += 1
    return out[:k]


@njit(cache=True)
def set_random_directions(turn, normals, dim, direction):
    """``direction[turn[q]]`` ← ``normals[q]`` (``(k, dim)`` standard normals) made unit length
    (z = 0 in 2D; a zero vector stays zero)."""
    for q in range(turn.size):
        i = turn[q]
        x = normals[q, 0]
        y = normals[q, 1]
        z = normals[q, 2] if dim == 3 else 0.0
        norm = np.sqrt(x * x + y * y + z * z)
        if norm == 0:
            norm = 1.0
        direction[i, 0] = x / norm
        direction[i, 1] = y / norm
        direction[i, 2] = z / norm


@njit(cache=True)
def accumulate_gradient(turn, ctype, bias, pos, field, dx, t, weight, normalize_each, acc):
    """``acc[q] += weight · g`` for the turning cells ``turn[q]`` of type ``t`` with ``bias > 0``,
    ``g`` the gradient of ``field`` (``(nz, ny, nx)``, voxel edge ``dx`` µm) at the cell's voxel
    (made unit length first when ``normalize_each``); ``acc`` is ``(turn.size, 3)``.

    Returns −1, or the slot of the first cell with a non-finite position (nothing added for it
    and the cells after it)."""
    nz, ny, nx = field.shape
    ijk = np.zeros(3, dtype=np.int64)
    g = np.zeros(3)
    for q in range(turn.size):
        i = turn[q]
        if ctype[i] != t or not bias[i] > 0:
            continue
        for a in range(3):
            n_a = nx if a == 0 else (ny if a == 1 else nz)
            ijk[a] = 0
            if n_a == 1:
                continue
            c = np.floor(pos[i, a] / dx)
            if not np.isfinite(c):
                return i
            c = min(max(c, 0.0), n_a - 1.0)
            ijk[a] = np.int64(c)
        ii = ijk[0]
        jj = ijk[1]
        kk = ijk[2]
        for a in range(3):
            g[a] = 0.0
            n_a = nx if a == 0 else (ny if a == 1 else nz)
            if n_a == 1:
                continue
            qv = ijk[a]
            lo = max(qv - 1, 0)
            hi = min(qv + 1, n_a - 1)
            if a == 0:
                diff = np.float64(field[kk, jj, hi]) - np.float64(field[kk, jj, lo])
            elif a == 1:
                diff = np.float64(field[kk, hi, ii]) - np.float64(field[kk, lo, ii])
            else:
                diff = np.float64(field[hi, jj, ii]) - np.float64(field[lo, jj, ii])
            g[a] = diff / ((hi - lo) * dx)
        if normalize_each:
            norm = np.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2])
            for a in range(3):
                g[a] = g[a] / norm if norm > 0 else 0.0
        for a in range(3):
            acc[q, a] += weight * g[a]
    return -1


@njit(cache=True)
def mix_chemotaxis(turn, ctype, bias, t, acc, direction):
    """For the turning cells of type ``t`` with ``bias`` b > 0: ``direction ← normalize((1 − b)·
    direction + b·acc/|acc|)`` (``acc/|acc|`` is 0 where ``acc`` is 0; a zero mix keeps the
    direction)."""
    m = np.empty(3)
    for q in range(turn.size):
        i = turn[q]
        b = bias[i]
        if ctype[i] != t or not b > 0:
            continue
        norm = np.sqrt(acc[q, 0] * acc[q, 0] + acc[q, 1] * acc[q, 1] + acc[q, 2] * acc[q, 2])
        for a in range(3):
            ga = acc[q, a] / norm if norm > 0 else 0.0
            m[a] = (1 - b) * direction[i, a] + b * ga
        mnorm = np.sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2])
        if mnorm > 0:
            for a in range(3):
                direction[i, a] = m[a] / mnorm


@njit(cache=True)
def chemotaxis(
    turn, ctype, bias, pos, conc, dx, types, term_ptr, term_sub, term_weight, normalize_each, acc, direction
):
    """All chemotaxis of one step in one call: for each ``types[c]``, ``acc`` ← Σ over its terms
    ``term_ptr[c]:term_ptr[c+1]`` of :func:`accumulate_gradient` of field ``conc[term_sub[k]]``
    (``conc (S, nz, ny, nx)``) with weight ``term_weight[k]``, then :func:`mix_chemotaxis`
    (``normalize_each[c]``: unit-length gradients first). The same arithmetic in the same order
    as the per-type, per-term calls; one dispatch instead of one per term and type.

    Returns −1, or the slot of the first cell with a non-finite position."""
    for c in range(types.size):
        t = types[c]
        acc[...] = 0.0
        for k in range(term_ptr[c], term_ptr[c + 1]):
            bad = accumulate_gradient(
                turn, ctype, bias, pos, conc[term_sub[k]], dx, t, term_weight[k], normalize_each[c], acc
            )
            if bad >= 0:
                return bad
        mix_chemotaxis(turn, ctype, bias, t, acc, direction)
    return -1


@njit(cache=True)
def add_motility(motile, speed, direction, vel):
    """``vel[i] += speed[i] · direction[i]`` (µm/min) for the slots in ``motile``."""
    for q in range(motile.size):
        i = motile[q]
        s = speed[i]
        for a in range(3):
            vel[i, a] = vel[i, a] + s * direction[i, a]


class Motility:
    """Per-type motility tables of a model, fixed for a run.

    ``persistence`` (min, per type); ``chemotaxis``: per type ``None``, ``(substrate, sign)`` (one
    substrate, sign +1 up / −1 down) or ``(sensitivities, normalize_each)`` with
    ``sensitivities`` a ``{substrate: weight}`` dict (PhysiCell's advanced chemotaxis: the
    direction is ``normalize(Σ_s w_s g_s)``, each ``g_s`` unit length first when
    ``normalize_each``); ``dt`` is the mechanics step (min).
    """

    def __init__(self, persistence: np.ndarray, chemotaxis: list[tuple | None], dt: float) -> None:
        self.p_turn = -np.expm1(-dt / np.maximum(np.asarray(persistence, dtype=np.float64), 1e-9))
        #: (type, ((substrate, weight), ...), normalize_each) for the types with chemotaxis
        self.chemotaxis: list[tuple[int, tuple[tuple[str, float], ...], bool]] = []
        for t, c in enumerate(chemotaxis):
            if c is None:
                continue
            first, second = c
            if isinstance(first, str):
                terms, each = ((first, float(second)),), False
            else:
                terms, each = tuple((str(n), float(w)) for n, w in first.items() if w != 0.0), bool(second)
            if terms:
                self.chemotaxis.append((t, terms, each))
        self._tables: tuple[tuple[str, ...], tuple[np.ndarray, ...]] | None = None

    def _chemotaxis_tables(self, micro) -> tuple[np.ndarray, ...]:
        """:attr:`chemotaxis` as the arrays of :func:`chemotaxis` (types, term pointers,
        substrate indices of ``micro``, weights, normalize flags); cached per substrate list."""
        names = tuple(micro.names)
        if self._tables is None or self._tables[0] != names:
            types = np.array([t for t, _, _ in self.chemotaxis], np.int64)
            ptr = np.cumsum([0] + [len(terms) for _, terms, _ in self.chemotaxis]).astype(np.int64)
            sub = np.array([micro.index(n) for _, terms, _ in self.chemotaxis for n, _ in terms], np.int64)
            weight = np.array([w for _, terms, _ in self.chemotaxis for _, w in terms], np.float64)
            each = np.array([e for _, _, e in self.chemotaxis], np.bool_)
            self._tables = (names, (types, ptr, sub, weight, each))
        return self._tables[1]

    def update(self, store, micro, rng: np.random.Generator, dim: int, alive: int) -> np.ndarray:
        """New directions for the cells that turn this step; returns the motile slots."""
        st = store
        motile = motile_slots(st.migration_speed, st.death, st.n, alive)
        if motile.size == 0:
            return motile
        u = rng.random(motile.size)
        turn = turning_slots(motile, st.type, st.motility_dir, self.p_turn, u)
        if turn.size == 0:
            return motile
        normals = np.zeros((turn.size, 3))
        normals[:, :dim] = rng.standard_normal((turn.size, dim))
        set_random_directions(turn, normals, dim, st.motility_dir)
        if self.chemotaxis:
            acc = np.empty((turn.size, 3))
            bad = chemotaxis(turn, st.type, st.chemotaxis_bias, st.position, micro.fields_view(), float(micro.dx),
                             *self._chemotaxis_tables(micro), acc, st.motility_dir)  # fmt: skip
            if bad >= 0:
                raise GridError(f"position of cell slot {bad} is not finite: {st.position[bad].tolist()}")
        return motile
