"""Viability data (drug dose × cell line), its cross-validation on whole held-out lines, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from tme_sim.errors import DataError
from tme_sim.training.drug_synthetic import offtarget_recovery, planted_offtarget_data
from tme_sim.training.viability import VIABILITY_FILES, detect_kind, load_viability
from tme_sim.training.viability_cv import cross_validate_viability

VIAB = SHARED_DATA / "lembas-viability"
needs_data = pytest.mark.skipif(
    not (VIAB / "viability.tsv").is_file(),
    reason=f"viability data not found at {VIAB} (set TME_SHARED_DATA to the shared data folder)",
)


def write_small_viability(folder, n_lines: int = 12, seed: int = 0, names: dict[str, str] | None = None) -> None:
    """A small viability folder in the LEMBAS format: 2 drugs × 4 doses × ``n_lines`` lines whose
    sensitivity to drug A follows gene G1's expression."""
    rng = np.random.default_rng(seed)
    nm = {**VIABILITY_FILES, **(names or {})}
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"L{i}" for i in range(n_lines)]
    genes = ["G1", "G2", "G3", "G4"]
    expr = rng.normal(size=(len(genes), n_lines))
    rows, drug_rows, line_rows, via, folds = [], [], [], [], []
    for li in range(n_lines):
        for d in range(2):
            for x in (0.5, 1.5, 2.5, 3.5):
                c = 10**x - 1
                sens = 1 / (1 + np.exp(-2 * expr[0, li])) if d == 0 else 0.3
                v = 1 - sens * c / (c + 100) + 0.02 * rng.normal()
                rows.append(f"C_{len(rows) + 1}")
                drug_rows.append([x if d == 0 else 0, x if d == 1 else 0])
                line_rows.append([1 if j == li else 0 for j in range(n_lines)])
                via.append(v)
                folds.append(li % 3 + 1)

    def tsv(name, header, index, values):
        with open(folder / nm[name], "w") as fh:
            fh.write("\t".join(header) + "\n")
            for i, r in zip(index, values, strict=True):
                fh.write("\t".join([str(i), *(f"{v:g}" for v in r)]) + "\n")

    tsv("viability", ["Row", "viability"], rows, [[v] for v in via])
    tsv("drugs", ["Row", "A", "B"], rows, drug_rows)
    tsv("cell_lines", ["Row", *lines], rows, line_rows)
    tsv("folds", ["Row", "testfold"], rows, [[f] for f in folds])
    tsv("expression", ["", *lines], genes, expr)
    tsv("mutations", ["Row", *lines], ["MUT_MutAA[V600E]-BRAF"], [[i % 2 for i in range(n_lines)]])
    (folder / nm["drug_targets"]).write_text("source\ttarget\tinhibition\nA\tP1\t1\nB\tP2\t1\n")
    (folder / nm["readouts"]).write_text("source\ttarget\tstimulation\tinhibition\nP3\tviability\t1\t0\n")
    (folder / nm["network"]).write_text(
        "source\ttarget\tstimulation\tinhibition\nP1\tP3\t1\t0\nP2\tP3\t1\t0\nP4\tP1\t1\t0\n"
    )
    (folder / nm["annotation"]).write_text("code\tname\nP1\tG1\nP2\tG2\nP3\tG3\nP4\tG4\n")
    if names:
        files = "\n".join(f'{k} = "{v}"' for k, v in names.items())
        (folder / "dataset.toml").write_text(f"[files]\n{files}\n")


def test_small_folder_loads_and_is_detected(tmp_path):
    write_small_viability(tmp_path / "v")
    assert detect_kind(tmp_path / "v") == "viability"
    assert detect_kind(tmp_path) is None
    d = load_viability(tmp_path / "v")
    assert d.n == 12 * 8 and d.drug_names == ["A", "B"] and len(d.line_names) == 12
    np.testing.assert_allclose(d.conc.max(), 10**3.5 - 1)
    assert ("A", "P1") in d.targets and d.readouts == [("P3", "viability", 1)]
    assert set(np.unique(d.folds)) == {1, 2, 3}


def test_file_names_from_dataset_toml(tmp_path):
    write_small_viability(tmp_path / "v", names={"viability": "resp.tsv", "drugs": "doses.tsv"})
    assert detect_kind(tmp_path / "v") == "viability"
    assert load_viability(tmp_path / "v").n == 96


def test_bad_viability_file_is_one_line_error(tmp_path):
    write_small_viability(tmp_path / "v")
    p = tmp_path / "v" / "viability.tsv"
    p.write_text(p.read_text().replace("\t", "\tx", 1).replace("viability", "viability", 1), encoding="utf8")
    lines = p.read_text().splitlines()
    lines[3] = lines[3].split("\t")[0] + "\tnot-a-number"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="not a finite number"):
        load_viability(tmp_path / "v")


