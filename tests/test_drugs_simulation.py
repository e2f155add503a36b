"""Drugs in the spatial simulation: [drugs] dosing, drug masks in Boolean cells, dose response.

The small scenario below (240 µm box, ~45 tumor cells and 30 fibroblasts, 0.5 min steps) has the
same cell-type networks as scenarios/drug_combo.toml, on a faster network clock (1 network unit
= 10 min instead of 1 h) so that drug effects show within a few simulated hours.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tme_sim.config import load_scenario, validate_scenario
from tme_sim.drugs.dosing import DrugsConfig
from tme_sim.errors import ConfigError
from tme_sim.io.checkpoint import restore_model, write_checkpoint
from tme_sim.model import TMEModel
from tme_sim.screening.simulate import simulate_doses

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "tme_sim" / "scenarios"
LIB = SCEN / "drugs.toml"
#: birinapant + a tpca1 with made-up PK (the shipped tpca1 has no human PK): for the dosing tests
LIB_PK = Path(__file__).parent / "data" / "drugs_pk_fixture.toml"
BND = SCEN / "networks" / "tnf_cellfate.bnd"
CFG = SCEN / "networks" / "tnf_cellfate.cfg"

NFKB_ON = (
    "{ TNFR = 1, RIP1 = 1, RIP1ub = 1, RIP1K = 1, IKK = 1, NFkB = 1, cFLIP = 1, BCL2 = 1, "
    "mcIAP = 1, mXIAP = 1, cIAP = 1, XIAP = 1, Survival = 1 }"
)


def network(knockin: str, drugs: str) -> str:
    return f"""kind = "boolean"
bnd = "{BND}"
cfg = "{CFG}"
dt = "6 min"
time_scale = 0.1
knockin = {knockin}
initial = {NFKB_ON}
drugs = {drugs}
outputs = [
  {{ node = "Apoptosis", behavior = "apoptosis_rate", value_on = "0.01 1/min", value_off = "5.31667e-05 1/min" }},
]
"""


def small_scenario(
    tmp_path: Path,
    *,
    drugs_section: str | None = None,
    tumor_drugs: str = '["birinapant", "tpca1"]',
    fibro_drugs: str = '["birinapant", "tpca1"]',
    extra: str = "",
    vessels: bool = True,
    name: str = "small.toml",
    tumor_knockin: str = '["TNF"]',
) -> Path:
    """A small 2D scenario: tumor disc (autocrine TNF) + fibroblasts (TNF, IKK knocked in)."""
    if drugs_section is None:
        drugs_section = f"""[drugs]
library = "{LIB}"
[drugs.given.birinapant]
plasma = "0 nM"
[drugs.given.tpca1]
plasma = "0 nM"
"""
    ves = '[vessels]\npoints = [["30 um", "30 um"], ["210 um", "210 um"], ["30 um", "210 um"], ["210 um", "30 um"]]'
    text = f"""name = "drug_small"
seed = 3
duration = "5 h"

[domain]
size = ["240 um", "240 um"]
dx = "20 um"

[time]
diffusion_dt = "0.5 min"
mechanics_dt = "0.5 min"
phenotype_dt = "6 min"

[output]
interval = "60 min"
checkpoint_interval = "30 min"

{ves if vessels else ""}

{drugs_section}
[substrates.oxygen]
initial = "38 mmHg"
boundary = {{ all = "38 mmHg" }}

[cell_types.tumor]
rules = "tumor"
[cell_types.tumor.secretion.oxygen]
uptake_rate = "10 1/min"
[cell_types.tumor.intracellular]
{network(tumor_knockin, tumor_drugs)}
[cell_types.fibroblast]
rules = "generic"
cycle = {{ model = "none" }}
[cell_types.fibroblast.secretion.oxygen]
uptake_rate = "2 1/min"
[cell_types.fibroblast.intracellular]
{network('["TNF", "IKK"]', fibro_drugs)}
[[initial_cells]]
type = "tumor"
shape = "disc"
center = ["120 um", "120 um"]
radius = "60 um"

