"""Steps shared by the Boolean engines' Gillespie kernels: per-cell streams, the clock, the node pick.

Every engine (:mod:`~tme_sim.intracellular.boolean.engine`, ``bitengine``, ``clauseengine``,
``tableengine``, ``statetable``) runs MaBoSS's BKMC: in a state whose total flip rate is ``total``
the time to the next transition is exponential with rate ``total`` (or exactly ``tick`` under
MaBoSS's discrete time), and the flipping node is drawn in proportion to its rate. These helpers are
``inline="always"`` numba functions, so each kernel compiles them into its own loop (no call per
transition). Randomness is one SplitMix64 counter per cell (:func:`cell_stream` of the cell's
uint64 seed), so results do not depend on threads or chunking.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tme_sim.intracellular.boolean.bitengine import _GOLDEN, exponential, splitmix, uniform


@njit(cache=True, inline="always")
def cell_stream(seed):
    """The SplitMix64 counter (uint64) a cell's stream starts from, given its uint64 seed."""
    return splitmix(seed - _GOLDEN)[1]


@njit(cache=True, inline="always")
def log_exponential(x):
    """(new counter, standard exponential variate) by inversion, ``-log(1 - u)`` (one uniform)."""
    x, u = uniform(x)
    return x, -np.log(1.0 - u)


@njit(cache=True, inline="always")
def clock(x, t, total, duration, tick, ziggurat):
    """Advance the clock ``t`` by one transition: (new counter, new t, whether the call is over).

    ``tick > 0``: MaBoSS's discrete time, the transition takes ``tick`` and one landing at
    ``t >= duration`` is not made (no random draw). Otherwise the waiting time is a standard
    exponential / ``total`` (``ziggurat``: True for :func:`~tme_sim.intracellular.boolean.bitengine.
    exponential`, False for :func:`log_exponential`), and the transition is not made past
    ``duration`` (exact, since the process is memoryless).
    """
    if tick > 0.0:
        t += tick
        return x, t, t >= duration
    if ziggurat:
        x, e = exponential(x)
    else:
        x, e = log_exponential(x)
    t += e / total
    return x, t, t > duration


@njit(cache=True, inline="always")
def first_infinite(r, m):
    """The first node of ``r[:m]`` with an infinite rate (it flips at once), or -1."""
    for j in range(m):
        if r[j] == np.inf:
            return j
    return -1


@njit(cache=True, inline="always")
def pick_node(r, lo, hi, target, acc):
    """The node that flips when the rates are finite: the first ``j`` in ``lo..hi-1`` at which the
    running sum ``acc`` (its value before ``lo``) plus the positive rates ``r[lo:j+1]`` exceeds
    ``target`` (``u * total``); the last positive one if rounding leaves none; -1 if none is positive."""
    pick = -1
    for j in range(lo, hi):
        rj = r[j]
        if rj > 0.0:
            pick = j
            acc += rj
            if target < acc:
                break
    return pick


@njit(cache=True, inline="always")
def exact_total(r, m):
    """(sum of the rates ``r[:m]``, first node with a negative or NaN rate + 1, or 0 if none)."""
    total = 0.0
    low = 0.0
    for j in range(m):
        rj = r[j]
        total += rj
        low = min(low, rj)
    if low < 0.0 or total != total:
        for j in range(m):
            if not (r[j] >= 0.0):
                return total, j + 1
    return total, 0