@pytest.mark.parametrize("centered", [True, False])
def test_cv_on_small_folder_beats_drug_dose_mean(tmp_path, centered):
    write_small_viability(tmp_path / "v", n_lines=15)
    from tme_sim.training.viability_cv import DEFAULT_MODELS, MODELS, viability_config

    assert "drug-target boosted" in MODELS and "drug-target boosted" not in DEFAULT_MODELS  # opt-in
    cfg = viability_config(epochs=300, members=2, centered=centered, refit_full=centered)
    rep = cross_validate_viability(load_viability(tmp_path / "v"), cfg, models=MODELS)
    js = rep.to_json()
    rows = {r["model"]: r for r in js["table"]}
    assert set(rows) == {
        "drug-dose mean",
        "ridge",
        "dose-shape ridge",
        "drug-target",
        "drug-target stack",
        "drug-target boosted",
    }
    for key in ("pooled_r", "median_r", "scrambled_r", "seconds_per_fold", "cpu_seconds_per_fold", "specific_r"):
        assert key in rows["ridge"]
    # sensitivity follows gene G1: the omics models explain line-specific variation
    for m in ("drug-target", "dose-shape ridge", "drug-target stack", "drug-target boosted"):
        assert rows[m]["specific_r"] > 0.5, m
        assert rows[m]["pooled_r"] > rows["drug-dose mean"]["pooled_r"], m
    assert 0 <= rows["drug-target"]["coverage_90"] <= 1
    assert 0.5 <= rows["drug-target stack"]["coverage_90"] <= 1  # split-conformal from out-of-fold residuals
    # every setting compared is recorded with how it was chosen
    ch = js["config"]["choices"]
    assert set(ch["stack_weight"]) == {"1", "2", "3"} and all(0 <= w <= 1 for w in ch["stack_weight"].values())
    assert set(ch["l2_omics"].values()) <= {1e-3, 1e-2}
    assert set(ch["boost_weight"]) == {"1", "2", "3"} and all(0 <= v <= 1 for v in ch["boost_weight"].values())
    assert "stack weight" in js["config"]["how_chosen"]["nested (per fold, training lines only)"]
    # each network model against the linear one, paired over the 15 held-out lines
    pa = js["paired"]
    assert set(pa) == {f"{m} vs dose-shape ridge" for m in ("drug-target", "drug-target stack", "drug-target boosted")}
    for d in pa.values():
        assert d["n_lines"] == 15 and 0 <= d["lines_a_better"] <= 15 and len(d["per_fold"]) == 3
        lo, hi = d["delta_pooled_r_ci95"]
        assert lo <= hi


@pytest.mark.parametrize("centered", [True, False])
def test_recipe_never_sees_the_held_out_measurements(tmp_path, centered):
    """Nested choices: scrambling the held-out lines' viability changes none of the fold's predictions
    (dose-shape ridge settings, drug-target L2, mean curve and out-of-bag predictions, stack weight)."""
    from tme_sim.training.viability_boost import boosted_predict
    from tme_sim.training.viability_cv import drug_target_features, drug_target_predict, model_genes, viability_config
    from tme_sim.training.viability_stack import blend_weight, dose_shape_ridge

    write_small_viability(tmp_path / "v", n_lines=12)
    d = load_viability(tmp_path / "v")
    te = d.folds == 1
    cfg = viability_config(epochs=60, members=2, centered=centered, refit_full=centered)

    def fold_prediction(data):
        sp, soof, ch = dose_shape_ridge(data, ~te, te, model_genes(data))
        dt = drug_target_predict(data, ~te, te, cfg)
        w = blend_weight(data.y[~te], dt.oob, soof)
        feats = drug_target_features(data, np.unique(data.line[~te]))
        bo = boosted_predict(data, ~te, te, cfg, feats, sp, soof, centered=centered)
        return w * dt.mean + (1 - w) * sp, bo.mean, ch, dt.l2_omics, bo.weight

    a = fold_prediction(d)
    d.y[te] = np.random.default_rng(1).permutation(d.y[te]) + 0.3
    b = fold_prediction(d)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-6)
    assert a[2:] == b[2:]