[[initial_cells]]
type = "fibroblast"
shape = "random"
count = 30
{extra}
"""
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------ config


def test_drugs_section_accepts_tables_or_a_list_and_rejects_mistakes():
    cfg = DrugsConfig.model_validate({"library": "x.toml", "given": ["birinapant", "tpca1"]})
    assert list(cfg.given) == ["birinapant", "tpca1"] and cfg.given["tpca1"].dose_scale == 1.0
    cfg = DrugsConfig.model_validate({"library": "x.toml", "given": {"tpca1": {"plasma": "0.1 uM"}}})
    assert cfg.given["tpca1"].plasma == pytest.approx(100.0)  # nM
    for bad in (
        {"library": "x.toml", "given": {"tpca1": {"dose": 2}}},
        {"library": "x.toml", "given": {"tpca1": {"plasma": "1 mg"}}},
        {"library": "x.toml", "given": {"tpca1": {"dose_scale": -1}}},
        {"library": "x.toml", "given": []},
        {"given": ["tpca1"]},
    ):
        with pytest.raises(ValueError):
            DrugsConfig.model_validate(bad)


def test_resolved_scenario_round_trips_through_json(tmp_path):
    sched = '[{ kind = "bolus", amount = "5 mg", start = "10 min", every = "1 h", count = 2 }]'
    p = small_scenario(
        tmp_path,
        drugs_section=f'[drugs]\nlibrary = "{LIB_PK}"\n[drugs.given.birinapant]\n'
        f"[drugs.given.tpca1]\nschedule = {sched}\n",
    )
    sc = load_scenario(p)
    again = validate_scenario(sc.model_dump(mode="json"))
    assert again.drugs == sc.drugs


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"drugs_section": '[drugs]\nlibrary = "nope.toml"\ngiven = ["tpca1"]\n'}, "drugs.library"),
        ({"drugs_section": f'[drugs]\nlibrary = "{LIB}"\ngiven = ["aspirin", "tpca1"]\n'}, "drugs.given.aspirin"),
        ({"tumor_drugs": '["venetoclax"]'}, "cell_types.tumor.intracellular.drugs: 'venetoclax' is not given"),
        ({"tumor_drugs": '["tasonermin"]'}, "not given in [drugs]"),
    ],
)
def test_bad_drug_input_is_a_one_line_config_error(tmp_path, kwargs, fragment):
    p = small_scenario(tmp_path, **kwargs)
    with pytest.raises(ConfigError) as err:
        TMEModel(load_scenario(p))
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg


def test_drug_target_missing_from_the_network_names_the_drug(tmp_path):
    lib = tmp_path / "lib.toml"
    lib.write_text('[drugs.erlotinib]\ntargets = [{ node = "EGFR" }]\nic50 = "20 nM"\n')
    p = small_scenario(
        tmp_path,
        drugs_section=f'[drugs]\nlibrary = "{lib}"\n[drugs.given.erlotinib]\nplasma = "1 nM"\n',
        tumor_drugs='["erlotinib"]',
        fibro_drugs="[]",
    )
    with pytest.raises(ConfigError, match=r"drugs\.erlotinib\.targets: node 'EGFR' is not in the network"):
        TMEModel(load_scenario(p))


def test_tme_run_exits_2_with_one_line_for_an_unknown_drug(tmp_path):
    p = small_scenario(tmp_path, drugs_section=f'[drugs]\nlibrary = "{LIB}"\ngiven = ["aspirin", "tpca1"]\n')
    res = subprocess.run(
        [sys.executable, "-m", "tme_sim", "run", str(p), "--out", str(tmp_path / "x.h5"), "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "aspirin" in lines[0]


# ------------------------------------------------------------------ dosing controller


def test_plasma_pk_sets_face_and_vessel_values_each_step(tmp_path):
    """tpca1 (faces) and birinapant (vessels) follow their PK curves; a drug is a substrate."""
    p = small_scenario(
        tmp_path,
        drugs_section=f"""[drugs]
