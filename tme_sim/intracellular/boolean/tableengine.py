"""Table-driven Gillespie kernels: one precompiled interpreter for the rate programs of any network.

Why: the generic engine (:mod:`~tme_sim.intracellular.boolean.engine`) generates Python source per
network and has numba compile it; for big networks that first compile takes minutes and gigabytes
(the issue measured 892 s wall / 893 MB for 133 nodes). Here every ``rate_up`` / ``rate_down``
expression (``@logic`` inlined) becomes a short postfix program in two arrays, and the kernels
below, compiled once per machine (``cache=True``), interpret them. Loading a network of any size
is then a Python pass over its expressions.

Program format: ``code`` is int64 ``(n_instr, 2)`` of ``(opcode, argument)``; node ``j``'s
up-program is ``code[ptr[2j]:ptr[2j + 1]]`` and its down-program ``code[ptr[2j + 1]:ptr[2j + 2]]``;
``consts`` holds the numbers. Every instruction pushes or combines float64 stack entries; a
conditional evaluates both branches and selects (no side effects, so the value is the same).

The asynchronous and synchronous kernels are those of the generic engine (same per-cell
SplitMix64 streams, same incremental rate refresh of the nodes that read a flipped node, same
error contract), so results do not depend on threads or chunking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from tme_sim.intracellular.boolean.bitengine import uniform
from tme_sim.intracellular.boolean.expressions import (
    AtRef,
    Binary,
    Cond,
    Expr,
    FuncCall,
    NodeRef,
    Num,
    Unary,
    VarRef,
    children,
    replace_children,
    walk,
)
from tme_sim.intracellular.boolean.gillespie import cell_stream, clock, exact_total, first_infinite, pick_node

CHUNK = 256
OPS = {
    "const": 0,
    "node": 1,
    "var": 2,
    "!": 3,
    "neg": 4,
    "&": 5,
    "|": 6,
    "^": 7,
    "+": 8,
    "-": 9,
    "*": 10,
    "/": 11,
    "==": 12,
    "!=": 13,
    "<": 14,
    "<=": 15,
    ">": 16,
    ">=": 17,
    "select": 18,
    "log1": 19,
    "log2": 20,
    "exp1": 21,
    "exp2": 22,
}


@dataclass
class RateTable:
    """The rate programs of one network (see the module docstring) and its reader lists."""

    code: np.ndarray  # int64 (n_instr, 2)
    ptr: np.ndarray  # int64 (2 * n_nodes + 1,)
    consts: np.ndarray  # float64
    dep_ptr: np.ndarray  # int64 (n_nodes + 1,): readers of node k: dep[dep_ptr[k]:dep_ptr[k + 1]]
    dep: np.ndarray  # int64
    stack_size: int


def _inline_logic(e: Expr, logic: Expr | None) -> Expr:
    if isinstance(e, AtRef):
        assert logic is not None  # the reader rejects @logic without a logic
        return logic
    kids = children(e)
    return replace_children(e, [_inline_logic(k, logic) for k in kids]) if kids else e


def _emit(e: Expr, node_index: dict[str, int], var_index: dict[str, int], consts: dict[float, int], out: list):
    """Append the postfix program of ``e`` to ``out``; returns the stack depth it needs."""
    if isinstance(e, Num):
        key = float(e.value)
        out.append((OPS["const"], consts.setdefault(key, len(consts))))
        return 1
    if isinstance(e, NodeRef):
        out.append((OPS["node"], node_index[e.name]))
        return 1
    if isinstance(e, VarRef):
        out.append((OPS["var"], var_index[e.name]))
        return 1
    if isinstance(e, Unary):
        d = _emit(e.arg, node_index, var_index, consts, out)
        if e.op == "!":
            out.append((OPS["!"], 0))
        elif e.op == "-":
            out.append((OPS["neg"], 0))
        return d
    if isinstance(e, Binary):
        a = _emit(e.left, node_index, var_index, consts, out)
        b = _emit(e.right, node_index, var_index, consts, out)
        out.append((OPS[e.op], 0))
        return max(a, 1 + b)
    if isinstance(e, Cond):
        a = _emit(e.cond, node_index, var_index, consts, out)
        b = _emit(e.then, node_index, var_index, consts, out)
        c = _emit(e.other, node_index, var_index, consts, out)
        out.append((OPS["select"], 0))
        return max(a, 1 + b, 2 + c)
    if isinstance(e, FuncCall):
        depth = 0
        for k, arg in enumerate(e.args):
            depth = max(depth, k + _emit(arg, node_index, var_index, consts, out))
        out.append((OPS[f"{e.name}{len(e.args)}"], 0))
        return depth
    raise TypeError(f"cannot compile {type(e).__name__}")  # pragma: no cover - parser output only


def build_table(
    node_names: list[str],
    logic: list[Expr | None],
    rate_up: list[Expr],
    rate_down: list[Expr],
    variable_names: list[str],
) -> RateTable:
    """Compile a network's rates to a :class:`RateTable` (pure Python, linear in the model size)."""
    node_index = {nm: i for i, nm in enumerate(node_names)}
    var_index = {nm: i for i, nm in enumerate(variable_names)}
    consts: dict[float, int] = {}
    code: list[tuple[int, int]] = []
    ptr = [0]
    depth = 1
    readers: list[set[int]] = [set() for _ in node_names]
    for j in range(len(node_names)):
        for e in (rate_up[j], rate_down[j]):
            full = _inline_logic(e, logic[j])
            depth = max(depth, _emit(full, node_index, var_index, consts, code))
            ptr.append(len(code))
            for sub in walk(full):
                if isinstance(sub, NodeRef):
                    readers[node_index[sub.name]].add(j)
    dep_ptr = [0]
    dep: list[int] = []
    for k in range(len(node_names)):
        dep.extend([k, *sorted(readers[k] - {k})])
        dep_ptr.append(len(dep))
    return RateTable(
        code=np.asarray(code, dtype=np.int64).reshape(-1, 2),
        ptr=np.asarray(ptr, dtype=np.int64),
        consts=np.asarray(list(consts), dtype=np.float64),
        dep_ptr=np.asarray(dep_ptr, dtype=np.int64),
        dep=np.asarray(dep, dtype=np.int64),
        stack_size=depth + 2,
    )


