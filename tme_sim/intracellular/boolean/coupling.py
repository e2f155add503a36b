"""PhysiBoSS-style coupling of a Boolean network to the simulation.

Per intracellular step and per cell type (all cells at once):

1. **Inputs.** Each :class:`InputMap` sets one input node from one signal column of
   :class:`~tme_sim.intracellular.base.Signals` (a substrate concentration in its unit, a contact
   count, ...): ``mode = "threshold"`` turns the node on where ``signal >= threshold``;
   ``mode = "hill"`` turns it on with probability ``s^n / (K^n + s^n)`` (``K = half_max``,
   ``n = hill_n``), drawn from the caller's Generator. ``inverse = true`` swaps on and off.
   Mapped input nodes are clamped (cannot flip) for the duration of the step.
2. **Network.** The state is advanced by ``dt * time_scale`` network time units (stochastic:
   exact asynchronous Gillespie; synchronous: ``round(dt * time_scale)`` synchronous steps).
   ``knockout`` / ``knockin`` nodes are held at 0 / 1 for every cell of the type; ``initial``
   (node → probability of starting on) overrides the .cfg istates, giving a type its own basal
   state; ``drugs = [...]`` (wired by the factory, see :mod:`tme_sim.drugs.dosing`) adds the
   drugs' anti/pro-node masks for the local drug concentrations at every step.
3. **Outputs.** Each :class:`OutputMap` maps a node to a behaviour: ``action = "set"`` writes
   ``value_on`` where the node is on and ``value_off`` where it is off; ``action = "scale"``
   multiplies a behaviour set by an earlier map by ``value_on`` / ``value_off``.

Values are in the behaviour's unit (see :data:`~tme_sim.intracellular.base.BEHAVIOR_NAMES`):
rates in 1/min (``"0.0035 1/min"`` or a bare number meaning 1/min), speeds in µm/min, fractions
dimensionless.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tme_sim.drugs.effects import DrugEffects
from tme_sim.errors import ConfigError, NetworkFormatError
from tme_sim.intracellular.base import (
    BehaviorName,
    IntracellularModel,
    Number,
    Signals,
    behavior_unit,
)
from tme_sim.intracellular.boolean import bitengine
from tme_sim.intracellular.boolean.network import BooleanNetwork, cell_seeds, load_network
from tme_sim.paths import confined_path
from tme_sim.units import Time, to_unit

if TYPE_CHECKING:
    from tme_sim.drugs.effects import DrugEffects


class InputMap(BaseModel):
    """Set an input node from a signal (threshold, or on with a Hill probability)."""

    model_config = ConfigDict(extra="forbid")

    node: str
    signal: str
    mode: Literal["threshold", "hill"] = "threshold"
    threshold: Number | None = None
    half_max: Number | None = None
    hill_n: float = Field(default=1.0, gt=0)
    inverse: bool = False

    @model_validator(mode="after")
    def _check_mode(self) -> InputMap:
        if self.mode == "threshold":
            if self.threshold is None:
                raise ValueError(f"input {self.node}: mode 'threshold' needs 'threshold'")
            if self.half_max is not None:
                raise ValueError(f"input {self.node}: 'half_max' is only for mode 'hill'")
        else:
            if self.half_max is None or not self.half_max > 0:
                raise ValueError(f"input {self.node}: mode 'hill' needs 'half_max' > 0")
            if self.threshold is not None:
                raise ValueError(f"input {self.node}: 'threshold' is only for mode 'threshold'")
        return self


class OutputMap(BaseModel):
    """Map a node's state to a behaviour value (``value_on`` / ``value_off``, behaviour units)."""

    model_config = ConfigDict(extra="forbid")

    node: str
    behavior: BehaviorName
    value_on: Any
    value_off: Any = 0.0
    action: Literal["set", "scale"] = "set"

    @model_validator(mode="after")
    def _convert_values(self) -> OutputMap:
        unit = "" if self.action == "scale" else behavior_unit(self.behavior)
        for key in ("value_on", "value_off"):
            raw = getattr(self, key)
            try:
                val = to_unit(raw, unit, allow_dimensionless=True)
            except ValueError as exc:
                raise ValueError(f"{key} of output {self.node}->{self.behavior}: {exc}") from None
            if not np.isfinite(val) or (self.action == "set" and unit == "1/min" and val < 0):
                raise ValueError(f"{key} of output {self.node}->{self.behavior} must be finite and >= 0")
            object.__setattr__(self, key, val)
        return self