library = "{LIB_PK}"
[drugs.given.birinapant]
schedule = [{{ kind = "infusion", rate = "1 mg/h", duration = "20 min", start = "5 min" }}]
[drugs.given.tpca1]
schedule = [{{ kind = "bolus", amount = "5 mg", start = "15 min" }}]
entry = {{ via = "faces", faces = ["xmin", "ymax"] }}
""",
    )
    m = TMEModel(load_scenario(p))
    assert m.substrate_names[-2:] == ["birinapant", "tpca1"] and m.substrate_units[-1] == "nM"
    dos = m.dosing
    ves = m.vessels.mask.reshape(-1)
    for _ in range(80):  # 40 min
        m.step()
        t_mid = m.time - 0.5 * m.dt_mech  # midpoint of the step just taken
        cp = dos.plasma(t_mid)[0]
        b = m.micro.boundary("tpca1")
        assert b["xmin"][0] == "dirichlet" and b["ymax"][0] == "dirichlet" and b["xmax"][0] == "neumann"
        assert b["xmin"][1] == pytest.approx(dos.applied[1])
        assert abs(dos.applied[1] - cp[1]) <= 0.011 * max(cp[1], dos.applied[1]) + 1e-12
        field = m.micro.field("birinapant").reshape(-1)
        assert np.allclose(field[ves], dos.applied[0])
        assert abs(dos.applied[0] - cp[0]) <= 0.011 * max(cp[0], dos.applied[0]) + 1e-12
    assert dos.applied[1] > 0 and dos.applied[0] > 0
    # tissue concentration reaches the cells (sampled as a signal of the drug's name)
    conc = m.sample_conditions()[:, m.substrate_names.index("tpca1")]
    assert conc.max() > 0
    # values are re-imposed only on noticeable changes, not every step
    assert dos.updates < 2 * 80


def test_vessel_entry_without_vessels_is_an_error(tmp_path):
    p = small_scenario(tmp_path, vessels=False)
    with pytest.raises(ConfigError, match=r"drugs\.given\.birinapant\.entry: .*no vessel voxels"):
        TMEModel(load_scenario(p))


def test_checkpoint_restart_continues_dosing_bit_identically(tmp_path):
    p = small_scenario(
        tmp_path,
        drugs_section=f"""[drugs]
