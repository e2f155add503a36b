"""The hybrid surrogate (prior-knowledge network + reduced-rank linear path + MLP): training, CV
rows, artifacts and the ``tme train`` commands."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_surrogate_train import held_out_and_scrambled_r, synthetic  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from tme_sim.cli.train import train_app  # noqa: E402
from tme_sim.errors import ConfigError  # noqa: E402
from tme_sim.intracellular.neural.networks import HybridSignaling  # noqa: E402
from tme_sim.training.cv import cross_validate, format_table, pooled_r  # noqa: E402
from tme_sim.training.train import TrainConfig, build_network, fit, predict  # noqa: E402

FAST = {"lr": 0.03, "threads": 1, "max_iter": 100, "eval_every": 5, "mlp_epochs": 150}


def test_tiny_hybrid_learns_and_beats_its_scrambled_control():
    ds, net = synthetic()
    tr, te = np.arange(40), np.arange(40, 60)
    cfg = TrainConfig(model="hybrid", epochs=80, patience=80, **FAST)
    model, res, r, r_scr = held_out_and_scrambled_r(cfg, ds, net)
    assert isinstance(model, HybridSignaling) and model.mlp is not None
    assert (model.linear_weight, model.rnn_weight, model.mlp_weight) == pytest.approx((0.5, 0.1, 0.4))
    assert res.epochs == 80 and res.train_loss < res.history[0]["train_loss"]
    assert r > 0.8 and r > r_scr + 0.3, (r, r_scr)
    # activities in [0, 1]: the linear path and the MLP part are fitted to log-odds
    assert 0 <= ds.outputs.min() and ds.outputs.max() <= 1
    assert model.logit_eps == model.mlp.logit_eps == cfg.hybrid_logit_eps > 0
    # the MLP part is exactly a stand-alone MLP of the same seed and settings (fitted to log-odds)
    mcfg = cfg.model_copy(update={"model": "mlp", "lr": cfg.mlp_lr, "epochs": 150, "patience": 150})
    mlp = build_network(mcfg, ds.subset(tr), None)
    mlp.logit_eps = model.logit_eps
    fit(mlp, ds.inputs[tr], ds.outputs[tr], mcfg)
    assert np.array_equal(predict(mlp, ds.inputs[te]), predict(model.mlp, ds.inputs[te]))


def test_hybrid_modes_and_weights():
    ds, net = synthetic(30)
    res = build_network(TrainConfig(model="hybrid", hybrid_mode="residual", rnn_weight=0.5, mlp_weight=0.2), ds, net)
    assert (res.linear_weight, res.rnn_weight, res.mlp_weight) == pytest.approx((0.8, 0.4, 0.2))
    none = build_network(TrainConfig(model="hybrid", mlp_weight=0.0, rnn_weight=0.3), ds, net)
    assert none.mlp is None and none.linear_weight == pytest.approx(0.7)
    # targets outside [0, 1] are not activities: fitted as they are, not as log-odds
    shifted = type(ds)(ds.inputs, ds.outputs + 0.5, ds.input_names, ds.output_names, ds.condition_names)
    raw = build_network(TrainConfig(model="hybrid"), shifted, net)
    assert raw.logit_eps == 0 and raw.mlp.logit_eps == 0
    assert build_network(TrainConfig(model="hybrid", hybrid_logit_eps=0), ds, net).logit_eps == 0
    with pytest.raises(ConfigError, match="rnn_weight \\+ mlp_weight"):
        build_network(TrainConfig(model="hybrid", rnn_weight=0.8, mlp_weight=0.3), ds, net)
    # residual mode: the network learns what the linear path leaves
    cfg = TrainConfig(model="hybrid", hybrid_mode="residual", rnn_weight=1.0, mlp_weight=0.0, epochs=40, **FAST)
    m = build_network(cfg, ds, net)
    fit(m, ds.inputs, ds.outputs, cfg)
    lin = m.linear_numpy(ds.inputs)
    resid = ds.outputs - lin
    assert pooled_r(predict(m.rnn, ds.inputs), resid) > 0.2
    assert np.allclose(predict(m, ds.inputs), lin + predict(m.rnn, ds.inputs), atol=1e-5)


def test_cv_scores_the_hybrid_and_its_parts_from_the_same_fits():
    ds, net = synthetic(40)
    cfg = TrainConfig(model="hybrid", epochs=20, patience=20, **{**FAST, "mlp_epochs": 30})
    rep = cross_validate(ds, net, {"hybrid": cfg}, k=4, seeds=[0], scramble_seeds=1, keep_predictions=True)
    names = [r["model"] for r in rep.rows()]
    assert names == ["mean", "ridge", "hybrid", "hybrid/linear", "hybrid/network", "hybrid/mlp", "hybrid/no-network"]
    p = {k: np.array(v[0]) for k, v in rep.predictions.items()}
    assert np.allclose(
        p["hybrid"], 0.5 * p["hybrid/linear"] + 0.1 * p["hybrid/network"] + 0.4 * p["hybrid/mlp"], atol=1e-5
    )  # every input occurs in every fold's training conditions: the MLP gate stays open
    assert np.allclose(p["hybrid/no-network"], (0.5 * p["hybrid/linear"] + 0.4 * p["hybrid/mlp"]) / 0.9, atol=1e-6)
    assert rep.models["hybrid"].fold_seconds == rep.models["hybrid/mlp"].fold_seconds
    assert len(rep.models["hybrid"].scrambled_pooled_r) == 1
    assert rep.rows()[2]["pooled_r"] > rep.rows()[2]["scrambled_r"] + 0.3
    assert "hybrid/no-network" in format_table(rep)


def _write_csv_and_network(tmp_path):
    ds, net = synthetic(30)
    ins, outs = ds.input_names, ds.output_names
    head = ["cond", *[f"in:{n}" for n in ins], *outs]
    rows = [",".join(head)]
    for i in range(ds.n):
        rows.append(",".join([f"c{i}", *(f"{v:g}" for v in ds.inputs[i]), *(f"{v:.6g}" for v in ds.outputs[i])]))
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    lines = ["source\ttarget\tsign"] + [
        f"{net.node_names[s]}\t{net.node_names[t]}\t{g}" for s, t, g in zip(net.src, net.dst, net.sign, strict=True)
    ]
    (tmp_path / "n.tsv").write_text("\n".join(lines) + "\n")
    return ds


def test_train_and_cv_commands_with_a_hybrid_model(tmp_path):
    from tme_sim.intracellular.neural.artifact import load_artifact

    ds = _write_csv_and_network(tmp_path)
    common = ["--data", str(tmp_path / "d.csv"), "--network", str(tmp_path / "n.tsv"), "--threads", "1", "-q"]
    out = tmp_path / "m.pt"
    r = CliRunner().invoke(train_app, [*common, "--model", "hybrid", "--epochs", "20", "--out", str(out)])
    assert r.exit_code == 0, r.output
    s = load_artifact(out, device="cpu")
    assert s.kind == "hybrid" and s.meta["model_config"]["mlp"] is not None
    with torch.no_grad():
        ref = s.model(torch.as_tensor(ds.inputs)).numpy()
    assert np.allclose(s.predict(ds.inputs, fast=False), ref, atol=1e-6)
    assert np.allclose(s.predict(ds.inputs), ref, atol=2e-2)
    cv_args = "--models hybrid --epochs 10 --mlp-epochs 20 --folds 3 --seeds 0 --scramble-seeds 0".split()
    r = CliRunner().invoke(train_app, ["cv", *common, *cv_args, "--out-dir", str(tmp_path / "cv")])
    assert r.exit_code == 0, r.output
    assert "hybrid/no-network" in r.output and "ridge" in r.output
    r = CliRunner().invoke(train_app, ["cv", *common, "--models", "hybrid,nope", "--out-dir", str(tmp_path / "x")])
    assert r.exit_code != 0 and "hybrid" in (r.output + str(r.exception))


def test_hybrid_artifact_drives_the_simulator_adapter(tmp_path):
    from test_surrogate_adapter import EDGES, INPUTS, NODES, OUTPUTS, config

    from tme_sim.intracellular.base import Signals
    from tme_sim.intracellular.neural.artifact import save_artifact
    from tme_sim.intracellular.surrogate import SurrogateIntracellular

    names = list(NODES)
    idx = {n: i for i, n in enumerate(names)}
    sig = {
        "node_names": names,
        "src": np.array([idx[a] for a, _, _ in EDGES]),
        "dst": np.array([idx[b] for _, b, _ in EDGES]),
        "sign": np.array([s for *_, s in EDGES]),
        "input_nodes": np.array([idx[n] for n in INPUTS]),
        "output_nodes": np.array([idx[n] for n in OUTPUTS]),
        "init_weight": 0.8,
        "prescale": None,
        "baseline_state": 0.25,
    }
    mlp = {"n_in": 3, "n_out": 6, "hidden": 8, "layers": 1, "dropout": 0.0}
    hyb = HybridSignaling(sig, rank=2, rnn_weight=0.5, linear_weight=0.3, mlp_weight=0.2, mlp=mlp).eval()
    rng = np.random.default_rng(0)
    x = (rng.random((12, 3)) < 0.5).astype(np.float32)
    with torch.no_grad():
        y = hyb.rnn(torch.as_tensor(x)).numpy()  # targets the linear path can partly follow
    hyb.fit_linear(x, y, 0.1)
    art = save_artifact(
        tmp_path / "models" / "m.pt", hyb, input_names=INPUTS, output_names=OUTPUTS, data_sha256="0" * 64, names=NODES
    )
    im = SurrogateIntracellular.from_config(config(input_resolution=0.0), art.parent.parent)
    conc = np.zeros((3, 2))
    conc[1, 0] = conc[2, 1] = 50.0
    act = im.input_activities(Signals(["ifng", "il4"], conc))
    out = im.steady_outputs(act)
    u = np.zeros((3, 3), np.float32)
    u[:, :2] = act
    with torch.no_grad():
        ref = hyb(torch.as_tensor(u)).numpy()
    assert np.allclose(out, ref, atol=2e-2)
    beh = im.update(Signals(["ifng", "il4"], conc), im.initial_state(3, rng), 30.0, rng)
    assert beh["polarization"].shape == (3,) and np.isfinite(beh["polarization"]).all()
