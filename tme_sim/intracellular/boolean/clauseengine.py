"""Clause-driven Gillespie kernels for big networks: rates as gated constants, gates as bit clauses.

Why: the table-driven kernels (:mod:`~tme_sim.intracellular.boolean.tableengine`) interpret every
rate as a postfix program, one stack operation per literal and operator, with no short cut: on
MaBoSS's 78-node Ewing model a transition cost ~940 ns. Nearly every MaBoSS rate is a constant
switched by Boolean conditions (``@logic ? $u_X : 0``), and those conditions are sums of products
of node literals. Here each rate expression is split into ``gate -> leaf`` terms (as the bit
engine does, :func:`~tme_sim.intracellular.boolean.bitengine.expand_terms`), every gate is
converted to disjunctive normal form, and each product becomes a *clause*: two bit masks per
64-node word (nodes that must be on, nodes that must be off). A node's rate is the leaf value of
the first clause its state word satisfies, found with a few AND/compare operations per clause and
an early exit; the kernels below are compiled once per machine (``cache=True``), so loading a
network is still a Python pass, with no compile per network.

Networks that do not convert (a gate reading numbers, such as ``A + B > 1`` or ``$x < 1``, or a
gate whose normal form exceeds :data:`MAX_CLAUSES` products) keep the table-driven kernels:
:func:`build_clauses` returns None.

Semantics, randomness and the incremental refresh of the nodes that read a flipped node are those
of the table-driven kernels (the same per-cell SplitMix64 streams), so results do not depend on
threads or chunking. Leaf values are evaluated from the variables at each call (cached).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from tme_sim.intracellular.boolean import tableengine
from tme_sim.intracellular.boolean.bitengine import Unsupported, expand_terms, uniform
from tme_sim.intracellular.boolean.expressions import (
    AtRef,
    Binary,
    Cond,
    Expr,
    NodeRef,
    Num,
    Unary,
    VarRef,
    evaluate,
    is_boolean,
    walk,
)
from tme_sim.intracellular.boolean.gillespie import cell_stream, clock, first_infinite, pick_node

#: Most products one gate's normal form may have before the network keeps the table-driven kernels.
MAX_CLAUSES = 256
CHUNK = 256
#: Nodes per block of the running rate sums (the flipping node is found block by block).
BLOCK = 4

Clause = frozenset[tuple[int, bool]]  # (node, required value)


def _product(a: list[Clause], b: list[Clause]) -> list[Clause]:
    out: set[Clause] = set()
    for x in a:
        for y in b:
            c = x | y
            if any((j, not v) in c for j, v in c):
                continue  # contradictory: never holds
            out.add(c)
    if len(out) > MAX_CLAUSES:
        raise Unsupported(f"a gate has more than {MAX_CLAUSES} products")
    return sorted(out, key=sorted)


def _union(a: list[Clause], b: list[Clause]) -> list[Clause]:
    out = sorted(set(a) | set(b), key=sorted)
    if len(out) > MAX_CLAUSES:
        raise Unsupported(f"a gate has more than {MAX_CLAUSES} products")
    return out


def to_dnf(e: Expr, truth: bool, node_index: dict[str, int], logic: Expr | None) -> list[Clause]:
    """Products of node literals whose union is the set of states where ``e`` has truth value ``truth``.

    ``@logic`` is replaced by ``logic``. Raises :class:`Unsupported` for anything but Boolean
    operators over nodes and numbers (comparisons, arithmetic, variables).
    """
    if isinstance(e, AtRef):
        if logic is None:  # pragma: no cover - the reader rejects @logic without a logic
            raise Unsupported("@logic without a logic")
        return to_dnf(logic, truth, node_index, None)
    if isinstance(e, NodeRef):
        return [frozenset({(node_index[e.name], truth)})]
    if isinstance(e, Num):
        return [frozenset()] if (e.value != 0.0) == truth else []
    if isinstance(e, Unary) and e.op == "!":
        return to_dnf(e.arg, not truth, node_index, logic)
    if isinstance(e, Binary) and e.op in ("&", "|"):
        a = to_dnf(e.left, truth, node_index, logic)
        b = to_dnf(e.right, truth, node_index, logic)
        return _product(a, b) if (e.op == "&") == truth else _union(a, b)
    if isinstance(e, Binary) and e.op == "^":
        lt, lf = to_dnf(e.left, True, node_index, logic), to_dnf(e.left, False, node_index, logic)
        rt, rf = to_dnf(e.right, True, node_index, logic), to_dnf(e.right, False, node_index, logic)
        if truth:
            return _union(_product(lt, rf), _product(lf, rt))
        return _union(_product(lt, rt), _product(lf, rf))
    if isinstance(e, Cond) and is_boolean(e):
        ct, cf = to_dnf(e.cond, True, node_index, logic), to_dnf(e.cond, False, node_index, logic)
        return _union(
            _product(ct, to_dnf(e.then, truth, node_index, logic)),
            _product(cf, to_dnf(e.other, truth, node_index, logic)),
        )
    raise Unsupported(f"gate {type(e).__name__} is not a Boolean function of nodes")


@dataclass
class ClauseTable:
    """Rates of one network as gated leaves (see the module docstring).

    Node ``j``'s terms when off are ``term_ptr[2j]:term_ptr[2j + 1]``, when on
    ``term_ptr[2j + 1]:term_ptr[2j + 2]``; the rate is ``leaf values[term_leaf[t]]`` of the first term
    ``t`` whose groups ``group_ptr[t]:group_ptr[t + 1]`` all hold (0 if none). Group ``g`` holds when
    whether any of its clauses ``clause_ptr[g]:clause_ptr[g + 1]`` holds equals ``want[g]``; clause
    ``c`` holds when ``w & care[c] == val[c]`` for every 64-node word of the state ``w``.
    ``dep_ptr`` / ``dep``: readers of each node (itself first).
    """

    term_ptr: np.ndarray  # int64 (2 * n_nodes + 1,)
    term_leaf: np.ndarray  # int64 (n_terms,)
    group_ptr: np.ndarray  # int64 (n_terms + 1,)
    want: np.ndarray  # uint8 (n_groups,)
    clause_ptr: np.ndarray  # int64 (n_groups + 1,)
    care: np.ndarray  # uint64 (n_clauses, n_words): nodes the clause reads
    val: np.ndarray  # uint64 (n_clauses, n_words): their required values
    leaves: list[Expr]  # node-free leaf expressions
    var_names: list[str]
    dep_ptr: np.ndarray
    dep: np.ndarray


def _group(cond: Expr, truth: bool, node_index: dict[str, int], logic: Expr | None) -> tuple[list[Clause], bool]:
    """(clauses, want) for "``cond`` has truth value ``truth``": the smaller normal form of ``cond``
    or of its negation (a rule written as a product of sums has a huge sum of products)."""
    options = []
    for form, want in ((True, truth), (False, not truth)):
        try:
            options.append((to_dnf(cond, form, node_index, logic), want))
        except Unsupported:
            continue
    if not options:
        raise Unsupported("a gate converts to no normal form within the limit")
    return min(options, key=lambda o: len(o[0]))


def build_clauses(
    node_names: list[str],
    logic: list[Expr | None],
    rate_up: list[Expr],
    rate_down: list[Expr],
    variable_names: list[str],
) -> ClauseTable | None:
    """The :class:`ClauseTable` of a network, or None when a gate does not convert."""
    node_index = {nm: i for i, nm in enumerate(node_names)}
    n_words = max(1, (len(node_names) + 63) // 64)
    term_ptr = [0]
    term_leaf: list[int] = []
    group_ptr = [0]
    want: list[int] = []
    clause_ptr = [0]
    pos: list[list[int]] = []
    neg: list[list[int]] = []
    leaves: dict[Expr, int] = {}
    readers: list[set[int]] = [set() for _ in node_names]
    try:
        for j in range(len(node_names)):
            for expr in (rate_up[j], rate_down[j]):
                for gate, lf in expand_terms(expr):
                    if not any(isinstance(x, VarRef) for x in walk(lf)) and evaluate(lf) == 0.0:
                        continue  # constant zero rate
                    for cond, truth in gate:
                        clauses, w = _group(cond, truth, node_index, logic[j])
                        for clause in clauses:
                            p = [0] * n_words
                            q = [0] * n_words
                            for node, value in clause:
                                readers[node].add(j)
                                (p if value else q)[node // 64] |= 1 << (node % 64)
                            pos.append(p)
                            neg.append(q)
                        want.append(int(w))
                        clause_ptr.append(len(pos))
                    term_leaf.append(leaves.setdefault(lf, len(leaves)))
                    group_ptr.append(len(want))
                term_ptr.append(len(term_leaf))
    except Unsupported:
        return None
    dep_ptr = [0]
    dep: list[int] = []
    for k in range(len(node_names)):
        dep.extend([k, *sorted(readers[k] - {k})])
        dep_ptr.append(len(dep))
    shape = (len(pos), n_words)
    return ClauseTable(
        term_ptr=np.asarray(term_ptr, dtype=np.int64),
        term_leaf=np.asarray(term_leaf, dtype=np.int64),
        group_ptr=np.asarray(group_ptr, dtype=np.int64),
        want=np.asarray(want, dtype=np.uint8),
        clause_ptr=np.asarray(clause_ptr, dtype=np.int64),
        care=(np.asarray(pos, dtype=np.uint64) | np.asarray(neg, dtype=np.uint64)).reshape(shape),
        val=np.asarray(pos, dtype=np.uint64).reshape(shape),
        leaves=list(leaves),
        var_names=list(variable_names),
        dep_ptr=np.asarray(dep_ptr, dtype=np.int64),
        dep=np.asarray(dep, dtype=np.int64),
    )


@njit(cache=True, inline="always")
def _node_rate(j, ws, ct, vals):
    """Flip rate of node j in the packed state ``ws`` (uint64 words); ``ct``: the table's arrays."""
    term_ptr, term_leaf, group_ptr, want, clause_ptr, care, val = ct
    side = (ws[j >> 6] >> np.uint64(j & 63)) & np.uint64(1)
    a = 2 * j + int(side)
    nw = ws.shape[0]
    for t in range(term_ptr[a], term_ptr[a + 1]):
        ok = True
        for g in range(group_ptr[t], group_ptr[t + 1]):
            hit = False
            for c in range(clause_ptr[g], clause_ptr[g + 1]):
                match = True
                for q in range(nw):
                    if (ws[q] & care[c, q]) != val[c, q]:
                        match = False
                        break
                if match:
                    hit = True
                    break
            if hit != (want[g] != 0):
                ok = False
                break
        if ok:
            return vals[term_leaf[t]]
    return 0.0


