"""Vessel regression: co-opted vessels that tumor cells surround stop supplying (issue #20).

A 300 × 300 µm cut of the flagship with four vessel points: two inside the tumor disc, two far
from it. With a fast regression rate the covered vessels are released from the grid (their O2 is
no longer held at plasma level), recorded as events, and no longer recruit; the uncovered ones stay.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.test_immune_scenarios import small_doc
from tme_sim.config import validate_scenario
from tme_sim.errors import ConfigError
from tme_sim.events import EVENT_KINDS
from tme_sim.model import TMEModel
from tme_sim.plotting import vessel_voxels_of

INSIDE = [["150 um", "150 um"], ["170 um", "150 um"]]  # in the 100 µm tumor disc centred at (150, 150)
OUTSIDE = [["10 um", "10 um"], ["290 um", "290 um"]]


def _doc(rate: str) -> dict:
    doc = small_doc(tumor_radius=100.0, vessels=True)
    doc["vessels"] = {"points": INSIDE + OUTSIDE, "regression_rate": rate}
    doc["immune"]["recruitment"] = False
    return doc


def _model(rate: str, seed: int = 1) -> TMEModel:
    return TMEModel(validate_scenario(_doc(rate), "<test>"), seed=seed)


def test_covered_vessels_regress_and_release_the_grid() -> None:
    m = _model("1 1/min")  # every covered vessel goes at the first phenotype step
    before = m.vessels.voxels.copy()
    assert before.size == 4
    m.run_for(60.0)
    kept = m.vessels.voxels
    assert kept.size == 2, kept
    outside = {int(m.micro.voxel_index(np.array([[10.0, 10.0, 0.0], [290.0, 290.0, 0.0]]))[k]) for k in range(2)}
    assert set(kept.tolist()) == outside
    assert m.events.totals["vessel_regression"] == 2
    o2 = m.micro.field("oxygen").ravel()
    lost = np.setdiff1d(before, kept)
    assert np.allclose(o2[kept], 38.0)  # still held at the default supply
    assert np.all(o2[lost] < 37.0)  # released: the tumor around them draws O2 down
    assert not m.vessels.mask.reshape(-1)[lost].any()


def test_no_regression_without_rate_and_stream_unchanged() -> None:
    a = _model("0 1/min")
    doc = _doc("0 1/min")
    del doc["vessels"]["regression_rate"]
    b = TMEModel(validate_scenario(doc, "<test>"), seed=1)
    a.run_for(30.0)
    b.run_for(30.0)
    assert a.vessels.count == 4 and a.events.totals["vessel_regression"] == 0
    np.testing.assert_array_equal(a.store.position[: a.store.n], b.store.position[: b.store.n])
    np.testing.assert_array_equal(a.micro.field("oxygen"), b.micro.field("oxygen"))


def test_regression_state_round_trips() -> None:
    m = _model("0.002 1/min", seed=2)
    m.run_for(120.0)
    state = m.state_dict()
    fresh = _model("0.002 1/min", seed=2)
    fresh.load_state_dict(copy.deepcopy(state))
    np.testing.assert_array_equal(fresh.vessels.voxels, m.vessels.voxels)
    np.testing.assert_array_equal(fresh.vessels.mask, m.vessels.mask)
    m.run_for(60.0)
    fresh.run_for(60.0)
    np.testing.assert_array_equal(fresh.vessels.voxels, m.vessels.voxels)
    np.testing.assert_array_equal(fresh.micro.field("oxygen"), m.micro.field("oxygen"))


def test_regression_survives_a_checkpoint_file(tmp_path) -> None:
    """Through the HDF5 checkpoint (as ``--resume`` uses it) the run continues bit-identically."""
    from tme_sim.io.checkpoint import restore_model, write_checkpoint

    m = _model("0.002 1/min", seed=2)
    m.run_for(120.0)
    ckpt = write_checkpoint(m, tmp_path / "run.ckpt")
    fresh = _model("0.002 1/min", seed=2)
    restore_model(fresh, ckpt)
    m.run_for(120.0)
    fresh.run_for(120.0)
    assert m.events.totals["vessel_regression"] > 0
    np.testing.assert_array_equal(fresh.vessels.voxels, m.vessels.voxels)
    np.testing.assert_array_equal(fresh.store.position[: m.store.n], m.store.position[: m.store.n])
    np.testing.assert_array_equal(fresh.micro.field("oxygen"), m.micro.field("oxygen"))


def test_plotted_vessels_leave_out_regressed_ones(tmp_path) -> None:
    from tme_sim.runner import run_scenario

    sc = validate_scenario(_doc("1 1/min"), "<test>")
    out = tmp_path / "r.h5"
    run_scenario(sc, out, duration="60 min")
    centres, _ = vessel_voxels_of(out)
    assert centres.shape[0] == 2
    centres0, _ = vessel_voxels_of(out, time=0.0)
    assert centres0.shape[0] == 4


def test_unknown_regression_type_is_an_error() -> None:
    doc = _doc("0.001 1/min")
    doc["vessels"]["regression_cell_type"] = "tumour"
    with pytest.raises(ConfigError, match="regression_cell_type"):
        validate_scenario(doc, "<test>")


@pytest.mark.parametrize("factor", [0.0, 1.0])
def test_necrotic_debris_clearance_factor(factor: float) -> None:
    """Macrophages clear necrotic/lysed debris at ``phagocytosis_dead_rate × necrotic_clearance_factor``:
    0 keeps the debris (a necrotic core persists), 1 (default) clears it like apoptotic cells."""
    from tme_sim.cells import ALIVE, NECROTIC_LYSED

    doc = small_doc(tumor_radius=100.0, macrophages=40)
    doc["cell_types"]["macrophage"]["params"]["necrotic_clearance_factor"] = factor
    doc["cell_types"]["macrophage"]["params"]["phagocytosis_tumor_rate"] = "0 1/min"
    m = TMEModel(validate_scenario(doc, "<test>"), seed=4)
    st = m.store
    tumor = np.flatnonzero((st.type[: st.n] == m.type_names.index("tumor")) & (st.death[: st.n] == ALIVE))
    debris = tumor[::2]
    st.death[debris] = NECROTIC_LYSED
    debris_ids = set(st.id[debris].tolist())
    m.run_for(120.0)
    ev = m.events.drain()
    eaten = {int(i) for i, k in zip(ev["id"], ev["kind"], strict=True) if k == EVENT_KINDS.index("phagocytosis")}
    if factor == 0.0:
        assert not eaten & debris_ids
    else:
        assert len(eaten & debris_ids) > 5