library = "{LIB_PK}"
[drugs.given.birinapant]
schedule = [{{ kind = "infusion", rate = "0.05 mg/h", duration = "60 min", start = "10 min" }}]
[drugs.given.tpca1]
schedule = [{{ kind = "bolus", amount = "0.01 mg", start = "20 min", every = "30 min", count = 3 }}]
""",
    )
    sc = load_scenario(p)
    a = TMEModel(sc)
    a.run_for(30)
    ck = write_checkpoint(a, tmp_path / "a.ckpt")
    b = TMEModel(sc)
    restore_model(b, ck)
    assert np.array_equal(a.dosing.applied, b.dosing.applied)
    a.run_for(60)
    b.run_for(60)
    assert np.array_equal(a.micro.species_first(), b.micro.species_first())
    n = a.store.n
    assert n == b.store.n and np.array_equal(a.store.id[:n], b.store.id[:n])
    assert np.array_equal(a.store.istate_of(0), b.store.istate_of(0))
    assert a.dosing.updates > 0


# ------------------------------------------------------------------ drugs in cells


def test_boolean_cells_read_drug_signals_and_knock_out_targets(tmp_path):
    m = TMEModel(load_scenario(small_scenario(tmp_path)))
    im = m.intracellular[0]
    assert {"birinapant", "tpca1"} <= set(im.required_signals())
    from tme_sim.intracellular.base import Signals

    n = 400
    state = im.initial_state(n, np.random.default_rng(0))
    cIAP = im.state_names.index("cIAP")
    assert state[:, cIAP].all()  # NF-kB-active basal state from `initial`
    sig = Signals(["birinapant", "tpca1"], np.column_stack([np.full(n, 1e4), np.zeros(n)]))
    im.update(sig, state, 6.0, np.random.default_rng(1))
    assert not state[:, cIAP].any()  # saturating SMAC mimetic: cIAP held off in every cell


@pytest.fixture(scope="module")
def dose_response(tmp_path_factory):
    """Full simulation (5 h) at constant plasma levels: untreated, birinapant low/high, tpca1."""
    p = small_scenario(tmp_path_factory.mktemp("dr"))
    points = [
        {"birinapant": 0.0, "tpca1": 0.0},
        {"birinapant": 0.01, "tpca1": 0.0},
        {"birinapant": 10.0, "tpca1": 0.0},
        {"birinapant": 0.0, "tpca1": 100.0},
    ]
    res = simulate_doses(p, points, mode="plasma")
    print("\n".join(res.table()))
    return res


def test_tumor_kill_increases_with_dose(dose_response):
    r = dose_response
    ctl, low, high, _ = r.points
    assert ctl.final["tumor"] > low.final["tumor"] > high.final["tumor"]
    assert r.loss(high, "tumor") > 0.5
    assert r.loss(low, "tumor") > 0.05


def test_healthy_loss_follows_the_drug_targets(dose_response):
    """Fibroblasts keep NF-kB through IKK without cIAP: spared by birinapant, killed by tpca1."""
    r = dose_response
    _, _, bir_high, tpca = r.points
    assert r.loss(bir_high, "fibroblast") < 0.2
    assert r.loss(tpca, "fibroblast") > 0.5
    assert r.loss(tpca, "tumor") > 0.5


def test_cli_simulate_prints_the_table(tmp_path):
    p = small_scenario(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "tme_sim", "drugs", "simulate", str(p), "--plasma", "birinapant=0,1 nM",
         "--duration", "20 min", "--out", str(tmp_path / "t.csv"), "--plot", str(tmp_path / "t.png"),
         "--record-every", "10 min"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "birinapant" in res.stdout and "fibroblast" in res.stdout
    rows = (tmp_path / "t.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("plasma:birinapant")
    assert (tmp_path / "t.png").stat().st_size > 10_000
    bad = subprocess.run(
        [sys.executable, "-m", "tme_sim", "drugs", "simulate", str(p), "--scale", "aspirin=0,1"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "aspirin" in bad.stderr


def test_drug_combo_scenario_validates():
    sc = load_scenario(SCEN / "drug_combo.toml")
    assert sc.drugs is not None and list(sc.drugs.given) == ["birinapant", "venetoclax"]
    assert sc.cell_types["tumor"].intracellular["drugs"] == ["birinapant", "venetoclax"]
    assert sc.drugs.given["venetoclax"].entry.partition == pytest.approx(0.01)  # unbound fraction
    assert "BCL2" in sc.cell_types["tumor"].intracellular["knockin"]


def test_intracellular_without_a_drug_input_says_so(tmp_path):
    """Only kinds that accept drugs (Boolean networks, surrogates) take them; others are a ConfigError."""
    from tme_sim.intracellular.factory import wire_drugs

    m = TMEModel(load_scenario(small_scenario(tmp_path)))

    class NoDrugInput:
        kind = "custom"
        accepts_drugs = False
        state_names = ["cIAP"]

    with pytest.raises(ConfigError, match="intracellular kind 'custom' has no drug input"):
        wire_drugs(NoDrugInput(), ["birinapant"], m.dosing, "cell_types.x.intracellular")
    with pytest.raises(ConfigError, match="expected a list of drug names"):
        wire_drugs(m.intracellular[0], "birinapant", m.dosing, "cell_types.x.intracellular")


# ------------------------------------------------------------------ venetoclax acts where BCL2 is held up


def test_venetoclax_kills_bcl2_held_tumor_cells_only_with_birinapant(tmp_path):
    """BCL2 is an NF-kB target in the TNF network; with BCL2 knocked in (NF-kB-independent, as
    in BCL2-overexpressing tumors) birinapant alone cannot kill (BCL2 blocks BAX/MPT), venetoclax
    alone cannot either (NF-kB keeps cFLIP up), together they kill, more with more venetoclax:
    the drug's knock-out wins over the type's knock-in in each step it is drawn."""
    p = small_scenario(
        tmp_path,
        drugs_section=f'[drugs]\nlibrary = "{LIB}"\n[drugs.given.birinapant]\nplasma = "0 nM"\n'
        '[drugs.given.venetoclax]\nplasma = "0 nM"\n',
        tumor_drugs='["birinapant", "venetoclax"]',
        fibro_drugs='["birinapant", "venetoclax"]',
        tumor_knockin='["TNF", "BCL2"]',
    )
    points = [
        {"birinapant": 0.0, "venetoclax": 0.0},
        {"birinapant": 10.0, "venetoclax": 0.0},
        {"birinapant": 0.0, "venetoclax": 50.0},
        {"birinapant": 10.0, "venetoclax": 2.0},
        {"birinapant": 10.0, "venetoclax": 50.0},
    ]
    res = simulate_doses(p, points, mode="plasma", duration=300.0, record_every=60.0)
    print("\n".join(res.table()))
    _ctl, bir, ven, low, high = res.points
    assert abs(res.loss(bir, "tumor")) < 0.1 and abs(res.loss(ven, "tumor")) < 0.1
    assert res.loss(high, "tumor") > res.loss(low, "tumor") + 0.2
    assert res.loss(high, "tumor") > 0.5
    tl = high.extra["timeline"]
    assert tl[0] == 0 and tl[-1] == pytest.approx(300.0) and tl.size == 6
    live = high.extra["live"]["tumor"]
    assert live[0] == high.initial["tumor"] and live[-1] == high.final["tumor"]


def test_joint_dose_axis_and_figure(tmp_path):
    from tme_sim.screening.simulate import dose_grid, plot_dose_response

    grid = dose_grid({"birinapant+tpca1": [0, 0.5, 1]})
    assert grid == [{"birinapant": v, "tpca1": v} for v in (0.0, 0.5, 1.0)]
    grid = dose_grid({"birinapant": [0, 1], "tpca1": [0, 2]})
    assert len(grid) == 4 and grid[-1] == {"birinapant": 1.0, "tpca1": 2.0}
    p = small_scenario(tmp_path)
    res = simulate_doses(p, dose_grid({"birinapant+tpca1": [0, 100]}), mode="plasma", duration=30.0, record_every=15.0)
    png = plot_dose_response(res, tmp_path / "f.png", "t")
    assert png.stat().st_size > 10_000


@pytest.mark.slow
def test_reduced_drug_combo_dose_response():
    """The shipped flagship drug scenario (reduced domain, 2 days, drugs from 6 h): tumor burden and
    CAF loss respond to the scale of the combination schedule (~3 min)."""
    from tme_sim.screening.simulate import REDUCED_DRUG_COMBO, dose_grid

    res = simulate_doses(
        SCEN / "drug_combo.toml",
        dose_grid({"birinapant+venetoclax": [0.0, 0.05, 1.0]}),
        duration=2 * 1440.0,
        overrides=dict(REDUCED_DRUG_COMBO),
    )
    print("\n".join(res.table()))
    _ctl, low, high = res.points
    assert 0.1 < res.loss(low, "tumor") < res.loss(high, "tumor")
    assert res.loss(high, "tumor") > 0.8
    assert res.loss(low, "fibroblast") < res.loss(high, "fibroblast")
    assert res.loss(high, "fibroblast") > 0.3
