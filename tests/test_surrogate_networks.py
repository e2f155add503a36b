"""Kernels of the neural surrogates: activation, steady state, implicit gradient, spectral radius."""

from __future__ import annotations

import numpy as np
import pytest
from signaling_nets import random_signaling_net

torch = pytest.importorskip("torch")

from tme_sim.intracellular.neural.networks import (  # noqa: E402
    DenseMLP,
    HybridSignaling,
    SignalingNetwork,
    activation,
    activation_grad,
    reduced_rank_ridge_fit,
    ridge_fit,
    unseen_input_map,
)


def small_net(seed: int = 1, n: int = 12, e: int = 30, **kw) -> SignalingNetwork:
    return random_signaling_net(seed, n, e, [0, 1], [5, 6, 7], prescale=kw.pop("prescale", 0.6), **kw)[0]


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


def receptor_net(**kw) -> SignalingNetwork:
    """Inputs 0, 1 share receptor node 3, input 2 has its own receptor 4; outputs 6, 7."""
    src = np.array([0, 1, 2, 3, 4, 5, 5, 3])
    dst = np.array([3, 3, 4, 5, 5, 6, 7, 7])
    sign = np.array([1, 1, 1, 1, -1, 1, -1, 1])
    kw.setdefault("init_weight", 0.3)
    kw.setdefault("prescale", 0.6)
    names = [f"n{i}" for i in range(8)]
    return SignalingNetwork(names, src, dst, sign, np.array([0, 1, 2]), np.array([6, 7]), **kw)


def test_input_similarity_is_jaccard_of_reached_nodes():
    net = receptor_net()
    s1 = net.input_similarity(hops=1)
    assert s1[0, 1] == pytest.approx(1.0) and s1[0, 2] == 0.0 and s1[2, 2] == pytest.approx(1.0)
    # two steps: inputs 0/1 reach {3, 5, 7}, input 2 reaches {4, 5}: 1 shared of 4
    assert net.input_similarity(hops=2)[0, 2] == pytest.approx(0.25)


def test_substitute_unseen_inputs_inherits_the_path_of_inputs_sharing_receptors():
    net = receptor_net(seed=3)
    with torch.no_grad():
        net.edge_weight[1] = -0.5  # input 1's own (untrained) edge differs from input 0's
    u_unseen = torch.tensor([[0.0, 1.0, 0.0]])
    with torch.no_grad():
        before = net(u_unseen)
        as_seen = net(torch.tensor([[1.0, 0.0, 0.0]]))
    changed = net.substitute_unseen_inputs(np.array([True, False, True]), hops=1)
    assert changed == 1
    with torch.no_grad():
        after = net(u_unseen)
    assert torch.allclose(after, as_seen) and not torch.allclose(before, as_seen)
    assert net.input_map is not None and net.input_map[1].tolist() == [1.0, 0.0, 0.0]
    # an unseen input sharing nothing with a seen one is dropped (no known effect)
    net.substitute_unseen_inputs(np.array([True, True, False]), hops=1)
    with torch.no_grad():
        assert torch.allclose(net(torch.tensor([[0.0, 0.0, 1.0]])), net(torch.zeros(1, 3)))
    # all seen: identity again; the config round-trips the map
    assert net.substitute_unseen_inputs(np.array([True, True, True])) == 0 and net.input_map is None
    net.substitute_unseen_inputs(np.array([True, False, True]))
    cfg = net.config()
    assert cfg["input_map"][1] == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        net.substitute_unseen_inputs(np.array([True, False, True]), weighting="nearest")


