"""A compiled Boolean network: state matrices in, state matrices out.

A state matrix is ``uint8`` of shape ``(n_cells, n_nodes)`` with 0/1 entries, columns in
:attr:`BooleanNetwork.node_names` order. Times are in network time units (MaBoSS's units;
the coupling layer converts from simulated minutes with ``time_scale``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numba
import numpy as np

from tme_sim.errors import NetworkFormatError
from tme_sim.intracellular.boolean import bitengine, clauseengine, engine, statehist, statetable, tableengine
from tme_sim.intracellular.boolean.expressions import AtRef, Cond, Expr, Num
from tme_sim.intracellular.boolean.maboss_format import (
    BndModel,
    CfgModel,
    JointIstate,
    check_bnd,
    parse_bnd_text,
    parse_cfg_text,
    read_bnd,
    read_cfg,
    resolve_aliases,
    resolve_variables,
)

Mask = np.ndarray | None

#: Below this many cells the single-threaded kernel is used. On the shared, oversubscribed 2-core
#: development machine (load ~10) the multi-threaded bit-packed kernel did not pay at any size
#: measured (TNF model, switching phase, wall: 1e5 cells 809 vs 551 ns, 1e6 cells 671 vs 614 ns per
#: cell-update), so it is only used from 1e6 cells on; on a quiet machine it should pay earlier.
#: Results are identical either way, so this is only a speed setting.
PARALLEL_MIN_CELLS = 1_000_000

#: Networks that do not fit the bit engine use the table-driven kernels above this many nodes and
#: kernels generated per network at or below it. Measured (1 thread, CPU, shared machine): the
#: p53/Mdm2 paper model (5 nodes) generated: 4.7 s / 207 MB to first result, 76 ns per transition;
#: table-driven: 1.0 s / 178 MB, 638 ns. A synthetic 133-node model generated: 81 s / 742 MB,
#: 251 ns; table-driven: 1.2 s / 179 MB, 577 ns. Above it the clause-driven kernels are preferred
#: when the rates convert (MaBoSS's 78-node Ewing model: ~150 ns per transition against ~940 ns
#: table-driven); networks of up to 12 nodes use state tables before any of these.
TABLE_MIN_NODES = 64

#: Values of :attr:`BooleanNetwork.engine`.
ENGINES = ("auto", "bits", "clauses", "generic", "table")


def cell_seeds(rng: np.random.Generator, n: int) -> np.ndarray:
    """One uint64 seed per cell: raw 64-bit outputs of ``rng``'s bit generator (fast, full range)."""
    return rng.bit_generator.random_raw(n).astype(np.uint64, copy=False)


def _words(mask: np.ndarray) -> np.ndarray:
    """uint64 words (bit j = column j) of a bool ``(r, n_nodes)`` mask, ``n_nodes <= 64`` -> ``(r,)``."""
    m = mask.shape[1]
    if mask.shape[0] == 1 and not mask.any():
        return np.zeros(1, dtype=np.uint64)
    return (mask.astype(np.uint64) << np.arange(m, dtype=np.uint64)[None, :]).sum(axis=1, dtype=np.uint64)


def _use_parallel(n: int, parallel: bool | None) -> bool:
    if parallel is None:
        return n >= PARALLEL_MIN_CELLS and numba.get_num_threads() > 1
    return bool(parallel)


def _default_up(line: int) -> Expr:
    return Cond(line, AtRef(line, "logic"), Num(line, 1.0), Num(line, 0.0))


def _default_down(line: int) -> Expr:
    return Cond(line, AtRef(line, "logic"), Num(line, 0.0), Num(line, 1.0))


