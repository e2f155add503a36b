"""Gillespie kernels for small networks, driven by a table of every state's flip rates.

Why: on networks of a few nodes a whole MaBoSS trajectory is a handful of transitions, and the
per-transition work of the other engines (re-evaluating rate expressions or rate-class masks)
dominates. A network of ``n <= MAX_NODES`` nodes has at most ``2**n`` states, so every state's
flip rates are evaluated once, with the current ``$variables`` and the frozen nodes' rates set to
0, into a :class:`StateTable`; a transition is then one exponential variate, one 63-bit uniform
integer compared with the state's precomputed thresholds (when more than one node can flip) and a
read of the next state. Measured per trajectory (1 thread, CPU, 1e5 cells, shared 2-core machine at
load ~17, ``advance`` only): MaBoSS's basic-network (4 nodes, 2.6 transitions) 42 ns (86 before),
p53_Mdm2 (4 nodes, 115 transitions) 752 ns (818), cellcycle (10 nodes, 24) 203 ns (235); a
zero-length call costs ~7-10 ns per cell. The rates come from the
table-driven interpreter (:mod:`~tme_sim.intracellular.boolean.tableengine`, precompiled), so no
kernel is compiled per network either.

Semantics are those of the generic engine (MaBoSS's BKMC): in state ``w`` node ``j`` flips at rate
``r_j(w)``; the waiting time is exponential with the total rate, the flipping node is drawn in
proportion to its rate; a state whose total rate is 0 is a fixed point; a negative or NaN rate of
a non-frozen node is an error when a cell enters that state; an infinite rate makes the first
such node flip at once. ``tick > 0`` is MaBoSS's discrete time (each transition takes ``tick``).

Randomness: the per-cell SplitMix64 streams and ziggurat exponentials of the bit engine (one uint64
seed per cell from the caller's Generator), so results do not depend on threads or chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from tme_sim.intracellular.boolean.bitengine import _GOLDEN, exponential, splitmix
from tme_sim.intracellular.boolean.gillespie import cell_stream

#: Most nodes a network may have for the state-table kernels (a table of ``2**n`` rows of ``n``
#: float64 cumulative rates: 384 kB at 12 nodes, which stays in a core's L2 cache).
MAX_NODES = 12
CHUNK = 256
_SCALE63 = 2.0**63
_HALF = np.uint64(2**63)


@dataclass(frozen=True)
class StateTable:
    """Flip rates of every state of one network (row ``w``: bit ``j`` of ``w`` = node ``j``).

    ``total``: float64 ``(2**n,)`` total flip rate, ``inv`` its inverse (0 where it is 0 or
    infinite); ``count``: int64 ``(2**n,)`` number of nodes that can flip (-1 where a rate is
    bad); ``node`` (uint8) / ``cum`` (float64), ``(2**n, n)``: those nodes in index order and
    their cumulative rates (with an infinite rate: only the first infinite node, count 1);
    ``bad``: int32 ``(2**n,)`` first non-frozen node with a negative or NaN rate, + 1 (0 if none).
    What the kernels read: ``nxt`` int64 ``(2**n, width)``, the state after the ``q``-th of those
    nodes flips; ``thr`` uint64 ``(2**n, width - 1)`` (at least one column), ``ceil(2**63 *
    cum[w, q] / total[w])`` for ``q < count[w] - 1`` and ``2**63`` beyond, so that with a 63-bit
    uniform integer ``r`` the flipping node is the first ``q`` with ``r < thr[w, q]`` (``count[w] -
    1`` if none; ``width``: the largest count, at least 1).
    """

    total: np.ndarray
    inv: np.ndarray
    count: np.ndarray
    node: np.ndarray
    cum: np.ndarray
    bad: np.ndarray
    nxt: np.ndarray
    thr: np.ndarray


def all_states(n: int) -> np.ndarray:
    """uint8 ``(2**n, n)``: row ``w`` holds the bits of ``w`` (node ``j`` = bit ``j``)."""
    w = np.arange(2**n, dtype=np.uint64)[:, None]
    return ((w >> np.arange(n, dtype=np.uint64)[None, :]) & np.uint64(1)).astype(np.uint8)


@njit(cache=True)
def _compact(rates, frozen):
    n_states, n = rates.shape
    total = np.zeros(n_states)
    count = np.zeros(n_states, dtype=np.int64)
    node = np.zeros((n_states, max(n, 1)), dtype=np.uint8)
    cum = np.zeros((n_states, max(n, 1)))
    bad = np.zeros(n_states, dtype=np.int32)
    for w in range(n_states):
        for j in range(n):
            if frozen[j] == 0 and not (rates[w, j] >= 0.0):
                bad[w] = j + 1
                break
        if bad[w] != 0:
            count[w] = -1
            continue
        acc = 0.0
        k = 0
        for j in range(n):
            r = rates[w, j]
            if frozen[j] == 0 and r > 0.0:
                if r == np.inf:  # instantaneous: the first such node flips at once
                    total[w] = np.inf
                    count[w] = 1
                    node[w, 0] = j
                    cum[w, 0] = np.inf
                    k = -1
                    break
                acc += r
                node[w, k] = j
                cum[w, k] = acc
                k += 1
        if k >= 0:
            total[w] = acc
            count[w] = k
    inv = np.zeros(n_states)
    width = 1
    for w in range(n_states):
        width = max(width, count[w])
        if count[w] > 0 and total[w] < np.inf:
            inv[w] = 1.0 / total[w]
    nxt = np.zeros((n_states, width), dtype=np.int64)
    thr = np.full((n_states, max(width - 1, 1)), _HALF, dtype=np.uint64)
    for w in range(n_states):
        for q in range(max(count[w], 0)):
            nxt[w, q] = w ^ (1 << np.int64(node[w, q]))
            if q < count[w] - 1:
                thr[w, q] = np.uint64(min(np.ceil(cum[w, q] / total[w] * _SCALE63), _SCALE63))
    return total, inv, count, node, cum, bad, nxt, thr


def build_state_table(rates: np.ndarray, frozen: np.ndarray) -> StateTable:
    """A :class:`StateTable` from float64 ``rates`` ``(2**n, n)`` (row ``w`` = state ``w``, as
    :func:`all_states`) and a bool ``(n,)`` mask of frozen nodes (rate 0)."""
    total, inv, count, node, cum, bad, nxt, thr = _compact(
        np.ascontiguousarray(rates, dtype=np.float64), np.ascontiguousarray(frozen, dtype=np.uint8)
    )
    return StateTable(total=total, inv=inv, count=count, node=node, cum=cum, bad=bad, nxt=nxt, thr=thr)


def _make_advance(parallel: bool, fused: bool):
    loop = prange if parallel else range

    @njit(cache=True, error_model="numpy", parallel=parallel)
    def advance(state, duration, seeds, setm, setv, inv, count, nxt, thr, bad, err, events, tick, istate):
        # state: (n, m) 0/1 array of any numeric dtype (>= 0.5 is on), advanced in place; for cell i
        # the bits in setm[a] are first set to setv[a] (a = i if setm/setv have n rows, else 0).
        # fused (a compile-time constant): the start state is not read from ``state`` but drawn from
        # the cell's own stream (istate = [half, one, node_0, thr_0, node_1, thr_1, ...] as uint64:
        # bits of the nodes on with probability 1/2 are bits of one draw, ``one`` is on, node_k is on
        # when the top 53 bits of one more draw are < thr_k) and every row of ``state`` is written;
        # seeds[0] is then the call's base seed and cell i's seed is seeds[0] + i * golden.
        # Per transition: one exponential (none under discrete time), one 63-bit uniform integer r
        # when more than one node can flip, compares with thr[w, :] and a read of the next state
        # (a fixed-width branch-free compare over every column measured slower, on 10-node tables
        # and again on 4-5-node ones, with a fresh seed per call: 848 vs 900 ns per trajectory on
        # MaBoSS's p53_Mdm2, 222 vs 245 on its paper's p53_Mdm2, the early exit first; the same
        # seed at every call lets the branch predictor learn the trajectories and favours branches).
        # The Gillespie loop is written here, not in an inlined helper taking the table arrays:
        # that helper cost ~40-65 ns per cell (measured; cause in numba's lowering not identified).
        n = state.shape[0]
        m = state.shape[1]
        last_s = setm.shape[0] - 1
        last_v = setv.shape[0] - 1
        nfrac = (istate.shape[0] - 2) // 2
        nchunk = (n + CHUNK - 1) // CHUNK
        for c in loop(nchunk):
            lo = c * CHUNK
            hi = min(n, lo + CHUNK)
            for i in range(lo, hi):
                if fused:
                    x = cell_stream(seeds[0] + np.uint64(i) * _GOLDEN)
                    x, r0 = splitmix(x)
                    w0 = np.int64((r0 & istate[0]) | istate[1])
                    for f in range(nfrac):
                        x, r0 = splitmix(x)
                        if (r0 >> np.uint64(11)) < istate[3 + 2 * f]:
                            w0 |= np.int64(1) << np.int64(istate[2 + 2 * f])
                else:
                    x = cell_stream(seeds[i])
                    w0 = np.int64(0)
                    for j in range(m):
                        if state[i, j] >= 0.5:
                            w0 |= np.int64(1) << j
                w = (w0 & ~np.int64(setm[min(i, last_s)])) | np.int64(setv[min(i, last_v)])
                t = 0.0
                k = 0
                e = 0
                while True:
                    cnt = count[w]
                    if cnt <= 0:  # a fixed point (0) or a state with a bad rate (-1)
                        e = bad[w]
                        break
                    if tick > 0.0:
                        t += tick
                        if t >= duration:
                            break
                    else:
                        x, dt = exponential(x)
                        t += dt * inv[w]
                        if t > duration:
                            break
                    q = 0
                    if cnt > 1:
                        x, r = splitmix(x)
                        r >>= np.uint64(1)
                        last = cnt - 1
                        while q < last and r >= thr[w, q]:
                            q += 1
                    w = nxt[w, q]
                    k += 1
                if fused or w != w0:  # most settled cells do not move: skip the write-back
                    for j in range(m):
                        state[i, j] = (w >> j) & 1
                events[i] = k
                err[i] = e

    return advance


_advance_seq = _make_advance(False, False)
_advance_par = _make_advance(True, False)
_sample_seq = _make_advance(False, True)
_sample_par = _make_advance(True, True)
_NO_ISTATE = np.zeros(2, dtype=np.uint64)


def advance(
    table: StateTable,
    state: np.ndarray,
    duration: float,
    seeds: np.ndarray,
    setm: np.ndarray,
    setv: np.ndarray,
    tick: float,
    parallel: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Advance ``state`` (C-contiguous ``(n, n_nodes)``, any numeric dtype, in place) by ``duration``.

    ``seeds``: uint64 ``(n,)``; ``setm`` / ``setv``: uint64 words ``(1,)`` or ``(n,)`` (bits in
    ``setm`` are set to ``setv`` first; the frozen nodes are part of ``table``). Returns
    (transitions int64 ``(n,)``, error int32 ``(n,)``: node + 1 of a negative/NaN rate, else 0).
    """
    n = state.shape[0]
    events = np.zeros(n, dtype=np.int64)
    err = np.zeros(n, dtype=np.int32)
    fn = _advance_par if parallel else _advance_seq
    t = table
    fn(
        state,
        float(duration),
        seeds,
        setm,
        setv,
        t.inv,
        t.count,
        t.nxt,
        t.thr,
        t.bad,
        err,
        events,
        float(tick),
        _NO_ISTATE,
    )
    return events, err


