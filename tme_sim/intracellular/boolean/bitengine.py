"""Bit-packed Gillespie kernels: one ``uint64`` word per cell, flip rates as bit masks per rate class.

Why: the generic engine (:mod:`~tme_sim.intracellular.boolean.engine`) keeps a float rate per node
and spends ~110 ns per transition (rate re-evaluation through a jump table, an unpredictable
linear scan to pick the node). Most MaBoSS models only ever use a handful of distinct rate
*values* (``1``, ``$TransRate``, ...) switched on and off by Boolean conditions, so the flip
rates of a whole cell fit in a few bit masks.

Compilation (:func:`generate_bit_source`): every ``rate_up`` / ``rate_down`` expression is expanded
into *terms* ``gate -> leaf``: ``c ? a : b`` splits on ``c``, and a node (or ``@logic``) used inside
arithmetic is split by Shannon expansion (node = 1 / node = 0), until each leaf depends on
``$variables`` and numbers only. Leaves that are the constant 0 are dropped; the others are grouped
into *rate classes* by their value after constant folding with the current variables (so ``$u_X =
1`` and ``1`` share a class; regrouped if changed variables split a class). The generated ``masks(w,
nf, v, m)`` computes, with branch-free bit operations on the state word ``w``, for every class ``c``
the mask ``m[c]`` of nodes whose current flip rate is that class's value (``rate_up`` terms gated by
"node off", ``rate_down`` terms by "node on"; ``nf`` clears frozen nodes). The gates of one node are
mutually exclusive, so each node is in at most one mask, and the flip rate of node ``j`` is the
value of the class whose mask holds bit ``j`` (0 if none).

The kernel computes the masks once per cell; after each transition the generated ``update(b, w,
nf, v, m)`` recomputes only the bits of the nodes whose rates read the flipped node ``b`` (one
branch per node; MaBoSS's 47-node rateTr model re-evaluates 1-9 nodes, 3.4 on average, instead of
47: 45 -> 30.5 ns per transition, same results, measured in one process on the shared machine).
Per transition it then takes the total rate ``sum_c value_c * popcount(m[c])``, draws the waiting
time, picks a class by weight and a node uniformly among that class's set bits (the same
distribution as picking a node in proportion to its rate). Class values are evaluated once per
call from the variables; a class whose value is negative or NaN is an error as soon as one of its
nodes is active (same contract as the generic engine). Infinite values: the lowest active node of
the first infinite class flips at once. (Also measured on rateTr, and not kept: a branch-free
class pick, 32 vs 28 ns, and BMI2 ``pdep`` for the node within the class, no change.)

Networks with more than 64 nodes, whose expansion exceeds :data:`MAX_LEAVES` leaves for one
rate expression, or whose module would exceed :data:`MAX_SOURCE_CHARS`, are not supported here;
:func:`generate_bit_source` returns ``None`` and the
caller uses the generic (per-node-rate) kernels instead.

Randomness is the same per-cell SplitMix64 stream scheme as the generic engine (one uint64 seed
per cell from the caller's Generator), so results do not depend on threads or chunking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import errors as nb_errors
from numba.extending import intrinsic

from tme_sim.intracellular.boolean.expressions import (
    COMPARISON_OPS,
    LOGICAL_OPS,
    AtRef,
    Binary,
    CodeGen,
    Cond,
    Expr,
    FuncCall,
    NodeRef,
    Num,
    Unary,
    VarRef,
    call_source,
    children,
    evaluate,
    is_boolean,
    replace_children,
    walk,
)

BIT_ENGINE_VERSION = "4"

#: Most nodes a bit-packed network may have (one uint64 word per cell).
MAX_NODES = 64
#: Most leaves one rate expression may expand to before the generic engine is used instead.
MAX_LEAVES = 64
#: Largest generated module accepted (characters). Bigger ones come from rates with many gated
#: terms (MaBoSS's p53/Mdm2 paper model: 137 kB, whose numba compile grew past 2.5 GB of memory);
#: the table-driven kernels run those instead. The TNF model's module is 15 kB.
MAX_SOURCE_CHARS = 40_000
#: Largest incremental mask update (characters; :func:`generate_bit_source`, not counted in
#: :data:`MAX_SOURCE_CHARS`): above it the kernels recompute every mask after each transition.
#: The update is compiled once, as a function the kernels call: inlined into them it ran 28 instead
#: of 30.5 ns per transition on rateTr (27 kB of update) but its first load took 19.2 s CPU / 545 MB
#: instead of 9.4 s / 237 MB (4.1 s / 213 MB without the update; one process each, load ~5).
MAX_UPDATE_CHARS = 40_000


# --------------------------------------------------------------------------- bit intrinsics


@intrinsic
def popcount(typingctx, src):
    """Number of set bits of an integer (LLVM ``ctpop``)."""
    if not isinstance(src, types.Integer):
        raise nb_errors.NumbaTypeError(f"popcount needs an integer, got {src}")

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return src(src), codegen


@intrinsic
def ctz(typingctx, src):
    """Number of trailing zero bits of an integer (LLVM ``cttz``; the width for 0)."""
    if not isinstance(src, types.Integer):
        raise nb_errors.NumbaTypeError(f"ctz needs an integer, got {src}")

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return src(src), codegen


@njit(cache=True, inline="always")
def bit_of(c):
    """``np.uint64(1)`` if ``c`` else ``np.uint64(0)`` (compiles to a zero-extension)."""
    return np.uint64(1) if c else np.uint64(0)


@njit(cache=True)
def pack_inputs(values, nodes, base):
    """uint64 ``(n,)``: ``base`` with bit ``nodes[k]`` set where ``values[i, k]`` (bool ``(n, k)``)."""
    n = values.shape[0]
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        w = base
        for k in range(nodes.shape[0]):
            if values[i, k]:
                w |= np.uint64(1) << np.uint64(nodes[k])
        out[i] = w
    return out


# --------------------------------------------------------------------------- exponential variates
#
# Marsaglia & Tsang's ziggurat for the standard exponential (J. Stat. Softw. 5(8), 2000), 256
# layers, with the index and the 53-bit abscissa taken from separate bits of one 64-bit draw as in
# numpy's implementation. Exact in distribution; ~99% of draws cost one table look-up and one
# multiplication, against ~9 ns for the logarithm of the inversion method.


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m2 = 2.0**53
    de = 7.697117470131487
    te = de
    ve = 3.949659822581572e-3
    ke = np.zeros(256)
    we = np.zeros(256)
    fe = np.zeros(256)
    q = ve / math.exp(-de)
    ke[0] = (de / q) * m2
    ke[1] = 0.0
    we[0] = q / m2
    we[255] = de / m2
    fe[0] = 1.0
    fe[255] = math.exp(-de)
    for i in range(254, 0, -1):
        de = -math.log(ve / de + math.exp(-de))
        ke[i + 1] = (de / te) * m2
        te = de
        fe[i] = math.exp(-de)
        we[i] = de / m2
    return ke.astype(np.uint64), we, fe


_ZKE, _ZWE, _ZFE = _ziggurat_tables()
_ZR = 7.697117470131487  # start of the tail (the base strip's right edge)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV53 = 1.0 / 9007199254740992.0


@njit(cache=True, inline="always")
def splitmix(x):
    """(new counter, 64 random bits) from a SplitMix64 counter."""
    x = x + _GOLDEN
    z = x
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return x, z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def uniform(x):
    """(new counter, u in [0, 1), 53 bits) from a SplitMix64 counter."""
    x, r = splitmix(x)
    return x, float(r >> np.uint64(11)) * _INV53


@njit(cache=True, inline="always")
def _zig_draw(x):
    """(new counter, 53-bit ziggurat abscissa index ``ri``, strip ``idx`` in 0..255) of one draw."""
    x, r = splitmix(x)
    ri = r >> np.uint64(3)
    idx = int(ri & np.uint64(0xFF))
    return x, ri >> np.uint64(8), idx


@njit(cache=True, inline="always")
def exponential(x):
    """(new counter, a standard exponential variate) from a SplitMix64 counter (ziggurat).

    One loop (about 99% of draws return from its first test) with one draw site. The same draws
    written as a fast path plus a separate rejection loop (its own draw site) made every kernel that
    inlines this ~65 ns per cell slower, even when the rejection part never ran (measured on the
    state-table kernel: 80 -> 7 ns per cell for a zero-length call; cause inside numba's lowering not
    identified). The sequence of draws and values is unchanged.
    """
    while True:
        x, ri, idx = _zig_draw(x)
        if ri < _ZKE[idx]:
            return x, float(ri) * _ZWE[idx]
        if idx == 0:  # base strip: the tail beyond _ZR, by inversion
            x, u = uniform(x)
            return x, _ZR - np.log1p(-u)
        e = float(ri) * _ZWE[idx]
        x, u = uniform(x)
        if (_ZFE[idx - 1] - _ZFE[idx]) * u + _ZFE[idx] < np.exp(-e):
            return x, e


@njit(cache=True)
def exponential_samples(seed, n):
    """``n`` variates from the stream seeded by ``seed`` (uint64); for tests of the sampler."""
    out = np.empty(n)
    x = seed
    for i in range(n):
        x, out[i] = exponential(x)
    return out


# --------------------------------------------------------------------------- term expansion


class Unsupported(Exception):
    """The network cannot be compiled to the bit engine (too many nodes or leaves)."""


def _depends(e: Expr) -> bool:
    return any(isinstance(x, NodeRef | AtRef) for x in walk(e))


def _substitute(e: Expr, target: Expr, value: float) -> Expr:
    """``e`` with every node reference equal to ``target`` (a NodeRef or AtRef) replaced by a number."""

    def same(x: Expr) -> bool:
        if isinstance(target, NodeRef):
            return isinstance(x, NodeRef) and x.name == target.name
        return isinstance(x, AtRef) and x.name == target.name

    def sub(x: Expr) -> Expr:
        if same(x):
            return Num(x.line, value)
        kids = children(x)
        return replace_children(x, [sub(k) for k in kids]) if kids else x

    return sub(e)


Gate = tuple[tuple[Expr, bool], ...]  # conjunction of (boolean condition, required truth value)


def expand_terms(e: Expr) -> list[tuple[Gate, Expr]]:
    """Split a rate expression into ``(gate, leaf)`` pairs with node-free leaves.

    The gates are mutually exclusive and cover every state: the expression's value in a state is
    the leaf of the one gate that holds. Raises :class:`Unsupported` past :data:`MAX_LEAVES`.
    """
    out: list[tuple[Gate, Expr]] = []

    def rec(x: Expr, gate: Gate) -> None:
        if len(out) > MAX_LEAVES:
            raise Unsupported(f"a rate expression expands to more than {MAX_LEAVES} cases")
        if not _depends(x):
            out.append((gate, x))
            return
        if is_boolean(x):
            # a truth value used as a rate (1 when it holds, else 0) is one gated term: Shannon
            # expansion of its nodes would give 2^k leaves (MaBoSS's rateTr model: > 64)
            out.append(((*gate, (x, True)), Num(x.line, 1.0)))
            out.append(((*gate, (x, False)), Num(x.line, 0.0)))
            return
        if isinstance(x, Cond):
            rec(x.then, (*gate, (x.cond, True)))
            rec(x.other, (*gate, (x.cond, False)))
            return
        ref = next(y for y in walk(x) if isinstance(y, NodeRef | AtRef))
        rec(_substitute(x, ref, 1.0), (*gate, (ref, True)))
        rec(_substitute(x, ref, 0.0), (*gate, (ref, False)))

    rec(e, ())
    if len(out) > MAX_LEAVES:
        raise Unsupported(f"a rate expression expands to more than {MAX_LEAVES} cases")
    return out


# --------------------------------------------------------------------------- code generation


class BitCodeGen:
    """Source of bit-level expressions over a state word ``w`` (uint64, bit j = node j).

    * :meth:`pos` (``e``, ``j``): a uint64 whose bit ``j`` is the truth value of ``e`` (the other
      bits are arbitrary), built from shifted copies of ``w`` so that a whole logic rule costs one
      shift per literal plus its operators;
    * :meth:`bits`: a uint64 0/1; :meth:`numeric`: a float64 (for comparisons and arithmetic).

    ``@logic`` of the node being compiled (``self.node``) is bit ``node`` of the word ``L``.
    """

    def __init__(self, node_index: dict[str, int], var_index: dict[str, int]) -> None:
        self.node_index = node_index
        self.var_index = var_index
        self.node = -1  # the node whose rates are being compiled (its @logic is bit node of L)

    def pos(self, e: Expr, j: int) -> str:
        if isinstance(e, NodeRef):
            a = self.node_index[e.name]
            if a == j:
                return "w"
            return f"(w >> _S{a - j})" if a > j else f"(w << _S{j - a})"
        if isinstance(e, AtRef):
            assert self.node >= 0
            a = self.node
            if a == j:
                return "L"
            return f"(L >> _S{a - j})" if a > j else f"(L << _S{j - a})"
        if isinstance(e, Num):
            return "_ALL" if e.value != 0.0 else "_0"
        if isinstance(e, Unary) and e.op == "!":
            return f"(~{self.pos(e.arg, j)})"
        if isinstance(e, Binary) and e.op in LOGICAL_OPS:
            return f"({self.pos(e.left, j)} {e.op} {self.pos(e.right, j)})"
        if isinstance(e, Cond) and is_boolean(e):
            c = self.pos(e.cond, j)
            return f"(({c} & {self.pos(e.then, j)}) | (~{c} & {self.pos(e.other, j)}))"
        return f"({self.bits(e)} << _S{j})"

    def bits(self, e: Expr) -> str:
        if isinstance(e, NodeRef):
            return f"((w >> _S{self.node_index[e.name]}) & _1)"
        if isinstance(e, AtRef):
            assert self.node >= 0
            return f"((L >> _S{self.node}) & _1)"
        if isinstance(e, Num):
            return "_1" if e.value != 0.0 else "_0"
        if isinstance(e, Unary) and e.op == "!":
            return f"({self.bits(e.arg)} ^ _1)"
        if isinstance(e, Binary) and e.op in LOGICAL_OPS:
            return f"({self.bits(e.left)} {e.op} {self.bits(e.right)})"
        if isinstance(e, Binary) and e.op in COMPARISON_OPS:
            return f"bit_of({self.numeric(e.left)} {e.op} {self.numeric(e.right)})"
        if isinstance(e, Cond) and is_boolean(e):
            c = self.bits(e.cond)
            return f"(({c} & {self.bits(e.then)}) | (({c} ^ _1) & {self.bits(e.other)}))"
        return f"bit_of({self.numeric(e)} != 0.0)"

    def numeric(self, e: Expr) -> str:
        if isinstance(e, Num):
            return repr(float(e.value)) if e.value == e.value else "np.nan"
        if isinstance(e, VarRef):
            return f"v[{self.var_index[e.name]}]"
        if isinstance(e, Unary) and e.op in ("-", "+"):
            return f"({e.op}{self.numeric(e.arg)})"
        if isinstance(e, Binary) and e.op in ("+", "-", "*", "/"):
            return f"({self.numeric(e.left)} {e.op} {self.numeric(e.right)})"
        if isinstance(e, Cond) and not is_boolean(e):
            return f"({self.numeric(e.then)} if {self.bits(e.cond)} != _0 else {self.numeric(e.other)})"
        if isinstance(e, FuncCall):
            return call_source(e.name, [self.numeric(a) for a in e.args])
        return f"float({self.bits(e)})"


def _or_tree(terms: list[str]) -> str:
    """A balanced OR of ``terms`` (short dependency chains), ``_0`` when empty."""
    if not terms:
        return "_0"
    while len(terms) > 1:
        terms = [f"({terms[k]} | {terms[k + 1]})" if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
    return terms[0]


@dataclass
class BitProgram:
    """What :func:`generate_bit_source` produced: the module source and the class leaves."""

    source: str
    class_sources: list[str]  # numba source of each class value (over ``v``)
    class_members: list[list[str]]  # every distinct leaf source grouped into each class


_TEMPLATE = '''\
# Generated by tme_sim.intracellular.boolean.bitengine (version {version}) for network {name!r}.
# Do not edit: the file name is the hash of this text.
import numpy as np
from numba import njit, prange

from tme_sim.intracellular.boolean.bitengine import bit_of, ctz, popcount
from tme_sim.intracellular.boolean.bitengine import uniform as _uniform
from tme_sim.intracellular.boolean.gillespie import cell_stream, clock

N_NODES = {n_nodes}
N_CLASSES = {n_classes}
CHUNK = {chunk}
_0 = np.uint64(0)
_1 = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
{shift_consts}


@njit(cache=True, error_model="numpy")
def class_values(v, out):
    """Value of every rate class for the variable vector v."""
{class_body}


@njit(cache=True, error_model="numpy")
def classes_consistent(v):
    """True when every leaf of each class still has its class's value for v (else regroup)."""
{check_body}
    return True


