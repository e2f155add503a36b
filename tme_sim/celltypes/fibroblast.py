"""Fibroblast (CAF) rules: TGFB1-driven activation, TGFB1/CXCL12 secretion, a barrier to T cells.

Per phenotype step (``dt`` min), numpy over all fibroblasts of the type:

* **activation** ``a ∈ [0, 1]`` (stored in the ``polarization`` column — for fibroblasts it means
  CAF activation, 0 = quiescent, 1 = fully activated myofibroblast-like CAF) relaxes towards
  ``hill(TGFB1, activation_half_max)`` at ``activation_rate`` when rising and ``deactivation_rate``
  when falling (activation is largely persistent: Kalluri, Nat Rev Cancer 2016, 16:582);
* **secretion**: TGFB1 and CXCL12 at the scenario's rates × ``basal_fraction + (1 − basal_fraction)·a``
  (CAFs secrete TGF-β and CXCL12: Feig et al., PNAS 2013, 110:20212);
* **adhesion** is the scenario's (``mechanics.adhesion``; set it higher than tumor cells');
* the **barrier** to T cells (slower motility while touching a fibroblast) is applied by the T-cell
  rules (``caf_speed_factor``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tme_sim.cells import ALIVE
from tme_sim.celltypes.metabolism import MetabolicRules, hill, relax

if TYPE_CHECKING:
    from tme_sim.celltypes.context import BehaviorContext


class FibroblastRules(MetabolicRules):
    """Fibroblasts / CAFs: TGFB1 activation, TGFB1 and CXCL12 secretion."""

    rules_name = "fibroblast"
    own_param_units = {
        "activation_half_max": "ng/mL",
        "activation_rate": "1/min",
        "deactivation_rate": "1/min",
        "activation_initial": "",
        "basal_fraction": "",
    }

    def own_defaults(self) -> dict[str, tuple[str | float, str]]:
        return {
            "activation_half_max": ("1 ng/mL", "ng/mL"),  # TGF-β1 activates fibroblasts at 1-5 ng/mL in vitro
            "activation_rate": ("0.0006944 1/min", "1/min"),  # 1/(24 h), assumed
            "deactivation_rate": ("0.0001389 1/min", "1/min"),  # 1/(5 days), assumed (persistent CAF state)
            "activation_initial": (0.5, ""),
            "basal_fraction": (0.2, ""),
        }

    def initialize(self, ctx: BehaviorContext, slots: np.ndarray) -> None:
        ctx.store.polarization[slots] = self.params["activation_initial"]

    def set_behaviors(self, ctx: BehaviorContext, slots: np.ndarray, conc: np.ndarray) -> None:
        super().set_behaviors(ctx, slots, conc)
        st = ctx.store
        p = self.params
        a = st.polarization[slots]
        target = hill(self.col(conc, "TGFB1"), p["activation_half_max"])
        rate = np.where(target > a, p["activation_rate"], p["deactivation_rate"])
        alive = st.death[slots] == ALIVE
        a = np.where(alive, relax(a, target, rate, ctx.dt_pheno), a)
        st.polarization[slots] = a
        level = p["basal_fraction"] + (1.0 - p["basal_fraction"]) * a
        self.scale_secretion(ctx, slots, "TGFB1", level)
        self.scale_secretion(ctx, slots, "CXCL12", level)