@dataclass
class BooleanNetwork:
    """A MaBoSS-compatible network compiled to numba kernels.

    Build it with :func:`load_network` (files) or :meth:`from_text`. ``variables`` may be
    edited in place between calls (they are passed to the kernels at each call).
    """

    name: str
    node_names: list[str]
    logic: list[Expr | None]
    rate_up: list[Expr]
    rate_down: list[Expr]
    variables: dict[str, float]
    istate_prob: np.ndarray  # (n_nodes,) P(node on) for independent nodes
    joint_istates: list[JointIstate] = field(default_factory=list)
    internal: np.ndarray = field(default=None)  # type: ignore[assignment]  # (n_nodes,) bool
    settings: dict[str, float] = field(default_factory=dict)
    source_hash: str = ""
    _index: dict[str, int] = field(init=False, repr=False)
    _kernels: ModuleType | None = field(init=False, repr=False, default=None)
    _table: tableengine.TableKernels | None = field(init=False, repr=False, default=None)
    _clauses: clauseengine.ClauseKernels | None = field(init=False, repr=False, default=None)
    _clauses_checked: bool = field(init=False, repr=False, default=False)
    _bits: ModuleType | None = field(init=False, repr=False, default=None)
    _bits_checked: bool = field(init=False, repr=False, default=False)
    _bits_vkey: bytes = field(init=False, repr=False, default=b"")  # variables the classes were checked for
    _state_tables: dict = field(init=False, repr=False, default_factory=dict)
    _istate_program: tuple[bytes, np.ndarray | None] = field(init=False, repr=False, default=(b"", None))
    _hist_cache: dict = field(init=False, repr=False, default_factory=dict)
    #: ``"auto"``: for networks of at most :data:`statetable.MAX_NODES
    #: <tme_sim.intracellular.boolean.statetable.MAX_NODES>` nodes whose frozen nodes are the same
    #: in every cell, the state-table kernels (:mod:`~tme_sim.intracellular.boolean.statetable`:
    #: every state's rates evaluated once); else bit-packed kernels when the network fits them, else
    #: the table-driven kernels (:mod:`~tme_sim.intracellular.boolean.tableengine`, precompiled: no
    #: per-network compile) above :data:`TABLE_MIN_NODES` nodes and generated ones at or below;
    #: ``"bits"``: as ``"auto"`` without the state-table kernels; ``"clauses"``: the clause-driven
    #: kernels (:mod:`~tme_sim.intracellular.boolean.clauseengine`), which ``"auto"`` prefers to the
    #: table-driven ones when the network's gates convert to them;
    #: ``"table"``: always the table-driven kernels; ``"generic"``: always the generated generic
    #: kernels (all exact Gillespie; the engines draw different random numbers).
    engine: str = field(init=False, default="auto")
    _var_names: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {nm: i for i, nm in enumerate(self.node_names)}
        self._var_names = sorted(self.variables)
        if self.internal is None:
            self.internal = np.zeros(len(self.node_names), dtype=bool)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_models(cls, bnd: BndModel, cfg: CfgModel | None, name: str | None = None) -> BooleanNetwork:
        """Resolve names and defaults of parsed .bnd/.cfg models."""
        variables = resolve_variables(bnd, cfg)
        resolve_aliases(bnd)
        check_bnd(bnd, variables)
        names = [spec.name for spec in bnd.nodes]
        logic: list[Expr | None] = []
        up: list[Expr] = []
        down: list[Expr] = []
        for spec in bnd.nodes:
            logic.append(spec.logic)
            if spec.logic is not None:
                up.append(spec.rate_up if spec.rate_up is not None else _default_up(spec.line))
                down.append(spec.rate_down if spec.rate_down is not None else _default_down(spec.line))
            else:
                up.append(spec.rate_up if spec.rate_up is not None else Num(spec.line, 0.0))
                down.append(spec.rate_down if spec.rate_down is not None else Num(spec.line, 0.0))
        index = {nm: i for i, nm in enumerate(names)}
        prob = np.full(len(names), 0.5)  # MaBoSS: nodes without istate start at random
        internal = np.zeros(len(names), dtype=bool)
        joints: list[JointIstate] = []
        settings: dict[str, float] = {}
        if cfg is not None:
            for nm, (p, _line) in cfg.istate.items():
                prob[index[nm]] = p
            joints = list(cfg.joint_istates)
            for nm, (flag, _line) in cfg.is_internal.items():
                internal[index[nm]] = flag
            settings = dict(cfg.settings)
        return cls(
            name=name or bnd.filename,
            node_names=names,
            logic=logic,
            rate_up=up,
            rate_down=down,
            variables=variables,
            istate_prob=prob,
            joint_istates=joints,
            internal=internal,
            settings=settings,
        )

    @classmethod
    def from_text(cls, bnd_text: str, cfg_text: str | None = None, name: str = "network") -> BooleanNetwork:
        """Build from .bnd / .cfg source strings (errors name ``<name>.bnd:line``)."""
        bnd = parse_bnd_text(bnd_text, f"{name}.bnd")
        cfg = None
        if cfg_text is not None:
            cfg = parse_cfg_text(cfg_text, f"{name}.cfg", {s.name for s in bnd.nodes})
        net = cls.from_models(bnd, cfg, name)
        net.source_hash = hashlib.sha256((bnd_text + "\0" + (cfg_text or "")).encode()).hexdigest()
        return net

    # ------------------------------------------------------------------ basics
    @property
    def n_nodes(self) -> int:
        return len(self.node_names)

    def index(self, name: str) -> int:
        """Column of node ``name``; :class:`NetworkFormatError` if unknown."""
        try:
            return self._index[name]
        except KeyError:
            raise NetworkFormatError(
                f"{self.name}: unknown node {name!r}; nodes: {', '.join(self.node_names)}"
            ) from None

    @property
    def output_nodes(self) -> list[str]:
        """Nodes not marked ``is_internal`` in the .cfg."""
        return [nm for nm, hidden in zip(self.node_names, self.internal, strict=True) if not hidden]

    @property
    def discrete_tick(self) -> float:
        """``time_tick`` when the .cfg sets ``discrete_time`` (MaBoSS: every transition then takes
        exactly one tick instead of an exponential time), else 0.0 (continuous time)."""
        if not self.settings.get("discrete_time", 0.0):
            return 0.0
        tick = float(self.settings.get("time_tick", 1.0))
        if not (tick > 0.0 and np.isfinite(tick)):
            raise NetworkFormatError(f"{self.name}: discrete_time needs a positive time_tick, got {tick:g}")
        return tick

    def node_mask(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """A bool ``(n_nodes,)`` mask that is True on ``names``."""
        m = np.zeros(self.n_nodes, dtype=bool)
        for nm in names:
            m[self.index(nm)] = True
        return m

    def kernels(self) -> ModuleType | tableengine.TableKernels:
        """The non-bit kernels: above :data:`TABLE_MIN_NODES` nodes ("auto") the clause-driven
        ones when the network converts, else the table-driven ones (both built in a Python pass,
        no compilation per network; ``engine = "clauses"`` / ``"table"`` force them at any size),
        else the generated module (compiled on first use, cached on disk)."""
        big = self.engine in ("auto", "bits") and self.n_nodes > TABLE_MIN_NODES
        if self.engine == "clauses" or big:
            ck = self._clause_kernels()
            if ck is not None:
                return ck
        use_table = self.engine in ("table", "clauses") or big
        return self._table_kernels() if use_table else self._generated_kernels()

    def _clause_kernels(self) -> clauseengine.ClauseKernels | None:
        if not self._clauses_checked:
            c = clauseengine.build_clauses(self.node_names, self.logic, self.rate_up, self.rate_down, self._var_names)
            self._clauses = None if c is None else clauseengine.ClauseKernels(c, self._table_kernels())
            self._clauses_checked = True
        return self._clauses

    def _generated_kernels(self) -> ModuleType:
        if self._kernels is None:
            src = engine.generate_source(
                self.name, self.node_names, self.logic, self.rate_up, self.rate_down, self._var_names
            )
            self._kernels = engine.load_kernels(src)
        return self._kernels

    def _table_kernels(self) -> tableengine.TableKernels:
        if self._table is None:
            table = tableengine.build_table(self.node_names, self.logic, self.rate_up, self.rate_down, self._var_names)
            self._table = tableengine.TableKernels(table)
        return self._table

    def bit_kernels(self) -> ModuleType | None:
        """The bit-packed kernel module (:mod:`~tme_sim.intracellular.boolean.bitengine`), or None
        when the network does not fit it (then the generic kernels are used)."""
        if not self._bits_checked:
            self._bits_vkey = self._variable_vector().tobytes()
            prog = bitengine.generate_bit_source(
                self.name,
                self.node_names,
                self.logic,
                self.rate_up,
                self.rate_down,
                self._var_names,
                engine.CHUNK,
                self._variable_vector(),
            )
            self._bits = engine.load_kernels(prog.source) if prog is not None else None
            self._bits_checked = True
        elif self._bits is not None:
            v = self._variable_vector()
            key = v.tobytes()
            if key != self._bits_vkey:  # variables changed since the classes were checked
                if not self._bits.classes_consistent(v):
                    self._bits_checked = False  # changed variables split a rate class: regroup
                    return self.bit_kernels()
                self._bits_vkey = key
        return self._bits

    @property
    def uses_bit_engine(self) -> bool:
        """True when :meth:`advance` / :meth:`step_synchronous` run the bit-packed kernels."""
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {self.engine!r}")
        return self.engine in ("auto", "bits") and self.bit_kernels() is not None

    @property
    def kernel_name(self) -> str:
        """The kernels :meth:`advance` runs when the frozen nodes are the same in every cell:
        ``"states"``, ``"bits"``, ``"clauses"``, ``"table"`` or ``"generic"`` (see :attr:`engine`)."""
        if self._states_apply(1):
            return "states"
        if self.uses_bit_engine:
            return "bits"
        k = self.kernels()
        if isinstance(k, clauseengine.ClauseKernels):
            return "clauses"
        return "table" if isinstance(k, tableengine.TableKernels) else "generic"

    def _states_apply(self, frozen_rows: int) -> bool:
        """Whether the state-table kernels run an asynchronous call (see :attr:`engine`)."""
        return self.engine == "auto" and frozen_rows == 1 and 1 <= self.n_nodes <= statetable.MAX_NODES

    def state_table(self, frozen: np.ndarray) -> statetable.StateTable:
        """The :class:`~tme_sim.intracellular.boolean.statetable.StateTable` for the current
        variables and a bool ``(n_nodes,)`` mask of frozen nodes (built once, then cached)."""
        frozen = np.asarray(frozen, dtype=bool).reshape(self.n_nodes)
        v = self._variable_vector()
        key = (frozen.tobytes(), v.tobytes())
        table = self._state_tables.get(key)
        if table is None:
            rates = self.flip_rates(statetable.all_states(self.n_nodes), engine="table")
            table = statetable.build_state_table(rates, frozen)
            if len(self._state_tables) >= 32:  # e.g. variables swept: keep the cache bounded
                self._state_tables.clear()
            self._state_tables[key] = table
        return table

    def _run_states(
        self,
        state: np.ndarray,
        duration: float,
        seeds: np.ndarray,
        setm: np.ndarray,
        setv: np.ndarray,
        frozen: np.ndarray,
        parallel: bool | None,
    ) -> np.ndarray:
        """Asynchronous call on the state-table kernels (``frozen``: bool ``(n_nodes,)``)."""
        table = self.state_table(frozen)
        par = _use_parallel(state.shape[0], parallel)
        events, err = statetable.advance(table, state, duration, seeds, setm, setv, self.discrete_tick, par)
        self._raise_rate_error(err)
        return events

    def class_values(self) -> np.ndarray:
        """Values of the bit engine's rate classes for the current variables (float64)."""
        bk = self.bit_kernels()
        if bk is None:
            raise RuntimeError(f"{self.name}: the bit engine is not used for this network")
        out = np.empty(max(bk.N_CLASSES, 1))
        bk.class_values(self._variable_vector(), out)
        return out[: bk.N_CLASSES]

    def pack_masks(self, mask: np.ndarray) -> np.ndarray:
        """uint64 words (bit j = node j) from a bool mask ``(n_nodes,)`` -> ``(1,)`` or ``(n, n_nodes)`` -> ``(n,)``."""
        bk = self.bit_kernels()
        assert bk is not None
        a = np.asarray(mask, dtype=np.bool_)
        if a.ndim == 1:
            a = a[None, :]
        return bk.pack_rows(np.ascontiguousarray(a))

    def run_bits(
        self,
        state: np.ndarray,
        duration: float | None,
        n_steps: int,
        seeds: np.ndarray | None,
        setm: np.ndarray,
        setv: np.ndarray,
        frozen: np.ndarray,
        parallel: bool | None = None,
    ) -> np.ndarray:
        """Low-level bit-engine call (used by :meth:`advance`, :meth:`step_synchronous` and the coupling).

        ``state``: C-contiguous ``(n, n_nodes)`` 0/1 array (uint8 or float32/64; ``>= 0.5`` is on),
        modified in place (rows of cells whose state did not change are not rewritten).
        ``setm`` / ``setv`` / ``frozen``: uint64 words, ``(1,)`` (all cells) or ``(n,)``: bits in
        ``setm`` are set to ``setv`` first, bits in ``frozen`` cannot flip.
        ``duration`` (network time units) with ``seeds`` (uint64 ``(n,)``) runs the asynchronous
        kernel and returns the transitions per cell; ``duration=None`` runs ``n_steps``
        synchronous steps and returns an empty array. Raises on a negative/NaN rate.
        """
        n = state.shape[0]
        if duration is not None and self._states_apply(frozen.shape[0]):
            bits = (frozen[0] >> np.arange(self.n_nodes, dtype=np.uint64)) & np.uint64(1)
            return self._run_states(state, duration, seeds, setm, setv, bits.astype(bool), parallel)
        bk = self.bit_kernels()
        assert bk is not None
        err = np.zeros(n, dtype=np.int32)
        par = _use_parallel(n, parallel)
        v = self._variable_vector()
        cval = np.empty(max(bk.N_CLASSES, 1))
        bk.class_values(v, cval)
        if duration is not None:
            events = np.zeros(n, dtype=np.int64)
            fn = bk.advance_par if par else bk.advance_seq
            fn(state, float(duration), seeds, setm, setv, frozen, v, cval, err, events, self.discrete_tick)
        else:
            events = np.zeros(0, dtype=np.int64)
            fn = bk.synchronous_par if par else bk.synchronous_seq
            fn(state, int(n_steps), setm, setv, frozen, v, cval, err)
        self._raise_rate_error(err)
        return events

    def _bit_masks(
        self, n: int, knockout: Mask, knockin: Mask, clamp: Mask
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        frozen, ko, ki = self._mutation_masks(n, knockout, knockin, clamp)
        setm = self.pack_masks(ko | ki)
        setv = self.pack_masks(ki)
        return setm, setv, self.pack_masks(frozen.astype(np.bool_))

    def _variable_vector(self) -> np.ndarray:
        if sorted(self.variables) != self._var_names:
            raise NetworkFormatError(
                f"{self.name}: variables cannot be added or removed after loading "
                f"(have {', '.join('$' + v for v in self._var_names)})"
            )
        return np.array([float(self.variables[k]) for k in self._var_names], dtype=np.float64)

    # ------------------------------------------------------------------ state
    def initial_state(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """A uint8 ``(n, n_nodes)`` initial state honouring the .cfg istates (random ones drawn from rng).

        One uniform per cell and node (row-major) decides ``u < istate``. When every istate is 0 or 1
        no draw can matter: a PCG64 generator (numpy's default) with no buffered 32-bit half is moved
        past the ``n * n_nodes`` draws instead (one 64-bit step per float64), so ``rng`` ends in the
        same state and results are the same, without the draws (~0.2-1 us per cell for 78 nodes).
        """
        p = self.istate_prob[None, :]
        bg = rng.bit_generator
        if (
            bool(((p == 0.0) | (p == 1.0)).all())
            and isinstance(bg, np.random.PCG64 | np.random.PCG64DXSM)
            and not bg.state["has_uint32"]
        ):
            bg.advance(n * self.n_nodes)
            state = np.repeat((p == 1.0).view(np.uint8), n, axis=0)
        else:
            state = (rng.random((n, self.n_nodes)) < p).view(np.uint8)
        for joint in self.joint_istates:
            w = np.asarray(joint.weights, dtype=np.float64)
            rows = rng.choice(len(w), size=n, p=w / w.sum())
            vals = np.asarray(joint.values, dtype=np.uint8)[rows]
            for k, nm in enumerate(joint.nodes):
                state[:, self._index[nm]] = vals[:, k]
        return state

    def _check_state(self, state: np.ndarray) -> None:
        if not isinstance(state, np.ndarray) or state.dtype != np.uint8 or state.ndim != 2:
            raise TypeError("state must be a uint8 numpy array of shape (n_cells, n_nodes)")
        if state.shape[1] != self.n_nodes:
            raise ValueError(f"state has {state.shape[1]} columns, network {self.name} has {self.n_nodes} nodes")
        if not state.flags.c_contiguous:
            raise ValueError("state must be C-contiguous (it is modified in place)")

    def _mutation_masks(
        self, n: int, knockout: Mask, knockin: Mask, clamp: Mask = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frozen uint8 (1|n, m), ko bool, ki bool) with shapes checked."""
        m = self.n_nodes

        def norm(mask: Mask, what: str) -> np.ndarray:
            if mask is None:
                return np.zeros((1, m), dtype=bool)
            a = np.asarray(mask, dtype=bool)
            if a.shape == (m,):
                return a[None, :]
            if a.shape == (n, m):
                return a
            raise ValueError(f"{what} mask must have shape ({m},) or ({n}, {m}), got {a.shape}")

        ko = norm(knockout, "knockout")
        ki = norm(knockin, "knockin")
        if (ko & ki).any():
            j = int(np.argwhere(ko & ki)[0, 1])
            raise NetworkFormatError(f"node {self.node_names[j]} is both knocked out and knocked in")
        frozen = np.ascontiguousarray((ko | ki | norm(clamp, "clamp")).astype(np.uint8))
        if frozen.shape[0] != n and frozen.shape[0] != 1:  # pragma: no cover - guarded by norm
            raise ValueError("bad mask shape")
        return frozen, ko, ki

    @staticmethod
    def _apply_forced(state: np.ndarray, ko: np.ndarray, ki: np.ndarray) -> None:
        for mask, value in ((ko, 0), (ki, 1)):
            if not mask.any():
                continue
            if mask.shape[0] == 1:
                state[:, mask[0]] = value
            else:
                state[mask] = value

    def _raise_rate_error(self, err: np.ndarray) -> None:
        if not err.any():
            return
        bad = np.flatnonzero(err)
        if bad.size:
            j = int(err[bad[0]]) - 1
            raise NetworkFormatError(
                f"{self.name}: negative or NaN transition rate of node {self.node_names[j]} "
                f"(in {bad.size} cell(s)); check its rate_up/rate_down and $variables"
            )

    # ------------------------------------------------------------------ dynamics
    def advance(
        self,
        state: np.ndarray,
        duration: float,
        rng: np.random.Generator,
        *,
        knockout: Mask = None,
        knockin: Mask = None,
        clamp: Mask = None,
        parallel: bool | None = None,
    ) -> np.ndarray:
        """Advance every cell by ``duration`` network time units with exact asynchronous Gillespie.

        ``state``: uint8 ``(n, n_nodes)``, modified in place. ``knockout`` / ``knockin``: None or
        bool masks of shape ``(n_nodes,)`` (all cells) or ``(n, n_nodes)`` (per cell); the masked
        nodes are set to 0 / 1 and cannot change during the call; ``clamp`` (same shapes) holds
        nodes at their current values (used for input nodes). One uint64 seed per cell is
        drawn from ``rng``. Returns the number of transitions per cell (int64 ``(n,)``).
        ``parallel``: force the multi-threaded (True) or single-threaded (False) kernel; by
        default it is multi-threaded from :data:`PARALLEL_MIN_CELLS` cells on.
        """
        self._check_state(state)
        if not np.isfinite(duration) or duration < 0:
            raise ValueError(f"duration must be finite and >= 0, got {duration}")
        n = state.shape[0]
        frozen, ko, ki = self._mutation_masks(n, knockout, knockin, clamp)
        if self._states_apply(frozen.shape[0]):
            setm, setv = _words(ko | ki), _words(ki)
            seeds = cell_seeds(rng, n)
            if n == 0:
                return np.zeros(0, dtype=np.int64)
            return self._run_states(state, float(duration), seeds, setm, setv, frozen[0] != 0, parallel)
        if self.uses_bit_engine:
            setm, setv, frz = self._bit_masks(n, knockout, knockin, clamp)
            seeds = cell_seeds(rng, n)
            if n == 0:
                return np.zeros(0, dtype=np.int64)
            return self.run_bits(state, float(duration), 0, seeds, setm, setv, frz, parallel)
        self._apply_forced(state, ko, ki)
        seeds = cell_seeds(rng, n)
        events = np.zeros(n, dtype=np.int64)
        if n == 0 or duration == 0:
            return events
        err = np.zeros(n, dtype=np.int32)
        k = self.kernels()
        fn = k.advance_par if _use_parallel(n, parallel) else k.advance_seq
        fn(state, float(duration), seeds, frozen, self._variable_vector(), err, events, self.discrete_tick)
        self._raise_rate_error(err)
        return events

    def _independent_istates(self) -> np.ndarray:
        """P(node on) at the start, float64 ``(n_nodes,)``, with the joint istates of one node
        (``[X].istate = 0.3 [1], 0.7 [0];``) folded in (the caller checks there is no other kind)."""
        prob = self.istate_prob.astype(np.float64, copy=True)
        for joint in self.joint_istates:
            w = np.asarray(joint.weights, dtype=np.float64)
            on = np.asarray(joint.values, dtype=np.float64)[:, 0] != 0
            prob[self._index[joint.nodes[0]]] = w[on].sum() / w.sum()
        return prob

    def sample(
        self,
        n: int,
        duration: float,
        rng: np.random.Generator,
        *,
        knockout: Mask = None,
        knockin: Mask = None,
        parallel: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` independent trajectories from the .cfg's initial state, ``duration`` time units
        long (what a MaBoSS run simulates): (final states uint8 ``(n, n_nodes)``, transitions per
        cell int64 ``(n,)``).

        ``knockout`` / ``knockin``: None or bool ``(n_nodes,)`` masks, as in :meth:`advance`. The
        same distribution as :meth:`initial_state` followed by :meth:`advance`, but not the same
        random numbers: for networks of up to 64 nodes without joint istates the start states come
        from one seed taken from ``rng`` for the whole call (cell ``i``'s stream is seeded by ``seed
        + i * golden``; one 64-bit draw gives every node of istate 1/2, one more draw each other
        fractional istate), not from one float64 per cell and node. On the state-table kernels they
        are drawn inside the Gillespie kernel (no start-state matrix, no per-cell seeds from
        ``rng``); other kernels draw them in a precompiled kernel, then run :meth:`advance`.
        Networks above 64 nodes or with joint istates of several nodes run :meth:`initial_state`
        and :meth:`advance` (a joint istate of one node is its node's probability). Results do not
        depend on threads.
        """
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not np.isfinite(duration) or duration < 0:
            raise ValueError(f"duration must be finite and >= 0, got {duration}")
        if knockout is None and knockin is None:  # the common case, without the mask checks
            ko = ki = np.zeros((1, self.n_nodes), dtype=bool)
            frozen = ko.view(np.uint8)
        else:
            frozen, ko, ki = self._mutation_masks(1, knockout, knockin)
        prog = None
        if self.n_nodes <= 64 and all(len(j.nodes) == 1 for j in self.joint_istates):
            prob = self._independent_istates()
            key = prob.tobytes()  # istate_prob may be edited in place
            if self._istate_program[0] != key:
                self._istate_program = (key, statetable.istate_program(prob))
            prog = self._istate_program[1]
        if prog is None or not self._states_apply(1):
            if prog is None:
                state = self.initial_state(n, rng)
            else:  # the start states from the same draws as the fused kernels, then advance
                base = int(rng.bit_generator.random_raw())
                state = statetable.draw_states(n, self.n_nodes, base, prog, _use_parallel(n, parallel))
            events = self.advance(state, float(duration), rng, knockout=knockout, knockin=knockin, parallel=parallel)
            return state, events
        table = self.state_table(frozen[0] != 0)
        base = int(rng.bit_generator.random_raw())
        state, events, err = statetable.sample(
            table,
            n,
            self.n_nodes,
            float(duration),
            base,
            _words(ko | ki),
            _words(ki),
            prog,
            self.discrete_tick,
            _use_parallel(n, parallel),
        )
        self._raise_rate_error(err)
        return state, events

    def final_state_counts(
        self,
        n: int,
        duration: float,
        rng: np.random.Generator,
        *,
        knockout: Mask = None,
        knockin: Mask = None,
        parallel: bool | None = None,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The final states of ``n`` trajectories from the .cfg's initial state, ``duration`` time
        units long, as a histogram (what a MaBoSS run with ``only_final_state`` returns):
        (codes uint64 ``(k,)`` of the states reached, ascending, bit ``j`` = node ``j``; counts
        int64 ``(k,)``, summing to ``n``; total transitions).

        On networks the state-table kernels run (see :attr:`engine`) with independent istates,
        :mod:`~tme_sim.intracellular.boolean.statehist` counts the final states inside the kernel
        (one seed from ``rng`` per call; its own random streams: the same distribution as
        :meth:`sample`, not the same numbers); otherwise it is :meth:`sample` with the rows
        counted (networks of up to 64 nodes). ``knockout`` / ``knockin`` as in :meth:`sample`.
        """
        n = int(n)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not np.isfinite(duration) or duration < 0:
            raise ValueError(f"duration must be finite and >= 0, got {duration}")
        if self.n_nodes > 64:
            raise ValueError(f"{self.name}: final-state codes need at most 64 nodes, not {self.n_nodes}")
        if self._states_apply(1) and all(len(j.nodes) == 1 for j in self.joint_istates):
            prob = self._independent_istates()
            if knockout is None and knockin is None:
                fkey = b""
                setm = setv = 0
            else:
                fz, ko, ki = self._mutation_masks(1, knockout, knockin)
                fkey = fz.tobytes()
                setm, setv = int(_words(ko | ki)[0]), int(_words(ki)[0])
            # variables and istates may be edited in place: both are part of the key
            key = (fkey, tuple(self.variables.items()), prob.tobytes())
            hit = self._hist_cache.get(key)
            if hit is None:
                prog = statetable.istate_program(prob)
                frozen = np.zeros(self.n_nodes, dtype=bool) if not fkey else fz[0] != 0
                hit = (None if prog is None else statehist.kernel_args(self.state_table(frozen)), prog)
                if len(self._hist_cache) >= 32:
                    self._hist_cache.clear()
                self._hist_cache[key] = hit
            args, prog = hit
            if args is not None:
                base = int(rng.bit_generator.random_raw())
                par = _use_parallel(n, parallel)
                codes, counts, events, err = statehist.hist(
                    args, n, float(duration), base, setm, setv, prog, self.discrete_tick, par
                )
                if err:
                    self._raise_rate_error(np.array([err]))
                return codes.astype(np.uint64), counts, events
        state, ev = self.sample(n, duration, rng, knockout=knockout, knockin=knockin, parallel=parallel)
        words = (state.astype(np.uint64) << np.arange(self.n_nodes, dtype=np.uint64)[None, :]).sum(
            axis=1, dtype=np.uint64
        )
        codes, counts = np.unique(words, return_counts=True)
        return codes, counts.astype(np.int64), int(ev.sum())

    def step_synchronous(
        self,
        state: np.ndarray,
        n_steps: int,
        *,
        knockout: Mask = None,
        knockin: Mask = None,
        clamp: Mask = None,
        parallel: bool | None = None,
    ) -> None:
        """Deterministic synchronous update, ``n_steps`` times, in place.

        At each step every non-frozen node whose current flip rate is positive flips, all
        simultaneously (with default rates: ``x_j <- logic_j(x)`` for all ``j`` at once).
        ``knockout`` / ``knockin`` / ``clamp`` as in :meth:`advance`.
        """
        self._check_state(state)
        if int(n_steps) != n_steps or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative integer, got {n_steps}")
        n = state.shape[0]
        if self.uses_bit_engine:
            setm, setv, frz = self._bit_masks(n, knockout, knockin, clamp)
            if n:
                self.run_bits(state, None, int(n_steps), None, setm, setv, frz, parallel)
            return
        frozen, ko, ki = self._mutation_masks(n, knockout, knockin, clamp)
        self._apply_forced(state, ko, ki)
        if n == 0 or n_steps == 0:
            return
        err = np.zeros(n, dtype=np.int32)
        k = self.kernels()
        fn = k.synchronous_par if _use_parallel(n, parallel) else k.synchronous_seq
        fn(state, int(n_steps), frozen, self._variable_vector(), err)
        self._raise_rate_error(err)

    def flip_rates(self, state: np.ndarray, *, engine: str = "generic") -> np.ndarray:
        """Flip rate of every node in every row of ``state`` (float64 ``(n, n_nodes)``; for tests).

        ``engine="generic"``: the generic engine's compiled rate expressions; ``"table"``: the
        table-driven kernels' rate programs; ``"clauses"``: the clause-driven kernels' clauses (raises
        if the network does not convert); ``"bits"``: the bit engine's rate-class masks (raises if
        the network does not use the bit engine).
        """
        self._check_state(state)
        if engine not in ("generic", "table", "clauses", "bits"):
            raise ValueError(f"engine must be 'generic', 'table', 'clauses' or 'bits', got {engine!r}")
        if engine == "bits":
            bk = self.bit_kernels()
            if bk is None:
                raise RuntimeError(f"{self.name}: the bit engine is not used for this network")
            out = np.empty((state.shape[0], self.n_nodes))
            bk.flip_rates(state, self._variable_vector(), np.append(self.class_values(), 0.0), out)
            return out
        if engine == "clauses":
            ck = self._clause_kernels()
            if ck is None:
                raise RuntimeError(f"{self.name}: the network does not convert to the clause-driven kernels")
        k = self._generated_kernels() if engine == "generic" else self._table_kernels() if engine == "table" else ck
        v = self._variable_vector()
        out = np.empty((state.shape[0], self.n_nodes))
        for i in range(state.shape[0]):  # diagnostic helper, not used in time stepping
            k.rates(state[i], v, out[i])
        return out

    # ------------------------------------------------------------------ variants
    def with_variables(self, **values: float) -> BooleanNetwork:
        """A copy with some ``$variables`` changed (same compiled kernels)."""
        unknown = [k for k in values if k not in self.variables]
        if unknown:
            raise NetworkFormatError(f"{self.name}: unknown variable(s) {', '.join('$' + k for k in unknown)}")
        new = BooleanNetwork(
            name=self.name,
            node_names=list(self.node_names),
            logic=list(self.logic),
            rate_up=list(self.rate_up),
            rate_down=list(self.rate_down),
            variables={**self.variables, **{k: float(v) for k, v in values.items()}},
            istate_prob=self.istate_prob.copy(),
            joint_istates=list(self.joint_istates),
            internal=self.internal.copy(),
            settings=dict(self.settings),
            source_hash=self.source_hash,
        )
        new._kernels = self._kernels
        new._table = self._table
        new._clauses = self._clauses  # leaf values are cached per variable vector: shareable
        new._clauses_checked = self._clauses_checked
        new._bits = self._bits
        new._bits_checked = self._bits_checked
        new._bits_vkey = self._bits_vkey
        new._state_tables = self._state_tables  # keyed by variables and frozen nodes: shareable
        new.engine = self.engine
        return new


def load_network(
    bnd: str | Path, cfg: str | Path | list[str | Path] | tuple[str | Path, ...] | None = None
) -> BooleanNetwork:
    """Read a MaBoSS ``.bnd`` (and optional ``.cfg``, or several read in order) into a :class:`BooleanNetwork`.

    Syntax errors, unknown nodes and undefined variables raise
    :class:`~tme_sim.errors.NetworkFormatError` as ``"<file>:<line>: <message>"``.
    Kernels are compiled lazily on the first :meth:`~BooleanNetwork.advance` /
    :meth:`~BooleanNetwork.step_synchronous` call (and cached on disk).
    """
    bnd_model = read_bnd(bnd)
    cfg_model = read_cfg(cfg, {s.name for s in bnd_model.nodes}) if cfg is not None else None
    net = BooleanNetwork.from_models(bnd_model, cfg_model, Path(bnd).stem)
    h = hashlib.sha256(Path(bnd).read_bytes())
    for one in [] if cfg is None else list(cfg) if isinstance(cfg, list | tuple) else [cfg]:
        h.update(b"\0" + Path(one).read_bytes())
    net.source_hash = h.hexdigest()
    return net
