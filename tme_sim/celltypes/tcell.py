"""CD8 T-cell rules (hand-written; numpy over all T cells of the type, numba contact kernels).

Per phenotype step (``dt`` min):

* **recruitment** at vessel voxels, Poisson with mean ``recruitment_rate · dt · (recruitment_basal +
  (1 − recruitment_basal) · hill(CXCL9, recruitment_half_max))`` per vessel voxel, up to
  ``max_cells`` live T cells (:func:`~tme_sim.celltypes.metabolism.recruit_at_vessels`);
* **motility**: the scenario's speed and chemotaxis (up CXCL9), × ``1/(1 + TGFB1/tgfb1_motility_half_max)``
  (TGF-β excludes T cells from tumor nests: Mariathasan et al., Nature 2018, 554:544) and ×
  ``caf_speed_factor`` while touching a fibroblast (CAF/collagen barrier: Salmon et al., J Clin
  Invest 2012, 122:899);
* **killing** (:meth:`interact`): a non-exhausted T cell touching a live tumor cell kills it with
  probability ``1 − exp(−k·dt)``,
  ``k = kill_rate · (1 − pdl1_inhibition · pdl1_target · (1 − anti_pdl1)) · 1/(1 + TGFB1/tgfb1_half_max)
  · 1/(1 + (lactate/lactate_half_max)^2)``. The victim becomes apoptotic; a ``kill`` event names
  both cells; the T cell's ``kills`` counter increases;
* **exhaustion** (column ``exhaustion``, exhausted at ≥ 1): + ``exhaustion_per_kill`` per kill and
  + ``pdl1_exhaustion_rate · pdl1_target · (1 − anti_pdl1) · dt`` while engaging a PD-L1+ cell;
  exhausted cells stop killing, proliferating and secreting, and die faster (``exhausted_apoptosis_factor``);
* **secretion**: IFNG and TNF at the scenario's rates × (``secretion_basal_fraction`` idle, 1 while
  touching a tumor cell) × (1 − exhausted);
* **proliferation**: the scenario's cycle entry rate only while touching a tumor cell (antigen
  stimulation), × the lactate factor (lactate suppresses CTL proliferation and cytokine production:
  Fischer et al., Blood 2007, 109:3812), 0 when exhausted;
* **lifespan**: apoptosis rate ``1/lifespan``.

``anti_pdl1`` is the larger of ``[immune] anti_pdl1`` and this type's ``params.anti_pdl1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tme_sim.cells import ALIVE, APOPTOTIC, KI67_NEGATIVE
from tme_sim.celltypes.metabolism import MetabolicRules, inhibition, recruit_at_vessels

if TYPE_CHECKING:
    from tme_sim.celltypes.context import BehaviorContext


def kill_probability(
    kill_rate: np.ndarray, pdl1: np.ndarray, anti_pdl1: float, pdl1_inhibition: float, dt: float
) -> np.ndarray:
    """Probability of killing over ``dt`` (min) for T cells with base ``kill_rate`` (1/min, already
    scaled by TGFB1/lactate) engaging targets with PD-L1 level ``pdl1`` ∈ [0, 1]."""
    effective = kill_rate * (1.0 - pdl1_inhibition * np.clip(pdl1, 0.0, 1.0) * (1.0 - anti_pdl1))
    return -np.expm1(-np.maximum(effective, 0.0) * dt)


class TCellRules(MetabolicRules):
    """CD8 T cells: recruitment, chemotaxis, contact killing, exhaustion, IFNG/TNF, lifespan."""

    rules_name = "cd8_t_cell"
    own_param_units = {
        "kill_rate": "1/min",
        "pdl1_inhibition": "",
        "anti_pdl1": "",
        "tgfb1_half_max": "ng/mL",
        "tgfb1_motility_half_max": "ng/mL",
        "lactate_half_max": "mM",
        "exhaustion_per_kill": "",
        "pdl1_exhaustion_rate": "1/min",
        "exhausted_apoptosis_factor": "",
        "lifespan": "min",
        "secretion_basal_fraction": "",
        "caf_speed_factor": "",
        "recruitment_rate": "1/min",
        "recruitment_half_max": "ng/mL",
        "recruitment_basal": "",
        "max_cells": "",
    }

    def own_defaults(self) -> dict[str, tuple[str | float, str]]:
        return {
            "glycolytic_fraction": (0.5, ""),  # effector T cells are highly glycolytic (assumed 0.5)
            # ~1 kill per 100 min of contact: in vivo CTL killing takes hours (Halle et al., Immunity 2016,
            # 44:233); the PhysiCell cancer-immune sample (Ozik et al. 2018) uses 1/(15 min)
            "kill_rate": ("0.01 1/min", "1/min"),
            "pdl1_inhibition": (0.8, ""),  # assumed: full PD-L1 removes 80 % of killing
            "anti_pdl1": (0.0, ""),
            # TGF-β1 suppresses CTL cytotoxicity at ng/mL (Thomas & Massagué, Cancer Cell 2005, 8:369)
            "tgfb1_half_max": ("2 ng/mL", "ng/mL"),
            "tgfb1_motility_half_max": ("1 ng/mL", "ng/mL"),  # assumed
            # ~10-20 mM lactic acid suppresses CTL function (Fischer et al. 2007; Brand et al. 2016)
            "lactate_half_max": ("10 mM", "mM"),
            "exhaustion_per_kill": (0.1, ""),  # assumed: ~10 serial kills before exhaustion
            "pdl1_exhaustion_rate": ("0.0006944 1/min", "1/min"),  # 1/(24 h) at full engagement, assumed
            "exhausted_apoptosis_factor": (3.0, ""),
            "lifespan": ("2880 min", "min"),  # effector CTL survival ~2 days in tumors (assumed)
            "secretion_basal_fraction": (0.1, ""),
            "caf_speed_factor": (0.2, ""),
            "recruitment_rate": ("0.0002 1/min", "1/min"),  # per vessel voxel at saturating CXCL9, assumed
            "recruitment_half_max": ("0.5 ng/mL", "ng/mL"),
            "recruitment_basal": (0.1, ""),
            "max_cells": (2000.0, ""),
        }

    def __init__(self, name: str, index: int, cfg, ctx: BehaviorContext) -> None:
        super().__init__(name, index, cfg, ctx)
        p = self.params
        self.anti_pdl1 = max(float(ctx.scenario.immune.anti_pdl1), p["anti_pdl1"])

    def _contacts(self, ctx: BehaviorContext, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counts = ctx.neighbours.counts(slots)
        tum = ctx.types_with_rules("tumor")
        fib = ctx.types_with_rules("fibroblast")
        n_tum = counts[:, tum].sum(axis=1) if tum else np.zeros(slots.size, np.int64)
        n_fib = counts[:, fib].sum(axis=1) if fib else np.zeros(slots.size, np.int64)
        return n_tum, n_fib

    def set_behaviors(self, ctx: BehaviorContext, slots: np.ndarray, conc: np.ndarray) -> None:
        super().set_behaviors(ctx, slots, conc)
        st = ctx.store
        p = self.params
        tgfb = self.col(conc, "TGFB1")
        lac_f = inhibition(self.col(conc, "lactate"), p["lactate_half_max"], 2.0)
        exhausted = st.exhaustion[slots] >= 1.0
        active = ~exhausted
        n_tum, n_fib = self._contacts(ctx, slots)
        engaged = n_tum > 0

        speed = st.migration_speed[slots] * inhibition(tgfb, p["tgfb1_motility_half_max"])
        speed = np.where(n_fib > 0, speed * p["caf_speed_factor"], speed)
        st.migration_speed[slots] = speed
        st.kill_rate[slots] = p["kill_rate"] * inhibition(tgfb, p["tgfb1_half_max"]) * lac_f * active
        st.cycle_rate[slots] *= engaged * lac_f * active
        base_apo = 1.0 / max(p["lifespan"], 1e-9)
        st.apoptosis_rate[slots] = np.where(exhausted, base_apo * p["exhausted_apoptosis_factor"], base_apo)
        level = (p["secretion_basal_fraction"] + (1.0 - p["secretion_basal_fraction"]) * engaged) * active * lac_f
        self.scale_secretion(ctx, slots, "IFNG", level)
        self.scale_secretion(ctx, slots, "TNF", level)

    def interact(self, ctx: BehaviorContext, slots: np.ndarray) -> None:
        st = ctx.store
        p = self.params
        dt = ctx.dt_pheno
        tum = ctx.types_with_rules("tumor")
        live = slots[(st.death[slots] == ALIVE) & (st.exhaustion[slots] < 1.0) & (st.kill_rate[slots] > 0)]
        if not tum or live.size == 0:
            return
        target = ctx.neighbours.pick(live, ctx.neighbours.type_mask(tum), ctx.rng)
        has = target >= 0
        killers, victims = live[has], target[has]
        if killers.size == 0:
            return
        pdl1 = st.pdl1[victims]
        p_kill = kill_probability(st.kill_rate[killers], pdl1, self.anti_pdl1, p["pdl1_inhibition"], dt)
        # PD-1/PD-L1 engagement wears the T cell down whether or not it kills
        before = st.exhaustion[killers].copy()
        st.exhaustion[killers] += p["pdl1_exhaustion_rate"] * pdl1 * (1.0 - self.anti_pdl1) * dt
        success = ctx.rng.random(killers.size) < p_kill
        k_ok, v_ok = killers[success], victims[success]
        if k_ok.size:
            # a victim engaged by several T cells dies once, credited to the first (slot order)
            v_unique, first = np.unique(v_ok, return_index=True)
            k_first = k_ok[first]
            st.death[v_unique] = APOPTOTIC
            st.death_clock[v_unique] = 0.0
            st.phase[v_unique] = KI67_NEGATIVE
            st.zero_on_death(v_unique)
            st.kills[k_first] += 1
            st.exhaustion[k_first] += p["exhaustion_per_kill"]
            ctx.record("kill", v_unique, st.id[k_first])
        newly = killers[(before < 1.0) & (st.exhaustion[killers] >= 1.0)]
        if newly.size:
            st.kill_rate[newly] = 0.0
            ctx.record("exhaustion", newly)

    def recruit(self, ctx: BehaviorContext, dt: float) -> None:
        p = self.params
        slots = recruit_at_vessels(
            ctx,
            self,
            dt,
            rate=p["recruitment_rate"],
            signals=("CXCL9",),
            half_max=p["recruitment_half_max"],
            basal=p["recruitment_basal"],
            max_cells=p["max_cells"],
        )
        if slots.size:
            self.set_behaviors(ctx, slots, ctx.grid.sample(ctx.store.position[slots]))
