"""Active motility of cells: persistent random walk with chemotaxis, as numba kernels on arrays.

Each mechanics step (``dt`` minutes) a live cell with ``migration_speed > 0`` keeps its unit
direction ``motility_dir`` or, with probability ``1 − exp(−dt / persistence)`` of its type (or
when it has none yet), turns: a new isotropic random unit vector, which for types with a
chemotaxis substrate and a cell with ``chemotaxis_bias`` b > 0 is mixed with the unit gradient
g of that substrate at the cell's voxel (central differences, one-sided at the domain faces,
``direction = "down"`` flips g): ``normalize((1 − b)·random + b·g)``. The cell then adds
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
def apply_chemotaxis(turn, ctype, bias, pos, field, dx, t, sign, direction):
    """Mix the turning cells of type ``t`` with ``bias > 0`` towards the unit gradient of
    ``field`` (``(nz, ny, nx)``, voxel edge ``dx`` µm) times ``sign`` (+1 up, −1 down).

    Returns −1, or the slot of the first cell with a non-finite position (nothing changed then
    for it and the cells after it)."""
    nz, ny, nx = field.shape
    for q in range(turn.size):
        i = turn[q]
        b = bias[i]
        if ctype[i] != t or not b > 0:
            continue
        ijk = np.zeros(3, dtype=np.int64)
        for a in range(3):
            n_a = nx if a == 0 else (ny if a == 1 else nz)
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
        g = np.zeros(3)
        for a in range(3):
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
        if sign < 0:
            g[0] = -g[0]
            g[1] = -g[1]
            g[2] = -g[2]
        norm = np.sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2])
        m = np.empty(3)
        for a in range(3):
            ga = g[a] / norm if norm > 0 else 0.0
            m[a] = (1 - b) * direction[i, a] + b * ga
        mnorm = np.sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2])
        if mnorm > 0:
            for a in range(3):
                direction[i, a] = m[a] / mnorm
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

    ``persistence`` (min, per type), ``chemotaxis``: per type ``None`` or ``(substrate, sign)``;
    ``dt`` is the mechanics step (min).
    """

    def __init__(self, persistence: np.ndarray, chemotaxis: list[tuple[str, float] | None], dt: float) -> None:
        self.p_turn = -np.expm1(-dt / np.maximum(np.asarray(persistence, dtype=np.float64), 1e-9))
        self.chemotaxis = [(t, name, sign) for t, c in enumerate(chemotaxis) if c is not None for name, sign in [c]]

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
        for t, name, sign in self.chemotaxis:
            bad = apply_chemotaxis(
                turn,
                st.type,
                st.chemotaxis_bias,
                st.position,
                micro.field(name),
                float(micro.dx),
                t,
                sign,
                st.motility_dir,
            )
            if bad >= 0:
                raise GridError(f"position of cell slot {bad} is not finite: {st.position[bad].tolist()}")
        return motile
