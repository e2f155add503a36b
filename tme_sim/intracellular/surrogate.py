"""Neural-surrogate intracellular model: a trained artifact decides a cell type's behaviours.

Per intracellular step, for all n cells of the type at once:

1. **Inputs.** Each :class:`SurrogateInput` turns one signal column (a substrate concentration in
   its unit, e.g. ng/mL; a contact count; ...) into the activity of one model input:
   ``scaling = "saturating"``: ``a = amplitude * c / (c + K)`` (``K`` = half-saturation, in the
   signal's unit; negative ``c`` counts as 0); ``scaling = "linear"``:
   ``a = amplitude * clip(c / K, 0, 1)``. Inputs not mapped keep the constant activity given in
   ``fixed_inputs`` (default 0). The training data use activity 0 = absent, 1 = present.
2. **Model.** The activities are quantised to ``input_resolution`` (default 1/1024; 0 = off), the
   distinct rows are found (``np.unique`` on an integer key) and evaluated in ONE batched torch
   call under ``torch.inference_mode`` (chunked only to bound memory). With
   ``interpolation_grid = G > 0`` the model is instead evaluated on the nodes of a G^k grid over
   the k mapped activities ([0, amplitude] each) and each step interpolates multilinearly between
   the 2^k nodes around each cell (numba, ~2^k·n_outputs flops per cell) — for recurrent models
   whose per-cell cost is high. Nodes are evaluated lazily: a step first evaluates, in one batched
   call, only the nodes its cells need that no earlier step needed, so a run pays for the corner of
   input space its cells visit, not for all G^k nodes. ``interpolation_spacing = "uniform"`` puts
   the nodes at ``amplitude·i/(G−1)``; ``"sqrt"`` at ``amplitude·(i/(G−1))²`` (uniform in √a:
   4× finer than uniform near a = 0, where a saturating dose response is steepest, and the
   interpolation is linear in √a). The error is that of linear interpolation between nodes
   (measured for the flagship in ``tests/test_surrogate_flagship.py``). The float32 state matrix
   (n × n_outputs) holds the model outputs (e.g. TF activities); with ``tau > 0`` the state
   relaxes towards the model's steady state, ``s += (target - s) (1 - exp(-dt/tau))``; with
   ``tau = 0`` (default) it is set to it.
3. **Outputs.** Each :class:`SurrogateOutput` maps state columns to a behaviour in
   ``[low, high]`` (behaviour units, see :data:`~tme_sim.intracellular.base.BEHAVIOR_NAMES`):
   ``formula = "sigmoid"`` (default): ``v = σ(gain · (mean_up(s - s⁰) - mean_down(s - s⁰)))``
   with ``s⁰`` the outputs at the reference inputs (mapped inputs 0, fixed inputs as given), so
   unstimulated cells sit at the middle of the range; ``formula = "linear"``:
   ``v = clip(offset + gain · (mean_up(s) - mean_down(s)), 0, 1)`` (e.g. a fate probability).
   Value = ``low + (high - low) · v``.

Example — macrophage polarization (0 = M1-like, 1 = M2-like) from the ligand-screen model::

    [celltypes.macrophage.intracellular]
    kind = "surrogate"
    artifact = "models/macrophage_ligand_screen.pt"
    dt = "30 min"
    inputs = [
      { signal = "ifng", input = "IFNG", K = "5 ng/mL" },  # converted to the signal's unit
      { signal = "il4",  input = "IL4",  K = "5 ng/mL" },
    ]
    outputs = [
      { behavior = "polarization", up = ["STAT6", "STAT3", "PPARG"], down = ["STAT1", "NFKB1", "IRF1"] },
    ]

Drugs (``drugs = [...]`` in the type's ``intracellular`` table, or :meth:`SurrogateIntracellular.set_drug_effects`
with :meth:`SurrogateIntracellular.drug_effects_for`): the local concentration of each drug (its substrate,
nM) gives each drug–target link its Hill occupancy, which reaches the model through a ``KO_<T>``/``KI_<T>``
flag input (surrogates distilled from the Boolean network: drawn per cell and step like the Boolean
anti/pro nodes, ``drug_sampling = "sample"``, or set to the expected value, ``"expected"``), the input
named ``T`` itself (a ligand input), or a drive on node ``T`` of a signaling model (the masked
drug→target layer of :mod:`tme_sim.screening.surrogate_model`, ``drug_strength`` per unit occupancy). See
:class:`~tme_sim.drugs.effects.SurrogateDrugEffects`.

Mismatches between the scenario and the artifact (an input or output the model does not have)
raise :class:`~tme_sim.errors.ArtifactError`. torch is imported only when this module is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numba import njit
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tme_sim.drugs.effects import SurrogateDrugEffects
from tme_sim.errors import ArtifactError, ConfigError
from tme_sim.grid.substrates import SUBSTRATES
from tme_sim.intracellular.base import (
    BehaviorName,
    IntracellularModel,
    Signals,
    behavior_unit,
)
from tme_sim.paths import confined_path
from tme_sim.units import Time, to_unit

if TYPE_CHECKING:
    from tme_sim.config.drugs import Drug
    from tme_sim.drugs.effects import SurrogateDrugEffects


class SurrogateInput(BaseModel):
    """Map a signal (in its own unit) to the activity of one model input (see module docstring)."""

    model_config = ConfigDict(extra="forbid")

    signal: str
    input: str = Field(description="model input: node code (P01579) or gene symbol (IFNG)")
    K: float | str = Field(
        description='half-saturation (saturating) or full scale (linear): with a unit ("5 ng/mL"), converted '
        "to the signal's unit, or a bare number already in the signal's unit"
    )
    scaling: Literal["saturating", "linear"] = "saturating"
    amplitude: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _k_in_signal_unit(self, info: ValidationInfo) -> SurrogateInput:
        """Convert a ``K`` with a unit to the unit of the substrate it is compared with.

        The substrates' units come from the validation context (``signal_units``: name → unit,
        given by the model when it builds the intracellular model), else from the substrate
        registry; a bare number is taken as already in the signal's unit."""
        k = self.K
        if isinstance(k, str):
            units = (info.context or {}).get("signal_units", {})
            unit = units.get(self.signal)
            if unit is None and self.signal in SUBSTRATES:  # no scenario at hand: the registry's unit
                unit = SUBSTRATES[self.signal].unit
            if unit is None:
                raise ValueError(
                    f"K of input {self.input}: a value with a unit needs a substrate signal "
                    f"(signal {self.signal!r} has no unit here); give a bare number in the signal's unit"
                )
            try:
                k = to_unit(k, unit)
            except ValueError as exc:
                raise ValueError(f"K of input {self.input}: {exc}") from None
        if not (isinstance(k, int | float) and np.isfinite(k) and k > 0):
            raise ValueError(f"K of input {self.input}: must be a finite number > 0, got {self.K!r}")
        object.__setattr__(self, "K", float(k))
        return self


