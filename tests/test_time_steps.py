"""The diffusion clock: a grid step longer than the mechanics step (diffusion_dt = k·mechanics_dt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tme_sim.config import load_scenario
from tme_sim.model import TMEModel

SPHEROID = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "spheroid.toml"


def _model(diffusion_dt: str) -> TMEModel:
    sc = load_scenario(
        SPHEROID,
        {"time.diffusion_dt": f'"{diffusion_dt}"', "time.diffusion_scheme": '"adi"', "time.mechanics_dt": '"0.1 min"'},
    )
    return TMEModel(sc, seed=3)


def test_grid_steps_every_kth_mechanics_step_and_keeps_model_time():
    m = _model("0.5 min")
    assert (m.diff_every, m.diff_substeps) == (5, 1)
    grid_times = []
    for _ in range(7):
        m.step()
        grid_times.append(m.micro.time)
    # the grid leads by up to one of its steps: it covers [t, t + 0.5) when it advances at t
    np.testing.assert_allclose(grid_times, [0.5] * 5 + [1.0] * 2)
    m.run_for(0.3)
    assert np.isclose(m.micro.time, m.time) and np.isclose(m.time, 1.0)


def test_coarse_diffusion_clock_stays_close_to_the_fine_one():
    fine, coarse = _model("0.1 min"), _model("0.5 min")
    fine.run_for(60.0)
    coarse.run_for(60.0)
    o2 = fine.substrate_names.index("oxygen")
    a, b = fine.micro.species_first()[o2], coarse.micro.species_first()[o2]
    rel = np.linalg.norm(a - b) / np.linalg.norm(a)
    assert rel < 5e-3, rel
    assert rel > 0.0  # the coarse clock is a different computation, not the same one
