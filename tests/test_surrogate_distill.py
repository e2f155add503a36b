"""Distillation of the Boolean TNF cell-fate model into a surrogate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from tme_sim.training.distill import FATES, agreement, conditions, input_names

NETWORKS = Path(__file__).resolve().parents[1] / "tme_sim" / "scenarios" / "networks"
BND, CFG = NETWORKS / "tnf_cellfate.bnd", NETWORKS / "tnf_cellfate.cfg"


def test_agreement_metrics():
    ref = np.array([[0.9, 0.05, 0.05, 0.0], [0.5, 0.48, 0.02, 0.0], [0.1, 0.1, 0.8, 0.0]])
    pred = np.array([[0.8, 0.1, 0.1, 0.0], [0.45, 0.5, 0.05, 0.0], [0.1, 0.1, 0.8, 0.0]])
    a = agreement(pred, ref, trajectories=400)
    assert a["argmax_agreement"] == pytest.approx(2 / 3)
    assert a["n_decided"] == 2 and a["argmax_agreement_decided"] == 1.0  # row 2 is a coin toss
    assert a["within_0.1"] == pytest.approx(1.0) and a["within_0.05"] == pytest.approx(2 / 3)  # row 0 is 0.1 off


def test_conditions_cover_ligands_and_mutations():
    names = input_names(["TNF", "FASL", "CASP8", "RIP1", "cFLIP", "BCL2"])
    assert names == ["TNF", "FASL", "KO_CASP8", "KO_RIP1", "KO_cFLIP", "KO_BCL2", "KI_cFLIP", "KI_BCL2"]
    c = conditions(names)
    assert c.shape[1] == len(names)
    assert len(np.unique(c, axis=0)) == len(c)
    assert set(np.unique(c[:, 0])) == {0.0, 0.25, 0.5, 0.75, 1.0}
    assert not np.any((c[:, 4] == 1) & (c[:, 6] == 1))  # never KO and KI of the same node


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
    assert summary["surrogate_vs_engine"]["argmax_agreement"] >= 0.95  # the target


@pytest.mark.slow
@pytest.mark.skipif(not BND.is_file(), reason="TNF network not present")
def test_distilled_surrogate_agrees_with_engine(tmp_path):
    from tme_sim.intracellular.neural.artifact import load_artifact
    from tme_sim.training.distill import distill_tnf

    out = tmp_path / "tnf.pt"
    rep = distill_tnf(BND, CFG, out, trajectories=100, epochs=400, seed=3)
    s = rep["summary"]
    assert s["surrogate_vs_engine"]["argmax_agreement"] > 0.85
    assert s["surrogate_vs_engine"]["argmax_agreement_decided"] > 0.9
    sur = load_artifact(out, device="cpu")
    assert sur.output_names == list(FATES)
    assert (sur.model.hidden, sur.model.layers) == (s["network"]["hidden"], s["network"]["layers"])
    p = sur.predict(np.zeros((1, len(sur.input_names)), dtype=np.float32))
    assert p.sum() == pytest.approx(1.0, abs=1e-5)


def test_distill_command_passes_the_network_options(tmp_path):
    from typer.testing import CliRunner

    from tme_sim.cli.train import train_app
    from tme_sim.errors import ConfigError

    out = tmp_path / "tnf.pt"
    r = CliRunner().invoke(train_app, ["distill", "-o", str(out), "--hidden", "0", "-q"])
    assert isinstance(r.exception, ConfigError) and "hidden" in str(r.exception)
    r = CliRunner().invoke(train_app, ["distill", "-o", str(out), "--lr", "-1", "-q"])
    assert isinstance(r.exception, ConfigError) and "lr" in str(r.exception)
    assert not out.exists()


@pytest.mark.skipif(not BND.is_file(), reason="TNF network not present")
def test_cross_validation_uses_training_conditions_only(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import tme_sim.training.distill as distill
    import tme_sim.training.train as train
    from tme_sim.cli.train import train_app
    from tme_sim.errors import ConfigError

    seen: list[np.ndarray] = []
    orig = train.fit  # distill imports fit from tme_sim.training.train at call time

    def spy(model, x, y, cfg, **kw):
        seen.append(np.asarray(x))
        return orig(model, x, y, cfg, **kw)

    monkeypatch.setattr(train, "fit", spy)
    rows = distill.cross_validate(BND, CFG, [(4, 1), (3, 2)], folds=2, seeds=1, trajectories=20, epochs=5)
    assert [(r["hidden"], r["layers"]) for r in rows] == [(4, 1), (3, 2)]
    assert all(0.0 <= r["argmax_agreement"] <= 1.0 and r["mean_abs_error"] > 0 for r in rows)
    # every model was fitted on training conditions only: none of the held-out rows of distill_tnf
    _, _, conds, _, te, tr, _, _ = distill._fate_data(BND, CFG, 20, None, 0, 0.2)
    held = {row.tobytes() for row in conds[te]}
    assert len(seen) == 4 and all(len(x) < len(tr) for x in seen)
    assert not any(row.tobytes() in held for x in seen for row in x)  # conditions are unique rows
    r = CliRunner().invoke(train_app, ["distill", "--cv", "8by1"])
    assert isinstance(r.exception, ConfigError) and "HIDDENxLAYERS" in str(r.exception)
