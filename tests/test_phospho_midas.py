"""MIDAS phospho data, the phospho models and their CV (issue 18, part B).

Synthetic tables are generated from the background-plus-activity model with known parameters, so
the tests can say what the models must recover; the shared hepatocyte data is used where present.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tme_sim.errors import DataError
from tme_sim.intracellular.neural.phospho import load_phospho, save_phospho
from tme_sim.training.data import shared_data_dir
from tme_sim.training.midas import condition_table, is_midas_folder, load_midas
from tme_sim.training.phospho import AdditiveModel, FloorConfig, RidgeModel, train_phospho
from tme_sim.training.phospho_cv import cross_validate_phospho, format_phospho_table

HEP = shared_data_dir() / "hepatocytes-cno"


def write_synthetic_midas(folder: Path, seed: int = 0, noise: float = 0.05) -> Path:
    """Two cell types (``PriA`` healthy, ``CanB``), 2 ligands, 3 inhibitors, 4 read-outs; signal =
    background + activity, inhibitors multiplicative on the activity (so combinations saturate)."""
    rng = np.random.default_rng(seed)
    cells, ligs, inhs, reads = ["PriA", "CanB"], ["L1", "L2"], ["Xi", "Yi", "Zi"], ["r1", "r2", "r3", "r4"]
    lig_sets = [(0, 0), (1, 0), (0, 1), (1, 1)]
    inh_sets = [tuple(int(b) for b in np.binary_repr(k, 3)) for k in range(8)]
    floor = np.log2(np.array([200.0, 300.0, 150.0, 400.0]))
    rows = []
    for ci, c in enumerate(cells):
        base = rng.normal(11.0, 0.5, 4) + ci * 0.5
        alpha = rng.normal(1.0, 0.6, (2, 4))
        beta = -np.abs(rng.normal(2.5, 1.0, (3, 4)))  # strong inhibition: saturation matters
        for t in (0, 30):
            for ls in lig_sets if t == 30 else [(0, 0)]:
                for us in inh_sets:
                    eta = base + np.array(ls) @ alpha * (t == 30) + np.array(us) @ beta * (t == 30)
                    val = 2.0 ** np.logaddexp2(floor, eta) * 2.0 ** rng.normal(0, noise, 4)
                    row = {"ID:type": "c"}
                    row.update({f"TR:{x}:CellLine": int(x == c) for x in cells})
                    row.update({f"TR:{x}": ls[j] for j, x in enumerate(ligs)})
                    row["TR:NOCYTO"] = int(not any(ls))
                    row.update({f"TR:{x}": us[j] for j, x in enumerate(inhs)})
                    row.update({f"DA:{r}": t for r in reads})
                    row.update({f"DV:{r}": v for r, v in zip(reads, val, strict=True)})
                    rows.append(row)
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "MD-synthetic.csv", index=False)
    return folder


def test_load_midas_reads_the_layout(tmp_path: Path) -> None:
    d = load_midas(write_synthetic_midas(tmp_path / "syn"))
    assert d.cell_types == ["PriA", "CanB"] and d.healthy == ["PriA"]
    assert d.stimuli == ["L1", "L2"] and d.inhibitors == ["Xi", "Yi", "Zi"]
    tab = condition_table(d)
    assert tab.y.shape == (2 * 4 * 8, 4)
    untreated = (~tab.stim.any(1)) & (~tab.inhib.any(1))
    assert np.abs(tab.y[untreated]).max() < 0.3  # normalised to the time-0 untreated rows


def test_bad_midas_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "MD-x.csv").write_text("TR:a,TR:b\n1,0\n")
    with pytest.raises(DataError, match="no DA:/DV: columns"):
        load_midas(tmp_path / "bad")
    assert not is_midas_folder(tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_midas(tmp_path / "missing")


def test_floor_model_beats_additive_on_held_out_combinations(tmp_path: Path) -> None:
    data = load_midas(write_synthetic_midas(tmp_path / "syn"))
    rep = cross_validate_phospho(data, protocols=("combination",), models=("additive", "ridge", "floor"), members=2)
    r = {(row["model"], row["cell_type"]): row["pooled_r"] for row in rep["table"]}
    for cell in ("PriA", "CanB"):
        assert r[("floor", cell)] > r[("additive", cell)]
        assert r[("floor", cell)] > 0.95
    assert "coverage90" in next(row for row in rep["table"] if row["model"] == "floor")
    assert "floor" in format_phospho_table(rep)


def test_conformal_halfwidth_is_the_inner_held_out_residual_quantile(tmp_path: Path) -> None:
    from tme_sim.training.phospho import MeanModel
    from tme_sim.training.phospho_cv import conformal_halfwidth, holdout_groups

    tab = condition_table(load_midas(write_synthetic_midas(tmp_path / "syn")))
    groups = [g for _, g in holdout_groups(tab, "combination")]
    held, inner = groups[0], groups[1:]
    train = np.flatnonzero(~held)
    half = conformal_halfwidth(tab, train, inner, "mean", seed=0, q=0.9)
    for c in (0, 1):
        res = []
        for g in inner:
            fit, ho = np.flatnonzero(~held & ~g), np.flatnonzero(g & (tab.cell == c))
            res.append(np.abs(MeanModel().fit(tab, fit).predict(tab, ho) - tab.y[ho]).ravel())
        v = np.sort(np.concatenate(res))
        assert half[c] == pytest.approx(v[int(np.ceil(0.9 * (len(v) + 1))) - 1])
    # the held-out group's own measurements never set the width
    tab.y[held] += 100.0
    np.testing.assert_allclose(conformal_halfwidth(tab, train, inner, "mean", seed=0, q=0.9), half)


def test_models_agree_with_the_definition(tmp_path: Path) -> None:
    tab = condition_table(load_midas(write_synthetic_midas(tmp_path / "syn", noise=0.0)))
    combo = np.flatnonzero(tab.inhib.sum(1) == 2)[0]
    train = np.flatnonzero(tab.inhib.sum(1) < 2)
    add = AdditiveModel().fit(tab, train).predict(tab, np.array([combo]))[0]
    same = (tab.cell == tab.cell[combo]) & (tab.stim_key == tab.stim_key[combo])
    base = tab.y[same & (tab.inhib_key == 0)][0]
    singles = [tab.y[same & (tab.inhib_key == 1 << j)][0] for j in np.flatnonzero(tab.inhib[combo])]
    np.testing.assert_allclose(add, base + sum(s - base for s in singles))
    ridge = RidgeModel().fit(tab, train)
    assert set(ridge.alpha.values()) <= set(RidgeModel.alphas)


def test_surrogate_round_trip_and_dose_levels(tmp_path: Path) -> None:
    data = load_midas(write_synthetic_midas(tmp_path / "syn"))
    sur = train_phospho(data, FloorConfig(members=2, steps=300))
    path = save_phospho(tmp_path / "s.npz", sur)
    back = load_phospho(path)
    u = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 0.0, 0.0]])
    a = sur.predict("CanB", ["L1"], u)
    np.testing.assert_allclose(back.predict("CanB", ["L1"], u), a)
    assert a.shape == (2, 3, 4)
    # an inhibitor with negative effects lowers read-outs monotonically with its level
    assert (np.diff(a.mean(0)[:, :], axis=0) <= 1e-9).all()
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(Exception, match="not a tme-sim phospho surrogate"):
        load_phospho(tmp_path / "x.npz")


@pytest.mark.skipif(not HEP.is_dir(), reason=f"shared hepatocyte data not found at {HEP}")
def test_hepatocytes_floor_beats_additive_per_cell_type() -> None:
    data = load_midas(HEP)
    assert data.healthy == ["PriHu"] and len(data.cell_types) == 5
    rep = cross_validate_phospho(data, protocols=("combination",), models=("additive", "floor"), members=1)
    r = {(row["model"], row["cell_type"]): row for row in rep["table"]}
    for cell in data.cell_types:
        assert r[("floor", cell)]["pooled_r"] > r[("additive", cell)]["pooled_r"]
    json.dumps(rep)  # the report is plain JSON


LIB = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "drugs_liver.toml"


def test_screen_with_trained_models_has_intervals(tmp_path: Path) -> None:
    from tme_sim.screening.screen import build_screen, run_screen

    data = load_midas(write_synthetic_midas(tmp_path / "syn"))
    save_phospho(tmp_path / "s.npz", train_phospho(data, FloorConfig(members=3, steps=300)))
    common = {
        "model": "phospho",
        "artifact": "s.npz",
        "stimuli": ["L1"],
        "inhibitor_nodes": {"Xi": "MEK12", "Yi": "PI3K"},
        "death_outputs": {"r1": 1.0, "r2": 1.0},
    }
    cfg = {
        "library": str(LIB),
        "exposure": "30 min",
        "n_doses": 4,
        "synergy": ["bliss", "hsa"],
        "cell_types": [
            {"name": "tumor", "role": "tumor", "cell_type": "CanB", **common},
            {"name": "liver", "role": "healthy", "cell_type": "PriA", **common},
        ],
    }
    res = run_screen(build_screen(cfg, base=tmp_path), ["trametinib", "alpelisib"])
    pr = res.pairs[0]
    lo, hi = pr.ci["efficacy"]
    assert lo.shape == pr.efficacy.shape and (lo <= pr.efficacy + 1e-12).all() and (pr.efficacy <= hi + 1e-12).all()
    assert pr.efficacy.max() > 0.1  # the inhibitors act on the signature
    for m in ("bliss", "hsa"):
        a, b = pr.synergy_ci["tumor"][m]
        assert a <= b
    assert pr.window_support is not None and pr.window_support.shape == pr.window.shape
    bad = {**cfg, "cell_types": [{**cfg["cell_types"][0], "cell_type": "Nope"}]}
    with pytest.raises(Exception, match="cell_type: 'Nope' not in the surrogate"):
        build_screen(bad, base=tmp_path)


def test_boolean_bootstrap_is_paired_over_cells() -> None:
    from tme_sim.screening.screen import BooleanModel

    model = BooleanModel.__new__(BooleanModel)
    dead = np.zeros((3, 50), dtype=bool)
    dead[1, :25] = True
    dead[2, :] = True
    model._dead = dead
    reps = model.replicates(200, np.random.default_rng(0))
    assert reps.shape == (200, 3)
    assert (reps[:, 0] == 0).all() and (reps[:, 2] == 1).all()
    assert 0.3 < reps[:, 1].mean() < 0.7 and reps[:, 1].std() > 0.02


def test_phospho_intracellular_kind_turns_drug_levels_into_apoptosis(tmp_path: Path) -> None:
    from tme_sim.config.drugs import load_library
    from tme_sim.intracellular.base import Signals, intracellular_kind
    from tme_sim.intracellular.phospho import PhosphoIntracellularConfig

    data = load_midas(write_synthetic_midas(tmp_path / "syn"))
    save_phospho(tmp_path / "s.npz", train_phospho(data, FloorConfig(members=2, steps=300)))
    cls = intracellular_kind("phospho")
    assert cls is not None
    cfg = PhosphoIntracellularConfig(
        artifact="s.npz",
        cell_type="CanB",
        stimuli=["L1"],
        inhibitor_nodes={"Xi": "MEK12", "Yi": "PI3K"},
        signature={"r1": 1.0, "r2": 1.0},
        apoptosis_base="0.0001 1/min",
        apoptosis_max="0.002 1/min",
    )
    im = cls.from_config(cfg, tmp_path)
    lib = load_library(LIB)
    im.set_drug_effects(im.drug_effects_for([lib.drugs["trametinib"], lib.drugs["alpelisib"]]))
    assert im.required_signals() == ["trametinib", "alpelisib"]
    conc = np.array([[0.0, 0.0], [1.0, 0.0], [100.0, 100.0]])
    state = im.initial_state(3, np.random.default_rng(0))
    out = im.update(Signals(["trametinib", "alpelisib"], conc), state, 6.0, np.random.default_rng(0))
    apo = out["apoptosis_rate"]
    assert apo[0] == pytest.approx(0.0001) and apo[0] < apo[1] < apo[2] <= 0.002
    assert state[0, 0] == 0 and state[2, 0] > state[1, 0] > 0
    with pytest.raises(Exception, match="not among"):
        im.drug_effects_for([lib.drugs["tpca1"]])


def test_cli_bad_midas_folder_is_one_line_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "MD-x.csv").write_text("TR:a,TR:b\n1,0\n")
    for args in (
        ["train", "cv", "--data", str(tmp_path / "bad")],
        ["train", "--data", str(tmp_path / "bad"), "--out", str(tmp_path / "m.npz")],
    ):
        r = subprocess.run([sys.executable, "-m", "tme_sim", *args], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().startswith("error:") and "no DA:/DV: columns" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.npz").exists()


def test_liver_hcc_scenario_builds_and_drugs_act_through_the_surrogate() -> None:
    """The shipped liver scenario: both types run the trained surrogate; a constant plasma level of
    trametinib raises the tumor's signature loss above the hepatocytes' (TGFa context)."""
    from tme_sim.config import load_scenario
    from tme_sim.model import TMEModel

    path = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "liver_hcc.toml"
    sc = load_scenario(
        path,
        {
            "drugs.given.trametinib": '{ plasma = "30 nM" }',
            "drugs.given.alpelisib": '{ plasma = "0 nM" }',
            "vessels.density": "0.2",
        },
    )
    m = TMEModel(sc)
    assert {"tumor", "hepatocyte"} <= set(m.scenario.cell_types)
    m.run_for(60.0)
    loss = {}
    st = m.store
    for name in ("tumor", "hepatocyte"):
        t = m.type_names.index(name)
        assert m.intracellular[t].kind == "phospho"
        sel = np.flatnonzero((st.type[: st.n] == t) & (st.death[: st.n] == 0))
        loss[name] = float(np.mean(st.istate[t][st.istate_row[sel], 0]))
    assert loss["tumor"] > 0.2 > loss["hepatocyte"]
