"""Tumor-cell rules (hand-written, PhysiCell-rules style; every rule is numpy over all tumor cells).

Behaviour per phenotype step (``dt`` min), for the live tumor cells of the type:

* **cycle and necrosis**: the core's O2 rules (PhysiCell), times a glucose factor
  ``[glc]/([glc] + glucose_half_max)``, times ``1 + m2_support · min(Σ p_M2, 1)`` where the sum runs
  over the polarization ``p`` of touching macrophages (M2 macrophages support proliferation:
  EGF/CSF1 paracrine loop, Wyckoff et al., Cancer Res 2004, 64:7022), times
  ``1 − hill(P; pressure_half_max, pressure_hill)`` with ``P`` PhysiCell's simple pressure
  (:func:`tme_sim.contacts.simple_pressure`): contact inhibition, as PhysiCell's rules samples
  ("pressure decreases cycle entry"); ``pressure_half_max = 0`` turns it off;
* **metabolism** (:mod:`tme_sim.celltypes.metabolism`): Warburg glycolytic fraction, lactate
  export rising with hypoxia;
* **secretion**: CSF1, CCL2, TGFB1, VEGFA at the scenario's rates (``secretion.<substrate>``),
  VEGFA × ``(1 + hypoxia_vegfa_factor · h)`` and CCL2 × ``(1 + hypoxia_ccl2_factor · h)`` (HIF-1
  targets; VEGF mRNA rises several-fold in hypoxia, Shweiki et al., Nature 1992, 359:843);
  CXCL9 (the T-cell chemokine) × ``hill(IFNG, ifng_half_max)`` — only IFNG-stimulated tumor cells
  secrete it (CXCL9/10 are IFN-γ-inducible genes);
* **PD-L1** (column ``pdl1`` ∈ [0, 1]): relaxes towards ``pdl1_basal + (pdl1_max − pdl1_basal) ·
  hill(IFNG, ifng_half_max)`` at ``pdl1_induction_rate`` when rising and ``pdl1_decay_rate`` when
  falling (adaptive resistance: IFN-γ induces PD-L1 within hours, Garcia-Diaz et al., Cell Rep
  2017, 19:1189);
* **clones** (column ``clone``): with ``variant_fraction > 0`` that fraction of the initial cells
  is clone 1, whose cycle entry rate is × ``variant_cycle_factor`` and PD-L1 × ``variant_pdl1_factor``
  (capped at 1); daughters inherit the clone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tme_sim.celltypes.metabolism import MetabolicRules, hill, relax

if TYPE_CHECKING:
    from tme_sim.celltypes.context import BehaviorContext


class TumorRules(MetabolicRules):
    """Tumor cells: O2/glucose-dependent proliferation and necrosis, cytokine secretion, PD-L1, clones."""

    rules_name = "tumor"
    own_param_units = {
        "glucose_half_max": "mM",
        "m2_support": "",
        "pressure_half_max": "",
        "pressure_hill": "",
        "hypoxia_vegfa_factor": "",
        "hypoxia_ccl2_factor": "",
        "ifng_half_max": "ng/mL",
        "pdl1_basal": "",
        "pdl1_max": "",
        "pdl1_induction_rate": "1/min",
        "pdl1_decay_rate": "1/min",
        "variant_fraction": "",
        "variant_cycle_factor": "",
        "variant_pdl1_factor": "",
    }

    def own_defaults(self) -> dict[str, tuple[str | float, str]]:
        return {
            "glycolytic_fraction": (
                0.5,
                "",
            ),  # Warburg: ~half of glucose → lactate even in normoxia (assumed)
            "glucose_half_max": ("0.25 mM", "mM"),  # assumed; proliferation falls only in near-anoxic glucose
            "m2_support": (0.5, ""),  # assumed: +50 % cycle entry when fully M2 macrophages touch
            # contact inhibition, off by default (PhysiCell's default phenotype has none); scenarios
            # set the half-max pressure (the Hill form of PhysiCell's rules samples)
            "pressure_half_max": (0.0, ""),
            "pressure_hill": (4.0, ""),
            "hypoxia_vegfa_factor": (4.0, ""),  # VEGF up to ×5 in hypoxia (Shweiki et al. 1992)
            "hypoxia_ccl2_factor": (2.0, ""),  # hypoxia induces CCL2 ~×2-3 (assumed order)
            "ifng_half_max": ("0.5 ng/mL", "ng/mL"),  # IFN-γ EC50 for PD-L1/CXCL9 induction, 0.1-1 ng/mL
            "pdl1_basal": (0.1, ""),
            "pdl1_max": (1.0, ""),
            "pdl1_induction_rate": ("0.002778 1/min", "1/min"),  # 1/(6 h): PD-L1 up within hours
            "pdl1_decay_rate": ("0.0006944 1/min", "1/min"),  # 1/(24 h): slow return after IFN-γ
            "variant_fraction": (0.0, ""),
            "variant_cycle_factor": (1.0, ""),
            "variant_pdl1_factor": (1.0, ""),
        }

    def initialize(self, ctx: BehaviorContext, slots: np.ndarray) -> None:
        st = ctx.store
        p = self.params
        st.pdl1[slots] = p["pdl1_basal"]
        if p["variant_fraction"] > 0 and slots.size:
            st.clone[slots] = (ctx.rng.random(slots.size) < p["variant_fraction"]).astype(np.int16)

    def set_behaviors(self, ctx: BehaviorContext, slots: np.ndarray, conc: np.ndarray) -> None:
        super().set_behaviors(ctx, slots, conc)  # O2 cycle/necrosis, config secretion, metabolism
        st = ctx.store
        p = self.params
        h = self.hypoxia(conc)
        ifng = self.col(conc, "IFNG")
        stim = hill(ifng, p["ifng_half_max"])
        variant = st.clone[slots] == 1

        # proliferation: glucose, M2 support, clone
        factor = np.ones(slots.size)
        if self.glc is not None:
            glc = conc[:, self.glc]
            factor *= glc / (glc + p["glucose_half_max"])
        macs = ctx.types_with_rules("macrophage")
        if macs and p["m2_support"] > 0:
            mslots = np.concatenate([st.slots_of_type(t) for t in macs])
            mslots = mslots[st.death[mslots] == 0]
            if mslots.size:
                m2 = ctx.neighbours.accumulate(mslots, st.polarization[mslots], ctx.neighbours.type_mask([self.index]))
                factor *= 1.0 + p["m2_support"] * np.minimum(m2[slots], 1.0)
        if p["pressure_half_max"] > 0 and slots.size:
            pn = ctx.neighbours.pressure(slots) ** p["pressure_hill"]
            factor *= 1.0 - pn / (pn + p["pressure_half_max"] ** p["pressure_hill"])
        factor = np.where(variant, factor * p["variant_cycle_factor"], factor)
        st.cycle_rate[slots] *= factor

        # secretion
        self.scale_secretion(ctx, slots, "VEGFA", 1.0 + p["hypoxia_vegfa_factor"] * h)
        self.scale_secretion(ctx, slots, "CCL2", 1.0 + p["hypoxia_ccl2_factor"] * h)
        self.scale_secretion(ctx, slots, "CXCL9", stim)

        # PD-L1 state
        target = p["pdl1_basal"] + (p["pdl1_max"] - p["pdl1_basal"]) * stim
        target = np.where(variant, np.minimum(target * p["variant_pdl1_factor"], 1.0), target)
        cur = st.pdl1[slots]
        rate = np.where(target > cur, p["pdl1_induction_rate"], p["pdl1_decay_rate"])
        st.pdl1[slots] = relax(cur, target, rate, ctx.dt_pheno)
