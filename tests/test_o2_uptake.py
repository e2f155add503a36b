"""Michaelis–Menten O2 uptake of the metabolism rules (``o2_uptake_km``; tme_sim/celltypes/metabolism.py)."""

from __future__ import annotations

import numpy as np

from tme_sim.cells import ALIVE
from tme_sim.config import load_scenario
from tme_sim.model import TMEModel


def _model(km: str) -> TMEModel:
    sc = load_scenario(
        "spheroid",
        {
            "duration": '"6 min"',
            "domain.size": '["200 um", "200 um"]',
            "initial_cells.0.center": '["100 um", "100 um"]',
            "initial_cells.0.radius": '"40 um"',
            "cell_types.tumor.params.o2_uptake_km": f'"{km}"',
        },
    )
    return TMEModel(sc, seed=1)


def test_uptake_rate_follows_michaelis_menten_and_equals_the_configured_rate_at_the_reference():
    m = _model("1 mmHg")
    o2 = m.substrate_names.index("oxygen")
    st = m.store
    u0 = m.scenario.cell_types["tumor"].secretion["oxygen"].uptake_rate
    levels = (38.0, 10.0, 1.0)
    got = []
    for c in levels:
        m.micro.set_field("oxygen", c)
        m.phenotype_step()
        live = np.flatnonzero(st.death[: st.n] == ALIVE)  # O2 1 mmHg makes some cells necrotic
        got.append(st.uptake_rate[live, o2].mean())
    np.testing.assert_allclose(got, [u0 * 39.0 / (c + 1.0) for c in levels], rtol=1e-12)
    linear = _model("0 mmHg")  # the default: PhysiCell's linear uptake, independent of O2
    linear.micro.set_field("oxygen", 1.0)
    linear.phenotype_step()
    live = np.flatnonzero(linear.store.death[: linear.store.n] == ALIVE)
    assert np.allclose(linear.store.uptake_rate[live, o2], u0)
