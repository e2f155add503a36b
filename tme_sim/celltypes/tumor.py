"""Tumor-cell rules: the generic O2-driven cycle and necrosis (clone heterogeneity via params)."""

from __future__ import annotations

from tme_sim.celltypes.base import CellRules, register_rules


@register_rules
class TumorRules(CellRules):
    """Tumor cells: O2-dependent proliferation and necrosis (PhysiCell defaults)."""

    rules_name = "tumor"