def istate_program(prob: np.ndarray) -> np.ndarray | None:
    """The fused kernels' initial-state program (uint64, see :func:`sample`) for the independent
    istate probabilities ``prob`` (float64 ``(n_nodes,)``), or None if one is not in [0, 1]."""
    prob = np.asarray(prob, dtype=np.float64)
    if not bool(((prob >= 0.0) & (prob <= 1.0)).all()):
        return None
    bits = np.uint64(1) << np.arange(prob.shape[0], dtype=np.uint64)
    half = np.bitwise_or.reduce(bits[prob == 0.5], initial=np.uint64(0))
    one = np.bitwise_or.reduce(bits[prob == 1.0], initial=np.uint64(0))
    prog = [half, one]
    for j in np.flatnonzero((prob > 0.0) & (prob < 1.0) & (prob != 0.5)):
        # u < p with u = k / 2**53 (k: the top 53 bits of a draw, numpy's random()) is k < ceil(p * 2**53)
        prog += [np.uint64(j), np.uint64(math.ceil(float(prob[j]) * 2.0**53))]
    return np.array(prog, dtype=np.uint64)


def _make_draw(parallel: bool):
    loop = prange if parallel else range

    @njit(cache=True, parallel=parallel)
    def draw(state, base, istate):
        # the fused kernels' start states (same draws), written to the uint8 (n, m) ``state``
        n = state.shape[0]
        m = state.shape[1]
        nfrac = (istate.shape[0] - 2) // 2
        nchunk = (n + CHUNK - 1) // CHUNK
        for c in loop(nchunk):
            for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
                x = cell_stream(base + np.uint64(i) * _GOLDEN)
                x, r0 = splitmix(x)
                w = (r0 & istate[0]) | istate[1]
                for f in range(nfrac):
                    x, r0 = splitmix(x)
                    if (r0 >> np.uint64(11)) < istate[3 + 2 * f]:
                        w |= np.uint64(1) << istate[2 + 2 * f]
                for j in range(m):
                    state[i, j] = (w >> np.uint64(j)) & np.uint64(1)

    return draw


