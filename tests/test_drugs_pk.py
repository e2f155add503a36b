"""One-compartment PK: closed forms checked against a numerical ODE solution."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from tme_sim.config.drugs import parse_library
from tme_sim.drugs.pk import DoseEvent, OneCompartment, dose_events, face_concentration, vessel_source


def _ode(model: OneCompartment, t_end: float, ts: np.ndarray) -> np.ndarray:
    """Integrate dA/dt = -k A + R(t) + ka G, dG/dt = -ka G with impulses at bolus/oral times."""
    k, ka, v, f = model.k_el, model.ka or 0.0, model.volume, model.bioavailability
    times = sorted({0.0, t_end, *[e.time for e in model.events], *[e.time + e.duration for e in model.events]})
    y = np.zeros(2)
    out = np.zeros_like(ts)

    def rhs(t, y):
        r = sum(e.rate for e in model.events if e.kind == "infusion" and e.time <= t < e.time + e.duration)
        return [-k * y[0] + r + ka * y[1], -ka * y[1]]

    for a, b in itertools.pairwise(times):
        for e in model.events:
            if e.time == a and e.kind == "bolus":
                y[0] += e.amount
            if e.time == a and e.kind == "oral":
                y[1] += f * e.amount
        sel = (ts >= a) & (ts < b) if b < t_end else (ts >= a) & (ts <= b)
        sol = solve_ivp(rhs, (a, b), y, t_eval=ts[sel], rtol=1e-10, atol=1e-12, max_step=(b - a) / 50)
        out[sel] = sol.y[0] / v
        y = solve_ivp(rhs, (a, b), y, rtol=1e-10, atol=1e-12, max_step=(b - a) / 50).y[:, -1]
    return out


def test_closed_forms_match_ode():
    events = (
        DoseEvent("bolus", 0.0, amount=1000.0),
        DoseEvent("infusion", 100.0, rate=20.0, duration=60.0),
        DoseEvent("oral", 300.0, amount=5000.0),
        DoseEvent("bolus", 500.0, amount=300.0),
    )
    model = OneCompartment(volume=40.0, k_el=0.01, events=events, ka=0.03, bioavailability=0.6)
    ts = np.linspace(0.0, 900.0, 181)
    c = model.concentration(ts)
    ref = _ode(model, 900.0, ts)
    np.testing.assert_allclose(c, ref, rtol=1e-6, atol=1e-8)
    assert c[0] == pytest.approx(1000.0 / 40.0)


def test_oral_ka_equal_k_limit_and_zero_elimination():
    m1 = OneCompartment(10.0, 0.02, (DoseEvent("oral", 0.0, amount=100.0),), ka=0.02)
    m2 = OneCompartment(10.0, 0.02, (DoseEvent("oral", 0.0, amount=100.0),), ka=0.02 * (1 + 1e-6))
    ts = np.linspace(0, 500, 11)
    np.testing.assert_allclose(m1.concentration(ts), m2.concentration(ts), rtol=1e-5)
    m0 = OneCompartment(10.0, 0.0, (DoseEvent("infusion", 0.0, rate=2.0, duration=50.0),))
    np.testing.assert_allclose(m0.concentration([25.0, 100.0]), [5.0, 10.0])


def test_schedule_repeats_and_mass_balance():
    lib = parse_library(
        {
            "drugs": {
                "x": {
                    "targets": [{"node": "BCL2"}],
                    "ic50": "1 nM",
                    "molar_mass": "500 g/mol",
                    "pk": {"volume": "50 L", "half_life": "4 h"},
                    "schedule": [{"kind": "bolus", "amount": "1 mg", "every": "12 h", "count": 3}],
                }
            }
        }
    )
    d = lib.get("x")
    ev = dose_events(d)
    assert [e.time for e in ev] == [0.0, 720.0, 1440.0]
    assert ev[0].amount == pytest.approx(2000.0)  # 1 mg / 500 g/mol = 2 umol
    m = OneCompartment.from_drug(d)
    # after a long time all 6000 nmol have been eliminated
    assert m.amount_eliminated(200 * 60.0) == pytest.approx(6000.0, rel=1e-3)
    # superposition: just after the 2nd dose = first dose decayed 12 h + a fresh dose
    c = m.concentration(np.array([720.0]))[0]
    assert c == pytest.approx(40.0 * 0.5**3 + 40.0)


def test_vessel_and_face_entry():
    c = vessel_source(np.array([0.0, 10.0, 20.0]), c_plasma=10.0, permeability=2.0, dx=20.0)
    np.testing.assert_allclose(c, [1.0, 0.0, -1.0])
    with pytest.raises(ValueError):
        vessel_source(np.zeros(1), 1.0, 1.0, 0.0)
    lib = parse_library(
        {"drugs": {"x": {"targets": [{"node": "A"}], "ic50": "1 nM", "entry": {"via": "faces", "partition": 0.5}}}}
    )
    assert face_concentration(lib.get("x"), 8.0) == pytest.approx(4.0)


def test_substrate_table_fits_the_scenario_schema():
    from tme_sim.config.drugs import load_library
    from tme_sim.drugs.pk import substrate_table

    config = pytest.importorskip("tme_sim.config")
    lib = load_library(Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "drugs.toml")
    tpca1 = lib.get("tpca1")  # enters through four faces
    t = substrate_table(tpca1, 25.0)
    sc = config.SubstrateConfig.model_validate(t)
    assert sc.diffusion == pytest.approx(tpca1.diffusion) and sc.decay == pytest.approx(tpca1.decay_rate)
    assert set(t["boundary"]) == {"xmin", "xmax", "ymin", "ymax"} and t["initial"] == "25.0 nM"
    assert substrate_table(lib.get("venetoclax"), 1.0)["boundary"] == {"all": "1.0 nM"}
    assert config.SubstrateConfig.model_validate(substrate_table(tpca1)).boundary == "zero-flux"
