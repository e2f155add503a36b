"""Drug → target → network → phenotype models: structure, fitting, ensembles, off-target inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tme_sim.training.drug_models import (
    DrugEnsemble,
    DrugFitConfig,
    DrugModelSpec,
    DrugResponseModel,
    fit_model,
    predict_model,
)


def _chain_spec() -> DrugModelSpec:
    # drug A inhibits K1; K1 activates K2; K2 → output "viability"
    return DrugModelSpec(
        drugs=["A", "B"],
        nodes=["K1", "K2", "K3"],
        targets=[("A", "K1"), ("B", "K3")],
        edges=[("K1", "K2", 1), ("K3", "K2", 1)],
        readouts=[("K2", "viability", 1)],
        outputs=["viability"],
        offtarget_nodes=[],
    )


def test_untreated_is_base_and_inhibition_lowers_output():
    torch.manual_seed(0)
    m = DrugResponseModel(_chain_spec(), 0, DrugFitConfig())
    conc = torch.tensor([[0.0, 0.0], [1.0, 0.0], [100.0, 0.0], [100.0, 100.0]])
    out = m(conc, torch.zeros(4, 0)).detach().numpy()[:, 0]
    assert out[0] == pytest.approx(float(m.base.detach()[0]))
    assert out[0] > out[1] > out[2] > out[3]


def test_fit_recovers_dose_response_and_ensemble_interval():
    rng = np.random.default_rng(0)
    c = 10 ** rng.uniform(-2, 2, size=(200, 1))
    conc = np.column_stack([c, np.zeros_like(c)])
    y = 1.0 - 0.6 * c / (c + 1.0)  # IC50 1, Emax 0.6
    cfg = DrugFitConfig(epochs=400, members=3, l2_omics=0.0)
    groups = np.arange(200) % 10
    ens = DrugEnsemble(_chain_spec(), cfg).fit(conc, np.zeros((200, 0)), y, groups)
    mean, (lo, hi) = ens.predict(conc, np.zeros((200, 0)))
    assert np.corrcoef(mean[:, 0], y[:, 0])[0, 1] > 0.99
    assert np.all(lo <= mean + 1e-9) and np.all(mean <= hi + 1e-9)
    back = DrugEnsemble.from_state_dict(ens.state_dict())
    np.testing.assert_allclose(back.predict(conc, np.zeros((200, 0)))[0], mean, rtol=1e-6)


def test_omics_features_modulate_sensitivity():
    rng = np.random.default_rng(1)
    n_lines = 30
    f = rng.normal(size=(n_lines, 1))
    line = np.repeat(np.arange(n_lines), 8)
    c = np.tile(10 ** np.linspace(-2, 2, 8), n_lines)[:, None]
    conc = np.column_stack([c, np.zeros_like(c)])
    emax = 0.5 / (1 + np.exp(-2 * f[line, 0]))  # lines with high f respond more
    y = (1.0 - emax * c[:, 0] / (c[:, 0] + 1.0))[:, None]
    m = fit_model(_chain_spec(), conc, f[line], y, DrugFitConfig(epochs=500, l2_omics=0.0))
    p = predict_model(m, conc, f[line])
    assert np.corrcoef(p[:, 0], y[:, 0])[0, 1] > 0.95


def test_centered_model_predicts_line_deviations_only():
    """``centered``: the average line (features 0) gets exactly 0 at every concentration, and the
    fitted model recovers how lines differ around a mean curve it is not asked to fit."""
    rng = np.random.default_rng(2)
    n_lines = 30
    f = rng.normal(size=(n_lines, 1))
    line = np.repeat(np.arange(n_lines), 8)
    c = np.tile(10 ** np.linspace(-2, 2, 8), n_lines)[:, None]
    conc = np.column_stack([c, np.zeros_like(c)])
    cfg = DrugFitConfig(epochs=500, l2_omics=0.0, centered=True)
    torch.manual_seed(0)
    m0 = DrugResponseModel(_chain_spec(), 1, cfg)
    with torch.no_grad():
        m0.pot_omics.fill_(0.7)
        m0.dep_omics.fill_(0.4)
    zero = m0(torch.as_tensor(conc, dtype=torch.float32), torch.zeros(len(c), 1)).detach().numpy()
    assert np.abs(zero).max() == 0.0
    emax = 0.5 / (1 + np.exp(-2 * f[line, 0]))
    y = 1.0 - emax * c[:, 0] / (c[:, 0] + 1.0)
    mean_curve = np.array([y[np.isclose(c[:, 0], v)].mean() for v in c[:, 0]])
    m = fit_model(_chain_spec(), conc, f[line], (y - mean_curve)[:, None], cfg)
    p = predict_model(m, conc, f[line])[:, 0]
    assert np.corrcoef(p, y - mean_curve)[0, 1] > 0.9


def test_refit_full_members_train_on_every_line_for_the_chosen_epochs():
    rng = np.random.default_rng(3)
    c = 10 ** rng.uniform(-2, 2, size=(120, 1))
    conc = np.column_stack([c, np.zeros_like(c)])
    y = 1.0 - 0.6 * c / (c + 1.0) + rng.normal(0, 0.05, size=c.shape)
    groups = np.arange(120) % 12
    cfg = DrugFitConfig(epochs=200, members=2, l2_omics=0.0, refit_full=True, patience=30)
    ens = DrugEnsemble(_chain_spec(), cfg).fit(conc, np.zeros((120, 0)), y, groups)
    assert len(ens.members) == len(ens.bag_members) == 2
    assert all(a is not b for a, b in zip(ens.members, ens.bag_members, strict=True))
    # the refit runs exactly as many epochs as its bootstrap member's out-of-bag lines chose
    assert [m.stopped_epoch for m in ens.members] == [max(b.stopped_epoch, 10) for b in ens.bag_members]
    oob = ens.predict_out_of_bag(conc, np.zeros((120, 0)), groups)
    for b, lines in zip(ens.bag_members, ens.out_of_bag, strict=True):  # out-of-bag rows: bootstrap members only
        assert len(lines) and b.stopped_epoch <= cfg.epochs
    assert np.isfinite(oob).any()
    mean = ens.predict(conc, np.zeros((120, 0)))[0]
    assert np.corrcoef(mean[:, 0], y[:, 0])[0, 1] > 0.95


def test_deferred_refit_is_the_same_refit():
    """``fit(refit=False)`` then ``refit_members`` (a caller refitting only the ensemble it keeps) gives
    the members ``fit`` refits at once; without ``refit_full`` nothing is refitted."""
    rng = np.random.default_rng(4)
    c = 10 ** rng.uniform(-2, 2, size=(96, 1))
    conc = np.column_stack([c, np.zeros_like(c)])
    y = 1.0 - 0.5 * c / (c + 1.0) + rng.normal(0, 0.05, size=c.shape)
    groups = np.arange(96) % 8
    feats = np.zeros((96, 0))
    cfg = DrugFitConfig(epochs=80, members=2, l2_omics=0.0, refit_full=True, patience=20)
    now = DrugEnsemble(_chain_spec(), cfg).fit(conc, feats, y, groups)
    later = DrugEnsemble(_chain_spec(), cfg).fit(conc, feats, y, groups, refit=False)
    assert all(a is b for a, b in zip(later.members, later.bag_members, strict=True))
    later.refit_members(conc, feats, y)
    assert all(a is not b for a, b in zip(later.members, later.bag_members, strict=True))
    np.testing.assert_array_equal(later.predict(conc, feats)[0], now.predict(conc, feats)[0])
    plain = DrugEnsemble(_chain_spec(), DrugFitConfig(epochs=80, members=2, l2_omics=0.0, patience=20))
    plain.fit(conc, feats, y, groups).refit_members(conc, feats, y)
    assert all(a is b for a, b in zip(plain.members, plain.bag_members, strict=True))