_draw_seq = _make_draw(False)
_draw_par = _make_draw(True)


def draw_states(n: int, n_nodes: int, base: int, istate: np.ndarray, parallel: bool) -> np.ndarray:
    """uint8 ``(n, n_nodes)`` start states (``n_nodes <= 64``) drawn as :func:`sample` draws them
    (cell ``i`` from the stream seeded by ``base + i * golden``; ``istate``: :func:`istate_program`)."""
    state = np.empty((n, n_nodes), dtype=np.uint8)
    (_draw_par if parallel else _draw_seq)(state, np.uint64(base), istate)
    return state


def sample(
    table: StateTable,
    n: int,
    n_nodes: int,
    duration: float,
    base: int,
    setm: np.ndarray,
    setv: np.ndarray,
    istate: np.ndarray,
    tick: float,
    parallel: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` trajectories of ``duration`` from start states drawn in the kernel (MaBoSS's run).

    Cell ``i`` uses the stream seeded by ``base + i * golden`` (uint64 arithmetic): its first draw
    gives the nodes on with probability 1/2 (one bit each), then one draw per other fractional
    istate (``istate``: :func:`istate_program`); the bits in ``setm`` (uint64 ``(1,)``) are then set to
    ``setv``. Returns (state uint8 ``(n, n_nodes)``, transitions int64 ``(n,)``, error int32 ``(n,)``).
    """
    state = np.empty((n, n_nodes), dtype=np.uint8)
    events = np.zeros(n, dtype=np.int64)
    err = np.zeros(n, dtype=np.int32)
    fn = _sample_par if parallel else _sample_seq
    t = table
    seeds = np.array([base], dtype=np.uint64)
    fn(state, float(duration), seeds, setm, setv, t.inv, t.count, t.nxt, t.thr, t.bad, err, events, float(tick), istate)
    return state, events, err
