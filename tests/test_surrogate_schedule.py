"""Opt-in optimisation options of the signaling network (issue #17): one-cycle LR schedule,
mini-batches (every condition once per epoch, per-condition warm starts), Adam resets, L2 toward
the prior (initial) weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.test_surrogate_train import synthetic
from tme_sim.training.train import TrainConfig, batches, build_network, fit, one_cycle_lr


def test_one_cycle_lr_values_at_given_steps():
    cfg = TrainConfig(lr_schedule="one_cycle", lr=0.01, one_cycle_peak=0.1, one_cycle_floor=0.01)
    total = 1000  # peak at step 100, back at the floor at step 950
    lo = 1e-4
    assert one_cycle_lr(0, total, cfg) == pytest.approx(lo)
    assert one_cycle_lr(50, total, cfg) == pytest.approx((lo + 0.01) / 2)
    assert one_cycle_lr(100, total, cfg) == pytest.approx(0.01)
    assert one_cycle_lr(525, total, cfg) == pytest.approx((lo + 0.01) / 2)
    t = (700 - 100) / 850
    assert one_cycle_lr(700, total, cfg) == pytest.approx(lo + (0.01 - lo) * 0.5 * (1 + math.cos(math.pi * t)))
    assert one_cycle_lr(950, total, cfg) == pytest.approx(lo)
    assert one_cycle_lr(999, total, cfg) == pytest.approx(lo)
    lrs = [one_cycle_lr(s, total, cfg) for s in range(total)]
    assert np.all(np.diff(lrs[:101]) > 0) and np.all(np.diff(lrs[100:951]) < 0)


def test_batches_cover_every_condition_once_per_epoch():
    order = np.random.default_rng(3).permutation(23)
    parts = batches(order, 5)
    assert [len(p) for p in parts] == [5, 5, 5, 5, 3]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(23))


def test_fit_mini_batches_visit_every_condition_once_per_epoch():
    ds, net = synthetic(n_cond=23)
    x = ds.inputs * np.random.default_rng(0).uniform(0.5, 1.0, ds.inputs.shape).astype(np.float32)
    x[:, 0] = np.linspace(0.01, 0.99, len(x))  # every row distinct
    cfg = TrainConfig(epochs=3, lr=0.01, threads=1, max_iter=60, batch_size=5, lr_schedule="one_cycle")
    model = build_network(cfg, ds, net)
    seen: list[np.ndarray] = []
    solve = model.steady_state

    def recording(u: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            seen.append(u[:, 0].detach().numpy().copy())
        return solve(u)

    model.steady_state = recording  # type: ignore[method-assign]
    fit(model, x, ds.outputs, cfg)
    assert len(seen) == 3 * 5  # 5 batches per epoch (5, 5, 5, 5, 3)
    for e in range(3):
        rows = np.sort(np.concatenate(seen[5 * e : 5 * e + 5]))
        assert np.allclose(rows, np.sort(x[:, 0]), atol=1e-6)


def test_mini_batch_warm_starts_cut_iterations_and_keep_the_fit():
    ds, net = synthetic()
    base = dict(epochs=6, lr=0.01, threads=1, max_iter=300, tol=1e-7, batch_size=8)
    out = {}
    for warm in (False, True):
        cfg = TrainConfig(**base, warm_start=warm)
        model = build_network(cfg, ds, net)
        out[warm] = (fit(model, ds.inputs, ds.outputs, cfg), model.edge_weight.detach().clone())
    cold, warm = out[False][0], out[True][0]
    assert warm.solves["mean_forward_iterations"] < 0.8 * cold.solves["mean_forward_iterations"]
    assert warm.train_loss == pytest.approx(cold.train_loss, rel=0.05)
    assert torch.allclose(out[True][1], out[False][1], atol=5e-3)


def test_prior_l2_keeps_edge_weights_near_their_initial_values():
    ds, net = synthetic()
    moved = {}
    for pl2 in (0.0, 100.0):
        cfg = TrainConfig(epochs=40, lr=0.03, threads=1, max_iter=100, prior_l2=pl2)
        model = build_network(cfg, ds, net)
        w0 = model.edge_weight.detach().clone()
        fit(model, ds.inputs, ds.outputs, cfg)
        moved[pl2] = float((model.edge_weight.detach() - w0).abs().mean())
    assert moved[100.0] < 0.2 * moved[0.0]


def test_adam_reset_changes_training_and_is_reproducible():
    ds, net = synthetic()
    w = {}
    for key, reset in (("none", None), ("a", 5), ("b", 5)):
        cfg = TrainConfig(epochs=20, lr=0.03, threads=1, max_iter=100, adam_reset_every=reset)
        model = build_network(cfg, ds, net)
        fit(model, ds.inputs, ds.outputs, cfg)
        w[key] = model.edge_weight.detach().clone()
    assert torch.equal(w["a"], w["b"])
    assert not torch.allclose(w["a"], w["none"], atol=1e-5)


def test_long_reset_recipe_file_loads_with_its_settings():
    from pathlib import Path

    from tme_sim.training.train import load_train_toml

    root = Path(__file__).resolve().parents[1]
    t = load_train_toml(root / "benchmarks/recipes/ligand_screen_long_reset.toml").train
    assert (t.model, t.readout, t.warm_start, t.tol, t.epochs, t.adam_reset_every) == (
        "signaling",
        "graph",
        True,
        1e-6,
        4000,
        200,
    )
    assert t.lr_schedule == "cosine" and t.batch_size is None and t.prior_l2 == 0
    assert t.selection_note and "seed 9" in t.selection_note