def test_artifact_round_trip_keeps_input_map_and_old_configs_load(tmp_path):
    from tme_sim.intracellular.neural.artifact import load_artifact, network_from_config, save_artifact

    net = receptor_net(seed=2)
    net.substitute_unseen_inputs(np.array([True, False, True]))
    p = save_artifact(tmp_path / "m.pt", net, input_names=["a", "b", "c"], output_names=["x", "y"], data_sha256="0")
    s = load_artifact(p, device="cpu")
    u = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]], np.float32)
    with torch.no_grad():
        ref = net(torch.as_tensor(u)).numpy()
        assert np.allclose(s.model(torch.as_tensor(u)).numpy(), ref, atol=1e-6)
    assert np.allclose(s.predict(u), ref, atol=2e-2)  # any fast inference path honours the map too
    old = {k: v for k, v in net.config().items() if k != "input_map"}  # artifacts written before the map
    assert network_from_config("signaling", old).input_map is None


def test_reduced_rank_ridge_keeps_the_dominant_output_directions():
    rng = np.random.default_rng(3)
    x = rng.random((50, 6))
    b = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 5))  # rank-2 effects on 5 outputs
    y = x @ b + 0.3 + 0.01 * rng.standard_normal((50, 5))
    full, _ = ridge_fit(x, y, 0.01)
    assert np.array_equal(reduced_rank_ridge_fit(x, y, 0.01, None)[0], full)
    assert np.array_equal(reduced_rank_ridge_fit(x, y, 0.01, 5)[0], full)
    coef, icpt = reduced_rank_ridge_fit(x, y, 0.01, 2)
    assert np.linalg.matrix_rank(coef, tol=1e-8) == 2
    assert np.abs(coef - b).max() < 0.05 and np.abs(icpt - 0.3).max() < 0.05
    c1, i1 = reduced_rank_ridge_fit(x, y, 0.01, 1)
    assert np.linalg.matrix_rank(c1, tol=1e-8) == 1
    # still unbiased at the mean input
    assert np.allclose(x.mean(0) @ c1 + i1, y.mean(0))
    with pytest.raises(ValueError):
        reduced_rank_ridge_fit(x, y, 0.01, 0)


def test_hybrid_output_is_the_weighted_sum_of_its_paths_and_round_trips(tmp_path):
    from tme_sim.intracellular.neural.artifact import load_artifact, save_artifact

    net = small_net(seed=4)
    hyb = HybridSignaling({**net.config(), "prescale": None, "baseline_state": None}, rank=1, rnn_weight=0.4)
    hyb.rnn.load_state_dict(net.state_dict())
    rng = np.random.default_rng(0)
    x = rng.random((20, 2)).astype(np.float32)
    y = rng.random((20, 3)).astype(np.float32)
    hyb.fit_linear(x, y, 0.1)
    assert np.linalg.matrix_rank(hyb.lin_coef.numpy(), tol=1e-6) == 1
    u = torch.as_tensor(x[:5])
    with torch.no_grad():
        out = hyb(u).numpy()
        lin = (u @ hyb.lin_coef + hyb.lin_bias).numpy()
        assert np.allclose(out, lin + 0.4 * net(u).numpy(), atol=1e-6)
        assert np.allclose(hyb.linear_numpy(x[:5]), lin, atol=1e-6)
    p = save_artifact(tmp_path / "h.pt", hyb, input_names=["a", "b"], output_names=["x", "y", "z"], data_sha256="0")
    s = load_artifact(p, device="cpu")
    assert s.kind == "hybrid" and s.model.rank == 1 and s.model.rnn_weight == pytest.approx(0.4)
    assert np.array_equal(s.model.lin_coef.numpy(), hyb.lin_coef.numpy())
    assert np.allclose(s.predict(x[:5], fast=False), out, atol=1e-6)
    assert np.allclose(s.predict(x[:5]), out, atol=2e-2)  # fast path: numba network + numpy linear path
    assert np.abs(s.predict(x[:5]) - lin).max() > 1e-3  # the network part is really included


