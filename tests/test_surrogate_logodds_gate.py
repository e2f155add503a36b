"""The hybrid's log-odds fitting (linear path and MLP part) and its MLP gate on unseen inputs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tme_sim.errors import DataError  # noqa: E402
from tme_sim.intracellular.neural.networks import DenseMLP, HybridSignaling, SignalingNetwork, from_logit, to_logit  # noqa: E402
from tme_sim.training.train import TrainConfig, fit  # noqa: E402


def receptor_net(seed: int = 5) -> SignalingNetwork:
    """Inputs 0, 1 share receptor node 3, input 2 has its own receptor 4; outputs 6, 7."""
    src = np.array([0, 1, 2, 3, 4, 5, 5, 3])
    dst = np.array([3, 3, 4, 5, 5, 6, 7, 7])
    sign = np.array([1, 1, 1, 1, -1, 1, -1, 1])
    names = [f"n{i}" for i in range(8)]
    return SignalingNetwork(
        names, src, dst, sign, np.array([0, 1, 2]), np.array([6, 7]), init_weight=0.3, prescale=0.6, seed=seed
    )


def hybrid(logit_eps: float = 0.05, mlp_weight: float = 0.4) -> HybridSignaling:
    net = receptor_net()
    mlp = {"n_in": 3, "n_out": 2, "hidden": 8, "layers": 1, "dropout": 0.0, "logit_eps": logit_eps}
    hyb = HybridSignaling(
        {**net.config(), "prescale": None},
        rank=None,
        rnn_weight=0.1,
        linear_weight=1.0 - 0.1 - mlp_weight,
        mlp_weight=mlp_weight,
        mlp=mlp,
        logit_eps=logit_eps,
    ).eval()
    hyb.rnn.load_state_dict(net.state_dict())
    return hyb


@pytest.mark.parametrize("eps", [0.01, 0.05, 0.2])
def test_squeezed_logit_is_finite_at_the_ends_and_inverts(eps):
    y = np.array([0.0, 1e-6, 0.3, 0.5, 0.999, 1.0])
    z = to_logit(y, eps)
    assert np.isfinite(z).all() and z[0] == pytest.approx(np.log(eps / (1 - eps)))
    assert np.allclose(from_logit(z, eps), y, atol=1e-12)
    zt = to_logit(torch.as_tensor(y), eps)
    assert np.allclose(zt.numpy(), z) and np.allclose(from_logit(zt, eps).numpy(), y, atol=1e-12)
    assert np.all(np.diff(z) > 0)


def test_logit_linear_path_recovers_additive_log_odds_that_plain_ridge_cannot():
    rng = np.random.default_rng(0)
    x = (rng.random((60, 3)) < 0.5).astype(np.float64)
    coef = np.array([[1.5, -1.0], [0.75, 1.25], [-1.25, 0.5]])
    y = from_logit(x @ coef + np.array([-0.5, 0.3]), 0.05)  # saturating: additive on the log-odds
    assert y.min() >= 0 and y.max() <= 1
    errs = {}
    for eps in (0.05, 0.0):
        hyb = hybrid(logit_eps=eps)
        hyb.fit_linear(x, y, 1e-6)
        pred = hyb.linear(torch.as_tensor(x, dtype=torch.float32)).numpy()
        assert np.allclose(hyb.linear_numpy(x), pred, atol=1e-5)  # the fast path's numpy twin
        errs[eps] = np.abs(pred - y).max()
    assert errs[0.05] < 1e-4 < 0.02 < errs[0.0]


def test_mlp_with_logit_output_fits_log_odds_and_fast_path_agrees():
    from tme_sim.intracellular.neural.inference import FastMLP

    rng = np.random.default_rng(1)
    x = rng.random((40, 3)).astype(np.float32)
    y = np.clip(from_logit(2.0 * x @ rng.normal(size=(3, 2)), 0.05), 0.0, 1.0).astype(np.float32)
    torch.manual_seed(0)
    m = DenseMLP(3, 2, hidden=16, layers=1, dropout=0.0, logit_eps=0.05)
    fit(m, x, y, TrainConfig(model="mlp", lr=1e-2, epochs=300, patience=300))
    with torch.no_grad():
        out = m(torch.as_tensor(x)).numpy()
        raw = m.raw(torch.as_tensor(x)).numpy()
    assert np.allclose(out, from_logit(raw, 0.05), atol=1e-6)
    assert np.corrcoef(out.ravel(), y.ravel())[0, 1] > 0.95
    for fused in (True, False):
        assert np.allclose(FastMLP(m, fused=fused)(x), out, atol=1e-5)
    assert DenseMLP(**m.config()).logit_eps == 0.05
    with pytest.raises(ValueError, match="linear head"):
        DenseMLP(3, 2, head="softmax", logit_eps=0.05)


def test_fit_refuses_log_odds_of_targets_outside_the_unit_interval():
    hyb = hybrid()
    x = np.eye(3, dtype=np.float32)
    y = np.array([[0.2, 1.5], [0.1, 0.3], [0.4, 0.5]], np.float32)
    cfg = TrainConfig(model="hybrid", epochs=2, mlp_epochs=2)
    with pytest.raises(DataError, match=r"\[0, 1\].*hybrid_logit_eps = 0"):
        fit(hyb, x, y, cfg)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        fit(DenseMLP(3, 2, hidden=4, logit_eps=0.05), x, y, TrainConfig(model="mlp", epochs=2))


def test_mlp_gate_hands_unseen_inputs_to_the_linear_path_and_round_trips(tmp_path):
    from tme_sim.intracellular.neural.artifact import load_artifact, save_artifact

    hyb = hybrid()
    rng = np.random.default_rng(2)
    x = (rng.random((30, 3)) < 0.5).astype(np.float32)
    x[:, 1] = 0.0  # input 1 never active in training
    y = np.c_[0.3 + 0.4 * x[:, 0] - 0.2 * x[:, 2], 0.6 - 0.3 * x[:, 0]].astype(np.float32)
    fit(hyb, x, y, TrainConfig(model="hybrid", epochs=3, mlp_epochs=50, max_iter=30))
    assert hyb.gated_inputs.tolist() == [1]
    u = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.25, 1.0]], np.float32)
    ut = torch.as_tensor(u)
    with torch.no_grad():
        out = hyb(ut).numpy()
        lin, rnn, mlp = hyb.linear(ut).numpy(), hyb.rnn(ut).numpy(), hyb.mlp(ut).numpy()
    share = np.array([[0.0], [1.0], [0.75]], np.float32)
    assert np.allclose(hyb.mlp_share(u), share) and np.allclose(hyb.mlp_share(ut).numpy(), share)
    expected = 0.5 * lin + 0.1 * rnn + 0.4 * (share * mlp + (1 - share) * lin)
    assert np.allclose(out, expected, atol=1e-6)
    assert np.abs(out[0] - (0.9 * lin[0] + 0.1 * rnn[0])).max() < 1e-6  # unseen: no MLP at all
    assert np.abs(mlp[0] - lin[0]).max() > 1e-3  # ... which would have mattered
    p = save_artifact(tmp_path / "g.pt", hyb, input_names=["a", "b", "c"], output_names=["x", "y"], data_sha256="0")
    s = load_artifact(p, device="cpu")
    assert s.model.gated_inputs.tolist() == [1] and s.model.logit_eps == 0.05
    assert np.allclose(s.predict(u, fast=False), out, atol=1e-6)
    assert np.allclose(s.predict(u), out, atol=2e-2)  # the fast CPU path gates too
    fit(hyb, x, y, TrainConfig(model="hybrid", epochs=3, mlp_epochs=5, max_iter=30, mlp_gate=False))
    assert hyb.gated_inputs is None and hyb.mlp_share(u) is None
