"""Mesa handles on the arrays, the HDF5 schema and the one-line loaders."""

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tme_sim import io
from tme_sim.config import load_scenario
from tme_sim.model import TMEModel
from tme_sim.model.agents import TumorCell
from tme_sim.runner import run_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    ov = {
        "domain.size": '["300 um", "300 um"]',
        "initial_cells.0.center": '["150 um", "150 um"]',
        "initial_cells.0.radius": '"60 um"',
        "time.diffusion_dt": '"0.1 min"',
    }
    return TMEModel(load_scenario(SCENARIOS / "spheroid.toml", ov), seed=4)


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "s.h5"
    ov = {
        "domain.size": '["300 um", "300 um"]',
        "initial_cells.0.center": '["150 um", "150 um"]',
        "initial_cells.0.radius": '"60 um"',
        "time.diffusion_dt": '"0.1 min"',
        "output.interval": '"30 min"',
    }
    return run_scenario(SCENARIOS / "spheroid.toml", out, overrides=ov, duration="2 h", seed=3)


def test_model_agents_are_lazy_handles_that_read_and_write_the_arrays(small_model):
    m = small_model
    assert m._handle_of_id == {}  # nothing created until a user asks
    agents = m.agents
    assert len(agents) == m.store.n
    a = next(iter(agents))
    assert isinstance(a, TumorCell) and a.cell_type == "tumor"
    slot = m.store.slot_of_id[a.cell_id]
    assert np.array_equal(a.position, m.store.position[slot, :2])
    a.position = [10.0, 20.0]
    assert tuple(m.store.position[slot, :2]) == (10.0, 20.0)
    a.set_behavior("migration_speed", 1.5)
    assert m.store.migration_speed[slot] == 1.5
    alive = m.agents.select(lambda ag: ag.is_alive)
    assert len(alive) == int(np.sum(m.store.death[: m.store.n] == 0))
    groups = m.agents.groupby("cell_type")
    assert set(groups.groups) == {"tumor"}


def test_handles_follow_cells_through_removal_and_births(small_model):
    m = small_model
    _ = m.agents
    victim = int(m.store.id[0])
    m.remove_cells(np.array([0]))
    m.add_cells(np.array([0], np.int16), np.array([[150.0, 150.0, 0.0]]))
    ids = {a.cell_id for a in m.agents}
    assert victim not in ids and len(ids) == m.store.n
    assert int(m.store.id[m.store.n - 1]) in ids


def test_output_file_schema_and_attributes(output):
    a = io.read_attrs(output)
    assert (a["schema"] == "tme-sim/1" and a["complete"] is True) or a["complete"] == 1
    assert a["seed"] == 3 and a["cell_types"] == ["tumor"]
    with h5py.File(output, "r") as fh:
        assert "scenario_json" in fh["meta"] and "scenario_toml" in fh["meta"]
        assert fh["cells/offset"].shape == fh["cells/count"].shape == (5,)
        assert fh["population/counts"].shape[0] == 5
        assert fh["fields/concentration"].shape[:2] == (5, 2)


def test_one_line_loads(output):
    ds = xr.open_dataset(output, group="fields", engine="h5netcdf")
    assert list(ds["species"].values) == ["oxygen", "glucose"]
    assert ds["concentration"].dims == ("time", "species", "y", "x")
    assert float(ds["concentration"].sel(species="oxygen").isel(time=-1).max()) <= 38.0 + 1e-9
    cells = io.read_cells(output, time=60.0)
    assert isinstance(cells, pd.DataFrame) and {"id", "x", "y", "type", "death"} <= set(cells.columns)
    assert cells["time"].iloc[0] == 60.0
    pop = io.read_population(output)
    assert list(pop.columns[:3]) == ["time", "type", "live"]
    last = pop[pop["time"] == pop["time"].max()]
    assert int(last["live"].iloc[0]) == int((io.read_cells(output)["death"] == "alive").sum())
    ev = io.read_events(output)
    assert set(ev.columns) >= {"time", "kind", "id", "other_id", "type", "x", "y", "z"}
    assert (ev["kind"] == "division").sum() > 0


def test_events_match_population_changes(output):
    pop = io.read_population(output)
    ev = io.read_events(output)
    first, last = pop.iloc[0], pop.iloc[-1]
    total_first = first[["live", "apoptotic", "necrotic", "lysed"]].sum()
    total_last = last[["live", "apoptotic", "necrotic", "lysed"]].sum()
    births = (ev["kind"] == "division").sum()
    removals = (ev["kind"] == "removal").sum()
    assert total_last == total_first + births - removals


def test_describe_reports_completeness(output):
    text = io.describe(output)
    assert "complete" in text and "tumor" in text


def test_anndata_export_needs_intracellular_states(output):
    with pytest.raises(io.OutputError):
        io.to_anndata(output, "tumor")
