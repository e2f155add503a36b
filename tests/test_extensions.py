"""Extending tme-sim without editing the package: a cell-type behaviour, an intracellular kind, a
per-cell output column and an output observer, each defined in a user module named in the
scenario's ``plugins`` (one file, nothing else)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from tme_sim.config import load_scenario
from tme_sim.errors import ConfigError
from tme_sim.io import read_cells
from tme_sim.model import TMEModel
from tme_sim.runner import run_scenario

PLUGIN = textwrap.dedent(
    '''
    """A user's extensions: nothing here is part of tme-sim."""
    import numpy as np

    from tme_sim.cells import Column
    from tme_sim.celltypes.base import CellRules
    from tme_sim.intracellular.base import IntracellularModel
    from tme_sim.io.observers import Observer
    from pydantic import BaseModel, ConfigDict


    class Glowing(CellRules):
        """Generic rules plus a per-cell 'glow' that grows with local oxygen and is inherited."""

        rules_name = "glowing"
        columns = (Column("glow", np.float64, unit="", inherit="copy", output="f4", description="test"),)

        def set_behaviors(self, ctx, slots, conc):
            super().set_behaviors(ctx, slots, conc)
            ctx.store.glow[slots] += conc[:, ctx.substrate_names.index("oxygen")] * ctx.dt_pheno


    class CounterConfig(BaseModel):
        model_config = ConfigDict(extra="forbid")
        kind: str
        speed: float = 1.0


    class Counter(IntracellularModel):
        """Counts minutes per cell and sets migration speed to a constant."""

        kind = "counter"
        config_class = CounterConfig

        def __init__(self, speed):
            self.speed = speed

        @classmethod
        def from_config(cls, cfg, base_dir):
            return cls(cfg.speed)

        @property
        def state_names(self):
            return ["minutes"]

        def initial_state(self, n, rng):
            return np.zeros((n, 1), np.float32)

        def update(self, signals, state, dt, rng):
            state[:, 0] += dt
            return {"migration_speed": np.full(signals.n, self.speed)}


    class StepCounter(Observer):
        """Counts the steps it saw into a text file next to the output."""

        name = "step_counter"

        @classmethod
        def from_settings(cls, settings, output, key):
            obs = cls()
            obs.path = output.with_suffix(".steps.txt")
            obs.steps = 0
            return obs

        def on_step(self, model):
            self.steps += 1

        def on_finish(self, model):
            self.path.write_text(str(self.steps))
    '''
)

SCENARIO = textwrap.dedent(
    """
    name = "plugin_demo"
    seed = 3
    duration = "60 min"
    plugins = ["my_types.py"]

    [domain]
    size = ["200 um", "200 um"]
    dx = "20 um"

    [time]
    diffusion_dt = "0.1 min"

    [substrates.oxygen]

    [cell_types.glower]
    rules = "glowing"
    intracellular = { kind = "counter", speed = 0.5 }

    [[initial_cells]]
    type = "glower"
    shape = "points"
    points = [["100 um", "100 um"], ["60 um", "60 um"]]

    [output]
    interval = "30 min"

    [output.observers.step_counter]
    """
)


@pytest.fixture(autouse=True)
def _forget_plugin_classes():
    """Registries are process-wide: drop what this module's plugin registered after each test."""
    from tme_sim.celltypes import base as behaviours
    from tme_sim.intracellular import base as kinds
    from tme_sim.io import observers

    yield
    behaviours._REGISTRY.pop("glowing", None)
    kinds._KINDS.pop("counter", None)
    observers._OBSERVERS.pop("step_counter", None)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "my_types.py").write_text(PLUGIN, encoding="utf-8")
    path = tmp_path / "demo.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def test_behaviour_kind_column_and_observer_from_one_user_file(project: Path, tmp_path: Path) -> None:
    out = run_scenario(project, tmp_path / "demo.h5")
    cells = read_cells(out)
    assert "glow" in cells.columns  # the declared column is written to every snapshot
    assert (cells["glow"] > 0).all()  # the user's behaviour ran
    assert np.allclose(cells["migration_speed"], 0.5)  # the user's intracellular kind decided
    assert int((tmp_path / "demo.steps.txt").read_text()) == 600  # 60 min of 0.1-min steps


def test_declared_column_is_inherited_and_checkpointed(project: Path) -> None:
    m = TMEModel(load_scenario(project))
    st = m.store
    st.glow[:2] = [1.0, 2.0]
    m._divide(np.array([1]))
    assert st.glow[st.n - 1] == 2.0  # inherit = "copy"
    state = m.state_dict()
    again = TMEModel(load_scenario(project))
    again.load_state_dict(state)
    assert np.array_equal(again.store.glow[: again.store.n], st.glow[: st.n])
    assert again.store.istate_of(0).shape == (3, 1)


def test_plugin_outside_the_scenario_folder_is_refused(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (tmp_path / "my_types.py").write_text(PLUGIN, encoding="utf-8")
    p = sub / "demo.toml"
    p.write_text(SCENARIO.replace('plugins = ["my_types.py"]', 'plugins = ["../my_types.py"]'), encoding="utf-8")
    with pytest.raises(ConfigError, match="outside the scenario's folder"):
        TMEModel(load_scenario(p))


def test_unknown_observer_and_kind_are_one_line_errors(project: Path, tmp_path: Path) -> None:
    text = project.read_text()
    bad = tmp_path / "bad_observer.toml"
    bad.write_text(text.replace("[output.observers.step_counter]", "[output.observers.nope]"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"output.observers.nope: unknown observer \(known: .*step_counter"):
        run_scenario(bad, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
    bad2 = tmp_path / "bad_kind.toml"
    bad2.write_text(text.replace('kind = "counter"', 'kind = "countr"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"intracellular.kind: expected one of .*counter"):
        TMEModel(load_scenario(bad2))
