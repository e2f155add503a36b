"""Signaling ensembles (``members`` > 1): the mean of independently initialised networks on one graph."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from tests.test_surrogate_train import synthetic
from tme_sim.intracellular.neural.artifact import load_artifact, save_artifact
from tme_sim.intracellular.neural.ensemble import SignalingEnsemble, member_seed
from tme_sim.intracellular.neural.networks import SignalingNetwork, steady_outputs_with_drugs
from tme_sim.training.cv import cross_validate
from tme_sim.training.train import TrainConfig, build_network, fit, handle_unseen_inputs, predict


def _trained(members: int = 3, epochs: int = 40):
    ds, net = synthetic(n_cond=40)
    cfg = TrainConfig(model="signaling", epochs=epochs, lr=0.05, members=members, seed=3)
    model = build_network(cfg, ds, net)
    fit(model, ds.inputs, ds.outputs, cfg)
    return ds, net, cfg, model


def test_ensemble_members_are_the_single_networks_of_their_seeds_and_output_their_mean():
    ds, net, cfg, ens = _trained()
    assert isinstance(ens, SignalingEnsemble) and len(ens.members) == 3
    # member k is exactly the single network trained with seed member_seed(seed, k)
    k = 2
    single_cfg = cfg.model_copy(update={"members": 1, "seed": member_seed(cfg.seed, k)})
    single = build_network(single_cfg, ds, net)
    assert isinstance(single, SignalingNetwork)
    fit(single, ds.inputs, ds.outputs, single_cfg)
    np.testing.assert_allclose(predict(ens.members[k], ds.inputs), predict(single, ds.inputs), atol=1e-6)
    # members differ (unknown-sign edges drawn per member) and the ensemble predicts their mean
    p = np.stack([predict(m, ds.inputs) for m in ens.members])
    assert np.abs(p[0] - p[1]).max() > 1e-4
    np.testing.assert_allclose(predict(ens, ds.inputs), p.mean(0), atol=1e-6)


def test_ensemble_artifact_round_trip_fast_path_and_drug_drive(tmp_path):
    ds, _net, _, ens = _trained(members=2, epochs=20)
    path = save_artifact(
        tmp_path / "ens.pt", ens, input_names=ds.input_names, output_names=ds.output_names, data_sha256=ds.sha256()
    )
    sur = load_artifact(path, device="cpu")
    assert sur.kind == "signaling_ensemble"
    u = ds.inputs[:7].astype(np.float32)
    torch_out = sur.predict(u, fast=False)
    np.testing.assert_allclose(torch_out, predict(ens, u), atol=1e-5)
    np.testing.assert_allclose(sur.predict(u, fast=True), torch_out, atol=2e-2)
    # a drug drive on one node: the ensemble's response is the mean of its members' responses
    drive = torch.zeros(len(ens.node_names), 7)
    drive[10] = -1.0
    ut = torch.as_tensor(u)
    members = torch.stack([steady_outputs_with_drugs(m, ut, drive) for m in ens.members]).mean(0)
    np.testing.assert_allclose(steady_outputs_with_drugs(ens, ut, drive).numpy(), members.numpy(), atol=1e-6)
    fast = sur.fast_runner()(u, extra_nodes=np.array([10]), extra_drive=-np.ones((7, 1), np.float32))
    np.testing.assert_allclose(fast, members.numpy(), atol=2e-2)


def test_ensemble_unseen_input_strategies_act_on_every_member():
    ds, _net, cfg, ens = _trained(members=2, epochs=10)
    seen = np.array([True, True, True, False])
    n = handle_unseen_inputs(ens, ds.inputs * seen, cfg.model_copy(update={"unseen_inputs": "substitute"}))
    assert n == 1
    assert all(m.input_map is not None for m in ens.members)


def test_cross_validate_signaling_row_with_members():
    ds, net = synthetic(n_cond=30)
    cfg = TrainConfig(model="signaling", epochs=10, lr=0.05, members=2)
    rep = cross_validate(ds, net, {"signaling": cfg}, k=3, seeds=(0,), scramble=False)
    assert set(rep.models) == {"mean", "ridge", "signaling"}
    assert rep.settings["signaling"]["members"] == 2
    assert np.isfinite(rep.models["signaling"].pooled_r[0])
