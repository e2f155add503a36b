"""Macrophage rules: recruitment by CSF1/CCL2, continuous M1↔M2 polarization, secretion, phagocytosis.

Per phenotype step (``dt`` min), numpy over all macrophages of the type:

* **recruitment** at vessel voxels: Poisson mean ``recruitment_rate · dt · (recruitment_basal +
  (1 − recruitment_basal) · hill(CSF1 + CCL2, recruitment_half_max))`` per vessel voxel (CSF1 and
  CCL2 recruit monocytes that become TAMs: Qian & Pollard, Cell 2010, 141:39);
* **polarization** ``p`` (column ``polarization``; 0 = M1, 1 = M2) relaxes at ``polarization_rate``
  towards ``p* = m2 / (m1 + m2)`` with
  ``m1 = baseline_m1 + hill(IFNG, ifng_half_max) + hill(TNF, tnf_half_max)`` and
  ``m2 = baseline_m2 + hill(IL10, il10_half_max) + hill(TGFB1, tgfb1_half_max) + hill(IL4, il4_half_max)
  + hill(lactate − 1 mM, lactate_half_max)`` (tumor lactate polarizes TAMs to M2: Colegio et al.,
  Nature 2014, 513:559); new and initial macrophages start at ``polarization_initial``;
* **secretion**: TNF and CXCL9 at the scenario's rates × (1 − p) (M1), IL10, TGFB1 and VEGFA × p (M2);
  other substrates as configured;
* **phagocytosis** (:meth:`interact`): a macrophage touching a dead cell (any type) engulfs it with
  probability ``1 − exp(−phagocytosis_dead_rate·dt)`` (PhysiCell rules sample default 0.01/min; for
  necrotic or lysed debris the rate is × ``necrotic_clearance_factor``, default 1) and,
  ``(1 − p)``-weighted, a live tumor cell at ``phagocytosis_tumor_rate`` (slow); engulfed cells are
  removed and a ``phagocytosis`` event names both cells;
* M2 support of tumor proliferation is applied by the tumor rules (contact with M2 macrophages);
* **lifespan**: apoptosis rate ``1/lifespan``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tme_sim.cells import ALIVE, NECROTIC_SWELLING
from tme_sim.celltypes.metabolism import MetabolicRules, hill, recruit_at_vessels, relax

if TYPE_CHECKING:
    from tme_sim.celltypes.context import BehaviorContext

M1_SUBSTRATES = ("TNF", "CXCL9")
M2_SUBSTRATES = ("IL10", "TGFB1", "VEGFA")


def polarization_target(m1: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """``p* = m2 / (m1 + m2)`` (0.5 where both drives are zero)."""
    tot = m1 + m2
    return np.divide(m2, tot, out=np.full_like(tot, 0.5), where=tot > 0)


class MacrophageRules(MetabolicRules):
    """Macrophages (TAMs): recruitment, M1/M2 polarization, polarized secretion, phagocytosis."""

    rules_name = "macrophage"
    own_param_units = {
        "polarization_rate": "1/min",
        "polarization_initial": "",
        "baseline_m1": "",
        "baseline_m2": "",
        "ifng_half_max": "ng/mL",
        "tnf_half_max": "ng/mL",
        "il10_half_max": "ng/mL",
        "tgfb1_half_max": "ng/mL",
        "il4_half_max": "ng/mL",
        "lactate_half_max": "mM",
        "phagocytosis_dead_rate": "1/min",
        "phagocytosis_tumor_rate": "1/min",
        "necrotic_clearance_factor": "",
        "lifespan": "min",
        "recruitment_rate": "1/min",
        "recruitment_half_max": "ng/mL",
        "recruitment_basal": "",
        "max_cells": "",
    }

    def own_defaults(self) -> dict[str, tuple[str | float, str]]:
        return {
            "polarization_rate": ("0.002778 1/min", "1/min"),  # 1/(6 h): polarization shifts over hours
            "polarization_initial": (0.5, ""),
            "baseline_m1": (0.5, ""),
            "baseline_m2": (0.5, ""),
            "ifng_half_max": ("0.5 ng/mL", "ng/mL"),  # assumed, ng/mL range of in vitro M1 priming
            "tnf_half_max": ("1 ng/mL", "ng/mL"),
            "il10_half_max": ("1 ng/mL", "ng/mL"),  # M2c priming 10 ng/mL in vitro; tissue EC50 assumed lower
            "tgfb1_half_max": ("1 ng/mL", "ng/mL"),
            "il4_half_max": ("1 ng/mL", "ng/mL"),
            "lactate_half_max": ("5 mM", "mM"),  # above 1 mM plasma; Colegio et al. used 10-25 mM
            "phagocytosis_dead_rate": ("0.01 1/min", "1/min"),  # PhysiCell rules sample default
            "phagocytosis_tumor_rate": ("0.0002 1/min", "1/min"),  # slow: ~1 per 3.5 days of contact, assumed
            "necrotic_clearance_factor": (1.0, ""),  # necrotic/lysed debris: rate × this (1 = as apoptotic)
            "lifespan": ("14400 min", "min"),  # TAM lifespan ~10 days (assumed, order of weeks)
            "recruitment_rate": (
                "0.0001 1/min",
                "1/min",
            ),  # per vessel voxel at saturating CSF1+CCL2, assumed
            "recruitment_half_max": ("1 ng/mL", "ng/mL"),
            "recruitment_basal": (0.1, ""),
            "max_cells": (1000.0, ""),
        }

    def initialize(self, ctx: BehaviorContext, slots: np.ndarray) -> None:
        ctx.store.polarization[slots] = self.params["polarization_initial"]

    def set_behaviors(self, ctx: BehaviorContext, slots: np.ndarray, conc: np.ndarray) -> None:
        super().set_behaviors(ctx, slots, conc)
        st = ctx.store
        p = self.params
        m1 = (
            p["baseline_m1"]
            + hill(self.col(conc, "IFNG"), p["ifng_half_max"])
            + hill(self.col(conc, "TNF"), p["tnf_half_max"])
        )
        m2 = (
            p["baseline_m2"]
            + hill(self.col(conc, "IL10"), p["il10_half_max"])
            + hill(self.col(conc, "TGFB1"), p["tgfb1_half_max"])
            + hill(self.col(conc, "IL4"), p["il4_half_max"])
            + (hill(self.col(conc, "lactate") - 1.0, p["lactate_half_max"]) if self.lac is not None else 0.0)
        )
        alive = st.death[slots] == ALIVE
        pol = st.polarization[slots]
        pol = np.where(alive, relax(pol, polarization_target(m1, m2), p["polarization_rate"], ctx.dt_pheno), pol)
        st.polarization[slots] = pol
        for s in M1_SUBSTRATES:
            self.scale_secretion(ctx, slots, s, 1.0 - pol)
        for s in M2_SUBSTRATES:
            self.scale_secretion(ctx, slots, s, pol)
        st.apoptosis_rate[slots] = 1.0 / max(p["lifespan"], 1e-9)
        st.phagocytosis_rate[slots] = p["phagocytosis_dead_rate"] * alive

    def interact(self, ctx: BehaviorContext, slots: np.ndarray) -> None:
        st = ctx.store
        p = self.params
        dt = ctx.dt_pheno
        live = slots[st.death[slots] == ALIVE]
        if live.size == 0:
            return
        all_types = np.ones(len(ctx.type_names), dtype=np.bool_)
        eaten_parts, eater_parts = [], []
        if p["phagocytosis_dead_rate"] > 0:
            dead = ctx.neighbours.pick(live, all_types, ctx.rng, dead=True)
            rate = np.full(live.size, p["phagocytosis_dead_rate"])
            if p["necrotic_clearance_factor"] != 1.0:
                rate[(dead >= 0) & (st.death[dead] >= NECROTIC_SWELLING)] *= p["necrotic_clearance_factor"]
            ok = (dead >= 0) & (ctx.rng.random(live.size) < -np.expm1(-rate * dt))
            eaten_parts.append(dead[ok])
            eater_parts.append(live[ok])
        tum = ctx.types_with_rules("tumor")
        if tum and p["phagocytosis_tumor_rate"] > 0:
            busy = np.zeros(st.n, dtype=bool)
            for e in eater_parts:
                busy[e] = True
            hunters = live[~busy[live]]
            prey = ctx.neighbours.pick(hunters, ctx.neighbours.type_mask(tum), ctx.rng)
            rate = p["phagocytosis_tumor_rate"] * (1.0 - st.polarization[hunters])
            ok = (prey >= 0) & (ctx.rng.random(hunters.size) < -np.expm1(-rate * dt))
            eaten_parts.append(prey[ok])
            eater_parts.append(hunters[ok])
        if not eaten_parts:
            return
        eaten = np.concatenate(eaten_parts)
        eaters = np.concatenate(eater_parts)
        if eaten.size == 0:
            return
        eaten, first = np.unique(eaten, return_index=True)
        ctx.record("phagocytosis", eaten, st.id[eaters[first]])
        ctx.remove(eaten, None)

    def recruit(self, ctx: BehaviorContext, dt: float) -> None:
        p = self.params
        slots = recruit_at_vessels(
            ctx,
            self,
            dt,
            rate=p["recruitment_rate"],
            signals=("CSF1", "CCL2"),
            half_max=p["recruitment_half_max"],
            basal=p["recruitment_basal"],
            max_cells=p["max_cells"],
        )
        if slots.size:
            ctx.store.polarization[slots] = p["polarization_initial"]
            self.set_behaviors(ctx, slots, ctx.grid.sample(ctx.store.position[slots]))
