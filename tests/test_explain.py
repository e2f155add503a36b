"""``tme explain``: the planted path of synthetic signaling networks is found; knock-outs are exact."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tme_sim.errors import ConfigError, TMEError  # noqa: E402
from tme_sim.intracellular.neural.networks import SignalingNetwork  # noqa: E402
from tme_sim.training.explain import explain, knockout_effect, parse_assignments  # noqa: E402


def planted_network(seed: int, n_hidden: int = 30, n_random: int = 70):
    """A random signed network with a planted path IN0 → P1 → P2 → P3 → OUT0 that carries IN0's
    signal, beside decoys that a weight-only ranking would pick:

    * a decoy path IN0 → D1 → D2 → D3 → OUT0 with *larger* weights, whose D1 sits saturated
      (strong bias: its gain f' is ~0, so the signal does not pass);
    * a second decoy IN0 → E1 → E2 → OUT0 whose E1 is held below 0 (leaky region, gain 0.01);
    * random weak edges among all nodes (spectral radius of their |W| scaled to 0.4).

    Returns (model, planted path node names).
    """
    rng = np.random.default_rng(seed)
    names = ["IN0", "IN1", "OUT0", "OUT1"]
    names += ["P1", "P2", "P3", "D1", "D2", "D3", "E1", "E2"]
    names += [f"H{i}" for i in range(n_hidden)]
    idx = {n: i for i, n in enumerate(names)}
    n = len(names)
    w_p = rng.uniform(0.6, 0.9, 4) * rng.choice([-1, 1], 4)
    edges = [("IN0", "P1", w_p[0]), ("P1", "P2", w_p[1]), ("P2", "P3", w_p[2]), ("P3", "OUT0", w_p[3])]
    edges += [("IN0", "D1", 1.2), ("D1", "D2", 1.0), ("D2", "D3", 1.0), ("D3", "OUT0", 1.0)]
    edges += [("IN0", "E1", 1.0), ("E1", "E2", 1.0), ("E2", "OUT0", 1.0)]
    edges += [("IN1", "OUT1", 0.8), ("IN1", "H0", 0.5)]
    fixed = {(a, b) for a, b, _ in edges}
    rand = []
    while len(rand) < n_random:
        a, b = rng.integers(n, size=2)
        na, nb = names[a], names[b]
        if a == b or na.startswith("IN") or (na, nb) in fixed:
            continue
        fixed.add((na, nb))
        rand.append((na, nb, rng.uniform(-1, 1)))
    wr = np.array([w for *_, w in rand])
    A = np.zeros((n, n))
    for (a, b, _), w in zip(rand, wr, strict=True):
        A[idx[b], idx[a]] = abs(w)
    rho = max(abs(np.linalg.eigvals(A)))
    wr *= 0.4 / max(rho, 1e-9) * 0.25  # weak background
    allw = [(a, b, w) for a, b, w in edges] + [(a, b, w) for (a, b, _), w in zip(rand, wr, strict=True)]
    src = np.array([idx[a] for a, _, _ in allw])
    dst = np.array([idx[b] for _, b, _ in allw])
    w = np.array([w for *_, w in allw], dtype=np.float32)
    net = SignalingNetwork(
        names,
        src,
        dst,
        np.sign(w).astype(np.int8),
        np.array([idx["IN0"], idx["IN1"]]),
        np.array([idx["OUT0"], idx["OUT1"]]),
        prescale=None,
        baseline_state=None,
        tol=1e-8,
        max_iter=2000,
    )
    with torch.no_grad():
        net.edge_weight.copy_(torch.as_tensor(w))
        bias = torch.zeros(n)
        # planted nodes in the linear regime (states in [0.05, 0.45]) whatever the signs
        lo, hi = 0.0, 0.3  # IN0's state without / with its input (input weight 0.3, bias 0)
        for _, b, wk in edges[:4]:
            a, c = sorted((wk * lo, wk * hi))
            bias[idx[b]] = 0.05 - a
            lo, hi = (0.05, 0.05 + c - a) if wk > 0 else (0.05 + c - a, 0.05)
        bias[idx["OUT0"]] -= 0.3  # room for the constant drive of D3 below
        bias[idx["D1"]] = 20.0  # saturated: gain 0.25/z^2 ~ 6e-4
        bias[idx["D2"]] = -0.7  # D2, D3 linear again
        bias[idx["E1"]] = -5.0  # below 0: leaky gain 0.01
        net.node_bias.copy_(bias)
        net.input_weight.fill_(0.3)
    return net, ["IN0", "P1", "P2", "P3", "OUT0"]


def test_planted_path_ranks_first_in_at_least_90_percent_of_50_networks():
    hits_path, hits_nodes, hits_weights = 0, 0, 0
    for seed in range(50):
        net, planted = planted_network(seed)
        ex = explain(net, np.array([1.0, 0.0]))
        path, _ = ex.main_path(0)
        hits_path += [ex.node_names[i] for i in path] == planted
        top3 = {ex.node_names[i] for i, _ in ex.top_nodes(0, 3)}
        hits_nodes += top3 == set(planted[1:-1])
        # the same search on |weight| instead of flow picks the strong but saturated decoy: the test has teeth
        ex.edge_flow = np.abs(net.edge_weight.detach().numpy().astype(np.float64))[:, None].repeat(2, 1)
        hits_weights += [ex.node_names[i] for i in ex.main_path(0)[0]] == planted
    assert hits_path >= 45, hits_path
    assert hits_nodes >= 45, hits_nodes
    assert hits_weights <= 5, hits_weights


def test_flows_add_up_and_knockouts_are_exact():
    net, _ = planted_network(0)
    u = np.array([1.0, 0.0])
    ex = explain(net, u)
    # the input edge's flow accounts for (first order) the whole response of OUT0
    first = [e for e in range(len(ex.src)) if ex.node_names[ex.src[e]] == "IN0"]
    lin = ex.edge_flow[first, 0].sum()
    assert lin == pytest.approx(ex.delta_y[0], rel=0.1)
    # knocking out P2 removes (almost) all of OUT0's response; knocking out E1 (inactive decoy) nothing
    base, ko = knockout_effect(net, u, [ex.node_names.index("P2")])
    _, ko0 = knockout_effect(net, np.zeros(2), [ex.node_names.index("P2")])
    assert abs(ko[0] - ko0[0]) < 0.1 * abs(ex.delta_y[0])
    _, kd = knockout_effect(net, u, [ex.node_names.index("E1")])
    _, kd0 = knockout_effect(net, np.zeros(2), [ex.node_names.index("E1")])
    assert (kd[0] - kd0[0]) == pytest.approx(ex.delta_y[0], rel=0.05)
    assert base[1] == pytest.approx(ko[1], abs=1e-3)  # OUT1 does not depend on P2


def test_mlp_cannot_be_explained_and_bad_assignments():
    from tme_sim.intracellular.neural.networks import DenseMLP

    with pytest.raises(ConfigError, match="needs a signaling or hybrid model"):
        explain(DenseMLP(2, 2, hidden=4, layers=1), np.zeros(2))
    assert parse_assignments(["IFNG=1", "TNF = 0.5"], "--input") == {"IFNG": 1.0, "TNF": 0.5}
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        parse_assignments(["IFNG"], "--input")
    with pytest.raises(ConfigError, match="not a number"):
        parse_assignments(["IFNG=x"], "--input")


def test_explain_command_prints_path_and_knockout(tmp_path):
    from typer.testing import CliRunner

    from tme_sim.cli.main import app
    from tme_sim.intracellular.neural.artifact import save_artifact

    net, _ = planted_network(1)
    pt = save_artifact(
        tmp_path / "planted.pt",
        net,
        input_names=["IN0", "IN1"],
        output_names=["OUT0", "OUT1"],
        data_sha256="0" * 64,
        names={"P2": "PATHWAY2"},
    )
    args = [
        "explain",
        str(pt),
        "--input",
        "IN0=1",
        "--output",
        "OUT0",
        "-k",
        "pathway2",
        "--json",
        str(tmp_path / "e.json"),
    ]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "main path: IN0 -> P1 -> PATHWAY2 -> P3 -> OUT0" in r.output
    assert "knock-out of PATHWAY2" in r.output
    import json

    rep = json.loads((tmp_path / "e.json").read_text())
    assert rep["outputs"]["OUT0"]["main_path"] == ["IN0", "P1", "P2", "P3", "OUT0"]
    assert abs(rep["knockout"]["effect"]["OUT1"]) < 1e-3
    r = CliRunner().invoke(app, ["explain", str(pt), "--input", "NOPE=1"])
    assert isinstance(r.exception, TMEError) and "no input 'NOPE'" in str(r.exception)
    r = CliRunner().invoke(app, ["explain", str(pt), "--input", "IN0=1", "-k", "NOPE"])
    assert isinstance(r.exception, TMEError) and "--knockout: 'NOPE'" in str(r.exception)


def test_hybrid_is_explained_through_its_network_part():
    from tme_sim.intracellular.neural.networks import HybridSignaling

    net, planted = planted_network(2)
    hyb = HybridSignaling(
        {
            "node_names": net.node_names,
            "src": net.src.numpy(),
            "dst": net.dst.numpy(),
            "sign": net.sign.numpy(),
            "input_nodes": net.input_nodes.numpy(),
            "output_nodes": net.output_nodes.numpy(),
        }
    )
    hyb.rnn = net
    ex = explain(hyb, np.array([1.0, 0.0]))
    assert [ex.node_names[i] for i in ex.main_path(0)[0]] == planted
