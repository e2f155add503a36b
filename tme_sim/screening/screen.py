"""Toxicity/efficacy screen of drug combinations without the spatial simulation.

For every pair of the chosen drugs a dose matrix is evaluated for every cell type. The cells of
all dose points are stacked into one batch per cell type, so a cell type costs one batched model
call (Boolean engine call per sub-step, or one analytic evaluation) for the whole screen, not one
per dose point. Dose points shared by several pairs (the zero point, the single-agent margins)
are evaluated once.

Doses are *exposure concentrations* (nM) seen by the cells for ``exposure`` minutes — the screen
skips PK and transport; the full simulation (``tme run``) does those.

Read-outs per pair and dose (all fractions in [0, 1] unless noted):

* ``death[type]``: fraction of cells dead at the end of the exposure;
* ``kill[type]``: drug-induced kill, ``(death − death₀) / (1 − death₀)`` against untreated cells;
* ``efficacy``: mean kill over tumor types; ``toxicity[type]``: kill of each healthy type;
  ``toxicity_max``: the worst healthy type;
* ``selective``: ``efficacy − toxicity_max`` (selective efficacy, SynToxProfiler, Ianevski 2020);
* ``window``: True where efficacy ≥ ``tumor_kill`` and every healthy kill ≤ ``healthy_kill``;
  the *therapeutic window* of a pair is the fraction of its dose grid where ``window`` holds;
* synergy (Bliss, HSA, Loewe, ZIP) of every cell type's kill matrix.

Cell-type models (``model = ...`` in a screen config) all implement :class:`CellTypeModel`:

* ``dependency``: an analytic target-dependency model — a cell dies when a node it depends on
  (``essential``, weight w) is inhibited or a ``toxic`` node is activated:
  ``death = 1 − (1 − b) Π(1 − w·inh) Π(1 − w·act)``. Deterministic and instant.
* ``boolean``: a MaBoSS network run by :mod:`tme_sim.intracellular.boolean` with drugs applied as
  anti-node knock-out masks (:mod:`tme_sim.drugs.effects`); death = any ``death_nodes`` reached.
* ``surrogate``: a trained surrogate with a drug→target input matrix (see :mod:`.surrogate_model`).

The cell types shipped in ``scenarios/screens/`` are illustrative, not fitted to data.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tme_sim.config.drugs import Drug, DrugLibrary, format_validation_error, load_library
from tme_sim.drugs.effects import compile_targets, sample_masks, target_modulation
from tme_sim.errors import ConfigError
from tme_sim.intracellular.boolean import load_network
from tme_sim.paths import confined_path
from tme_sim.screening.cell_models import CellTypeModel, Role
from tme_sim.screening.phospho_model import PhosphoCellModel
from tme_sim.screening.synergy import METHODS, SynergyResult, synergy
from tme_sim.units import Time, to_unit

# --------------------------------------------------------------------------- cell-type models


class DependencyModel(CellTypeModel):
    """Analytic target dependency: ``death = 1 − (1 − b)·Π(1 − w·inhibition)·Π(1 − w·activation)``.

    ``essential``: node → weight in [0, 1] (the cell needs the node on); ``toxic``: node → weight
    (the cell dies if the node is forced on); ``baseline`` b: death without drug. ``exposure`` is
    not used (steady-state pharmacodynamics).
    """

    def __init__(
        self,
        name: str,
        role: Role,
        essential: dict[str, float],
        toxic: dict[str, float] | None = None,
        baseline: float = 0.0,
    ) -> None:
        super().__init__(name, role)
        self.essential = dict(essential)
        self.toxic = dict(toxic or {})
        self.baseline = float(baseline)
        self.nodes = sorted(set(self.essential) | set(self.toxic))

    def death_fraction(
        self, drugs: Sequence[Drug], conc: np.ndarray, exposure: float, rng: np.random.Generator
    ) -> np.ndarray:
        tmap = compile_targets(drugs, self.nodes, strict=False)
        inh, act = target_modulation(conc, tmap)
        survive = np.full(conc.shape[0], 1.0 - self.baseline)
        for j, node in enumerate(self.nodes):
            survive *= 1.0 - self.essential.get(node, 0.0) * inh[:, j]
            survive *= 1.0 - self.toxic.get(node, 0.0) * act[:, j]
        return 1.0 - survive


class BooleanModel(CellTypeModel):
    """A Boolean network per cell; drugs act through anti-node knock-out (pro-node knock-in) masks.

    ``network``: an object with ``node_names``, ``initial_state(n, rng)`` and
    ``advance(state, duration, rng, knockout=None, knockin=None)`` (the engine of
    :mod:`tme_sim.intracellular.boolean`). ``inputs``: node → probability that the node is held
    on (held off otherwise) during the exposure, e.g. ``{"TNF": 1.0}``. ``knockout``/``knockin``:
    mutations of this cell type (always applied). ``initial``: node → probability of starting on
    (basal activity). ``time_scale``: network time units per minute (as in the
    scenario's Boolean coupling). The exposure is split into ``steps`` sub-steps; drug anti-nodes are
    re-drawn at each sub-step (PhysiBoSS refreshes inputs at each intracellular step) from per-cell
    uniforms shared by all dose points (common random numbers). A cell counts as dead from the
    first sub-step end at which any of ``death_nodes`` is on.
    """

    def __init__(
        self,
        name: str,
        role: Role,
        network: Any,
        death_nodes: Sequence[str],
        *,
        cells_per_dose: int = 200,
        steps: int = 8,
        inputs: dict[str, float] | None = None,
        knockout: Sequence[str] = (),
        knockin: Sequence[str] = (),
        initial: dict[str, float] | None = None,
        time_scale: float = 1.0,
        source: str = "screen config",
    ) -> None:
        super().__init__(name, role)
        self.network = network
        self.nodes = list(network.node_names)
        index = {n: i for i, n in enumerate(self.nodes)}

        def idx(node: str, key: str) -> int:
            if node not in index:
                raise ConfigError(f"{source}: cell_types.{name}.{key}: node {node!r} is not in the network")
            return index[node]

        self.death_idx = np.array([idx(n, "death_nodes") for n in death_nodes], dtype=np.int64)
        if self.death_idx.size == 0:
            raise ConfigError(f"{source}: cell_types.{name}.death_nodes: give at least one node")
        self.inputs = {idx(k, "inputs"): float(v) for k, v in (inputs or {}).items()}
        self.initial = {idx(k, "initial"): float(v) for k, v in (initial or {}).items()}
        self.ko_idx = np.array([idx(n, "knockout") for n in knockout], dtype=np.int64)
        self.ki_idx = np.array([idx(n, "knockin") for n in knockin], dtype=np.int64)
        self.cells_per_dose = int(cells_per_dose)
        self.steps = int(steps)
        self.time_scale = float(time_scale)
        self.source = source

    def death_fraction(
        self, drugs: Sequence[Drug], conc: np.ndarray, exposure: float, rng: np.random.Generator
    ) -> np.ndarray:
        tmap = compile_targets(drugs, self.nodes, strict=False)
        p_points, c = conc.shape[0], self.cells_per_dose
        n = p_points * c
        cell_conc = np.repeat(conc, c, axis=0)  # point-major: rows [i*c, (i+1)*c) are point i
        state = self.network.initial_state(n, rng)
        base_ko = np.zeros((n, len(self.nodes)), dtype=bool)
        base_ki = np.zeros_like(base_ko)
        base_ko[:, self.ko_idx] = True
        base_ki[:, self.ki_idx] = True
        u_cell = rng.random((c, len(self.initial) + len(self.inputs)))
        k = 0
        for j, p in self.initial.items():
            state[:, j] = np.tile(u_cell[:, k] < p, p_points)
            k += 1
        for j, p in self.inputs.items():
            on = np.tile(u_cell[:, k] < p, p_points)
            base_ki[:, j] |= on
            base_ko[:, j] |= ~on
            k += 1
        for j in self.ki_idx:  # a knocked-in node starts on, a knocked-out one off
            state[:, j] = True
        for j in self.ko_idx:
            state[:, j] = False
        dead = np.zeros(n, dtype=bool)
        dt = exposure * self.time_scale / self.steps  # network time units
        for _ in range(self.steps):
            u = np.tile(rng.random((c, tmap.n_links)), (p_points, 1))
            ko, ki = sample_masks(cell_conc, tmap, u)
            ko |= base_ko
            ki |= base_ki
            ki &= ~ko
            self.network.advance(state, dt, rng, knockout=ko, knockin=ki)  # in place
            dead |= np.asarray(state[:, self.death_idx]).astype(bool).any(axis=1)
        self._dead = dead.reshape(p_points, c)
        return self._dead.mean(axis=1)

    def replicates(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """Paired bootstrap over the cells of the last call: (n, P). Every dose point used the same
        per-cell random numbers, so one resample of cell indices is applied to all points."""
        dead = getattr(self, "_dead", None)
        if dead is None or n < 1:
            return None
        idx = rng.integers(0, dead.shape[1], size=(n, dead.shape[1]))
        return np.stack([dead[:, i].mean(axis=1) for i in idx])


# --------------------------------------------------------------------------- screen config


class ScreenCellType(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    role: Role
    model: Literal["dependency", "boolean", "surrogate", "phospho"]
    description: str = ""
    # dependency
    essential: dict[str, float] = Field(default_factory=dict)
    toxic: dict[str, float] = Field(default_factory=dict)
    baseline_death: float = Field(default=0.0, ge=0, lt=1)
    # boolean
    network: str | None = None
    cfg: str | None = None
    death_nodes: list[str] = Field(default_factory=list)
    inputs: dict[str, float] = Field(default_factory=dict)
    knockout: list[str] = Field(default_factory=list)
    knockin: list[str] = Field(default_factory=list)
    initial: dict[str, float] = Field(default_factory=dict)
    time_scale: float = Field(default=1.0, gt=0, description="network time units per minute")
    # surrogate
    artifact: str | None = None
    death_outputs: dict[str, float] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    # phospho (trained phosphoprotein surrogate; artifact and death_outputs as read-out weights)
    cell_type: str | None = None
    stimuli: list[str] = Field(default_factory=list)
    inhibitor_nodes: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> ScreenCellType:
        for key in ("essential", "toxic", "inputs", "initial"):
            for node, w in getattr(self, key).items():
                if not 0.0 <= w <= 1.0:
                    raise ValueError(f"{key}.{node}: must be in [0, 1], got {w}")
        if self.model == "dependency" and not (self.essential or self.toxic):
            raise ValueError("a dependency model needs essential and/or toxic nodes")
        if self.model == "boolean" and (self.network is None or not self.death_nodes):
            raise ValueError("a boolean model needs network and death_nodes")
        if self.model in ("surrogate", "phospho") and self.artifact is None:
            raise ValueError(f"a {self.model} model needs artifact")
        return self


class DoseRange(BaseModel):
    """``n`` doses: 0 then ``n − 1`` log-spaced from ``min`` to ``max`` (nM)."""

    model_config = ConfigDict(extra="forbid")
    min: Any
    max: Any
    n: int = Field(default=10, ge=2, le=200)


class ScreenConfig(BaseModel):
    """A screen config (``scenarios/screens/*.toml``); paths are relative to the config file."""

    model_config = ConfigDict(extra="forbid")

    library: str
    exposure: Time = 1440.0
    steps: int = Field(default=8, ge=1, le=1000)
    cells_per_dose: int = Field(default=200, ge=1, le=100_000)
    seed: int = 0
    n_doses: int = Field(default=10, ge=2, le=200)
    tumor_kill: float = Field(default=0.5, ge=0, le=1)
    healthy_kill: float = Field(default=0.2, ge=0, le=1)
    synergy: list[str] = Field(default_factory=lambda: list(METHODS))
    bootstrap: int = Field(default=100, ge=0, le=10_000, description="replicates for intervals (0: none)")
    interval: float = Field(default=0.9, gt=0, lt=1, description="central interval of the replicates")
    doses: dict[str, list[Any] | DoseRange] = Field(default_factory=dict)
    cell_types: list[ScreenCellType] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ScreenConfig:
        bad = [m for m in self.synergy if m not in METHODS]
        if bad:
            raise ValueError(f"unknown synergy method {bad[0]!r}; known: {', '.join(METHODS)}")
        names = [c.name for c in self.cell_types]
        if len(set(names)) != len(names):
            raise ValueError("two cell types share a name")
        if not any(c.role == "tumor" for c in self.cell_types):
            raise ValueError('no cell type with role = "tumor"')
        if not self.exposure > 0:
            raise ValueError("exposure must be > 0")
        return self


@dataclass
class Screen:
    """A loaded screen: config, library and instantiated cell-type models."""

    config: ScreenConfig
    library: DrugLibrary
    cell_types: list[CellTypeModel]
    source: str = "<memory>"

    def default_doses(self, drug: Drug, n: int | None = None) -> np.ndarray:
        """Dose grid (nM): from the config's ``[doses]`` if given, else 0 and ``n − 1`` log-spaced
        doses from C50/30 to 30·C50 (C50 over the drug's targets)."""
        n = n or self.config.n_doses
        spec = self.config.doses.get(drug.name)
        key = f"{self.source}: doses.{drug.name}"
        if isinstance(spec, DoseRange):
            lo, hi = _conc(spec.min, key + ".min"), _conc(spec.max, key + ".max")
            if not 0 < lo < hi:
                raise ConfigError(f"{key}: need 0 < min < max")
            return np.r_[0.0, np.geomspace(lo, hi, spec.n - 1)]
        if spec is not None:
            return check_doses(np.array([_conc(v, key) for v in spec]), key)
        c50 = [drug.potency(t)[0] for t in drug.targets]
        return np.r_[0.0, np.geomspace(min(c50) / 30.0, max(c50) * 30.0, n - 1)]


def _conc(value: Any, key: str) -> float:
    try:
        return to_unit(value, "nM")
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def check_doses(d: np.ndarray, key: str) -> np.ndarray:
    """Doses must start at 0 and increase strictly (the margins are the single agents)."""
    if d.size < 2 or d[0] != 0 or np.any(np.diff(d) <= 0):
        raise ConfigError(f"{key}: doses must start at 0 and increase strictly, got {d.tolist()}")
    return d


def load_screen(path: str | Path, library: str | Path | None = None) -> Screen:
    """Read a screen config, its drug library and build its cell-type models."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: screen config not found")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    return build_screen(data, source=str(p), base=p.parent, library=library)


def build_screen(
    data: dict[str, Any], *, source: str = "<memory>", base: Path | None = None, library: Any = None
) -> Screen:
    """Validate a screen config dict; ``library`` (path or :class:`DrugLibrary`) overrides its own."""
    base = base or Path.cwd()
    try:
        cfg = ScreenConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
    if isinstance(library, DrugLibrary):
        lib = library
    else:
        lib = load_library(
            Path(library) if library is not None else confined_path(cfg.library, base, f"{source}: library")
        )
    for name in cfg.doses:
        if name not in lib.drugs:
            raise ConfigError(f"{source}: doses.{name}: unknown drug (not in {lib.path})")
    models = [_cell_type_model(ct, cfg, base, source) for ct in cfg.cell_types]
    return Screen(cfg, lib, models, source)


def _cell_type_model(ct: ScreenCellType, cfg: ScreenConfig, base: Path, source: str) -> CellTypeModel:
    if ct.model == "dependency":
        return DependencyModel(ct.name, ct.role, ct.essential, ct.toxic, ct.baseline_death)
    if ct.model == "boolean":
        assert ct.network is not None
        key = f"{source}: cell_types.{ct.name}"
        bnd = confined_path(ct.network, base, f"{key}.network")
        cfg_path = confined_path(ct.cfg, base, f"{key}.cfg") if ct.cfg else bnd.with_suffix(".cfg")
        for f, key in ((bnd, "network"), (cfg_path, "cfg")):
            if not f.is_file():
                raise ConfigError(f"{source}: cell_types.{ct.name}.{key}: file not found: {f}")
        net = load_network(bnd, cfg_path)
        return BooleanModel(
            ct.name,
            ct.role,
            net,
            ct.death_nodes,
            cells_per_dose=cfg.cells_per_dose,
            steps=cfg.steps,
            inputs=ct.inputs,
            knockout=ct.knockout,
            knockin=ct.knockin,
            initial=ct.initial,
            time_scale=ct.time_scale,
            source=source,
        )
    if ct.model == "phospho":
        return PhosphoCellModel.from_config(ct, base, source)
    from tme_sim.screening.surrogate_model import SurrogateModel

    assert ct.artifact is not None
    return SurrogateModel.from_config(ct, base, source)


# --------------------------------------------------------------------------- running a screen


def _outcomes(
    death: dict[str, np.ndarray],
    death_u: dict[str, np.ndarray],
    zero: int,
    tumors: list[str],
    healthy: list[str],
    t_kill: float,
    h_kill: float,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Kill per type (baseline-corrected), efficacy, worst toxicity and window of one dose matrix."""
    kill = {}
    for name, dm in death.items():
        d0 = death_u[name][zero]
        kill[name] = (dm - d0) / (1.0 - d0) if d0 < 1.0 else np.zeros(dm.shape)
    efficacy = np.mean([kill[t] for t in tumors], axis=0)
    tox_max = np.max([kill[h] for h in healthy], axis=0) if healthy else np.zeros(efficacy.shape)
    window = efficacy >= t_kill
    for h in healthy:
        window &= kill[h] <= h_kill
    return kill, efficacy, tox_max, window


def _replicate_intervals(
    pr: PairResult,
    death_u: dict[str, np.ndarray],
    reps_u: dict[str, np.ndarray],
    sel: np.ndarray,
    shape: tuple[int, int],
    zero: int,
    tumors: list[str],
    healthy: list[str],
    thresholds: tuple[float, float],
    methods: Sequence[str],
    q: float,
) -> None:
    """Fill ``pr.ci``, ``pr.synergy_ci`` and ``pr.window_support`` from replicate death fractions.

    Replicate ``b`` of a type with replicates uses its ``b``-th (cycled) replicate everywhere, the
    zero-dose baseline included; types without replicates keep their point values."""
    n = max(r.shape[0] for r in reps_u.values())
    eff, tox, win = [], [], []
    kills: dict[str, list[np.ndarray]] = {k: [] for k in pr.kill}
    scores: dict[str, dict[str, list[float]]] = {k: {m: [] for m in methods} for k in reps_u}
    for b in range(n):
        du = {k: (reps_u[k][b % reps_u[k].shape[0]] if k in reps_u else v) for k, v in death_u.items()}
        death = {k: du[k][sel].reshape(shape) for k in pr.kill}
        kill, e, t, w = _outcomes(death, du, zero, tumors, healthy, *thresholds)
        eff.append(e)
        tox.append(t)
        win.append(w)
        for k, v in kill.items():
            kills[k].append(v)
        for k in reps_u:
            for m in methods:
                scores[k][m].append(synergy(pr.doses[0], pr.doses[1], kill[k], m).score)

    def band(x: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        arr = np.stack(x)
        return np.quantile(arr, q, axis=0), np.quantile(arr, 1.0 - q, axis=0)

    pr.ci = {"efficacy": band(eff), "toxicity_max": band(tox)}
    pr.ci.update({f"kill/{k}": band(v) for k, v in kills.items()})
    pr.synergy_ci = {
        k: {m: (float(np.quantile(v, q)), float(np.quantile(v, 1.0 - q))) for m, v in ms.items()}
        for k, ms in scores.items()
    }
    pr.window_support = np.mean(win, axis=0)


@dataclass
class PairResult:
    """One drug pair's dose matrix; all matrices (m, k), rows = doses of ``drugs[0]``."""

    drugs: tuple[str, str]
    doses: tuple[np.ndarray, np.ndarray]
    death: dict[str, np.ndarray]
    kill: dict[str, np.ndarray]
    efficacy: np.ndarray
    toxicity: dict[str, np.ndarray]
    toxicity_max: np.ndarray
    selective: np.ndarray
    window: np.ndarray
    synergy: dict[str, dict[str, SynergyResult]] = field(default_factory=dict)
    #: central intervals over replicates (bootstrap over cells or ensemble members): name → (lo, hi)
    #: for "efficacy", "toxicity_max" and "kill/<type>" (m, k) matrices
    ci: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: (lo, hi) of each synergy score: type → method → (lo, hi)
    synergy_ci: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    #: fraction of replicates in which each dose point is inside the window (m, k)
    window_support: np.ndarray | None = None

    @property
    def label(self) -> str:
        return f"{self.drugs[0]}+{self.drugs[1]}"

    @property
    def window_fraction(self) -> float:
        """Fraction of the dose grid inside the therapeutic window."""
        return float(self.window.mean())

    def best(self) -> tuple[int, int]:
        """Index of the dose with the highest selective efficacy (ties: the lowest total dose,
        each drug relative to its highest dose)."""
        rel = self.doses[0][:, None] / self.doses[0][-1] + self.doses[1][None, :] / self.doses[1][-1]
        order = np.lexsort((rel.ravel(), -np.round(self.selective, 12).ravel()))
        return divmod(int(order[0]), self.selective.shape[1])


@dataclass
class ScreenResult:
    drugs: list[str]
    cell_types: list[tuple[str, str]]  # (name, role)
    pairs: list[PairResult]
    thresholds: tuple[float, float]  # (tumor_kill, healthy_kill)
    timings: dict[str, float] = field(default_factory=dict)
    n_points: int = 0


def drug_pairs(names: Sequence[str]) -> list[tuple[str, str]]:
    """All unordered pairs, in the given order (A,B,C → AB, AC, BC)."""
    return list(itertools.combinations(names, 2))


def run_screen(
    screen: Screen,
    drug_names: Sequence[str],
    doses: dict[str, np.ndarray] | None = None,
    *,
    seed: int | None = None,
    synergy_methods: Sequence[str] | None = None,
    tumor_kill: float | None = None,
    healthy_kill: float | None = None,
) -> ScreenResult:
    """Evaluate every pair of ``drug_names`` on its dose matrix for every cell type.

    ``doses``: drug name → dose grid (nM, starting at 0); missing drugs use
    :meth:`Screen.default_doses`. One batched model call per cell type covers all pairs.
    """
    import time

    names = list(drug_names)
    if len(names) < 2:
        raise ConfigError(f"{screen.source}: --drugs needs at least two drugs, got {names}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{screen.source}: --drugs lists a drug twice: {names}")
    drugs = screen.library.select(names)
    # a library may target nodes of other networks, but a screened drug must hit at least one
    # node of some cell type's model, or its "effect" would silently be nothing
    known_nodes = {n for ct in screen.cell_types for n in getattr(ct, "nodes", ())}
    for d in drugs:
        if known_nodes and not any(t.node in known_nodes for t in d.targets):
            targets = ", ".join(repr(t.node) for t in d.targets)
            raise ConfigError(
                f"{screen.library.path}: drugs.{d.name}.targets: {targets} not a node of any screened cell type's "
                f"network ({', '.join(sorted(known_nodes))})"
            )
    grids = {d.name: (doses or {}).get(d.name) for d in drugs}
    grids = {k: (v if v is not None else screen.default_doses(screen.library.get(k))) for k, v in grids.items()}
    for k, v in grids.items():
        check_doses(np.asarray(v, dtype=np.float64), f"doses of {k}")
    methods = list(synergy_methods if synergy_methods is not None else screen.config.synergy)
    t_kill = screen.config.tumor_kill if tumor_kill is None else tumor_kill
    h_kill = screen.config.healthy_kill if healthy_kill is None else healthy_kill
    pairs = drug_pairs(names)
    col = {n: j for j, n in enumerate(names)}

    # all points of all pairs, deduplicated (zero point and margins are shared)
    blocks = []
    for a, b in pairs:
        da, db = np.meshgrid(grids[a], grids[b], indexing="ij")
        pts = np.zeros((da.size, len(names)))
        pts[:, col[a]] = da.ravel()
        pts[:, col[b]] = db.ravel()
        blocks.append(pts)
    allpts = np.concatenate(blocks)
    uniq, inverse = np.unique(allpts, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    zero = int(np.flatnonzero(~uniq.any(axis=1))[0])

    rng = np.random.default_rng(screen.config.seed if seed is None else seed)
    timings: dict[str, float] = {}
    death_u: dict[str, np.ndarray] = {}
    reps_u: dict[str, np.ndarray] = {}
    for model in screen.cell_types:
        t0 = time.perf_counter()
        sub = np.random.default_rng(rng.integers(2**63))
        death_u[model.name] = np.asarray(
            model.death_fraction(drugs, uniq, screen.config.exposure, sub), dtype=np.float64
        )
        reps = model.replicates(screen.config.bootstrap, sub) if screen.config.bootstrap > 0 else None
        if reps is not None:
            reps_u[model.name] = np.asarray(reps, dtype=np.float64)
        timings[model.name] = time.perf_counter() - t0
    n_rep = max((r.shape[0] for r in reps_u.values()), default=0)
    q = (1.0 - screen.config.interval) / 2.0

    t0 = time.perf_counter()
    results = []
    offset = 0
    tumors = [m.name for m in screen.cell_types if m.role == "tumor"]
    healthy = [m.name for m in screen.cell_types if m.role == "healthy"]
    for (a, b), pts in zip(pairs, blocks, strict=True):
        shape = (grids[a].size, grids[b].size)
        sel = inverse[offset : offset + pts.shape[0]]
        offset += pts.shape[0]
        death = {m.name: death_u[m.name][sel].reshape(shape) for m in screen.cell_types}
        kill, efficacy, tox_max, window = _outcomes(death, death_u, zero, tumors, healthy, t_kill, h_kill)
        syn = {name: {meth: synergy(grids[a], grids[b], k, meth) for meth in methods} for name, k in kill.items()}
        pr = PairResult(
            drugs=(a, b),
            doses=(np.asarray(grids[a]), np.asarray(grids[b])),
            death=death,
            kill=kill,
            efficacy=efficacy,
            toxicity={h: kill[h] for h in healthy},
            toxicity_max=tox_max,
            selective=efficacy - tox_max,
            window=window,
            synergy=syn,
        )
        if n_rep:
            _replicate_intervals(pr, death_u, reps_u, sel, shape, zero, tumors, healthy, (t_kill, h_kill), methods, q)
        results.append(pr)
    timings["synergy"] = time.perf_counter() - t0
    return ScreenResult(
        drugs=names,
        cell_types=[(m.name, m.role) for m in screen.cell_types],
        pairs=results,
        thresholds=(t_kill, h_kill),
        timings=timings,
        n_points=int(uniq.shape[0]),
    )


__all__ = [
    "BooleanModel",
    "CellTypeModel",
    "DependencyModel",
    "PairResult",
    "Screen",
    "ScreenConfig",
    "ScreenResult",
    "build_screen",
    "drug_pairs",
    "load_screen",
    "run_screen",
]
