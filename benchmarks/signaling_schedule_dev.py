"""Development runs of the signaling network's optimisation schedule (issue #17), one k-fold fold.

Fits the candidate recipe (``benchmarks/recipes/ligand_screen_exact_graph.toml``) with the settings
given as ``--set key=value`` overrides on one fold of ``tme train cv``'s k-fold split, and prints one
JSON line: training r (pooled, readout), held-out pooled / per-TF median r (readout and TF layer),
CPU s of the fit, next to ridge (nested alpha) and the MLP baseline on the same fold (``--baselines``).

    nice -n 10 python benchmarks/signaling_schedule_dev.py --seed 9 --fold 0 --baselines
    nice -n 10 python benchmarks/signaling_schedule_dev.py --seed 9 --fold 0 --set lr_schedule=one_cycle

Development seeds only (9): never use it to choose settings on the seeds a report scores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tme_sim.cli.train import _load_inputs, mlp_baseline_config
from tme_sim.training.cv import _fit_predict, _tf_layer_predictions, make_folds, per_output_r, pooled_r
from tme_sim.training.train import build_network, fit, handle_unseen_inputs, load_train_toml, predict

RECIPE = Path(__file__).parent / "recipes" / "ligand_screen_exact_graph.toml"


def _scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    return round(pooled_r(pred, true), 4), round(float(np.nanmedian(per_output_r(pred, true))), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="TrainConfig override key=value (JSON value)")
    ap.add_argument("--baselines", action="store_true", help="also score ridge and the MLP baseline")
    a = ap.parse_args()
    tf = load_train_toml(RECIPE)
    upd = {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        try:
            upd[k] = json.loads(v)
        except json.JSONDecodeError:
            upd[k] = v
    cfg = tf.train.model_copy(update={**upd, "seed": a.seed, "threads": 1})
    cfg = type(cfg).model_validate(cfg.model_dump())
    d = tf.data
    data, net = _load_inputs(d.path, d.outputs, d.network, d.annotation, "signaling")
    te = make_folds(data.inputs, "kfold", 5, a.seed)[a.fold]
    tr = np.setdiff1d(np.arange(data.n), te)
    out: dict = {"seed": a.seed, "fold": a.fold, "set": upd}
    if a.baselines:
        for name, c in (("ridge", None), ("mlp", mlp_baseline_config(cfg, 2000, 1))):
            pred, _, _, cpu, _, _ = _fit_predict(name, c, data, net, tr, te, data.outputs[tr], seed=a.seed)
            out[name] = {"heldout": _scores(pred, data.outputs[te]), "cpu_s": round(cpu, 1)}
    c0 = time.process_time()
    model = build_network(cfg, data.subset(tr), net)
    res = fit(model, data.inputs[tr], data.outputs[tr], cfg)
    handle_unseen_inputs(model, data.inputs[tr], cfg)
    cpu = time.process_time() - c0
    out["signaling"] = {
        "train_r": _scores(predict(model, data.inputs[tr]), data.outputs[tr])[0],
        "train_r_tf_layer": _scores(_tf_layer_predictions(model, data.inputs[tr]), data.outputs[tr])[0]
        if cfg.readout == "graph"
        else None,
        "heldout": _scores(predict(model, data.inputs[te]), data.outputs[te]),
        "tf_layer": _scores(_tf_layer_predictions(model, data.inputs[te]), data.outputs[te])
        if cfg.readout == "graph"
        else None,
        "cpu_s": round(cpu, 1),
        "epochs": res.epochs,
        "best_epoch": res.best_epoch,
        "solves": {k: round(v, 3) for k, v in res.solves.items()},
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