_RESUM = 1e-6


@njit(cache=True, error_model="numpy", inline="always")
def run_program(code, lo, hi, consts, s, v, st):
    """Value of the postfix program ``code[lo:hi]`` in state row ``s`` with variables ``v``."""
    sp = 0
    for pc in range(lo, hi):
        op = code[pc, 0]
        # the most frequent instructions first (node reads, and/or/not, constants, conditionals)
        if op == 1:
            st[sp] = 1.0 if s[code[pc, 1]] != 0 else 0.0
            sp += 1
        elif op == 5:
            sp -= 1
            st[sp - 1] = 1.0 if (st[sp - 1] != 0.0 and st[sp] != 0.0) else 0.0
        elif op == 6:
            sp -= 1
            st[sp - 1] = 1.0 if (st[sp - 1] != 0.0 or st[sp] != 0.0) else 0.0
        elif op == 3:
            st[sp - 1] = 1.0 if st[sp - 1] == 0.0 else 0.0
        elif op == 0:
            st[sp] = consts[code[pc, 1]]
            sp += 1
        elif op == 18:
            sp -= 2
            st[sp - 1] = st[sp] if st[sp - 1] != 0.0 else st[sp + 1]
        elif op == 2:
            st[sp] = v[code[pc, 1]]
            sp += 1
        elif op == 4:
            st[sp - 1] = -st[sp - 1]
        elif op == 19:
            st[sp - 1] = np.log(st[sp - 1])
        elif op == 21:
            st[sp - 1] = np.exp(st[sp - 1])
        else:
            sp -= 1
            a = st[sp - 1]
            b = st[sp]
            if op == 7:
                r = 1.0 if ((a != 0.0) != (b != 0.0)) else 0.0
            elif op == 8:
                r = a + b
            elif op == 9:
                r = a - b
            elif op == 10:
                r = a * b
            elif op == 11:
                r = a / b
            elif op == 12:
                r = 1.0 if a == b else 0.0
            elif op == 13:
                r = 1.0 if a != b else 0.0
            elif op == 14:
                r = 1.0 if a < b else 0.0
            elif op == 15:
                r = 1.0 if a <= b else 0.0
            elif op == 16:
                r = 1.0 if a > b else 0.0
            elif op == 17:
                r = 1.0 if a >= b else 0.0
            elif op == 20:
                r = np.log(a) / np.log(b)
            else:  # 22: exp(x, base) = base ** x
                r = np.power(b, a)
            st[sp - 1] = r
    return st[0]


@njit(cache=True, error_model="numpy")
def node_rate(j, s, v, code, ptr, consts, st):
    """Flip rate of node j: its up-program when off, its down-program when on."""
    if s[j] == 0:
        return run_program(code, ptr[2 * j], ptr[2 * j + 1], consts, s, v, st)
    return run_program(code, ptr[2 * j + 1], ptr[2 * j + 2], consts, s, v, st)


@njit(cache=True, error_model="numpy")
def rates(s, v, r, code, ptr, consts, st):
    for j in range(r.shape[0]):
        r[j] = node_rate(j, s, v, code, ptr, consts, st)


@njit(cache=True, error_model="numpy")
def _refresh(k, s, v, r, fr, code, ptr, consts, st, dep_ptr, dep):
    delta = 0.0
    for q in range(dep_ptr[k], dep_ptr[k + 1]):
        j = dep[q]
        if fr[j] == 0:
            new = node_rate(j, s, v, code, ptr, consts, st)
            if not (new >= 0.0):
                r[j] = new  # kept, so that the exact re-sum that follows reports it
                return np.nan
            delta += new - r[j]
            r[j] = new
    return delta


