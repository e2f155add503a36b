"""Final-state histograms of small networks: MaBoSS's ``only_final_state`` run on a state table.

What a MaBoSS run returns is the distribution of final states, so this kernel does not write a
``(cells, nodes)`` matrix: it counts final states by their integer code (bit ``j`` = node ``j``)
into ``2**n`` bins. Each trajectory is still a full Gillespie trajectory over the
:class:`~tme_sim.intracellular.boolean.statetable.StateTable`'s rates (every transition sampled:
one exponential waiting time over the state's total rate, one 64-bit integer that picks the
flipping node in proportion to its rate, one read of the next state), with MaBoSS's semantics as in
:mod:`~tme_sim.intracellular.boolean.statetable` (fixed points, discrete time, bad rates).

How it differs from :func:`~tme_sim.intracellular.boolean.statetable.sample`:

* the random numbers are generated in blocks of :data:`BLOCK` by loops without branches, which
  the compiler vectorises (SplitMix64 outputs are independent functions of a counter; the
  exponential is ``-log(y)``, ``y`` in ``(0, 1]`` from 53 bits, by a branch-free port of fdlibm's
  ``log``, within 1 ulp of ``numpy.log``: tested), and the trajectory loop only reads them;
* the flipping node is drawn with Walker's alias method: each state's row has ``P`` columns (the
  power of two at or above the most nodes any state can flip); the draw's top ``log2 P`` bits pick a
  column, its next 53 bits are a coin against the column's threshold (``round(prob * 2**53)``,
  exact to 2**-53 per column) and the next state is one of the column's two: no loop and no branch
  on the pick;
* a fixed point has waiting time +inf and a bad rate NaN, so one test ends a trajectory;
* in continuous time four trajectories (:data:`LANES`) advance side by side, so the dependent loads
  of one (rate, pick, next state) overlap with the others'; a finished one is counted and its lane
  restarted on the next cell. Measured per trajectory, 1 thread, 5,000 cells, kernels alternating in
  one process (load 6-9.5 on 2 cores), one lane -> two -> four: MaBoSS's p53_Mdm2 (4 nodes, 115
  transitions) 771 -> 525-536 -> 520 ns, Paper Four_cycle (3 nodes, 8.7) 73 -> 55 -> 52 ns,
  basic-network (4 nodes, 2.5) 31 -> 25 -> 24 ns;
* no per-cell output is written.

Randomness: cells are taken in fixed chunks of :data:`CHUNK`; chunk ``c`` has two SplitMix64
streams (waiting times; start states and picks), seeded from the call's base seed and ``c``, read
in cell order. Results therefore depend on the seed only, not on the thread count. It is the same
distribution as the other kernels' and not the same numbers.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from tme_sim.intracellular.boolean.bitengine import _GOLDEN, _M1, _M2
from tme_sim.intracellular.boolean.gillespie import cell_stream
from tme_sim.intracellular.boolean.statetable import StateTable

#: Cells per chunk (one pair of streams; the unit of work of a thread).
CHUNK = 4096
#: Random numbers generated per block (one block of waiting times or of integers at a time).
BLOCK = 256
#: Trajectories advanced side by side in continuous time.
LANES = 4

_INV53 = 1.0 / 9007199254740992.0
_TOP = np.uint64(9007199254740992)  # 2**53
# fdlibm e_log.c constants (Sun Microsystems, freely distributable)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2 = 1.4142135623730951


@intrinsic
def _bits_to_float(typingctx, x):
    """float64 with the bits of the int64 ``x``."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _float_to_bits(typingctx, x):
    """int64 with the bits of the float64 ``x``."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@njit(cache=True, inline="always")
def neg_log(y):
    """``-log(y)`` for a normal float64 ``y`` in ``(0, 1]``, without branches (fdlibm's method:
    ``y = 2**k * m``, ``m`` in ``[sqrt(2)/2, sqrt(2))``, ``log(m) = 2 atanh(f / (2 + f))`` by its
    degree-14 minimax series; error < 1 ulp)."""
    b = _float_to_bits(y)
    k = (b >> 52) - 1023
    m = _bits_to_float((b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    k = k + 1 if big else k
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    dk = float(k)
    return ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f) - dk * _LN2_HI


@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _fill_exp(buf, ctr):
    """``buf[k]`` = the exponential variate of the (k+1)-th SplitMix64 output after counter ``ctr``
    (``-log(1 - u)``, ``u`` = its top 53 bits / 2**53); returns the new counter."""
    for k in range(buf.shape[0]):
        r = _mix(ctr + np.uint64(k + 1) * _GOLDEN)
        buf[k] = neg_log(float(_TOP - (r >> np.uint64(11))) * _INV53)
    return ctr + np.uint64(buf.shape[0]) * _GOLDEN


@njit(cache=True, inline="always")
def _fill_int(buf, ctr):
    """``buf[k]`` = the (k+1)-th SplitMix64 output after counter ``ctr``; returns the new counter."""
    for k in range(buf.shape[0]):
        buf[k] = _mix(ctr + np.uint64(k + 1) * _GOLDEN)
    return ctr + np.uint64(buf.shape[0]) * _GOLDEN


@njit(cache=True, error_model="numpy")
def exponential_block(seed, n):
    """``n`` exponential variates as :func:`hist` draws them from the stream seeded by the uint64
    ``seed`` (for tests of the sampler)."""
    out = np.empty(n)
    _fill_exp(out, cell_stream(np.uint64(seed)))
    return out


@njit(cache=True)
def neg_log_array(y):
    """:func:`neg_log` of every element of the float64 array ``y`` (for tests)."""
    out = np.empty_like(y)
    for i in range(y.shape[0]):
        out[i] = neg_log(y[i])
    return out


@njit(cache=True)
def _alias_rows(count, node, cum, total, bad):
    # per state w and column j < P (P: the power of two >= the largest count): [threshold, state
    # if the coin is below it, state otherwise] as uint64 triplets (Walker/Vose alias method over
    # P columns, columns past count[w] of probability 0); ``dt`` = 1 / total rate, +inf at a fixed
    # point, NaN where a rate is bad, 0 for an infinite rate (it flips at once).
    n_states = count.shape[0]
    width = 1
    for w in range(n_states):
        width = max(width, count[w])
    p = 1
    logp = 0
    while p < width:
        p *= 2
        logp += 1
    tab = np.zeros(n_states * p * 3, dtype=np.uint64)
    dt = np.empty(n_states + 1)
    dt[n_states] = np.inf  # DEAD, the state of a lane with no cell left
    scaled = np.empty(p)
    alias = np.empty(p, dtype=np.int64)
    prob = np.empty(p)
    small = np.empty(p, dtype=np.int64)
    large = np.empty(p, dtype=np.int64)
    for w in range(n_states):
        cnt = count[w]
        if cnt < 0:
            dt[w] = np.nan
            continue
        if cnt == 0:
            dt[w] = np.inf
            continue
        dt[w] = 0.0 if total[w] == np.inf else 1.0 / total[w]
        prev = 0.0
        for j in range(p):
            if j < cnt and total[w] < np.inf:
                scaled[j] = (cum[w, j] - prev) / total[w] * p
                prev = cum[w, j]
            else:
                scaled[j] = 0.0
            alias[j] = j
            prob[j] = 1.0
        if total[w] == np.inf:
            scaled[0] = p  # only the first infinite node (count 1)
        ns = 0
        nl = 0
        for j in range(p):
            if scaled[j] < 1.0:
                small[ns] = j
                ns += 1
            else:
                large[nl] = j
                nl += 1
        while ns > 0 and nl > 0:
            ns -= 1
            sj = small[ns]
            lj = large[nl - 1]
            prob[sj] = scaled[sj]
            alias[sj] = lj
            scaled[lj] = scaled[lj] + scaled[sj] - 1.0
            if scaled[lj] < 1.0:
                nl -= 1
                small[ns] = lj
                ns += 1
        for j in range(p):
            q = (w * p + j) * 3
            # threshold on a 53-bit integer coin: round(prob * 2**53) (prob 1 -> 2**53: always j)
            tab[q] = np.uint64(min(np.floor(prob[j] * 9007199254740992.0 + 0.5), 9007199254740992.0))
            a = alias[j]
            tab[q + 1] = np.uint64(w ^ (1 << np.int64(node[w, min(j, cnt - 1)])))
            tab[q + 2] = np.uint64(w ^ (1 << np.int64(node[w, a]))) if a < cnt else tab[q + 1]
            if j >= cnt:  # probability 0: always the alias
                tab[q] = 0
    return tab, dt, logp


def _make_hist(parallel: bool):
    loop = prange if parallel else range

    @njit(cache=True, error_model="numpy", parallel=parallel)
    def hist_kernel(n, duration, base, istate, setm, setv, count, dt, tab, logp, bad, tick):
        # returns int64 [code_0, count_0, code_1, count_1, ..., transitions, first bad node + 1 or 0]
        # over the states reached (ascending codes), summed over the chunks' own counts (one array:
        # boxing a tuple of results cost ~3 us per call).
        # istate = [half, one, node_0, thr_0, ...] as in statetable.istate_program; tab / dt / logp:
        # _alias_rows. Continuous time, per transition: t += E * dt[w] (a fixed point gives +inf,
        # a bad rate NaN: both leave by the one test ``not t <= duration``), then one 64-bit draw:
        # its top logp bits pick a column of w's row, the next 53 bits are the coin against the
        # column's threshold, and the next state is read (no loop, no branch on the pick).
        # Tried and slower (MaBoSS's p53_Mdm2, 4 nodes, 115 transitions, ns per trajectory, 1 thread):
        # a branch-free sum of comparisons over the cumulative thresholds, 1,047 vs 801 with an early
        # exit; four trajectories side by side in small arrays, each step without branches and
        # restarts by selects, 1,115-1,811 (the lanes below are scalars and branch on the end).
        p = np.int64(1) << logp
        dead = np.int64(count.shape[0])
        shift = np.uint64(63 - logp)
        up_bits = np.uint64(logp)
        nfrac = (istate.shape[0] - 2) // 2
        keep = ~np.int64(setm)
        force = np.int64(setv)
        nchunk = (n + CHUNK - 1) // CHUNK
        counts = np.zeros((max(nchunk, 1), count.shape[0]), dtype=np.int64)
        events = np.zeros(max(nchunk, 1), dtype=np.int64)
        err = np.zeros(max(nchunk, 1), dtype=np.int64)
        for c in loop(nchunk):
            ebuf = np.empty(BLOCK)
            ubuf = np.empty(BLOCK, dtype=np.uint64)
            ectr = _fill_exp(ebuf, cell_stream(base + np.uint64(2 * c) * _GOLDEN))
            uctr = _fill_int(ubuf, cell_stream(base + np.uint64(2 * c + 1) * _GOLDEN))
            ep = 0
            up = 0
            k = 0
            e = 0
            lo = c * CHUNK
            hi = min(n, lo + CHUNK)
            if tick > 0.0:  # discrete time: each transition takes tick; one trajectory at a time
                for _i in range(lo, hi):
                    if up + 1 + nfrac > BLOCK:
                        uctr = _fill_int(ubuf, uctr)
                        up = 0
                    w = np.int64((ubuf[up] & istate[0]) | istate[1])
                    up += 1
                    for f in range(nfrac):
                        w |= np.int64((ubuf[up] >> np.uint64(11)) < istate[3 + 2 * f]) << np.int64(istate[2 + 2 * f])
                        up += 1
                    w = (w & keep) | force
                    t = 0.0
                    while count[w] > 0:
                        t += tick
                        if t >= duration:
                            break
                        if up == BLOCK:
                            uctr = _fill_int(ubuf, uctr)
                            up = 0
                        r = ubuf[up]
                        up += 1
                        q = (w * p + np.int64((r >> np.uint64(1)) >> shift)) * 3
                        w = np.int64(tab[q + 1] if ((r << up_bits) >> np.uint64(11)) < tab[q] else tab[q + 2])
                        k += 1
                    if count[w] < 0 and e == 0:
                        e = bad[w]
                    counts[c, w] += 1
                events[c] = k
                err[c] = e
                continue
            # continuous time: four trajectories (lanes a-d) advance side by side, so the dependent loads
            # of one (rate, pick, next state) overlap with the others'; a lane that finishes is counted
            # and restarted on the chunk's next cell, its start state drawn from the integer it drew for
            # a pick it did not make (independent of its finishing); with no cell left it holds DEAD
            # (waiting time +inf, never counted) until every lane is done.
            # The four lane bodies below are written out on purpose: the same step as one shared
            # inline function returning its counters gave the same bits but ran 5-7x slower
            # (basic-network 24 -> 112 ns, p53_Mdm2 (4) 119 -> 745 ns per trajectory, measured).
            need = LANES * (1 + nfrac)
            if up + need > BLOCK:
                uctr = _fill_int(ubuf, uctr)
                up = 0
            alive = min(LANES, hi - lo)
            wa = np.int64((ubuf[up + 0] & istate[0]) | istate[1])
            wb = np.int64((ubuf[up + 1] & istate[0]) | istate[1])
            wc = np.int64((ubuf[up + 2] & istate[0]) | istate[1])
            wd = np.int64((ubuf[up + 3] & istate[0]) | istate[1])
            up += LANES
            for f in range(nfrac):
                wa |= np.int64((ubuf[up + 0] >> np.uint64(11)) < istate[3 + 2 * f]) << np.int64(istate[2 + 2 * f])
                wb |= np.int64((ubuf[up + 1] >> np.uint64(11)) < istate[3 + 2 * f]) << np.int64(istate[2 + 2 * f])
                wc |= np.int64((ubuf[up + 2] >> np.uint64(11)) < istate[3 + 2 * f]) << np.int64(istate[2 + 2 * f])
                wd |= np.int64((ubuf[up + 3] >> np.uint64(11)) < istate[3 + 2 * f]) << np.int64(istate[2 + 2 * f])
                up += LANES
            wa = (wa & keep) | force if 0 < alive else dead
            ta = 0.0
            wb = (wb & keep) | force if 1 < alive else dead
            tb = 0.0
            wc = (wc & keep) | force if 2 < alive else dead
            tc = 0.0
            wd = (wd & keep) | force if 3 < alive else dead
            td = 0.0
            nxt_cell = lo + alive
            while alive > 0:
                if ep + LANES > BLOCK:
                    ectr = _fill_exp(ebuf, ectr)
                    ep = 0
                if up + need > BLOCK:
                    uctr = _fill_int(ubuf, uctr)
                    up = 0
                ta += ebuf[ep + 0] * dt[wa]
                tb += ebuf[ep + 1] * dt[wb]
                tc += ebuf[ep + 2] * dt[wc]
                td += ebuf[ep + 3] * dt[wd]
                ep += LANES
                ra = ubuf[up + 0]
                rb = ubuf[up + 1]
                rc = ubuf[up + 2]
                rd = ubuf[up + 3]
                up += LANES
                if ta <= duration:
                    q = (wa * p + np.int64((ra >> np.uint64(1)) >> shift)) * 3
                    wa = np.int64(tab[q + 1] if ((ra << up_bits) >> np.uint64(11)) < tab[q] else tab[q + 2])
                    k += 1
                elif wa != dead:  # the trajectory ends (past the end, a fixed point or a bad rate)
                    if count[wa] < 0 and e == 0:
                        e = bad[wa]
                    counts[c, wa] += 1
                    if nxt_cell < hi:
                        wa = np.int64((ra & istate[0]) | istate[1])
                        for f in range(nfrac):
                            on = (ubuf[up] >> np.uint64(11)) < istate[3 + 2 * f]
                            wa |= np.int64(on) << np.int64(istate[2 + 2 * f])
                            up += 1
                        wa = (wa & keep) | force
                        ta = 0.0
                        nxt_cell += 1
                    else:
                        wa = dead
                        alive -= 1
                if tb <= duration:
                    q = (wb * p + np.int64((rb >> np.uint64(1)) >> shift)) * 3
                    wb = np.int64(tab[q + 1] if ((rb << up_bits) >> np.uint64(11)) < tab[q] else tab[q + 2])
                    k += 1
                elif wb != dead:  # the trajectory ends (past the end, a fixed point or a bad rate)
                    if count[wb] < 0 and e == 0:
                        e = bad[wb]
                    counts[c, wb] += 1
                    if nxt_cell < hi:
                        wb = np.int64((rb & istate[0]) | istate[1])
                        for f in range(nfrac):
                            on = (ubuf[up] >> np.uint64(11)) < istate[3 + 2 * f]
                            wb |= np.int64(on) << np.int64(istate[2 + 2 * f])
                            up += 1
                        wb = (wb & keep) | force
                        tb = 0.0
                        nxt_cell += 1
                    else:
                        wb = dead
                        alive -= 1
                if tc <= duration:
                    q = (wc * p + np.int64((rc >> np.uint64(1)) >> shift)) * 3
                    wc = np.int64(tab[q + 1] if ((rc << up_bits) >> np.uint64(11)) < tab[q] else tab[q + 2])
                    k += 1
                elif wc != dead:  # the trajectory ends (past the end, a fixed point or a bad rate)
                    if count[wc] < 0 and e == 0:
                        e = bad[wc]
                    counts[c, wc] += 1
                    if nxt_cell < hi:
                        wc = np.int64((rc & istate[0]) | istate[1])
                        for f in range(nfrac):
                            on = (ubuf[up] >> np.uint64(11)) < istate[3 + 2 * f]
                            wc |= np.int64(on) << np.int64(istate[2 + 2 * f])
                            up += 1
                        wc = (wc & keep) | force
                        tc = 0.0
                        nxt_cell += 1
                    else:
                        wc = dead
                        alive -= 1
                if td <= duration:
                    q = (wd * p + np.int64((rd >> np.uint64(1)) >> shift)) * 3
                    wd = np.int64(tab[q + 1] if ((rd << up_bits) >> np.uint64(11)) < tab[q] else tab[q + 2])
                    k += 1
                elif wd != dead:  # the trajectory ends (past the end, a fixed point or a bad rate)
                    if count[wd] < 0 and e == 0:
                        e = bad[wd]
                    counts[c, wd] += 1
                    if nxt_cell < hi:
                        wd = np.int64((rd & istate[0]) | istate[1])
                        for f in range(nfrac):
                            on = (ubuf[up] >> np.uint64(11)) < istate[3 + 2 * f]
                            wd |= np.int64(on) << np.int64(istate[2 + 2 * f])
                            up += 1
                        wd = (wd & keep) | force
                        td = 0.0
                        nxt_cell += 1
                    else:
                        wd = dead
                        alive -= 1
            events[c] = k
            err[c] = e
        total = counts[0].copy()
        for c in range(1, nchunk):
            total += counts[c]
        first = 0
        for c in range(nchunk):
            if err[c] != 0:
                first = err[c]
                break
        k = 0
        for w in range(total.shape[0]):
            k += total[w] != 0
        out = np.empty(2 * k + 2, dtype=np.int64)
        k = 0
        for w in range(total.shape[0]):
            if total[w] != 0:
                out[2 * k] = w
                out[2 * k + 1] = total[w]
                k += 1
        out[2 * k] = events.sum()
        out[2 * k + 1] = first
        return out

    return hist_kernel


_hist_seq = _make_hist(False)
_hist_par = _make_hist(True)


def kernel_args(table: StateTable) -> tuple:
    """What :func:`hist` passes to the kernel for ``table`` (built once; callers may cache it):
    (count, dt, alias rows, log2 of the row width, bad)."""
    t = table
    tab, dt, logp = _alias_rows(t.count, t.node, t.cum, t.total, t.bad)
    return (t.count, dt, tab, int(logp), t.bad)


def hist(
    args: tuple,
    n: int,
    duration: float,
    base: int,
    setm: int,
    setv: int,
    istate: np.ndarray,
    tick: float,
    parallel: bool,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Final-state counts of ``n`` trajectories of ``duration`` from start states drawn in the kernel.

    ``args``: :func:`kernel_args` of the network's :class:`StateTable` (frozen nodes included);
    ``base``: the call's seed; ``setm`` / ``setv``: int bit words (bits in ``setm`` are set to
    ``setv`` at the start); ``istate``: :func:`~tme_sim.intracellular.boolean.statetable.istate_program`;
    ``tick > 0``: discrete time. Returns (codes int64 ``(k,)`` of the states reached, ascending;
    their counts int64 ``(k,)``; total transitions; first node with a bad rate + 1, or 0).
    """
    fn = _hist_par if parallel else _hist_seq
    count, dt, tab, logp, bad = args
    out = fn(n, duration, np.uint64(base), istate, np.uint64(setm), np.uint64(setv), count, dt, tab, logp, bad, tick)
    return out[:-2:2], out[1:-2:2], int(out[-2]), int(out[-1])