@njit(cache=True, error_model="numpy", inline="always")
def masks(w, nf, v, m):
    """m[c] = nodes (bits) whose current flip rate is class c's value; nf clears frozen nodes."""
{mask_body}


@njit(cache=True, error_model="numpy")
def update(b, w, nf, v, m):
    """masks(w, nf, v, m) after node b flipped (w: the new word): only the nodes whose rates read b.
    Not inlined: see MAX_UPDATE_CHARS in tme_sim.intracellular.boolean.bitengine."""
{update_body}


@njit(cache=True, inline="always")
def _pack(row):
    w = _0
    for j in range(N_NODES):
        if row[j] >= 0.5:
            w |= _1 << np.uint64(j)
    return w


@njit(cache=True, inline="always")
def _unpack(w, row):
    for j in range(N_NODES):
        row[j] = (w >> np.uint64(j)) & _1


@njit(cache=True, error_model="numpy")
def flip_rates(state, v, cval, out):
    """out[i, j] = flip rate of node j in row i (from the masks; for tests and diagnostics)."""
    m = np.empty(max(N_CLASSES, 1), dtype=np.uint64)
    for i in range(state.shape[0]):
        masks(_pack(state[i]), ~_0, v, m)
        for j in range(N_NODES):
            out[i, j] = 0.0
            for c in range(N_CLASSES):
                if (m[c] >> np.uint64(j)) & _1:
                    out[i, j] = cval[c]


