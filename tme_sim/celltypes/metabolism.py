"""Metabolism shared by every rule set, response curves and vessel recruitment.

Metabolism (all types, arrays over the cells of a type)
-------------------------------------------------------
* **hypoxia** ``h ∈ [0, 1]``: 0 at or above ``normoxic_o2``, 1 at or below ``hypoxic_o2``, linear
  between (mmHg). Defaults 15 → 5 mmHg: HIF-1α stabilisation begins below ~2 % O2 (≈15 mmHg) and
  is strong below ~1 % (Jiang, Semenza et al., Am J Physiol 1996, 271:C1172; McKeown 2014).
* **glucose uptake** ``U = U0 · (1 + (pasteur_factor − 1) · h)`` (Pasteur effect: hypoxic cells
  take up several-fold more glucose; ``U0`` is the scenario's ``secretion.glucose.uptake_rate``).
* **lactate export** (net export, mM·µm³/min): ``E = lactate_yield · f · U · [glc] · V`` with the
  glycolytic fraction ``f = f0 + (1 − f0) · h`` (``f0 = glycolytic_fraction``; tumor cells are
  partly glycolytic even in normoxia — Warburg — others mostly oxidative) and 2 lactate per glucose.
  Lactate uptake (``secretion.lactate.uptake_rate``) is scaled by ``1 − h`` (oxidative cells burn
  lactate; Sonveaux et al., J Clin Invest 2008, 118:3930).
* **oxygen uptake** (Michaelis–Menten when ``o2_uptake_km > 0``): the linear uptake rate becomes
  ``U(c) = U0 · (o2_uptake_reference + K) / (c + K)``, so consumption ``U(c)·c`` equals the
  scenario's ``U0·c`` at ``o2_uptake_reference`` (38 mmHg) and stays nearly constant down to
  ``K`` (~1 mmHg): respiration is saturated far below tissue O2, so O2 falls to zero at a finite
  depth (a necrotic core) instead of decaying exponentially as with linear uptake
  (``K = 0``: PhysiCell's linear uptake, the default). Re-evaluated every phenotype step from
  the sampled O2 (implicit in the solver, so stable at any step).
* Hypoxia raises VEGFA and CCL2 secretion (handled by the rule sets via :func:`hypoxia_level`).

Recruitment
-----------
:func:`recruit_at_vessels`: every vessel voxel recruits a Poisson number of cells per phenotype
step with mean ``rate · dt · (basal + (1 − basal) · hill(signal, K))``, where ``signal`` is the
sum of named chemokines sampled at the vessel; cells enter inside their vessel voxel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tme_sim.cells import ALIVE
from tme_sim.celltypes.base import CellRules
from tme_sim.responses import hill, inhibition

__all__ = ["MetabolicRules", "hill", "hypoxia_level", "inhibition", "recruit_at_vessels", "relax"]

if TYPE_CHECKING:
    from tme_sim.celltypes.context import BehaviorContext

#: metabolism parameters every rule set accepts (``cell_types.<name>.params``): name → unit
METABOLISM_PARAM_UNITS: dict[str, str] = {
    "hypoxic_o2": "mmHg",
    "normoxic_o2": "mmHg",
    "pasteur_factor": "",
    "glycolytic_fraction": "",
    "lactate_yield": "",
    "o2_uptake_km": "mmHg",
    "o2_uptake_reference": "mmHg",
}

#: defaults (value, unit) with their sources (see the module docstring)
METABOLISM_DEFAULTS: dict[str, tuple[str | float, str]] = {
    "hypoxic_o2": ("5 mmHg", "mmHg"),  # strong HIF-1 response below ~1 % O2 (Jiang et al. 1996)
    "normoxic_o2": ("15 mmHg", "mmHg"),  # HIF-1 onset ~2 % O2
    "pasteur_factor": (3.0, ""),  # hypoxic glucose uptake ×3 (order of the Pasteur effect in tumor lines)
    "glycolytic_fraction": (0.1, ""),  # fraction of glucose → lactate in normoxia (non-tumor cells)
    "lactate_yield": (2.0, ""),  # glycolysis: 1 glucose → 2 lactate
    "o2_uptake_km": ("0 mmHg", "mmHg"),  # 0 = linear uptake (PhysiCell); see the module docstring
    "o2_uptake_reference": ("38 mmHg", "mmHg"),  # O2 at which U(c) equals the configured uptake rate
}


def hypoxia_level(o2: np.ndarray, hypoxic_o2: float, normoxic_o2: float) -> np.ndarray:
    """Hypoxia ``h ∈ [0, 1]`` from O2 (mmHg): 1 at ≤ ``hypoxic_o2``, 0 at ≥ ``normoxic_o2``."""
    span = max(normoxic_o2 - hypoxic_o2, 1e-12)
    return np.clip((normoxic_o2 - np.asarray(o2, dtype=np.float64)) / span, 0.0, 1.0)


def relax(x: np.ndarray, target: np.ndarray, rate: np.ndarray | float, dt: float) -> np.ndarray:
    """Exact solution of ``dx/dt = rate·(target − x)`` over ``dt`` (min), for constant target."""
    return target + (x - target) * np.exp(-np.maximum(rate, 0.0) * dt)


class MetabolicRules(CellRules):
    """Generic rules plus the shared metabolism (glucose, lactate, hypoxia); base of every shipped type.

    Subclasses list their own parameters in ``own_param_units`` / ``own_defaults()``; the metabolism
    parameters are added automatically.
    """

    rules_name = "generic_metabolic"
    own_param_units: dict[str, str] = {}

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        cls.param_units = {**METABOLISM_PARAM_UNITS, **cls.own_param_units}

    def __init__(self, name: str, index: int, cfg, ctx: BehaviorContext) -> None:
        super().__init__(name, index, cfg, ctx)
        names = ctx.substrate_names
        self.sub = {n: i for i, n in enumerate(names)}
        self.glc = self.sub.get("glucose")
        self.lac = self.sub.get("lactate")
        self._initialized = False

    def param_defaults(self) -> dict[str, tuple[str | float, str]]:
        return {**METABOLISM_DEFAULTS, **self.own_defaults()}

    def own_defaults(self) -> dict[str, tuple[str | float, str]]:
        return {}

    def idx(self, substrate: str) -> int | None:
        """Column of ``substrate`` in the sampled concentrations, or None if the scenario lacks it."""
        return self.sub.get(substrate)

    def col(self, conc: np.ndarray, substrate: str) -> np.ndarray:
        """Concentration column of ``substrate`` (zeros if the scenario lacks it)."""
        j = self.sub.get(substrate)
        return conc[:, j] if j is not None else np.zeros(conc.shape[0])

    def hypoxia(self, conc: np.ndarray) -> np.ndarray:
        p = self.params
        return hypoxia_level(conc[:, self.o2], p["hypoxic_o2"], p["normoxic_o2"])

    def apply_metabolism(self, ctx: BehaviorContext, slots: np.ndarray, conc: np.ndarray, h: np.ndarray) -> None:
        """O2 uptake (Michaelis–Menten), glucose uptake (Pasteur), lactate export (glycolysis) and
        lactate uptake for ``slots``."""
        st = ctx.store
        p = self.params
        km = p["o2_uptake_km"]
        if km > 0:
            scale = (p["o2_uptake_reference"] + km) / (np.maximum(conc[:, self.o2], 0.0) + km)
            st.uptake_rate[slots, self.o2] = self.uptake_rate[self.o2] * scale
        if self.glc is None:
            return
        u_glc = self.uptake_rate[self.glc] * (1.0 + (p["pasteur_factor"] - 1.0) * h)
        st.uptake_rate[slots, self.glc] = u_glc
        if self.lac is not None:
            f = p["glycolytic_fraction"] + (1.0 - p["glycolytic_fraction"]) * h
            export = p["lactate_yield"] * f * u_glc * conc[:, self.glc] * st.volume[slots]
            st.net_export[slots, self.lac] = self.net_export[self.lac] + export
            st.uptake_rate[slots, self.lac] = self.uptake_rate[self.lac] * (1.0 - h)

    def set_behaviors(self, ctx: BehaviorContext, slots: np.ndarray, conc: np.ndarray) -> None:
        super().set_behaviors(ctx, slots, conc)
        if not self._initialized:
            self.initialize(ctx, slots)
            self._initialized = True
        self.apply_metabolism(ctx, slots, conc, self.hypoxia(conc))
        dead = slots[ctx.store.death[slots] != ALIVE]
        if dead.size:  # dead cells neither secrete nor take up anything
            st = ctx.store
            for arr in (st.secretion_rate, st.uptake_rate, st.net_export):
                arr[dead] = 0.0

    def initialize(self, ctx: BehaviorContext, slots: np.ndarray) -> None:
        """Per-cell states of the initial cells (first behaviour update); nothing by default."""

    def scale_secretion(self, ctx: BehaviorContext, slots: np.ndarray, substrate: str, factor: np.ndarray) -> None:
        """Multiply the type's secretion rate of ``substrate`` by ``factor`` (per cell)."""
        j = self.sub.get(substrate)
        if j is not None:
            alive = ctx.store.death[slots] == ALIVE
            ctx.store.secretion_rate[slots, j] = self.secretion_rate[j] * factor * alive


