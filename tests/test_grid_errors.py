"""Bad grid settings raise GridError, bad fields FieldError, each with a one-line message."""

from __future__ import annotations

import numpy as np
import pytest

from tme_sim.errors import FieldError, GridError, TMEError
from tme_sim.grid import (
    SUBSTRATES,
    Microenvironment,
    SubstrateParams,
    get_substrate,
    make_substrate,
    register_substrate,
)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert isinstance(exc.value, TMEError)
    return msg


def test_negative_diffusion():
    with pytest.raises(GridError) as e:
        SubstrateParams("oxygen", "mmHg", -1.0, 0.1)
    assert _one_line(e) == "diffusion of 'oxygen' must be >= 0, got -1"


def test_negative_decay():
    with pytest.raises(GridError) as e:
        make_substrate("drugX", "uM", 100.0, -0.5)
    assert "decay of 'drugX' must be >= 0" in _one_line(e)


def test_non_finite_or_non_numeric_parameters():
    with pytest.raises(GridError, match="diffusion of 'a' must be finite"):
        SubstrateParams("a", "1", float("nan"), 0.0)
    with pytest.raises(GridError, match="initial of 'a' must be a number"):
        SubstrateParams("a", "1", 1.0, 0.0, initial="lots")  # type: ignore[arg-type]


@pytest.mark.parametrize("dt", [0.0, -0.01, float("nan")])
def test_bad_dt(dt):
    m = Microenvironment((100.0, 100.0), 20.0, ["oxygen"])
    with pytest.raises(GridError) as e:
        m.advance(dt)
    assert "time step dt" in _one_line(e)
    assert m.time == 0.0


def test_bad_n_steps():
    m = Microenvironment((100.0, 100.0), 20.0, ["oxygen"])
    with pytest.raises(GridError, match="n_steps"):
        m.advance(0.01, 0)


def test_domain_not_whole_number_of_voxels():
    with pytest.raises(GridError) as e:
        Microenvironment((1010.0, 1000.0), 20.0, ["oxygen"])
    assert _one_line(e) == "domain Lx = 1010 um is not a whole number of voxels of dx = 20 um"
    with pytest.raises(GridError, match="domain Lz = 30 um"):
        Microenvironment((100.0, 100.0, 30.0), 20.0, ["oxygen"])


@pytest.mark.parametrize(
    ("domain", "dx", "match"),
    [
        ((100.0,), 20.0, "domain must be"),
        ((100.0, 100.0, 100.0, 100.0), 20.0, "domain must be"),
        ((100.0, -100.0), 20.0, "domain Ly must be > 0"),
        ((100.0, 100.0), 0.0, "voxel size dx must be > 0"),
        ((100.0, 100.0), -20.0, "voxel size dx must be > 0"),
    ],
)
def test_bad_geometry(domain, dx, match):
    with pytest.raises(GridError, match=match):
        Microenvironment(domain, dx, ["oxygen"])


def test_unknown_boundary_type_and_face():
    m = Microenvironment((100.0, 100.0), 20.0, ["oxygen"])
    with pytest.raises(GridError) as e:
        m.set_boundary("oxygen", "xmin", "robin", 1.0)
    assert "unknown boundary type 'robin'" in _one_line(e)
    with pytest.raises(GridError, match="unknown boundary face 'zmin'"):
        m.set_boundary("oxygen", "zmin", "dirichlet", 1.0)  # 2D grid has no z faces
    with pytest.raises(GridError, match="must be >= 0"):
        m.set_boundary("oxygen", "xmin", "dirichlet", -1.0)


def test_unknown_substrate_name():
    with pytest.raises(GridError) as e:
        get_substrate("oxygn")
    msg = _one_line(e)
    assert "unknown substrate 'oxygn'" in msg and "oxygen" in msg
    m = Microenvironment((100.0, 100.0), 20.0, ["oxygen"])
    for call in (
        lambda: m.field("glucose"),
        lambda: m.index("x"),
        lambda: m.set_boundary("TNF", "all", "neumann"),
    ):
        with pytest.raises(GridError, match="unknown substrate"):
            call()
    with pytest.raises(GridError, match="unknown substrate 'nope'"):
        Microenvironment((100.0, 100.0), 20.0, ["oxygen", "nope"])


