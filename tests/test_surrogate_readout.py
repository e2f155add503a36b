"""The graph readout of a signaling network (``[train] readout = "graph"``, tme_sim.training.readout)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.test_surrogate_train import synthetic
from tme_sim.intracellular.neural.artifact import load_artifact, save_artifact
from tme_sim.intracellular.neural.networks import SignalingNetwork
from tme_sim.training.cv import cross_validate
from tme_sim.training.explain import explain, knockout_effect
from tme_sim.training.readout import fit_graph_readout, upstream_nodes
from tme_sim.training.train import TrainConfig, build_network, fit, predict

# a chain 0 -> 1 -> 2 -> 3 -> 4 plus 5 -> 4 and 6 -> 3; node 0 is an input
SRC = np.array([0, 1, 2, 3, 5, 6])
DST = np.array([1, 2, 3, 4, 4, 3])


def test_upstream_nodes_follow_the_edges_backwards_and_leave_out_excluded_nodes():
    assert upstream_nodes(SRC, DST, 7, 4, 0).tolist() == [4]
    assert upstream_nodes(SRC, DST, 7, 4, 1).tolist() == [3, 4, 5]
    assert upstream_nodes(SRC, DST, 7, 4, 2).tolist() == [2, 3, 4, 5, 6]
    assert upstream_nodes(SRC, DST, 7, 4, 9).tolist() == [0, 1, 2, 3, 4, 5, 6]
    # the input node is left out, but the path through it is still followed
    assert upstream_nodes(SRC, DST, 7, 4, 9, exclude=np.array([0])).tolist() == [1, 2, 3, 4, 5, 6]
    assert upstream_nodes(SRC, DST, 7, 1, 3, exclude=np.array([0])).tolist() == [1]


def test_readout_recovers_a_planted_regulator_and_reads_only_upstream_nodes():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(80, 7))
    # output 0 (TF node 4) depends on node 2, two steps upstream; output 1 (TF node 3) only on itself
    y = np.c_[1.5 * states[:, 2] - 0.3, 0.8 * states[:, 3] + 1.0] + 0.01 * rng.normal(size=(80, 2))
    ro = fit_graph_readout(states, y, SRC, DST, np.array([4, 3]), np.array([0]), hops=(0, 1, 2), alphas=(1e-3, 1.0))
    assert ro.hops.tolist() == [2, 0]
    pred = states[:, ro.nodes] @ ro.weight.T + ro.offset
    assert np.abs(pred - y).max() < 0.05
    # weights only on the output's own upstream set, never on the input node
    for j, tf in enumerate([4, 3]):
        allowed = set(upstream_nodes(SRC, DST, 7, tf, int(ro.hops[j]), np.array([0])).tolist())
        used = {int(v) for v, w in zip(ro.nodes, ro.weight[j], strict=True) if w != 0}
        assert used <= allowed
    assert 0 not in ro.nodes.tolist()


def test_readout_of_pure_noise_is_shrunk_to_the_mean():
    rng = np.random.default_rng(1)
    states = rng.normal(size=(60, 7))
    y = rng.normal(size=(60, 1))
    ro = fit_graph_readout(states, y, SRC, DST, np.array([4]), np.array([0]), alphas=(1.0, 100.0))
    pred = states[:, ro.nodes] @ ro.weight.T + ro.offset
    assert np.std(pred) < 0.2 * np.std(y)


@pytest.fixture(scope="module")
def trained():
    ds, net = synthetic(n_cond=50)
    cfg = TrainConfig(model="signaling", epochs=40, lr=0.05, readout="graph", seed=2)
    model = build_network(cfg, ds, net)
    res = fit(model, ds.inputs, ds.outputs, cfg)
    return ds, net, cfg, model, res


def test_training_with_graph_readout_sets_it_and_fits_at_least_as_well_as_the_tf_layer(trained):
    ds, net, cfg, model, res = trained
    assert isinstance(model, SignalingNetwork) and model.readout_weight is not None
    assert res.chosen["readout_nodes"] == len(model.readout_nodes)
    assert sum(res.chosen["readout_hops"].values()) == ds.outputs.shape[1]
    plain = build_network(cfg.model_copy(update={"readout": "tf"}), ds, net)
    fit(plain, ds.inputs, ds.outputs, cfg.model_copy(update={"readout": "tf"}))
    err_ro = np.mean((predict(model, ds.inputs) - ds.outputs) ** 2)
    err_tf = np.mean((predict(plain, ds.inputs) - ds.outputs) ** 2)
    assert err_ro <= err_tf * 1.05
    assert model.config()["readout_nodes"] == model.readout_nodes.tolist()


def test_graph_readout_artifact_round_trip_fast_path_and_explain(trained, tmp_path):
    ds, _net, _cfg, model, _ = trained
    path = save_artifact(
        tmp_path / "ro.pt", model, input_names=ds.input_names, output_names=ds.output_names, data_sha256=ds.sha256()
    )
    sur = load_artifact(path, device="cpu")
    u = ds.inputs[:9].astype(np.float32)
    torch_out = sur.predict(u, fast=False)
    np.testing.assert_allclose(torch_out, predict(model, u), atol=1e-5)
    np.testing.assert_allclose(sur.predict(u, fast=True), torch_out, atol=2e-3)
    # explain and knock-outs read outputs through the same readout
    base, _ = knockout_effect(model, u[0], [])
    np.testing.assert_allclose(base, predict(model, u[:1])[0], atol=1e-3)
    ex = explain(model, u[0])
    np.testing.assert_allclose(ex.y, predict(model, u[:1])[0], atol=1e-3)
    # knocking out a readout node changes the outputs that read it
    node = int(model.readout_nodes[np.argmax(np.abs(model.readout_weight.numpy()).sum(0))])
    _, ko = knockout_effect(model, u[0], [node])
    assert np.abs(ko - base).max() > 1e-4


def test_clear_readout_gives_back_the_trained_tf_layer(trained):
    ds, net, cfg, model, _ = trained
    plain = build_network(cfg.model_copy(update={"readout": "tf"}), ds, net)
    fit(plain, ds.inputs, ds.outputs, cfg.model_copy(update={"readout": "tf"}))
    import copy

    m = copy.deepcopy(model)
    assert np.abs(predict(m, ds.inputs) - predict(plain, ds.inputs)).max() > 1e-4
    m.clear_readout()
    assert "readout_nodes" not in m.config() and "readout_weight" not in m.state_dict()
    np.testing.assert_allclose(predict(m, ds.inputs), predict(plain, ds.inputs), atol=1e-6)


def test_cross_validate_records_the_readout_choice_per_fold_and_scores_the_tf_layer():
    ds, net = synthetic(n_cond=30)
    cfg = TrainConfig(model="signaling", epochs=10, lr=0.05, readout="graph", readout_hops=[0, 2])
    rep = cross_validate(ds, net, {"signaling": cfg}, k=3, seeds=(0,), scramble=False, keep_predictions=True)
    chosen = rep.models["signaling"].fold_settings
    assert len(chosen) == 3 and all("readout_hops" in c for c in chosen)
    assert "inner CV" in rep.selection["signaling"]
    assert np.isfinite(rep.models["signaling"].pooled_r[0])
    # the tf-layer row: the same fits without the readout = a plain signaling CV
    plain = cross_validate(
        ds,
        net,
        {"signaling": cfg.model_copy(update={"readout": "tf"})},
        k=3,
        seeds=(0,),
        scramble=False,
        keep_predictions=True,
    )
    np.testing.assert_allclose(rep.predictions["signaling/tf-layer"], plain.predictions["signaling"], atol=1e-6)
    assert rep.predictions["signaling/tf-layer"] != rep.predictions["signaling"]


def test_a_node_nearly_constant_in_training_cannot_blow_up_a_prediction():
    # node 5 barely moves over the training conditions (an input path never used in training); a
    # held-out condition that moves it must not produce an extreme output (it would with one scale
    # per column: the node would get a unit-variance weight)
    rng = np.random.default_rng(2)
    states = rng.normal(size=(60, 7))
    states[:, 5] = 1e-6 * rng.normal(size=60)
    y = (states[:, 3] + 0.5 * rng.normal(size=60))[:, None]
    ro = fit_graph_readout(states, y, SRC, DST, np.array([4]), np.array([0]), hops=(1,), alphas=(0.01,))
    probe = np.zeros((2, 7))
    probe[1, 5] = 1.0
    pred = probe[:, ro.nodes] @ ro.weight.T + ro.offset
    assert abs(pred[1, 0] - pred[0, 0]) < 0.5