@njit(cache=True, error_model="numpy")
def _advance_cell(s, fr, x, duration, v, tick, code, ptr, consts, dep_ptr, dep, r, st):
    """Gillespie on one cell (state row s, modified); returns (transitions, error node + 1 or 0)."""
    m = s.shape[0]
    t = 0.0
    k = 0
    rates(s, v, r, code, ptr, consts, st)
    for j in range(m):
        if fr[j] != 0:
            r[j] = 0.0
    total = 0.0
    resum = True
    while True:
        if resum:
            resum = False
            total, bad = exact_total(r, m)
            if bad != 0:
                return k, bad
            if total <= 0.0:
                return k, 0
        x, t, over = clock(x, t, total, duration, tick, False)
        if over:
            return k, 0
        x, u = uniform(x)
        pick = first_infinite(r, m) if total == np.inf else pick_node(r, 0, m, u * total, 0.0)
        s[pick] = 1 - s[pick]
        old = total
        total += _refresh(pick, s, v, r, fr, code, ptr, consts, st, dep_ptr, dep)
        if not (total > _RESUM and total > 1e-3 * old):
            resum = True
        k += 1


def _make_advance(parallel: bool):
    loop = prange if parallel else range

    @njit(cache=True, error_model="numpy", parallel=parallel)
    def advance(state, duration, seeds, frozen, v, err, events, tick, code, ptr, consts, dep_ptr, dep, stack_size):
        n = state.shape[0]
        per_cell = frozen.shape[0] == n
        nchunk = (n + CHUNK - 1) // CHUNK
        for c in loop(nchunk):
            r = np.empty(state.shape[1])
            st = np.empty(stack_size)
            lo = c * CHUNK
            hi = min(n, lo + CHUNK)
            for i in range(lo, hi):
                fr = frozen[i] if per_cell else frozen[0]
                k, e = _advance_cell(
                    state[i], fr, cell_stream(seeds[i]), duration, v, tick, code, ptr, consts, dep_ptr, dep, r, st
                )
                events[i] = k
                err[i] = e

    return advance


def _make_synchronous(parallel: bool):
    loop = prange if parallel else range

    @njit(cache=True, error_model="numpy", parallel=parallel)
    def synchronous(state, n_steps, frozen, v, err, code, ptr, consts, stack_size):
        n = state.shape[0]
        m = state.shape[1]
        per_cell = frozen.shape[0] == n
        nchunk = (n + CHUNK - 1) // CHUNK
        for c in loop(nchunk):
            r = np.empty(m)
            st = np.empty(stack_size)
            lo = c * CHUNK
            hi = min(n, lo + CHUNK)
            for i in range(lo, hi):
                s = state[i]
                fr = frozen[i] if per_cell else frozen[0]
                for _step in range(n_steps):
                    rates(s, v, r, code, ptr, consts, st)
                    for j in range(m):
                        if fr[j] == 0 and not (r[j] >= 0.0):
                            err[i] = j + 1
                    if err[i] != 0:
                        break
                    for j in range(m):
                        if r[j] > 0.0 and fr[j] == 0:
                            s[j] = 1 - s[j]

    return synchronous


_advance_seq = _make_advance(False)
_advance_par = _make_advance(True)
_synchronous_seq = _make_synchronous(False)
_synchronous_par = _make_synchronous(True)


class TableKernels:
    """The generic-engine kernel interface (``advance_seq``, ``synchronous_par``, ``rates``, ...)
    bound to one network's :class:`RateTable`."""

    def __init__(self, table: RateTable) -> None:
        self.table = table

    def _args(self):
        t = self.table
        return t.code, t.ptr, t.consts

    def _deps(self):
        t = self.table
        return t.dep_ptr, t.dep, t.stack_size

    def advance_seq(self, state, duration, seeds, frozen, v, err, events, tick):
        t = self.table
        _advance_seq(
            state, duration, seeds, frozen, v, err, events, tick, *self._args(), t.dep_ptr, t.dep, t.stack_size
        )

    def advance_par(self, state, duration, seeds, frozen, v, err, events, tick):
        t = self.table
        _advance_par(
            state, duration, seeds, frozen, v, err, events, tick, *self._args(), t.dep_ptr, t.dep, t.stack_size
        )

    def synchronous_seq(self, state, n_steps, frozen, v, err):
        _synchronous_seq(state, n_steps, frozen, v, err, *self._args(), self.table.stack_size)

    def synchronous_par(self, state, n_steps, frozen, v, err):
        _synchronous_par(state, n_steps, frozen, v, err, *self._args(), self.table.stack_size)

    def rates(self, s, v, r):
        rates(s, v, r, *self._args(), np.empty(self.table.stack_size))
