"""Kernels of the neural surrogates: activation, steady state, implicit gradient, spectral radius."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from surrogates.networks import (  # noqa: E402
    DenseMLP,
    SignalingNetwork,
    activation,
    activation_grad,
    ridge_fit,
)


def small_net(seed: int = 1, n: int = 12, e: int = 30, **kw) -> SignalingNetwork:
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, n, e), rng.integers(0, n, e)
    keep = src != dst
    src, dst = src[keep], dst[keep]
    sign = rng.choice([-1, 0, 1], len(src))
    kw.setdefault("init_weight", 0.3)
    kw.setdefault("prescale", 0.6)
    return SignalingNetwork([f"n{i}" for i in range(n)], src, dst, sign, np.array([0, 1]), np.array([5, 6, 7]), **kw)


def test_activation_shape_and_derivative():
    z = torch.linspace(-3, 5, 2001, dtype=torch.float64)
    f = activation(z)
    assert float(f.max()) < 1.0
    assert torch.allclose(f[(z >= 0) & (z < 0.5)], z[(z >= 0) & (z < 0.5)])
    assert torch.allclose(f[z < 0], 0.01 * z[z < 0])
    # continuous at 0.5 and derivative matches finite differences away from kinks
    zz = torch.tensor([-1.0, 0.2, 0.7, 2.0], dtype=torch.float64)
    h = 1e-6
    num = (activation(zz + h) - activation(zz - h)) / (2 * h)
    assert torch.allclose(num, activation_grad(zz), atol=1e-6)
    assert abs(float(activation(torch.tensor(0.5 - 1e-9))) - float(activation(torch.tensor(0.5)))) < 1e-6


def test_steady_state_is_a_fixed_point():
    net = small_net(tol=1e-10, max_iter=2000).double()
    u = torch.rand(5, 2, dtype=torch.float64)
    with torch.no_grad():
        x = net.steady_state(u)
        c = net.drive(u)
        W, _ = net.graph().matrices(net.edge_weight)
        assert torch.allclose(x, activation(W @ x + c), atol=1e-9)
    assert net.stats.forward_residual < 1e-10


def test_implicit_gradient_matches_finite_differences():
    net = small_net(tol=1e-12, max_iter=3000).double()
    u = torch.rand(4, 2, dtype=torch.float64)

    def loss():
        return (net(u) ** 2).sum()

    loss().backward()
    for p in (net.edge_weight, net.input_weight, net.output_scale):
        num = torch.zeros_like(p)
        with torch.no_grad():
            for i in range(p.numel()):
                p.view(-1)[i] += 1e-6
                a = loss()
                p.view(-1)[i] -= 2e-6
                b = loss()
                p.view(-1)[i] += 1e-6
                num.view(-1)[i] = (a - b) / 2e-6
        assert torch.allclose(num, p.grad, atol=1e-7, rtol=1e-5)


def test_warm_start_gives_the_same_fixed_point_and_gradient_in_fewer_iterations():
    u = torch.rand(6, 2, dtype=torch.float64)
    grads, iters = [], []
    for warm in (False, True):
        net = small_net(tol=1e-11, max_iter=3000).double()
        net.warm_start(warm)
        for _ in range(2):  # the second solve is warm-started from the first when warm
            net.zero_grad()
            (net(u) ** 2).sum().backward()
        grads.append(net.edge_weight.grad.clone())
        iters.append(net.stats.forward_iterations + net.stats.backward_iterations)
    assert torch.allclose(grads[0], grads[1], atol=1e-9)
    assert iters[1] < iters[0]
    # a batch of another shape starts cold and is still solved exactly
    net = small_net(tol=1e-11, max_iter=3000).double()
    net.warm_start(True)
    net(u)
    u3 = u[:3]
    x = net.steady_state(u3).detach()
    W, _ = net.graph().matrices(net.edge_weight)
    assert torch.allclose(x, activation(W @ x + net.drive(u3).detach()), atol=1e-9)


def test_spectral_radius_matches_eigenvalues():
    net = small_net(seed=3, n=15, e=60, prescale=None, init_weight=0.4)
    a = np.zeros((15, 15))
    w = net.edge_weight.detach().abs().numpy()
    np.add.at(a, (net.dst.numpy(), net.src.numpy()), w)
    exact = max(abs(np.linalg.eigvals(a)))
    est = float(net.spectral_radius(iterations=500))
    assert est == pytest.approx(exact, rel=1e-3)
    # the prescale option puts ρ(|W|) where asked
    net2 = small_net(seed=3, n=15, e=60, prescale=0.5, init_weight=0.4)
    assert float(net2.spectral_radius(iterations=500)) == pytest.approx(0.5, rel=1e-2)


def test_baseline_state_initialisation():
    net = small_net(baseline_state=0.25, prescale=0.5)
    with torch.no_grad():
        x = net.steady_state(torch.zeros(1, 2))
    assert torch.allclose(x, torch.full_like(x, 0.25), atol=1e-4)


def test_impute_unseen_inputs_sets_typical_weights():
    net = small_net(seed=4, n=20, e=80)
    with torch.no_grad():
        net.input_weight[:] = torch.tensor([5.0, 3.0])
    changed = net.impute_unseen_inputs(np.array([True, False]))
    assert changed == 1
    assert float(net.input_weight[1]) == pytest.approx(5.0)


def test_dense_mlp_heads():
    m = DenseMLP(4, 3, hidden=8, head="softmax")
    y = m(torch.rand(6, 4))
    assert torch.allclose(y.sum(1), torch.ones(6))
    with pytest.raises(ValueError):
        DenseMLP(4, 3, head="tanh")


def test_ridge_fit_matches_normal_equations():
    rng = np.random.default_rng(0)
    x, y = rng.random((30, 4)), rng.random((30, 2))
    coef, icpt = ridge_fit(x, y, 0.0)
    xa = np.c_[x, np.ones(30)]
    ref = np.linalg.lstsq(xa, y, rcond=None)[0]
    assert np.allclose(coef, ref[:4]) and np.allclose(icpt, ref[4])