def test_blend_weight_and_dose_shape_ridge_recover_known_structure(tmp_path):
    from tme_sim.training.viability_cv import model_genes
    from tme_sim.training.viability_stack import blend_weight, dose_shape_ridge

    rng = np.random.default_rng(0)
    y, a, b = rng.normal(size=200), rng.normal(size=200), rng.normal(size=200)
    assert blend_weight(0.3 * a + 0.7 * b, a, b) == pytest.approx(0.3)
    assert blend_weight(a, a, b) == pytest.approx(1.0) and blend_weight(b, a, b) == pytest.approx(0.0)
    a[:50] = np.nan  # rows without an out-of-fold prediction are ignored
    assert blend_weight(0.3 * np.nan_to_num(a) + 0.7 * b, a, b) == pytest.approx(0.3)
    assert 0.0 <= blend_weight(y, a, b) <= 1.0
    # the small folder: drug A's sensitivity follows gene G1 along one dose shape
    write_small_viability(tmp_path / "v", n_lines=30)
    d = load_viability(tmp_path / "v")
    te = d.folds == 1
    pred, oof, choice = dose_shape_ridge(d, ~te, te, model_genes(d))
    assert pred.shape == (te.sum(),) and oof.shape == ((~te).sum(),) and np.isfinite(oof).all()
    a_rows = d.dose[te].argmax(1) == 0
    assert np.corrcoef(pred[a_rows], d.y[te][a_rows])[0, 1] > 0.9
    assert set(choice) == {"A", "B"} and choice["A"]["rank"] in (0, 1, 2)


def test_mean_curve_correction_restores_the_drug_dose_means(tmp_path):
    from tme_sim.training.viability_cv import drug_dose_means
    from tme_sim.training.viability_stack import MeanCurveCorrection

    write_small_viability(tmp_path / "v", n_lines=12)
    d = load_viability(tmp_path / "v")
    tr = d.folds != 1
    pred = 0.5 + 0.1 * d.dose.max(1)  # a model whose mean curve is wrong
    corr = MeanCurveCorrection().fit(d, tr, pred)
    fixed = pred + corr.offset(d)
    key = d.drug_dose_key()
    np.testing.assert_allclose(drug_dose_means(key, fixed, tr), drug_dose_means(key, d.y, tr), atol=1e-12)
    back = MeanCurveCorrection.from_state_dict(corr.state_dict())
    np.testing.assert_allclose(back.offset(d), corr.offset(d))