def recruit_at_vessels(
    ctx: BehaviorContext,
    rules: CellRules,
    dt: float,
    *,
    rate: float,
    signals: tuple[str, ...],
    half_max: float,
    basal: float,
    max_cells: float,
) -> np.ndarray:
    """Recruit cells of ``rules``' type at vessel voxels; returns the new slots.

    Per vessel voxel the count is Poisson with mean ``rate·dt·(basal + (1 − basal)·hill(s, half_max))``
    (``rate`` in 1/min per vessel voxel, ``s`` the summed concentration of ``signals`` in the voxel).
    No more than ``max_cells`` live cells of the type exist afterwards. Nothing happens without
    vessels or when ``[immune] recruitment = false``.
    """
    empty = np.zeros(0, dtype=np.int64)
    vessels = ctx.vessels
    if rate <= 0 or not ctx.scenario.immune.recruitment or vessels is None or vessels.count == 0:
        return empty
    st = ctx.store
    n = st.n
    live = int(np.count_nonzero((st.type[:n] == rules.index) & (st.death[:n] == ALIVE)))
    room = int(max_cells) - live
    if room <= 0:
        return empty
    conc = ctx.grid.sample(vessels.centres)
    s = np.zeros(vessels.count)
    for name in signals:
        if name in ctx.substrate_names:
            s += conc[:, ctx.substrate_names.index(name)]
    mean = rate * dt * (basal + (1.0 - basal) * hill(s, half_max))
    counts = ctx.rng.poisson(mean)
    if counts.sum() == 0:
        return empty
    pos = vessels.entry_positions(counts, ctx.rng, ctx.dim, ctx.grid.dx)[:room]
    return ctx.spawn(np.full(pos.shape[0], rules.index, dtype=np.int16), pos, "recruitment")
