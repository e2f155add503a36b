"""The flagship's glycolysis makes tumor-like lactate where the tumor is hypoxic (issue #20).

A small, quick cut of ``tumor_immune.toml`` (its metabolism parameters unchanged): a tumor disc
of radius 280 µm (the flagship's) whose only supply is vessels at the edges of a 600 µm box. After 2 h the
hypoxic tumor voxels (O2 < 5 mmHg) must hold lactate above 5 mM (tumors: 5–25 mM, Walenta et al.
2000) and glucose must be drawn down there (lactate comes from glucose, 2 per glucose).
"""

from __future__ import annotations

import numpy as np

from tme_sim.config import load_scenario
from tme_sim.model import TMEModel


def _run() -> TMEModel:
    sc = load_scenario(
        "tumor_immune",
        {
            "domain.size": '["600 um", "600 um"]',
            "vessels.exclude_center": '["300 um", "300 um"]',
            "vessels.exclude_radius": '"290 um"',
            "vessels.density": "0.05",
            "initial_cells.0.center": '["300 um", "300 um"]',
            "initial_cells.0.radius": '"280 um"',
            "initial_cells.1.count": "1",
            "initial_cells.2.count": "1",
            "initial_cells.3.count": "1",
            "immune.recruitment": "false",
        },
    )
    m = TMEModel(sc, seed=3)
    m.run_for(120.0)
    return m


def test_hypoxic_tumor_regions_reach_tumor_like_lactate():
    m = _run()
    o2 = m.micro.field("oxygen")
    lac = m.micro.field("lactate")
    glc = m.micro.field("glucose")
    hypoxic = o2 < 5.0
    assert hypoxic.sum() >= 20, f"the case must have a hypoxic region (O2 min {o2.min():.1f} mmHg)"
    assert np.median(lac[hypoxic]) > 5.0
    assert lac[hypoxic].max() < 25.0  # bounded by the glucose it comes from
    assert np.median(glc[hypoxic]) < 3.0  # glucose is consumed where lactate is made
    normoxic = o2 > 30.0
    assert np.median(lac[normoxic]) < np.median(lac[hypoxic])
