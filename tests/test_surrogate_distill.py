"""Distillation of the Boolean TNF cell-fate model into a surrogate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tme_sim.training.distill import BAND, FATES, TEST_LEVELS, agreement, design, input_names, mutation_sets

NETWORKS = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "networks"
BND, CFG = NETWORKS / "tnf_cellfate.bnd", NETWORKS / "tnf_cellfate.cfg"


def test_agreement_metrics():
    ref = np.array([[0.9, 0.05, 0.05, 0.0], [0.5, 0.48, 0.02, 0.0], [0.1, 0.1, 0.8, 0.0]])
    pred = np.array([[0.8, 0.1, 0.1, 0.0], [0.45, 0.5, 0.05, 0.0], [0.1, 0.1, 0.8, 0.0]])
    a = agreement(pred, ref, trajectories=400)
    assert a["argmax_agreement"] == pytest.approx(2 / 3)
    assert a["n_decided"] == 2 and a["argmax_agreement_decided"] == 1.0  # row 2 is a coin toss
    assert a["within_0.1"] == pytest.approx(1.0) and a["within_0.05"] == pytest.approx(2 / 3)  # row 0 is 0.1 off


def test_design_holds_out_levels_and_mutation_sets():
    names = input_names(["TNF", "FASL", "CASP8", "RIP1", "cFLIP", "BCL2", "NFkB"])
    assert names[:2] == ["TNF", "FASL"] and len(names) == 2 + 5 + 3 and names[-3:] == ["KI_cFLIP", "KI_BCL2", "KI_NFkB"]
    sets = mutation_sets(names)
    for s in sets:
        assert not ({m[3:] for m in s if m.startswith("KO_")} & {m[3:] for m in s if m.startswith("KI_")})
    d = design(names, seed=0, n_train=800, n_test=300)
    assert d.train.shape == (800, len(names)) and d.test.shape == (300, len(names))
    assert ((d.train >= 0) & (d.train <= 1)).all() and ((d.test >= 0) & (d.test <= 1)).all()
    # no training level within BAND of a held-out level (ligands and fractional flags alike)
    gap = np.abs(d.train[..., None] - np.asarray(TEST_LEVELS)[None, None, :]).min(-1)
    assert (gap > BAND - 1e-6).all()
    assert (np.isclose(d.train[:, 0], 0.5, atol=0.2)).any()  # fractional levels are trained on

    def mset(row):
        return tuple(n for n, v in zip(names, row, strict=True) if n.startswith(("KO_", "KI_")) and v > 0)

    held = set(d.held_out_sets)
    assert held and not any(mset(r) in held for r in d.train)
    lev = d.test[d.group == "levels"]
    assert all(mset(r) not in held for r in lev)
    assert all(np.isin(r, np.asarray(TEST_LEVELS, dtype=np.float32)).any() for r in lev)
    assert all(mset(r) in held for r in d.test[d.group != "levels"])
    d2 = design(names, seed=0, n_train=800, n_test=300)
    assert np.array_equal(d.train, d2.train) and np.array_equal(d.test, d2.test)


@pytest.mark.parametrize(
    ("key", "value"), [("hidden", 0), ("layers", 0), ("epochs", 0), ("trajectories", 0), ("lr", 0.0)]
)
def test_bad_distill_settings_are_one_line_errors(tmp_path, key, value):
    from tme_sim.errors import ConfigError
    from tme_sim.training.distill import distill_tnf

    with pytest.raises(ConfigError, match=f"distill: {key} must be"):
        distill_tnf(BND, CFG, tmp_path / "x.pt", **{key: value})
    assert not (tmp_path / "x.pt").exists()


def test_shipped_artifact_matches_its_report():
    """The shipped .pt carries the summary written to the .json beside it (same command, same run)."""
    import json

    from tme_sim.intracellular.neural.artifact import load_artifact

    pt = NETWORKS.parent / "models" / "tnf_fate_surrogate.pt"
    sur = load_artifact(pt, device="cpu")
    summary = sur.meta["training"]["summary"]
    assert summary == json.loads(pt.with_suffix(".json").read_text())
    net = summary["network"]
    assert (sur.model.hidden, sur.model.layers) == (net["hidden"], net["layers"])
    for group in ("all", "levels", "combos", "both"):  # the target, on every held-out group
        assert summary["surrogate_vs_engine"][group]["argmax_agreement"] >= 0.95, group


@pytest.mark.slow
@pytest.mark.skipif(not BND.is_file(), reason="TNF network not present")
def test_shipped_artifact_is_the_scored_model():
    """Re-simulating the held-out conditions from the recipe stored in the shipped file and scoring
    that file gives the stored numbers: the report is the shipped model's own."""
    from tme_sim.intracellular.neural.artifact import load_artifact
    from tme_sim.training.distill import evaluate_artifact

    pt = NETWORKS.parent / "models" / "tnf_fate_surrogate.pt"
    stored = load_artifact(pt, device="cpu").meta["training"]["summary"]["surrogate_vs_engine"]
    again = evaluate_artifact(pt, BND, CFG)
    for group, a in stored.items():
        assert again[group]["argmax_agreement"] == pytest.approx(a["argmax_agreement"], abs=1e-9)
        assert again[group]["mean_abs_error"] == pytest.approx(a["mean_abs_error"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(not BND.is_file(), reason="TNF network not present")
def test_distilled_surrogate_agrees_with_engine(tmp_path):
    from tme_sim.intracellular.neural.artifact import load_artifact
    from tme_sim.training.distill import distill_tnf, evaluate_artifact

    out = tmp_path / "tnf.pt"
    rep = distill_tnf(BND, CFG, out, trajectories=100, epochs=400, seed=3, n_train=600, n_test=150)
    s = rep["summary"]
    assert s["surrogate_vs_engine"]["all"]["argmax_agreement"] > 0.8
    assert set(s["surrogate_vs_engine"]) == {"all", "levels", "combos", "both"}
    sur = load_artifact(out, device="cpu")
    assert sur.output_names == list(FATES)
    assert (sur.model.hidden, sur.model.layers) == (s["network"]["hidden"], s["network"]["layers"])
    p = sur.predict(np.zeros((1, len(sur.input_names)), dtype=np.float32))
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    again = evaluate_artifact(out, BND, CFG)  # the saved file is the scored model
    assert again["all"]["argmax_agreement"] == pytest.approx(s["surrogate_vs_engine"]["all"]["argmax_agreement"])


@pytest.mark.skipif(not BND.is_file(), reason="TNF network not present")
def test_distill_command_prints_held_out_groups(tmp_path):
    from typer.testing import CliRunner

    from tme_sim.cli.train import train_app

    out = tmp_path / "t.pt"
    args = ["distill", "--out", str(out), "--trajectories", "20", "--train-conditions", "60"]
    args += ["--test-conditions", "30", "--epochs", "20", "--hidden", "4", "--layers", "1", "-q"]
    r = CliRunner().invoke(train_app, args)
    assert r.exit_code == 0, r.output
    for group in ("all", "levels", "combos", "both"):
        assert any(line.startswith(group) for line in r.output.splitlines()), group
    assert out.is_file() and out.with_suffix(".json").is_file()
