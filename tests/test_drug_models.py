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