@njit(cache=True, inline="always")
def _block_sum(r, b, m):
    acc = 0.0
    for j in range(b * BLOCK, min(m, (b + 1) * BLOCK)):
        acc += r[j]
    return acc


@njit(cache=True, error_model="numpy")
def _advance_cell(s, fr, x, duration, tick, ws, r, bs, ct, vals, dep_ptr, dep, memo, ws0, r0, bs0):
    """Gillespie on one cell (uint8 row s, modified); returns (transitions, error node + 1 or 0).

    ``r``: flip rates; ``bs``: exact sums of ``r`` over blocks of :data:`BLOCK` nodes, recomputed
    for the blocks a transition touches, so the total is exact (a fixed point is recognised
    exactly) and the flipping node is found by scanning blocks, then one block. ``memo[0]`` > 0:
    ``ws0`` / ``r0`` / ``bs0`` hold the state, rates and block sums a previous cell started from
    (same frozen nodes); a cell starting from the same state copies them (0: no memo; -1: memo
    allowed, empty).
    """
    m = s.shape[0]
    nb = bs.shape[0]
    for q in range(ws.shape[0]):
        ws[q] = np.uint64(0)
    for j in range(m):
        if s[j] != 0:
            ws[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
    same = memo[0] > 0
    if same:
        for q in range(ws.shape[0]):
            if ws[q] != ws0[q]:
                same = False
                break
    if same:
        r[:] = r0
        bs[:] = bs0
    else:
        for j in range(m):
            r[j] = 0.0 if fr[j] != 0 else _node_rate(j, ws, ct, vals)
            if not (r[j] >= 0.0):
                return 0, j + 1
        for b in range(nb):
            bs[b] = _block_sum(r, b, m)
        if memo[0] != 0:
            ws0[:] = ws
            r0[:] = r
            bs0[:] = bs
            memo[0] = 1
    t = 0.0
    k = 0
    while True:
        # four running sums (independent adds: 20 blocks at 78 nodes were 20 dependent adds); the
        # total is still an exact function of the block sums, so a fixed point is exactly 0
        t0 = 0.0
        t1 = 0.0
        t2 = 0.0
        t3 = 0.0
        for b in range(0, nb - 3, 4):
            t0 += bs[b]
            t1 += bs[b + 1]
            t2 += bs[b + 2]
            t3 += bs[b + 3]
        for b in range(nb - nb % 4, nb):
            t0 += bs[b]
        total = (t0 + t1) + (t2 + t3)
        if not (total > 0.0):
            return k, 0
        x, t, over = clock(x, t, total, duration, tick, True)
        if over:
            return k, 0
        x, u = uniform(x)
        if total == np.inf:
            pick = first_infinite(r, m)
        else:
            target = u * total
            acc = 0.0
            b = 0
            while b < nb - 1 and not (target < acc + bs[b]):
                acc += bs[b]
                b += 1
            pick = pick_node(r, b * BLOCK, min(m, (b + 1) * BLOCK), target, acc)
            if pick < 0:  # rounding put the target past a block's last positive rate: take it
                for j in range(b * BLOCK - 1, -1, -1):
                    if r[j] > 0.0:
                        pick = j
                        break
        s[pick] = 1 - s[pick]
        ws[pick >> 6] ^= np.uint64(1) << np.uint64(pick & 63)
        for qd in range(dep_ptr[pick], dep_ptr[pick + 1]):
            j = dep[qd]
            if fr[j] == 0:
                new = _node_rate(j, ws, ct, vals)
                if not (new >= 0.0):
                    return k + 1, j + 1
                r[j] = new
        last_b = -1
        for qd in range(dep_ptr[pick], dep_ptr[pick + 1]):
            b = dep[qd] // BLOCK
            if b != last_b:  # readers are sorted after the flipped node: runs share a block
                bs[b] = _block_sum(r, b, m)
                last_b = b
        k += 1


@njit(cache=True, error_model="numpy")
def _rates(s, r, ct, vals):
    """Flip rates of every node in the uint8 state row ``s`` (for tests and diagnostics)."""
    m = s.shape[0]
    ws = np.zeros(ct[5].shape[1], dtype=np.uint64)
    for j in range(m):
        if s[j] != 0:
            ws[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
    for j in range(m):
        r[j] = _node_rate(j, ws, ct, vals)


def _make_advance(parallel: bool):
    loop = prange if parallel else range

    @njit(cache=True, error_model="numpy", parallel=parallel)
    def advance(state, duration, seeds, frozen, err, events, tick, ct, vals, dep_ptr, dep):
        n = state.shape[0]
        m = state.shape[1]
        per_cell = frozen.shape[0] == n
        nchunk = (n + CHUNK - 1) // CHUNK
        for c in loop(nchunk):
            r = np.empty(m)
            bs = np.empty((m + BLOCK - 1) // BLOCK)
            ws = np.empty(ct[5].shape[1], dtype=np.uint64)
            # cells that start from the state the previous one started from reuse its rates
            memo = np.array([0 if per_cell else -1])
            r0 = np.empty_like(r)
            bs0 = np.empty_like(bs)
            ws0 = np.empty_like(ws)
            lo = c * CHUNK
            hi = min(n, lo + CHUNK)
            for i in range(lo, hi):
                fr = frozen[i] if per_cell else frozen[0]
                x = cell_stream(seeds[i])
                k, e = _advance_cell(
                    state[i], fr, x, duration, tick, ws, r, bs, ct, vals, dep_ptr, dep, memo, ws0, r0, bs0
                )
                events[i] = k
                err[i] = e

    return advance


_advance_seq = _make_advance(False)
_advance_par = _make_advance(True)


class ClauseKernels:
    """The generic-engine kernel interface bound to one network's :class:`ClauseTable`; the
    synchronous kernels are the table-driven ones (same semantics)."""

    def __init__(self, clauses: ClauseTable, table: tableengine.TableKernels) -> None:
        self.clauses = clauses
        self.table = table
        self._vals_key: bytes | None = None
        self._vals = np.zeros(0)

    def leaf_values(self, v: np.ndarray) -> np.ndarray:
        """float64 value of every leaf for the variable vector ``v`` (cached per ``v``)."""
        key = np.asarray(v, dtype=np.float64).tobytes()
        if key != self._vals_key:
            names = {nm: float(x) for nm, x in zip(self.clauses.var_names, v, strict=True)}
            vals = [evaluate(e, variables=names.__getitem__) for e in self.clauses.leaves]
            self._vals = np.asarray(vals, dtype=np.float64).reshape(-1)
            self._vals_key = key
        return self._vals

    def _arrays(self) -> tuple[np.ndarray, ...]:
        c = self.clauses
        return (c.term_ptr, c.term_leaf, c.group_ptr, c.want, c.clause_ptr, c.care, c.val)

    def _run(self, fn, state, duration, seeds, frozen, v, err, events, tick):
        vals = self.leaf_values(v)
        c = self.clauses
        fn(state, duration, seeds, frozen, err, events, tick, self._arrays(), vals, c.dep_ptr, c.dep)

    def advance_seq(self, state, duration, seeds, frozen, v, err, events, tick):
        self._run(_advance_seq, state, duration, seeds, frozen, v, err, events, tick)

    def advance_par(self, state, duration, seeds, frozen, v, err, events, tick):
        self._run(_advance_par, state, duration, seeds, frozen, v, err, events, tick)

    def synchronous_seq(self, state, n_steps, frozen, v, err):
        self.table.synchronous_seq(state, n_steps, frozen, v, err)

    def synchronous_par(self, state, n_steps, frozen, v, err):
        self.table.synchronous_par(state, n_steps, frozen, v, err)

    def rates(self, s, v, r):
        """Flip rates of state row ``s`` (uint8) into ``r`` from the clauses."""
        _rates(s, r, self._arrays(), self.leaf_values(v))