@njit(cache=True)
def pack_rows(mask):
    """uint64 (n,) words from a bool (n, N_NODES) matrix."""
    out = np.zeros(mask.shape[0], dtype=np.uint64)
    for i in range(mask.shape[0]):
        w = _0
        for j in range(N_NODES):
            if mask[i, j]:
                w |= _1 << np.uint64(j)
        out[i] = w
    return out
'''

_KERNELS = """

@njit(cache=True, error_model="numpy", parallel={parallel})
def {aname}(state, duration, seeds, setm, setv, frz, v, cval, err, events, tick):
    # state: (n, N_NODES) 0/1 array of any numeric dtype, advanced in place. For each cell i the
    # bits in setm[a] are first set to setv[a] (a = i if setm/setv have n rows, else 0) and the
    # bits in frz[b] cannot flip. cval: class values (class_values). err[i] = node + 1 on a
    # negative/NaN rate; events[i] = number of transitions. tick > 0: MaBoSS's discrete time (each
    # transition takes exactly tick time units; one at t = duration is not made).
    n = state.shape[0]
    nchunk = (n + CHUNK - 1) // CHUNK
    last_s = setm.shape[0] - 1
    last_v = setv.shape[0] - 1
    last_f = frz.shape[0] - 1
    anybad = False
    cinv = np.zeros(max(N_CLASSES, 1))
    for c in range(N_CLASSES):
        if not (cval[c] >= 0.0):
            anybad = True
        elif cval[c] > 0.0:
            cinv[c] = 1.0 / cval[c]
    for ch in {loop}(nchunk):
        m = np.empty(max(N_CLASSES, 1), dtype=np.uint64)
        lo = ch * CHUNK
        hi = min(n, lo + CHUNK)
        for i in range(lo, hi):
            row = state[i]
            w0 = _pack(row)
            w = (w0 & ~setm[min(i, last_s)]) | setv[min(i, last_v)]
            nf = ~frz[min(i, last_f)]
            x = cell_stream(seeds[i])
            t = 0.0
            k = 0
            masks(w, nf, v, m)
            while True:
                if anybad:
                    bad = -1
                    for c in range(N_CLASSES):
                        if m[c] != _0 and not (cval[c] >= 0.0):
                            bad = int(ctz(m[c]))
                            break
                    if bad >= 0:
                        err[i] = bad + 1
                        break
                total = 0.0
                for c in range(N_CLASSES):
                    if m[c] != _0:
                        total += cval[c] * float(popcount(m[c]))
                if not (total > 0.0):
                    break
                x, t, over = clock(x, t, total, duration, tick, True)
                if over:
                    break
                x, u = _uniform(x)
                bit = _0
                if total == np.inf:
                    for c in range(N_CLASSES):
                        if m[c] != _0 and cval[c] == np.inf:
                            bit = ctz(m[c])
                            break
                else:
                    target = u * total
                    acc = 0.0
                    cc = -1
                    for c in range(N_CLASSES):
                        if m[c] != _0 and cval[c] > 0.0:
                            cc = c
                            wc = cval[c] * float(popcount(m[c]))
                            if target < acc + wc:
                                break
                            acc += wc
                    mm = m[cc]
                    cnt = int(popcount(mm))
                    kk = int((target - acc) * cinv[cc])
                    if kk >= cnt:
                        kk = cnt - 1
                    elif kk < 0:
                        kk = 0
                    for _q in range(kk):
                        mm &= mm - _1
                    bit = ctz(mm)
                w ^= _1 << bit
                update(int(bit), w, nf, v, m)
                k += 1
            if w != w0:  # most settled cells do not move: skip the write-back
                _unpack(w, row)
            events[i] = k


@njit(cache=True, error_model="numpy", parallel={parallel})
def {sname}(state, n_steps, setm, setv, frz, v, cval, err):
    # synchronous: each step flips, all at once, every node whose flip rate is positive
    n = state.shape[0]
    nchunk = (n + CHUNK - 1) // CHUNK
    last_s = setm.shape[0] - 1
    last_v = setv.shape[0] - 1
    last_f = frz.shape[0] - 1
    for ch in {loop}(nchunk):
        m = np.empty(max(N_CLASSES, 1), dtype=np.uint64)
        lo = ch * CHUNK
        hi = min(n, lo + CHUNK)
        for i in range(lo, hi):
            row = state[i]
            w = (_pack(row) & ~setm[min(i, last_s)]) | setv[min(i, last_v)]
            nf = ~frz[min(i, last_f)]
            for _step in range(n_steps):
                masks(w, nf, v, m)
                flip = _0
                bad = -1
                for c in range(N_CLASSES):
                    if m[c] != _0:
                        if not (cval[c] >= 0.0):
                            bad = int(ctz(m[c]))
                            break
                        if cval[c] > 0.0:
                            flip |= m[c]
                if bad >= 0:
                    err[i] = bad + 1
                    break
                w ^= flip
            _unpack(w, row)
"""


def generate_bit_source(
    name: str,
    node_names: list[str],
    logic: list[Expr | None],
    rate_up: list[Expr],
    rate_down: list[Expr],
    variable_names: list[str],
    chunk: int,
    variable_values: np.ndarray | None = None,
) -> BitProgram | None:
    """Source of the bit-engine module for one network, or None if the network is unsupported.

    Rate classes: with ``variable_values`` (float64, ``variable_names`` order) the rate leaves are
    grouped by their *value* after constant folding (``$u_X`` that are all 1 and the literal 1 make
    one class); the module's ``classes_consistent(v)`` tells when changed variables break that
    grouping (the caller then regenerates). Without it, leaves are grouped by their source text.
    """
    if len(node_names) > MAX_NODES or not node_names:
        return None
    node_index = {nm: i for i, nm in enumerate(node_names)}
    var_index = {nm: i for i, nm in enumerate(variable_names)}
    gen = BitCodeGen(node_index, var_index)
    leafgen = CodeGen(node_index, var_index)
    classes: dict[object, int] = {}
    members: list[list[str]] = []

    def class_of(leaf: Expr) -> int:
        src = leafgen.numeric(leaf)
        if variable_values is None:
            key: object = src
        else:
            val = evaluate(leaf, variables=lambda nm: float(variable_values[var_index[nm]]))
            key = ("value", "nan" if val != val else val)
        c = classes.setdefault(key, len(classes))
        if c == len(members):
            members.append([])
        if src not in members[c]:
            members[c].append(src)
        return c

    # (class, self_on, @logic truth or None) -> node mask: terms gated only by @logic (or nothing)
    groups: dict[tuple[int, bool, bool | None], int] = {}
    singles: dict[int, list[str]] = {}  # class -> other terms (bit j only)
    single_nodes: dict[int, list[int]] = {}  # class -> the node of each of singles[c]
    logic_terms: list[str] = []
    logic_nodes: list[int] = []
    readers = [0] * len(node_names)  # readers[b]: nodes (bits) whose flip rate reads node b
    try:
        for j, nm in enumerate(node_names):
            gen.node = j
            reads = {j}  # a node's own value gates its rate_up / rate_down terms
            for e in (rate_up[j], rate_down[j]):
                reads |= {node_index[x.name] for x in walk(e) if isinstance(x, NodeRef)}
            if any(isinstance(x, AtRef) for e in (rate_up[j], rate_down[j]) for x in walk(e)):
                if logic[j] is None:  # pragma: no cover - the reader rejects @logic without logic
                    raise Unsupported(f"node {nm} uses @logic without a logic")
                logic_terms.append(f"({gen.pos(logic[j], j)} & _B{j})")
                logic_nodes.append(j)
                reads |= {node_index[x.name] for x in walk(logic[j]) if isinstance(x, NodeRef)}
            for b in reads:
                readers[b] |= 1 << j
            for expr, self_on in ((rate_up[j], False), (rate_down[j], True)):
                for gate, leaf in expand_terms(expr):
                    if not any(isinstance(x, VarRef) for x in walk(leaf)) and evaluate(leaf) == 0.0:
                        continue  # constant zero rate: never flips
                    c = class_of(leaf)
                    if not gate or (len(gate) == 1 and isinstance(gate[0][0], AtRef)):
                        key = (c, self_on, gate[0][1] if gate else None)
                        groups[key] = groups.get(key, 0) | (1 << j)
                        continue
                    parts = ["w" if self_on else "~w"]
                    for cond, truth in gate:
                        b = gen.pos(cond, j)
                        parts.append(b if truth else f"(~{b})")
                    singles.setdefault(c, []).append(f"({' & '.join(parts)} & _B{j})")
                    single_nodes.setdefault(c, []).append(j)
    except Unsupported:
        return None
    class_sources = [m[0] for m in members]
    consts = [f"_S{d} = np.uint64({d})" for d in range(max(len(node_names), 1))]
    consts += [f"_B{j} = np.uint64({1 << j})" for j in range(len(node_names))]
    group_items = sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], str(kv[0][2])))
    group_const: dict[tuple[int, bool, bool | None, int], str] = {}

    def const_of(key: tuple[int, bool, bool | None], bits: int) -> str:
        name = group_const.get((*key, bits))
        if name is None:
            name = group_const[(*key, bits)] = f"_G{len(consts)}"
            consts.append(f"{name} = np.uint64({bits})")
        return name

    def mask_lines(only: int, indent: str) -> list[str]:
        """Lines computing L and m[c] for the nodes in ``only`` (a bit set; all: full masks)."""
        full = only == (1 << len(node_names)) - 1
        lt = [t for t, j in zip(logic_terms, logic_nodes, strict=True) if only >> j & 1]
        lines = [f"{indent}L = {_or_tree(lt)}"] if lt else []
        for c in range(len(class_sources)):
            terms: list[str] = []
            for key, bits in group_items:
                gc, self_on, truth = key
                if gc != c or not bits & only:
                    continue
                sel = [] if truth is None else ["L" if truth else "~L"]
                terms.append(f"({' & '.join([*sel, 'w' if self_on else '~w', const_of(key, bits & only)])})")
            terms.extend(t for t, j in zip(singles.get(c, []), single_nodes.get(c, []), strict=True) if only >> j & 1)
            if full:
                lines.append(f"{indent}m[{c}] = {_or_tree(terms)} & nf")
            elif terms:  # bits of nodes with no term of class c are 0 in m[c] and stay 0
                lines.append(f"{indent}m[{c}] = (m[{c}] & np.uint64({~only & (2**64 - 1)})) | ({_or_tree(terms)} & nf)")
        return lines

    mask_body = mask_lines((1 << len(node_names)) - 1, "    ")
    if not class_sources:
        mask_body.append("    pass")
    # after node b flips only the nodes that read it (readers[b]) can change class: one branch per b
    update_body: list[str] = []
    for b in range(len(node_names)):
        lines = mask_lines(readers[b], "        ")
        update_body.append(f"    {'if' if b == 0 else 'elif'} b == {b}:")
        update_body.extend(lines or ["        pass"])
    update_src = "\n".join(update_body)
    if len(update_src) > MAX_UPDATE_CHARS:  # too much code: recompute the full masks instead
        update_src = "    masks(w, nf, v, m)"
    class_body = [f"    out[{c}] = {src}" for c, src in enumerate(class_sources)] or ["    pass"]
    check_body: list[str] = []
    for m in members:
        for other in m[1:]:
            a, b = f"({m[0]})", f"({other})"
            check_body.append(f"    if not ({a} == {b} or ({a} != {a} and {b} != {b})):")
            check_body.append("        return False")
    head = _TEMPLATE.format(
        version=BIT_ENGINE_VERSION,
        name=name,
        n_nodes=len(node_names),
        n_classes=len(class_sources),
        chunk=chunk,
        shift_consts="\n".join(consts),
        class_body="\n".join(class_body),
        check_body="\n".join(check_body) or "    pass",
        mask_body="\n".join(mask_body),
        update_body=update_src,
    )
    kernels = [
        _KERNELS.format(parallel=par, loop=loop, aname=f"advance_{tag}", sname=f"synchronous_{tag}")
        for par, loop, tag in ((False, "range", "seq"), (True, "prange", "par"))
    ]
    source = head + "".join(kernels)
    if len(source) - len(update_src) > MAX_SOURCE_CHARS:
        return None
    return BitProgram(source=source, class_sources=class_sources, class_members=members)
