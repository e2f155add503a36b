"""Honest CV: baselines beside every model, nested ridge selection, the recipe's CV in the artifact,
one torch thread by default, the signaling network's logit output link."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.test_surrogate_train import synthetic  # noqa: E402
from tme_sim.intracellular.neural.artifact import describe_artifact, load_artifact, save_artifact  # noqa: E402
from tme_sim.intracellular.neural.inference import FastSignaling  # noqa: E402
from tme_sim.intracellular.neural.networks import SignalingNetwork  # noqa: E402
from tme_sim.training.cv import (  # noqa: E402
    RIDGE_ALPHAS,
    cross_validate,
    format_table,
    recipe_cv_summary,
    select_ridge_alpha,
)
from tme_sim.training.data import Dataset  # noqa: E402
from tme_sim.training.train import TrainConfig, build_network, fit, predict, set_threads  # noqa: E402


def test_nested_ridge_alpha_follows_the_noise_level():
    rng = np.random.default_rng(0)
    x = rng.random((60, 8))
    coef = rng.standard_normal((8, 3))
    clean = x @ coef
    noisy = clean + 3.0 * rng.standard_normal(clean.shape)
    a_clean, a_noisy = select_ridge_alpha(x, clean), select_ridge_alpha(x, noisy)
    assert a_clean == min(RIDGE_ALPHAS) and a_noisy > a_clean


def test_cv_always_has_mean_and_ridge_rows_and_records_selection():
    ds, net = synthetic(40)
    cfg = TrainConfig(model="mlp", epochs=30, hidden=16, threads=1)
    rep = cross_validate(ds, net, {"mlp": cfg}, k=4, seeds=[0], scramble_seeds=0)
    rows = {r["model"]: r for r in rep.rows()}
    assert list(rows) == ["mean", "ridge", "mlp"]
    # the mean baseline predicts each output's training mean: no per-output signal across conditions
    assert rows["mean"]["pooled_r"] < rows["ridge"]["pooled_r"]
    alphas = [s["alpha"] for s in rep.models["ridge"].fold_settings]
    assert len(alphas) == 4 and set(alphas) <= set(RIDGE_ALPHAS)
    assert "nested CV" in rep.selection["ridge"] and "fixed in advance" in rep.selection["mlp"]
    assert rep.settings["mlp"]["epochs"] == 30
    assert "settings of ridge: nested CV" in format_table(rep)


def test_recipe_cv_summary_checks_data_and_settings():
    ds, net = synthetic(40)
    cfg = TrainConfig(model="mlp", epochs=30, hidden=16, threads=1)
    rep = cross_validate(ds, net, {"mlp": cfg}, k=4, seeds=[0], scramble_seeds=0)
    summ = recipe_cv_summary(rep, cfg.model_copy(update={"threads": 2, "seed": 5}), ds.sha256())
    assert summ["model"] == "mlp" and [r["model"] for r in summ["table"]] == ["mean", "ridge", "mlp"]
    with pytest.raises(ValueError, match="other data"):
        recipe_cv_summary(rep, cfg, "0" * 64)
    with pytest.raises(ValueError, match="differ from this recipe in: hidden"):
        recipe_cv_summary(rep, cfg.model_copy(update={"hidden": 32}), ds.sha256())
    with pytest.raises(ValueError, match="no row 'signaling'"):
        recipe_cv_summary(rep, TrainConfig(), ds.sha256())


def test_artifact_carries_and_prints_its_cv_table(tmp_path):
    ds, net = synthetic(40)
    cfg = TrainConfig(model="mlp", epochs=30, hidden=16, threads=1)
    rep = cross_validate(ds, net, {"mlp": cfg}, k=4, seeds=[0], scramble_seeds=0)
    m = build_network(cfg, ds, net)
    fit(m, ds.inputs, ds.outputs, cfg)
    p = save_artifact(
        tmp_path / "m.pt",
        m,
        input_names=ds.input_names,
        output_names=ds.output_names,
        data_sha256=ds.sha256(),
        training={"command": "tme train x", "cv": recipe_cv_summary(rep, cfg, ds.sha256())},
    )
    text = describe_artifact(p)
    assert "data sha256 matches: yes" in text and "trained with: tme train x" in text
    for row in ("mean", "ridge", "mlp"):
        assert f"    {row} " in text
    save_artifact(
        tmp_path / "n.pt", m, input_names=ds.input_names, output_names=ds.output_names, data_sha256=ds.sha256()
    )
    assert "none recorded" in describe_artifact(tmp_path / "n.pt")


def test_one_torch_thread_by_default():
    prev = torch.get_num_threads()
    try:
        assert set_threads(None) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(prev)


def test_logit_output_link_trains_saves_and_runs_fast(tmp_path):
    ds, net = synthetic(40)
    y = 1.0 / (1.0 + np.exp(-4.0 * (ds.outputs - ds.outputs.mean(0))))  # activities in (0, 1)
    ds = Dataset(ds.inputs, y.astype(np.float32), ds.input_names, ds.output_names, ds.condition_names)
    cfg = TrainConfig(epochs=60, lr=0.03, threads=1, max_iter=100, eval_every=5, output_link="logit")
    m = build_network(cfg, ds, net)
    assert isinstance(m, SignalingNetwork) and m.config()["output_link"] == "logit"
    res = fit(m, ds.inputs, ds.outputs, cfg)
    assert res.train_loss < res.history[0]["train_loss"]
    p = predict(m, ds.inputs)
    assert p.min() > 0 and p.max() < 1
    np.testing.assert_allclose(FastSignaling(m)(ds.inputs), p, atol=2e-3)
    path = save_artifact(
        tmp_path / "s.pt",
        m,
        input_names=ds.input_names,
        output_names=ds.output_names,
        data_sha256=ds.sha256(),
    )
    s = load_artifact(path, device="cpu")
    np.testing.assert_allclose(s.predict(ds.inputs, fast=False), p, atol=1e-6)
    assert json.dumps(s.meta["model_config"]["output_link"]) == '"logit"'


def test_cli_ships_the_recipes_cv_table_and_refuses_another_recipes(tmp_path):
    from typer.testing import CliRunner

    from tests.test_surrogate_cli import csv_data
    from tme_sim.cli.main import app
    from tme_sim.cli.train import train_app

    data = csv_data(tmp_path / "d.csv", n=24)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[data]\npath = "{data}"\n[train]\nmodel = "mlp"\nlr = 0.003\nepochs = 20\npatience = 20\n')
    cv_dir = tmp_path / "cv"
    args = ["cv", "--config", str(recipe), "--data", str(data), "--models", "mlp", "--mlp-epochs", "20"]
    r = CliRunner().invoke(train_app, [*args, "--folds", "3", "--seeds", "0", "--out-dir", str(cv_dir), "-q"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[2].startswith("mean") and "settings of ridge: nested CV" in r.output
    report = json.loads((cv_dir / "cv_report.json").read_text())
    assert report["command"].startswith("tme train cv") and report["selection"]["mlp"].startswith("fixed")
    out = tmp_path / "m.pt"
    ok = ["--config", str(recipe), "--out", str(out), "-q", "--cv-report", str(cv_dir / "cv_report.json")]
    r = CliRunner().invoke(train_app, ok)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["info", str(out)])
    assert r.exit_code == 0 and "cross-validation of this recipe (kfold protocol" in r.output, r.output
    assert "    mlp " in r.output and "    ridge " in r.output
    r = CliRunner().invoke(train_app, [*ok, "--force", "--epochs", "30"])
    assert r.exit_code != 0 and "differ from this recipe in: epochs" in str(r.exception), r.output


def test_selection_statement_says_when_settings_were_not_fixed_in_advance():
    from tme_sim.training.cv import selection_statement

    assert selection_statement("signaling", TrainConfig()).startswith("fixed in advance")
    note = "lr chosen on fold 0 of seed 0"
    assert selection_statement("signaling", TrainConfig(selection_note=note)).endswith(note)
    assert selection_statement("mean", None).startswith("no settings")


def test_mlp_baseline_does_not_inherit_the_recipes_selection_note(tmp_path):
    from typer.testing import CliRunner

    from tests.test_surrogate_cli import csv_data
    from tme_sim.cli.train import train_app

    data = csv_data(tmp_path / "d.csv", n=24)
    recipe = tmp_path / "r.toml"
    recipe.write_text('[data]\npath = "x"\n[train]\nmodel = "signaling"\nselection_note = "tuned on fold 0"\n')
    args = ["cv", "--config", str(recipe), "--data", str(data), "--models", "mlp", "--mlp-epochs", "10"]
    r = CliRunner().invoke(train_app, [*args, "--folds", "3", "--seeds", "0", "--out-dir", str(tmp_path), "-q"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "cv_report.json").read_text())
    assert report["selection"]["mlp"].startswith("fixed in advance")


def test_mlp_baseline_settings_do_not_depend_on_the_recipe():
    from tme_sim.cli.train import mlp_baseline_config
    from tme_sim.training.train import TrainConfig

    plain = mlp_baseline_config(TrainConfig(model="signaling"), 300)
    tuned = TrainConfig(model="signaling", val_fraction=0.2, l2=1e-2, lr=0.05, seed=4, selection_note="tuned")
    baseline = mlp_baseline_config(tuned, 300, threads=2)
    assert baseline.val_fraction == 0.0 and baseline.l2 == plain.l2 and baseline.selection_note is None
    assert (baseline.model, baseline.lr, baseline.epochs, baseline.patience) == ("mlp", 3e-3, 300, 300)
    assert baseline.seed == 4 and baseline.threads == 2
    assert baseline.model_dump(exclude={"seed", "threads"}) == plain.model_dump(exclude={"seed", "threads"})


def test_merge_refuses_reports_of_other_recipes():
    from tme_sim.training.cv import CVReport, merge_reports

    def rep(seed: int, epochs: int) -> CVReport:
        return CVReport(5, [seed], 10, [], {}, 1, "x", settings={"signaling": {"epochs": epochs}})

    assert merge_reports([rep(0, 5), rep(1, 5)]).seeds == [0, 1]
    with pytest.raises(ValueError, match="settings"):
        merge_reports([rep(0, 5), rep(1, 6)])