class SurrogateOutput(BaseModel):
    """Map model outputs to one behaviour (see module docstring)."""

    model_config = ConfigDict(extra="forbid")

    behavior: BehaviorName
    up: list[str] = []
    down: list[str] = []
    formula: Literal["sigmoid", "linear"] = "sigmoid"
    gain: float = 10.0
    offset: float = 0.0
    low: Any = 0.0
    high: Any = 1.0

    @model_validator(mode="after")
    def _convert(self) -> SurrogateOutput:
        if not self.up and not self.down:
            raise ValueError(f"output {self.behavior}: needs at least one of 'up' / 'down'")
        unit = behavior_unit(self.behavior)
        for key in ("low", "high"):
            try:
                val = to_unit(getattr(self, key), unit, allow_dimensionless=True)
            except ValueError as exc:
                raise ValueError(f"{key} of output {self.behavior}: {exc}") from None
            if not np.isfinite(val):
                raise ValueError(f"{key} of output {self.behavior} must be finite")
            object.__setattr__(self, key, val)
        return self


class SurrogateIntracellularConfig(BaseModel):
    """``[celltypes.<type>.intracellular]`` for ``kind = "surrogate"``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["surrogate"]
    artifact: str = Field(description="path of the .pt artifact, relative to the scenario's folder")
    dt: Time = 30.0
    tau: Time = 0.0
    inputs: list[SurrogateInput] = []
    fixed_inputs: dict[str, float] = {}
    outputs: list[SurrogateOutput] = []
    input_resolution: float = Field(1.0 / 1024, ge=0, lt=1)
    interpolation_grid: int = Field(0, ge=0, description="grid points per mapped input; 0 = evaluate the model")
    interpolation_spacing: Literal["uniform", "sqrt"] = "uniform"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    drug_sampling: Literal["sample", "expected"] = "sample"
    drug_strength: float = Field(5.0, gt=0, description="drive per unit occupancy of a drug on a network node")

    @field_validator("dt")
    @classmethod
    def _positive_dt(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("dt must be > 0")
        return v

    @field_validator("tau")
    @classmethod
    def _nonneg_tau(cls, v: float) -> float:
        if v < 0:
            raise ValueError("tau must be >= 0")
        return v

    @model_validator(mode="after")
    def _check(self) -> SurrogateIntracellularConfig:
        seen: set[str] = set()
        for m in self.inputs:
            if m.input in seen:
                raise ValueError(f"model input {m.input} is mapped twice")
            seen.add(m.input)
        both = seen & set(self.fixed_inputs)
        if both:
            raise ValueError(f"inputs both mapped and fixed: {', '.join(sorted(both))}")
        beh = [o.behavior for o in self.outputs]
        dup = {b for b in beh if beh.count(b) > 1}
        if dup:
            raise ValueError(f"behaviour(s) set twice: {', '.join(sorted(dup))}")
        return self


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class SurrogateIntracellular(IntracellularModel):
    """A trained surrogate driving one cell type (see the module docstring)."""

    kind = "surrogate"
    config_class = SurrogateIntracellularConfig
    accepts_drugs = True

    def __init__(self, surrogate: Any, config: SurrogateIntracellularConfig) -> None:
        from tme_sim.intracellular.neural.artifact import Surrogate  # torch import happens here, not at tme_sim import

        if not isinstance(surrogate, Surrogate):
            raise TypeError("surrogate must be a tme_sim.intracellular.neural.artifact.Surrogate")
        self.surrogate = surrogate
        self.config = config
        sur = surrogate
        self._in_cols = np.array([sur.input_index(m.input) for m in config.inputs], dtype=np.int64)
        self._base = np.zeros(len(sur.input_names), dtype=np.float32)
        for name, val in config.fixed_inputs.items():
            self._base[sur.input_index(name)] = float(val)
        self._out_cols = [
            (
                np.array([sur.output_index(t) for t in o.up], dtype=np.int64),
                np.array([sur.output_index(t) for t in o.down], dtype=np.int64),
            )
            for o in config.outputs
        ]
        self._K = np.array([m.K for m in config.inputs], dtype=np.float64)
        self._amp = np.array([m.amplitude for m in config.inputs], dtype=np.float64)
        self._sat = np.array([m.scaling == "saturating" for m in config.inputs], dtype=bool)
        self.reference = sur.predict(self._base[None, :])[0]  # s⁰: outputs at reference inputs
        self.evaluations = 0  # rows evaluated by the model so far (after de-duplication)
        self.drug_effects: SurrogateDrugEffects | None = None  # set by set_drug_effects / drug_effects_for
        self._grid_g = 0  # interpolation grid: points per axis (0 = evaluate the model per row)
        g, k = config.interpolation_grid, len(config.inputs)
        if g and k:
            if g < 2 or g**k > 2_000_000:
                raise ConfigError(
                    f"intracellular.interpolation_grid: need 2 <= grid and grid^inputs <= 2e6, got {g}^{k}"
                )
            self._grid_g = g
            self._amax = np.maximum(self._amp, 1e-12)
            self._node_row = np.full(g**k, -1, dtype=np.int64)  # grid node → row of _node_vals, −1 = not yet
            self._node_vals = np.empty((0, len(sur.output_names)), dtype=np.float32)

    @classmethod
    def from_config(cls, cfg: SurrogateIntracellularConfig, base_dir: Path) -> SurrogateIntracellular:
        """Load the artifact named in ``cfg`` (relative to ``base_dir``, the scenario's folder)."""
        from tme_sim.intracellular.neural.artifact import load_artifact

        path = confined_path(cfg.artifact, Path(base_dir), "intracellular.artifact")
        if not path.is_file():
            raise ArtifactError(f"intracellular.artifact: file not found: {path}")
        if cfg.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("intracellular.device: 'cuda' requested but no CUDA device is available")
        sur = load_artifact(path, device=None if cfg.device == "auto" else cfg.device)
        return cls(sur, cfg)

    # ------------------------------------------------------------------ interface
    @property
    def state_names(self) -> list[str]:
        return [self.surrogate.label(n) for n in self.surrogate.output_names]

    @property
    def dt(self) -> float:
        """Intracellular time step in minutes (how often the core should call :meth:`update`)."""
        return float(self.config.dt)

    def required_signals(self) -> list[str]:
        drugs = self.drug_effects.required_signals() if self.drug_effects is not None else []
        return list(dict.fromkeys([*(m.signal for m in self.config.inputs), *drugs]))

    # ------------------------------------------------------------------ drugs
    def drug_effects_for(self, drugs: Sequence[Drug], *, source: str = "drug library") -> SurrogateDrugEffects:
        """Compile ``drugs`` against this surrogate (``KO_<T>``/``KI_<T>`` flag inputs, an input
        named ``T``, or a node ``T`` of a signaling model); a target found nowhere raises a one-line
        :class:`~tme_sim.errors.ConfigError`. See :class:`~tme_sim.drugs.effects.SurrogateDrugEffects`."""
        sur = self.surrogate
        networks = ("signaling", "signaling_ensemble")
        nodes: list[str] = list(getattr(sur.model, "node_names", [])) if sur.kind in networks else []
        return SurrogateDrugEffects(
            drugs,
            sur.input_names,
            nodes,
            labels=dict(sur.meta.get("names", {}) or {}),
            sampling=self.config.drug_sampling,
            strength=self.config.drug_strength,
            source=source,
            what=f"surrogate {Path(sur.path).name}",
        )

    def set_drug_effects(self, effects: SurrogateDrugEffects | None) -> None:
        """Drugs acting on this type: their target modulation joins every :meth:`update`."""
        if effects is not None and effects.n_inputs != len(self.surrogate.input_names):
            raise ValueError("drug effects were compiled for a different surrogate")
        self.drug_effects = effects

    def identity(self) -> dict[str, str]:
        meta = self.surrogate.meta
        return {
            "kind": self.kind,
            "artifact": str(self.surrogate.path),
            "artifact_sha256": _file_sha256(self.surrogate.path),
            "model_kind": str(meta.get("model_kind")),
            "data_sha256": str(meta.get("data_sha256", "")),
            "settings_sha256": hashlib.sha256(self._settings_json().encode()).hexdigest(),
        }

    def _settings_json(self) -> str:
        """The config as JSON; the drug settings only where they differ from their defaults, so
        configs without drugs keep the hash they had before drugs existed."""
        fields = SurrogateIntracellularConfig.model_fields
        skip = {k for k in ("drug_sampling", "drug_strength") if getattr(self.config, k) == fields[k].default}
        return self.config.model_dump_json(exclude=skip)

    def initial_state(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Float32 ``(n, n_outputs)``: the outputs at the reference inputs, for every cell."""
        return np.tile(self.reference.astype(np.float32), (n, 1))

    def input_activities(self, signals: Signals) -> np.ndarray:
        """Float32 ``(n, n_mapped)``: the activity of each mapped input for each cell."""
        n = signals.n
        out = np.empty((n, len(self.config.inputs)), dtype=np.float64)
        for k, m in enumerate(self.config.inputs):
            if m.signal not in signals:
                raise ConfigError(
                    f"intracellular.inputs[{k}]: signal {m.signal!r} is not provided; "
                    f"available: {', '.join(signals.names)}"
                )
            c = np.maximum(np.asarray(signals[m.signal], dtype=np.float64), 0.0)
            if self._sat[k]:
                out[:, k] = self._amp[k] * c / (c + self._K[k])
            else:
                out[:, k] = self._amp[k] * np.clip(c / self._K[k], 0.0, 1.0)
        return out.astype(np.float32)

    def steady_outputs(self, activities: np.ndarray) -> np.ndarray:
        """Model outputs (n, n_outputs) float32 for mapped-input activities (n, n_mapped).

        Rows are quantised to ``input_resolution`` and de-duplicated; the distinct rows go to the
        model in one batched call.
        """
        n = activities.shape[0]
        k = activities.shape[1]
        if k == 0:
            return np.tile(self.reference, (n, 1))
        if self._grid_g:
            return self._interpolate(activities)
        res = self.config.input_resolution
        if res > 0:
            q = np.rint(activities / res).astype(np.int64)
            levels = int(q.max(initial=0)) + 1
            if levels**k < 2**62:
                key = np.zeros(n, dtype=np.int64)
                for j in range(k):
                    key = key * levels + q[:, j]
                _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
                rows = q[first].astype(np.float32) * np.float32(res)
            else:
                rows, inverse = np.unique(q, axis=0, return_inverse=True)
                rows = rows.astype(np.float32) * np.float32(res)
        else:
            rows, inverse = activities, np.arange(n)
        return self._evaluate(rows)[np.ravel(inverse)]

    def steady_outputs_with_drugs(
        self, activities: np.ndarray, conc: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Model outputs (n, n_outputs) float32 with the drugs of :attr:`drug_effects` acting.

        ``activities``: (n, n_mapped) mapped-input activities; ``conc``: (n, n_drugs) local drug
        concentrations (nM). The drugs change the model inputs (flags / ligand inputs) and, for
        signaling models, add a drive to their target nodes; the full input rows (and node
        occupancies) are quantised to ``input_resolution``, de-duplicated and evaluated in one
        batched call (the interpolation grid is not used while drugs act: it spans the mapped
        inputs only).
        """
        eff = self.drug_effects
        assert eff is not None
        n = activities.shape[0]
        u = np.broadcast_to(self._base, (n, self._base.size)).astype(np.float64)
        u[:, self._in_cols] = activities
        occ = eff.apply(conc, u, rng)
        cols = np.unique(np.concatenate([self._in_cols, eff.touched_inputs]))
        feats = u[:, cols] if occ is None else np.concatenate([u[:, cols], occ], axis=1)
        res = self.config.input_resolution
        if res > 0 and feats.shape[1]:
            q = np.rint(feats / res).astype(np.int64)
            levels = q.max(axis=0, initial=0) + 1
            if float(np.prod(levels.astype(np.float64))) < 2.0**62:
                key = np.zeros(n, dtype=np.int64)
                for j in range(q.shape[1]):
                    key = key * int(levels[j]) + q[:, j]
                _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            else:
                _, first, inverse = np.unique(q, axis=0, return_index=True, return_inverse=True)
            feats = np.rint(feats[first] / res) * res
        else:
            first, inverse = np.arange(n), np.arange(n)
            feats = feats.copy()
        rows = np.broadcast_to(self._base, (first.size, self._base.size)).astype(np.float32)
        rows[:, cols] = feats[:, : cols.size]
        self.evaluations += rows.shape[0]
        if occ is None:
            out = self.surrogate.predict(rows)
        else:
            out = self._predict_with_drive(rows, feats[:, cols.size :].astype(np.float32))
        return out[np.ravel(inverse)]

    def _predict_with_drive(self, u: np.ndarray, occ: np.ndarray) -> np.ndarray:
        """Signaling model outputs for inputs ``u`` (B, n_in) with drug occupancies ``occ``
        (B, n_node_links) driving the targeted nodes by ``Σ w·occ`` (one batched steady-state solve)."""
        import torch

        from tme_sim.intracellular.neural.networks import steady_outputs_with_drugs

        eff = self.drug_effects
        assert eff is not None
        sur = self.surrogate
        dev = sur.device
        if dev.type == "cpu":  # numba steady-state kernel (neural.inference), drug drive as extra node inputs
            node_idx = np.asarray(eff.links.nodes.node, dtype=np.int64)
            extra = np.asarray(occ, dtype=np.float32) * np.asarray(eff.node_weight, dtype=np.float32)
            return sur.fast_runner()(u, extra_nodes=node_idx, extra_drive=extra)
        node = torch.as_tensor(eff.links.nodes.node, device=dev)
        w = torch.as_tensor(eff.node_weight, device=dev)
        out = np.empty((u.shape[0], len(sur.output_names)), dtype=np.float32)
        chunk = 8192
        for a in range(0, u.shape[0], chunk):
            ut = torch.from_numpy(np.ascontiguousarray(u[a : a + chunk])).to(dev)
            ot = torch.from_numpy(np.ascontiguousarray(occ[a : a + chunk])).to(dev)
            drive = torch.zeros(len(sur.model.node_names), ut.shape[0], dtype=ut.dtype, device=dev)
            drive = drive.index_add(0, node, (ot * w).T)
            out[a : a + chunk] = steady_outputs_with_drugs(sur.model, ut, drive).float().cpu().numpy()
        return out

    def _evaluate(self, rows: np.ndarray) -> np.ndarray:
        """Model outputs for mapped-input rows (fixed inputs filled in): one batched call."""
        u = np.broadcast_to(self._base, (rows.shape[0], self._base.size)).copy()
        u[:, self._in_cols] = rows
        self.evaluations += u.shape[0]
        return self.surrogate.predict(u)

    def _grid_coordinates(self, activities: np.ndarray) -> np.ndarray:
        """(n, k) float64 coordinates in [0, G−1] of the activities on the interpolation axes."""
        x = np.clip(np.asarray(activities, dtype=np.float64) / self._amax, 0.0, 1.0)
        if self.config.interpolation_spacing == "sqrt":
            x = np.sqrt(x)
        return np.ascontiguousarray(x * (self._grid_g - 1))

    def grid_node_activities(self, nodes: np.ndarray) -> np.ndarray:
        """Mapped-input activities (len(nodes), k) float32 of flat grid node indices (C order)."""
        g = self._grid_g
        idx = np.stack(np.unravel_index(np.asarray(nodes, dtype=np.int64), (g,) * len(self._amax)), axis=1)
        x = idx / (g - 1)
        if self.config.interpolation_spacing == "sqrt":
            x = x * x
        return (x * self._amax).astype(np.float32)

    @property
    def grid_nodes_evaluated(self) -> int:
        """How many interpolation-grid nodes the model has been evaluated at so far."""
        return self._node_vals.shape[0] if self._grid_g else 0

    def _interpolate(self, activities: np.ndarray) -> np.ndarray:
        """Multilinear interpolation between grid nodes (``interpolation_grid`` > 0): the nodes the
        cells need and no earlier call needed are evaluated first (one batched call), then one
        numba pass interpolates (:func:`_interpolate_nodes`, no (n, n_outputs) temporaries)."""
        g = self._grid_g
        t = self._grid_coordinates(activities)
        missing = _missing_nodes(t, g, self._node_row)
        if missing.size:
            vals = self._evaluate(self.grid_node_activities(missing))
            self._node_row[missing] = np.arange(missing.size) + self._node_vals.shape[0]
            self._node_vals = np.concatenate([self._node_vals, vals.astype(np.float32)])
        out = np.empty((activities.shape[0], self._node_vals.shape[1]), dtype=np.float32)
        _interpolate_nodes(t, self._node_row, self._node_vals, g, out)
        return out

    def update(self, signals: Signals, state: np.ndarray, dt: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Evaluate the model for all cells, relax/set ``state`` (in place), return behaviours."""
        n = state.shape[0]
        n_out = len(self.surrogate.output_names)
        if state.ndim != 2 or state.shape[1] != n_out:
            raise ValueError(f"state must have shape (n, {n_out}), got {state.shape}")
        if signals.n != n:
            raise ValueError(f"signals has {signals.n} rows, state has {n}")
        if self.drug_effects is None:
            target = self.steady_outputs(self.input_activities(signals))
        else:
            target = self.steady_outputs_with_drugs(
                self.input_activities(signals), self.drug_effects.concentrations(signals), rng
            )
        tau = self.config.tau
        if tau > 0:  # state += (target - state) * k, in place (target is a fresh array)
            target -= state
            target *= np.float32(-np.expm1(-float(dt) / tau))
            state += target
        else:
            state[...] = target
        return self.behaviours(state)

    def behaviours(self, state: np.ndarray) -> dict[str, np.ndarray]:
        """Behaviour arrays (float64 ``(n,)``) from a state matrix."""
        out: dict[str, np.ndarray] = {}
        ref = self.reference.astype(np.float64)

        def cols(idx: np.ndarray) -> np.ndarray:  # float64 copy of the used columns only
            return state[:, idx].astype(np.float64)

        for (up, down), o in zip(self._out_cols, self.config.outputs, strict=True):
            if o.formula == "sigmoid":
                d = np.zeros(state.shape[0])
                if up.size:
                    d += (cols(up) - ref[up]).mean(1)
                if down.size:
                    d -= (cols(down) - ref[down]).mean(1)
                v = 1.0 / (1.0 + np.exp(-o.gain * d))
            else:
                d = np.zeros(state.shape[0])
                if up.size:
                    d += cols(up).mean(1)
                if down.size:
                    d -= cols(down).mean(1)
                v = np.clip(o.offset + o.gain * d, 0.0, 1.0)
            out[o.behavior] = o.low + (o.high - o.low) * v
        return out


@njit(cache=True, inline="always")
def _cell_corner(t, r, g, i0, w):
    """Lower node index ``i0`` and float32 weight ``w`` along each axis for cell ``r``."""
    for j in range(t.shape[1]):
        ij = min(int(t[r, j]), g - 2)
        i0[j] = ij
        w[j] = np.float32(t[r, j] - ij)


@njit(cache=True)
def _missing_nodes(t: np.ndarray, g: int, node_row: np.ndarray) -> np.ndarray:
    """Flat indices (ascending) of the grid nodes around the cells (``t`` (n, k) coordinates in
    [0, g−1]) whose ``node_row`` is −1 (not evaluated yet)."""
    n, k = t.shape
    need = np.zeros(node_row.shape[0], dtype=np.bool_)
    i0 = np.empty(k, dtype=np.int64)
    w = np.empty(k, dtype=np.float32)
    count = 0
    for r in range(n):
        _cell_corner(t, r, g, i0, w)
        for corner in range(1 << k):
            idx = 0
            for j in range(k):
                idx = idx * g + i0[j] + ((corner >> j) & 1)
            if node_row[idx] < 0 and not need[idx]:
                need[idx] = True
                count += 1
    out = np.empty(count, dtype=np.int64)
    c = 0
    for idx in range(need.shape[0]):
        if need[idx]:
            out[c] = idx
            c += 1
    return out


@njit(cache=True)
def _interpolate_nodes(t: np.ndarray, node_row: np.ndarray, vals: np.ndarray, g: int, out: np.ndarray) -> None:
    """Multilinear interpolation, cell by cell: ``t`` (n, k) float64 grid coordinates in
    [0, g−1]; node ``idx`` (C order over the k axes) has values ``vals[node_row[idx]]`` (float32,
    m per node); ``out`` (n, m) float32. Corner weights are float32 products in axis order,
    corners summed in bit order."""
    n, k = t.shape
    m = vals.shape[1]
    i0 = np.empty(k, dtype=np.int64)
    w = np.empty(k, dtype=np.float32)
    one = np.float32(1.0)
    for r in range(n):
        _cell_corner(t, r, g, i0, w)
        for o in range(m):
            out[r, o] = 0.0
        for corner in range(1 << k):
            wt = one
            idx = 0
            for j in range(k):
                bit = (corner >> j) & 1
                idx = idx * g + i0[j] + bit
                wt = wt * (w[j] if bit else one - w[j])
            row = node_row[idx]
            for o in range(m):
                out[r, o] += wt * vals[row, o]