def test_duplicate_substrate_and_bad_dtype():
    with pytest.raises(GridError, match="listed more than once"):
        Microenvironment((100.0, 100.0), 20.0, ["oxygen", "oxygen"])
    with pytest.raises(GridError, match="dtype"):
        Microenvironment((100.0, 100.0), 20.0, ["oxygen"], dtype=np.int32)


def test_bad_coupling_and_mask_inputs():
    m = Microenvironment((100.0, 100.0), 20.0, ["oxygen", "TNF"])
    z = np.zeros((2, 2))
    with pytest.raises(GridError, match="voxel indices"):
        m.set_cell_coupling(np.array([0, 99]), np.ones(2), z, z, z, z)
    with pytest.raises(GridError, match="uptake must have shape"):
        m.set_cell_coupling(np.array([0, 1]), np.ones(2), z, z, np.zeros((2, 3)), z)
    with pytest.raises(GridError, match="secretion must be >= 0"):
        m.set_cell_coupling(np.array([0, 1]), np.ones(2), -np.ones((2, 2)), z, z, z)
    with pytest.raises(GridError, match="dirichlet mask of 'TNF' must have shape"):
        m.set_dirichlet_mask("TNF", np.zeros((3, 3), bool), 1.0)
    with pytest.raises(GridError, match="values for 'oxygen' must be finite and >= 0"):
        m.set_field("oxygen", -1.0)
    with pytest.raises(GridError, match="not finite"):
        m.voxel_index(np.array([[np.nan, 0.0, 0.0]]))


def test_negative_field_raises_field_error_naming_substrate_time_voxel():
    m = Microenvironment((100.0, 60.0), 20.0, ["oxygen", "TNF"])
    m.set_field("TNF", 1.0)
    v = m.voxel_index(np.array([[50.0, 30.0, 0.0]]))
    S = np.zeros((1, 2))
    export = np.array([[0.0, -1e4]])  # net uptake of a fixed amount: drives TNF below zero
    m.set_cell_coupling(v, np.ones(1), S, S, S, export)
    m.advance(0.1, 2)  # too weak against diffusion at first: fine
    m.set_cell_coupling(v, np.ones(1), S, S, S, 1000 * export)
    with pytest.raises(FieldError) as e:
        m.advance(0.1, 1)
    msg = _one_line(e)
    assert msg.startswith("field 'TNF' became negative (")
    assert "t = 0.3 min" in msg
    assert "voxel (i, j) = (2, 1), centre (50, 30) um" in msg


def test_nan_raises_field_error_in_3d():
    m = Microenvironment((100.0, 60.0, 40.0), 20.0, ["oxygen"])
    m.field("oxygen")[1, 2, 3] = np.nan
    with pytest.raises(FieldError) as e:
        m.check()
    assert _one_line(e) == (
        "field 'oxygen' became NaN at t = 0 min in voxel (i, j, k) = (3, 2, 1), centre (70, 50, 30) um"
    )


def test_registry_contents_and_extension():
    required = ["oxygen", "glucose", "lactate", "IFNG", "TNF", "TGFB1", "IL10", "CSF1", "CXCL9", "CCL2"]
    for name in [*required, "VEGFA", "IL4", "CXCL12"]:
        p = SUBSTRATES[name]
        assert p.source and p.unit and p.diffusion > 0
    ox = get_substrate("oxygen")
    assert (ox.diffusion, ox.decay, ox.unit) == (1e5, 0.1, "mmHg")
    drug = make_substrate("aPD1_test", "nM", 50.0, 0.001, source="scenario")
    register_substrate(drug)
    try:
        assert get_substrate("aPD1_test") is drug
        with pytest.raises(GridError, match="already registered"):
            register_substrate(make_substrate("aPD1_test", "nM", 60.0, 0.001))
        m = Microenvironment((100.0, 100.0), 20.0, ["oxygen", "aPD1_test"])
        assert m.names == ["oxygen", "aPD1_test"]
    finally:
        SUBSTRATES.pop("aPD1_test")


def test_checkpoint_mismatch():
    a = Microenvironment((100.0, 100.0), 20.0, ["oxygen"])
    b = Microenvironment((100.0, 120.0), 20.0, ["oxygen"])
    with pytest.raises(GridError, match="does not match"):
        b.load_state_dict(a.state_dict())
    with pytest.raises(GridError, match="lacks key"):
        a.load_state_dict({})
