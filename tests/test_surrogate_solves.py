"""How exact a signaling network's training solves are (FitResult.solves, train.SolveLog), and the
exact-solve recipe option (tight ``tol`` with warm starts)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tests.test_surrogate_train import synthetic
from tme_sim.training.cv import pooled_r
from tme_sim.training.train import TrainConfig, build_network, fit, load_train_toml, predict, train_summary


def _fit(**kw):
    ds, net = synthetic()
    cfg = TrainConfig(epochs=30, lr=0.03, threads=1, eval_every=5, patience=30, **kw)
    model = build_network(cfg, ds, net)
    res = fit(model, ds.inputs, ds.outputs, cfg)
    return res, pooled_r(predict(model, ds.inputs), ds.outputs)


def test_solve_log_counts_capped_solves():
    capped, _ = _fit(max_iter=5, tol=1e-12)  # 5 iterations never reach 1e-12
    assert capped.solves["steps"] == 30
    assert capped.solves["capped_forward_fraction"] == 1.0
    assert capped.solves["capped_backward_fraction"] == 1.0
    assert capped.solves["mean_forward_iterations"] == 5.0
    exact, _ = _fit(max_iter=2000, tol=1e-6)
    assert exact.solves["capped_forward_fraction"] == 0.0
    assert exact.solves["capped_backward_fraction"] == 0.0
    assert 5 < exact.solves["mean_forward_iterations"] < 2000
    assert "solves" in train_summary(TrainConfig(), exact)


def test_warm_started_exact_solves_cost_fewer_iterations_and_train_as_well():
    cold, r_cold = _fit(max_iter=2000, tol=1e-6)
    warm, r_warm = _fit(max_iter=2000, tol=1e-6, warm_start=True)
    its = lambda r: r.solves["mean_forward_iterations"] + r.solves["mean_backward_iterations"]  # noqa: E731
    assert its(warm) < its(cold)
    # the same fixed points and gradients up to tol: the same training, to float32 noise
    assert r_warm == pytest.approx(r_cold, abs=0.02)
    assert warm.train_loss == pytest.approx(cold.train_loss, rel=0.1)


def test_exact_graph_recipe_file_loads_with_its_settings():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    tf = load_train_toml(root / "benchmarks/recipes/ligand_screen_exact_graph.toml")
    t = tf.train
    assert (t.model, t.readout, t.warm_start, t.tol, t.epochs) == ("signaling", "graph", True, 1e-6, 1000)
    assert t.selection_note and "seed 9" in t.selection_note