def test_cli_cv_writes_report(tmp_path):
    write_small_viability(tmp_path / "v", n_lines=9)
    out = tmp_path / "cv"
    # few epochs: this tests the command, not the model
    cmd = ["train", "cv", "--data", str(tmp_path / "v"), "--out-dir", str(out), "--epochs", "20", "-q"]
    r = subprocess.run([sys.executable, "-m", "tme_sim", *cmd], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "cv_report.json").read_text())
    assert rep["kind"] == "viability"
    assert [row["model"] for row in rep["table"]] == [
        "drug-dose mean",
        "ridge",
        "dose-shape ridge",
        "drug-target",
        "drug-target stack",
    ]
    assert "line-specific r" in r.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "tme_sim", *cmd, "--models", "ridge,nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope" in bad.stderr
    model = tmp_path / "m.pt"
    cmd = ["train", "--data", str(tmp_path / "v"), "--out", str(model), "--cv-report", str(out / "cv_report.json")]
    r = subprocess.run([sys.executable, "-m", "tme_sim", *cmd, "--epochs", "20", "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "tme_sim", "info", str(model)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "cross-validation (held-out cell lines)" in r.stdout and "drug-target" in r.stdout
    # the same command refuses to overwrite, with one error line
    r = subprocess.run([sys.executable, "-m", "tme_sim", *cmd, "-q"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "exists" in r.stderr


@pytest.mark.parametrize("centered", [True, False])
def test_artifact_predicts_like_the_trained_ensemble(tmp_path, centered):
    from tme_sim.training.viability_cv import viability_config
    from tme_sim.training.viability_train import load_drug_artifact, predict_viability, train_viability

    write_small_viability(tmp_path / "v", n_lines=9)
    d = load_viability(tmp_path / "v")
    fake_report = {"data_sha256": d.sha256(), "table": [], "config": {"n_components": 20}}
    cfg = viability_config(epochs=200, members=2, centered=centered, refit_full=centered)
    summary = train_viability(d, tmp_path / "m.pt", cfg, cv_report=fake_report)
    art = load_drug_artifact(tmp_path / "m.pt")
    mean, (lo, hi) = predict_viability(art, d)
    assert np.corrcoef(mean, d.y)[0, 1] == pytest.approx(summary["fit_pooled_r"], abs=1e-5)
    assert np.all(lo <= mean + 1e-9) and np.all(mean <= hi + 1e-9)
    assert np.isfinite(hi).all() and np.mean((d.y >= lo) & (d.y <= hi)) >= 0.8  # conformal 90 % interval
    assert 0.0 <= art["stack_weight"] <= 1.0 and set(art["interval_halfwidth"]) == {"A", "B"}
    with pytest.raises(DataError, match="other data"):
        train_viability(d, tmp_path / "m2.pt", cv_report={**fake_report, "data_sha256": "0"})


@needs_data
def test_published_scores_and_baseline_reproduced():
    d = load_viability(VIAB)
    assert d.n == 6626 and len(d.line_names) == 120 and len(d.drug_names) == 7
    rep = cross_validate_viability(d, models=("drug-dose mean",))
    rows = {r["model"]: r for r in rep.rows()}
    # the README's figures, recomputed by this code from the published predictions
    assert rows["published (LEMBAS)"]["pooled_r"] == pytest.approx(0.691, abs=0.002)
    assert rows["published (LEMBAS)"]["specific_r"] == pytest.approx(0.425, abs=0.002)
    assert rows["drug-dose mean"]["pooled_r"] == pytest.approx(0.63, abs=0.01)


def test_planted_offtargets_rank_top5():
    """Synthetic data from a known layered network with one planted off-target per drug: given only the
    known targets, the planted interaction ranks in the drug's top 5 for >= 80 % of drugs (generator
    seeds 3-5; the settings were chosen on seeds 0-2)."""
    ranks = []
    for seed in (3, 4, 5):
        ranks += offtarget_recovery(planted_offtarget_data(seed))
    assert np.mean(np.array(ranks) <= 5) >= 0.8, ranks


def test_centered_recipe_falls_back_on_combinations(tmp_path):
    """The centered model's mean curve is per drug × dose: a data set with combinations of drugs is
    fitted uncentered (the network then carries the combined effect)."""
    from tme_sim.training.viability_cv import fit_drug_target, single_drug_conditions, viability_config

    write_small_viability(tmp_path / "v", n_lines=9)
    d = load_viability(tmp_path / "v")
    cfg = viability_config(epochs=20, members=1)
    assert single_drug_conditions(d)
    ens = fit_drug_target(d, d.folds != 1, cfg)[0]
    assert ens.cfg.centered and ens.members[0].cfg.centered
    d.conc[0] = d.conc[0].max()  # one condition with both drugs
    assert not single_drug_conditions(d)
    ens = fit_drug_target(d, d.folds != 1, cfg)[0]
    assert not ens.cfg.centered and not ens.members[0].cfg.centered


def test_paired_over_lines_sees_a_real_gain_and_no_gain():
    """A model closer to the measurement on every line is better on all of them with a small p and an
    interval above 0; a model identical to the baseline shows no difference."""
    from tme_sim.training.viability_paired import paired_over_lines

    rng = np.random.default_rng(0)
    line = np.repeat(np.arange(40), 20)
    fold = line % 4 + 1
    base = np.tile(np.linspace(1.0, 0.3, 20), 40)
    y = base + rng.normal(0, 0.1, 40)[line] + rng.normal(0, 0.05, len(line))
    good = y + rng.normal(0, 0.02, len(line))
    poor = base + rng.normal(0, 0.1, len(line))
    d = paired_over_lines(y, good, poor, base, line, fold, n_boot=500)
    assert d["lines_a_better"] == 40 and d["wilcoxon_p"] < 1e-6
    assert d["delta_pooled_r_ci95"][0] > 0 and d["delta_specific_r_ci95"][0] > 0
    assert [r["fold"] for r in d["per_fold"]] == [1, 2, 3, 4] and all(r["n_lines"] == 10 for r in d["per_fold"])
    same = paired_over_lines(y, poor, poor, base, line, fold, n_boot=100)
    assert same["lines_a_better"] == 0 and same["delta_pooled_r"] == 0.0
    assert same["delta_pooled_r_ci95"] == [0.0, 0.0]


def test_boost_shrinkage_weight():
    from tme_sim.training.viability_boost import shrinkage_weight

    rng = np.random.default_rng(1)
    p = rng.normal(size=300)
    assert shrinkage_weight(0.4 * p, p) == pytest.approx(0.4)
    assert shrinkage_weight(-p, p) == 0.0 and shrinkage_weight(3 * p, p) == 1.0  # clipped to [0, 1]
    p[:100] = np.nan  # rows without an out-of-bag prediction are ignored
    assert shrinkage_weight(0.4 * np.nan_to_num(p), p) == pytest.approx(0.4)
    assert shrinkage_weight(p, np.zeros(300)) == 0.0