def test_unseen_input_map_rows():
    sim = np.array(
        [
            [1.0, 0.6, 0.6, 0.2],
            [0.6, 1.0, 0.1, 0.0],
            [0.6, 0.1, 1.0, 0.0],
            [0.2, 0.0, 0.0, 1.0],
        ]
    )
    seen = np.array([False, True, True, False])
    top = unseen_input_map(sim, seen, "top", 0.5)
    assert np.array_equal(top[1:3], np.eye(4)[1:3])  # seen inputs keep their identity
    assert top[0].tolist() == [0.0, 0.25, 0.25, 0.0]  # tie: the two most similar, averaged, halved
    assert top[3].tolist() == [0.0, 0.0, 0.0, 0.0]  # similar to no *seen* input: no known effect
    soft = unseen_input_map(sim, seen, "soft", 1.0)
    assert soft[0].tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0])
    sim[0, 2] = 0.3
    assert unseen_input_map(sim, seen, "soft")[0].tolist() == pytest.approx([0.0, 2 / 3, 1 / 3, 0.0])
    assert unseen_input_map(sim, seen, "top")[0].tolist() == [0.0, 1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="weighting"):
        unseen_input_map(sim, seen, "nearest")
    with pytest.raises(ValueError, match="shrink"):
        unseen_input_map(sim, seen, "top", 1.5)
    with pytest.raises(ValueError, match="similarity"):
        unseen_input_map(sim[:3, :3], seen, "top")


def test_hybrid_substitutes_unseen_inputs_in_every_part_and_round_trips(tmp_path):
    from tme_sim.intracellular.neural.artifact import load_artifact, save_artifact

    net = receptor_net(seed=5)
    mlp = {"n_in": 3, "n_out": 2, "hidden": 8, "layers": 1, "dropout": 0.0}
    hyb = HybridSignaling(
        {**net.config(), "prescale": None}, rank=None, rnn_weight=0.2, linear_weight=0.5, mlp_weight=0.3, mlp=mlp
    ).eval()
    hyb.rnn.load_state_dict(net.state_dict())
    rng = np.random.default_rng(0)
    x = (rng.random((30, 3)) < 0.5).astype(np.float32)
    x[:, 1] = 0.0  # input 1 (same receptor as input 0) never seen
    y = np.c_[0.2 + 0.5 * x[:, 0] - 0.3 * x[:, 2], 0.6 - 0.4 * x[:, 0]].astype(np.float32)
    hyb.fit_linear(x, y, 0.01)
    u1 = np.array([[0.0, 1.0, 0.0]], np.float32)
    half0 = np.array([[0.5, 0.0, 0.0]], np.float32)
    assert np.allclose(hyb.linear_numpy(u1), hyb.linear_numpy(np.zeros((1, 3), np.float32)))  # keep: no effect
    changed = hyb.substitute_unseen_inputs(x.max(0) > 0, hops=1, weighting="top", shrink=0.5)
    assert changed == 1 and hyb.rnn.input_map is None
    assert hyb.input_map is not None and hyb.input_map[1].tolist() == [0.5, 0.0, 0.0]
    with torch.no_grad():
        out1 = hyb(torch.as_tensor(u1)).numpy()
        ref = hyb(torch.as_tensor(half0)).numpy()
    assert np.allclose(out1, ref, atol=1e-6)  # input 1 now acts as half of input 0 in all parts
    with torch.no_grad():
        zero = hyb(torch.zeros(1, 3)).numpy()
    assert np.abs(out1 - zero).max() > 0.02  # ... and so has an effect (it had none before)
    p = save_artifact(tmp_path / "h.pt", hyb, input_names=["a", "b", "c"], output_names=["x", "y"], data_sha256="0")
    s = load_artifact(p, device="cpu")
    assert s.model.input_map is not None and s.model.input_map[1].tolist() == [0.5, 0.0, 0.0]
    assert np.allclose(s.predict(u1, fast=False), out1, atol=1e-6)
    assert np.allclose(s.predict(u1), out1, atol=2e-2)  # the fast CPU path mixes the inputs too
    assert hyb.substitute_unseen_inputs(np.ones(3, bool)) == 0 and hyb.input_map is None