class BooleanIntracellularConfig(BaseModel):
    """``[celltypes.<type>.intracellular]`` for ``kind = "boolean"``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["boolean"]
    bnd: str
    cfg: str
    dt: Time = 6.0  # minutes; give it as "6 min"
    time_scale: float | str = Field(
        default=1.0,
        description="network time units per simulated minute: a number (per min) or with a unit, e.g. '1 1/h'",
    )
    mode: Literal["stochastic", "synchronous"] = "stochastic"
    knockout: list[str] = []
    knockin: list[str] = []
    initial: dict[str, float] = {}  # node -> probability of starting on (overrides the .cfg istate)
    variables: dict[str, float] = {}  # $name -> value (overrides the .cfg; PhysiBoSS <parameters>)
    inputs: list[InputMap] = []
    outputs: list[OutputMap] = []

    @field_validator("time_scale")
    @classmethod
    def _time_scale_per_min(cls, v: float | str) -> float:
        if isinstance(v, str):
            v = to_unit(v, "1/min")  # "1 1/h" (one network unit per hour) → 1/60 per min
        if not v > 0:
            raise ValueError("time_scale: Input should be greater than 0")
        return float(v)

    @field_validator("dt")
    @classmethod
    def _positive_dt(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("dt must be > 0")
        return v

    @model_validator(mode="after")
    def _check_lists(self) -> BooleanIntracellularConfig:
        bad = [k for k, p in self.initial.items() if not 0.0 <= p <= 1.0]
        if bad:
            raise ValueError(f"initial.{bad[0]}: a probability in [0, 1] is expected")
        both = set(self.knockout) & set(self.knockin)
        if both:
            raise ValueError(f"nodes both knocked out and knocked in: {', '.join(sorted(both))}")
        seen: set[str] = set()
        for im in self.inputs:
            if im.node in seen:
                raise ValueError(f"input node {im.node} is mapped twice")
            seen.add(im.node)
        clamped = seen & (set(self.knockout) | set(self.knockin))
        if clamped:
            raise ValueError(f"input nodes also mutated: {', '.join(sorted(clamped))}")
        set_so_far: set[str] = set()
        for om in self.outputs:
            if om.action == "set":
                if om.behavior in set_so_far:
                    raise ValueError(f"behaviour {om.behavior} is set twice; use action = 'scale' for the second map")
                set_so_far.add(om.behavior)
            elif om.behavior not in set_so_far:
                raise ValueError(f"output {om.node}: 'scale' of {om.behavior} needs an earlier 'set' of it")
        if self.mode == "synchronous" and round(self.dt * self.time_scale) < 1:
            raise ValueError("synchronous mode needs dt * time_scale >= 1 (one step per network time unit)")
        return self


class BooleanIntracellular(IntracellularModel):
    """A MaBoSS network driving one cell type, PhysiBoSS style (see the module docstring)."""

    kind = "boolean"
    config_class = BooleanIntracellularConfig
    accepts_drugs = True

    def __init__(
        self,
        network: BooleanNetwork,
        config: BooleanIntracellularConfig,
        *,
        bnd_path: Path | None = None,
        cfg_path: Path | None = None,
    ) -> None:
        self.network = network
        self.config = config
        self.bnd_path = bnd_path
        self.cfg_path = cfg_path

        def idx(name: str, key: str) -> int:
            if name not in network.node_names:
                raise ConfigError(
                    f"intracellular.{key}: unknown node {name!r} in network {network.name} "
                    f"(nodes: {', '.join(network.node_names)})"
                )
            return network.node_names.index(name)

        self._ko = np.zeros(network.n_nodes, dtype=bool)
        self._ki = np.zeros(network.n_nodes, dtype=bool)
        for nm in config.knockout:
            self._ko[idx(nm, "knockout")] = True
        for nm in config.knockin:
            self._ki[idx(nm, "knockin")] = True
        self._in_idx = [idx(im.node, f"inputs[{k}].node") for k, im in enumerate(config.inputs)]
        self._out_idx = [idx(om.node, f"outputs[{k}].node") for k, om in enumerate(config.outputs)]
        self._clamp = np.zeros(network.n_nodes, dtype=bool)
        self._clamp[self._in_idx] = True
        self._init = [(idx(nm, f"initial.{nm}"), float(p)) for nm, p in config.initial.items()]
        self._in_nodes = np.asarray(self._in_idx, dtype=np.int64)
        self._bit_base: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # packed ko, ki, input nodes
        self.drug_effects: DrugEffects | None = None  # set by the factory from the type's ``drugs``
        #: transitions per cell in the last stochastic :meth:`update` (int64 ``(n,)``; diagnostics)
        self.last_transitions: np.ndarray | None = None

    def drug_effects_for(self, drugs, *, source: str = "drug library") -> DrugEffects:
        """Anti/pro-node masks of ``drugs`` on this network (every target must be a node)."""
        return DrugEffects(drugs, self.state_names, source=source, strict=True)

    def set_drug_effects(self, effects: DrugEffects | None) -> None:
        """Drugs acting on this type's network: their anti/pro-node masks join every :meth:`update`."""
        if effects is not None and tuple(effects.tmap.node_names) != tuple(self.network.node_names):
            raise ValueError("drug effects were compiled for a different node list")
        self.drug_effects = effects

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: BooleanIntracellularConfig, base_dir: Path) -> BooleanIntracellular:
        """Load the network named in ``cfg`` (paths relative to ``base_dir``, the scenario's folder)."""
        base = Path(base_dir)
        bnd = confined_path(cfg.bnd, base, "intracellular.bnd")
        cfgp = confined_path(cfg.cfg, base, "intracellular.cfg")
        for key, p in (("bnd", bnd), ("cfg", cfgp)):
            if not p.is_file():
                raise ConfigError(f"intracellular.{key}: file not found: {p}")
        net = load_network(bnd, cfgp)
        if cfg.variables:
            try:
                net = net.with_variables(**{k.lstrip("$"): v for k, v in cfg.variables.items()})
            except NetworkFormatError as exc:
                raise ConfigError(f"intracellular.variables: {exc}") from None
        return cls(net, cfg, bnd_path=bnd, cfg_path=cfgp)

    # ------------------------------------------------------------------ interface
    @property
    def state_names(self) -> list[str]:
        return list(self.network.node_names)

    @property
    def dt(self) -> float:
        """Intracellular time step in minutes (how often the core should call :meth:`update`)."""
        return float(self.config.dt)

    def required_signals(self) -> list[str]:
        drugs = self.drug_effects.required_signals() if self.drug_effects is not None else []
        return list(dict.fromkeys([*(im.signal for im in self.config.inputs), *drugs]))

    def identity(self) -> dict[str, str]:
        out = {"kind": self.kind, "network": self.network.name, "network_sha256": self.network.source_hash}
        if self.bnd_path is not None:
            out["bnd"] = str(self.bnd_path)
        if self.cfg_path is not None:
            out["cfg"] = str(self.cfg_path)
        out["settings_sha256"] = hashlib.sha256(self.config.model_dump_json().encode()).hexdigest()
        return out

    def initial_state(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Float32 ``(n, n_nodes)`` 0/1 matrix from the .cfg istates, with mutations applied."""
        s = self.network.initial_state(n, rng)
        if self._init:
            u = rng.random((n, len(self._init)))
            for k, (j, p) in enumerate(self._init):
                s[:, j] = u[:, k] < p
        s[:, self._ko] = 0
        s[:, self._ki] = 1
        return s.astype(np.float32)

    def input_values(self, signals: Signals, rng: np.random.Generator) -> np.ndarray:
        """Bool ``(n, n_inputs)``: the value of each mapped input node for each cell."""
        n = signals.n
        out = np.zeros((n, len(self.config.inputs)), dtype=bool)
        for k, im in enumerate(self.config.inputs):
            if im.signal not in signals:
                raise ConfigError(
                    f"intracellular.inputs[{k}]: signal {im.signal!r} is not provided; "
                    f"available: {', '.join(signals.names)}"
                )
            x = np.asarray(signals[im.signal], dtype=np.float64)
            if im.mode == "threshold":
                on = x >= im.threshold
            else:
                xn = np.power(np.maximum(x, 0.0), im.hill_n)
                p = xn / (np.power(im.half_max, im.hill_n) + xn)
                on = rng.random(n) < p
            out[:, k] = ~on if im.inverse else on
        return out

    def update(
        self,
        signals: Signals,
        state: np.ndarray,
        dt: float,
        rng: np.random.Generator,
        *,
        knockout: np.ndarray | None = None,
        knockin: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Set inputs, advance ``dt`` minutes (× ``time_scale``), return behaviours (float64 ``(n,)``).

        ``knockout`` / ``knockin``: optional extra bool masks, ``(n_nodes,)`` or ``(n, n_nodes)``,
        ORed with the configured mutations; where a node is both knocked out and in, the knock-out
        wins. With :attr:`drug_effects` set, the drugs' anti/pro-node masks for this step (drawn
        from the local drug concentrations in ``signals``) are ORed in as well.
        """
        n = state.shape[0]
        if state.ndim != 2 or state.shape[1] != self.network.n_nodes:
            raise ValueError(f"state must have shape (n, {self.network.n_nodes}), got {state.shape}")
        if signals.n != n:
            raise ValueError(f"signals has {signals.n} rows, state has {n}")
        if self.network.uses_bit_engine:
            return self._update_bits(signals, state, dt, rng, knockout, knockin)
        s8 = np.ascontiguousarray(state >= 0.5, dtype=np.uint8)
        clamp = None
        if self._in_idx:
            vals = self.input_values(signals, rng)
            s8[:, self._in_idx] = vals
            clamp = self._clamp
        if self.drug_effects is not None:
            dko, dki = self.drug_effects.masks(signals, rng)
            knockout = dko if knockout is None else (np.asarray(knockout, dtype=bool) | dko)
            knockin = dki if knockin is None else (np.asarray(knockin, dtype=bool) | dki)
        ko, ki = self._ko, self._ki
        if knockout is not None:
            ko = ko | np.asarray(knockout, dtype=bool)
        if knockin is not None:
            ki = ki | np.asarray(knockin, dtype=bool)
        if knockout is not None or knockin is not None:
            ki = ki & ~ko
        duration = float(dt) * self.config.time_scale
        if self.config.mode == "stochastic":
            self.last_transitions = self.network.advance(s8, duration, rng, knockout=ko, knockin=ki, clamp=clamp)
        else:
            steps = round(duration)
            if steps < 1:
                raise ConfigError(f"intracellular: synchronous mode needs dt * time_scale >= 1, got {duration:g}")
            self.network.step_synchronous(s8, steps, knockout=ko, knockin=ki, clamp=clamp)
        state[...] = s8
        return self.behaviours(s8)

    def _update_bits(
        self,
        signals: Signals,
        state: np.ndarray,
        dt: float,
        rng: np.random.Generator,
        knockout: np.ndarray | None,
        knockin: np.ndarray | None,
    ) -> dict[str, np.ndarray]:
        """:meth:`update` on the bit engine: one fused kernel call reads and writes ``state`` in place
        (any float/uint8 dtype; no uint8 copy), inputs and mutations travel as uint64 bit words."""
        net = self.network
        n = state.shape[0]
        if self._bit_base is None:
            self._bit_base = (net.pack_masks(self._ko), net.pack_masks(self._ki), net.pack_masks(self._clamp))
        ko, ki, clampw = self._bit_base
        inb = np.zeros(1, dtype=np.uint64)  # no mapped inputs: nothing set per cell
        if self._in_idx:
            inb = bitengine.pack_inputs(self.input_values(signals, rng), self._in_nodes, np.uint64(0))
        if self.drug_effects is not None:
            dko, dki = self.drug_effects.masks(signals, rng)
            knockout = dko if knockout is None else (np.asarray(knockout, dtype=bool) | dko)
            knockin = dki if knockin is None else (np.asarray(knockin, dtype=bool) | dki)
        if knockout is not None or knockin is not None:
            # per-call masks, (n_nodes,) or (n, n_nodes), ORed with the configured ones; a node both
            # knocked out and in stays out
            if knockout is not None:
                ko = net.pack_masks(self._check_mask(knockout, n, "knockout") | self._ko)
            if knockin is not None:
                ki = net.pack_masks(self._check_mask(knockin, n, "knockin") | self._ki)
            ki = ki & ~ko
        setm = ko | ki | clampw
        setv = (inb | ki) & ~ko
        s = state if state.flags.c_contiguous else np.ascontiguousarray(state)
        duration = float(dt) * self.config.time_scale
        if n:
            if self.config.mode == "stochastic":
                self.last_transitions = net.run_bits(s, duration, 0, cell_seeds(rng, n), setm, setv, setm)
            else:
                steps = round(duration)
                if steps < 1:
                    raise ConfigError(f"intracellular: synchronous mode needs dt * time_scale >= 1, got {duration:g}")
                net.run_bits(s, None, steps, None, setm, setv, setm)
                self.last_transitions = None
        if s is not state:
            state[...] = s
        return self.behaviours(state)

    def _check_mask(self, mask: np.ndarray, n: int, what: str) -> np.ndarray:
        a = np.asarray(mask, dtype=bool)
        m = self.network.n_nodes
        if a.shape != (m,) and a.shape != (n, m):
            raise ValueError(f"{what} mask must have shape ({m},) or ({n}, {m}), got {a.shape}")
        return a

    def behaviours(self, s8: np.ndarray) -> dict[str, np.ndarray]:
        """Behaviour arrays from a 0/1 state matrix (uint8, bool or float; the output maps, in order)."""
        out: dict[str, np.ndarray] = {}
        for j, om in zip(self._out_idx, self.config.outputs, strict=True):
            val = np.where(s8[:, j] >= 0.5, float(om.value_on), float(om.value_off))  # float64 (n,); on as kernels read
            if om.action == "set":
                out[om.behavior] = val
            else:
                out[om.behavior] = out[om.behavior] * val
        return out
