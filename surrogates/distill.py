"""Distillation: train a surrogate on the Boolean engine's simulated cell-fate behaviour.

The TNF cell-fate network (``scenarios/networks/tnf_cellfate.bnd/.cfg``) decides between
Apoptosis, NonACD (necrosis), Survival and none of them ("Naive"). Here the Boolean engine
(:mod:`tme_sim.intracellular.boolean`) is run for many input *conditions* and the surrogate learns
the map condition → fate probabilities.

Conditions (the surrogate's inputs, all in [0, 1]):

* ``TNF``, ``FASL``: probability that the ligand node is clamped on in a cell (as the PhysiBoSS
  "hill" coupling does); levels 0, 0.25, 0.5, 0.75, 1 (TNF) and 0, 1 (FASL);
* ``KO_<node>`` / ``KI_<node>``: 1 = node knocked out / knocked in for the whole run, for single
  and double knock-outs and knock-out + knock-in pairs over :data:`KNOCKOUTS`, :data:`KNOCKINS`.

Outputs: the probabilities of the four fates at ``horizon`` network time units (default: the
.cfg's ``max_time``), each estimated from ``trajectories`` independent exact-Gillespie
trajectories. A trajectory's fate is, by priority, Apoptosis (node on), NonACD, Survival, else
Naive.

Agreement (reported honestly, on conditions held out from training — 20 % chosen at random):

* ``argmax_agreement``: fraction of held-out conditions where the surrogate's most likely fate is
  the Boolean estimate's most likely fate;
* ``argmax_agreement_decided``: the same over the conditions whose Boolean top-two fates differ by
  more than 2 binomial standard errors (elsewhere "the" fate is a coin toss even for the engine);
* ``within_0.05`` / ``within_0.1``: fraction of held-out conditions whose four probabilities are
  all within 0.05 / 0.1 of the Boolean estimate; ``mean_abs_error``;
* ``engine_vs_engine``: the same argmax agreement between two independent Boolean estimates of
  the held-out conditions — the ceiling set by sampling noise.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

FATES = ("Apoptosis", "NonACD", "Survival", "Naive")
KNOCKOUTS = ("CASP8", "RIP1", "cFLIP", "cIAP", "NFkB", "BCL2", "XIAP", "BAX", "MPT", "FADD")
KNOCKINS = ("cFLIP", "BCL2", "NFkB", "XIAP")
TNF_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
FASL_LEVELS = (0.0, 1.0)


def input_names(network_nodes: list[str]) -> list[str]:
    ko = [n for n in KNOCKOUTS if n in network_nodes]
    ki = [n for n in KNOCKINS if n in network_nodes]
    return ["TNF", "FASL"] + [f"KO_{n}" for n in ko] + [f"KI_{n}" for n in ki]


def conditions(names: list[str]) -> np.ndarray:
    """All conditions (n, len(names)) float32: ligand levels × mutation sets (see module doc)."""
    ko = [n for n in names if n.startswith("KO_")]
    ki = [n for n in names if n.startswith("KI_")]
    muts: list[tuple[str, ...]] = [()]
    muts += [(k,) for k in ko] + [(k,) for k in ki]
    muts += list(itertools.combinations(ko, 2))
    muts += [(a, b) for a in ko for b in ki if a[3:] != b[3:]]
    col = {n: i for i, n in enumerate(names)}
    rows = []
    for tnf in TNF_LEVELS:
        for fasl in FASL_LEVELS:
            for m in muts:
                r = np.zeros(len(names), dtype=np.float32)
                r[col["TNF"]], r[col["FASL"]] = tnf, fasl
                for k in m:
                    r[col[k]] = 1.0
                rows.append(r)
    return np.array(rows)


def simulate_fates(
    net: Any, conds: np.ndarray, names: list[str], trajectories: int, horizon: float, rng: np.random.Generator
) -> np.ndarray:
    """Fate probabilities (n_conditions, 4) estimated with the Boolean engine.

    All trajectories of all conditions run in one batched ``advance`` call with per-cell
    knock-out/knock-in masks (ligands are clamped through those masks too).
    """
    n_c, m = conds.shape[0], net.n_nodes
    n = n_c * trajectories
    ko = np.zeros((n, m), dtype=bool)
    ki = np.zeros((n, m), dtype=bool)
    rep = np.repeat(np.arange(n_c), trajectories)
    for j, name in enumerate(names):
        if name in ("TNF", "FASL"):
            on = rng.random(n) < conds[rep, j]
            ki[:, net.index(name)] = on
            ko[:, net.index(name)] = ~on
        else:
            node = net.index(name[3:])
            flag = conds[rep, j] > 0.5
            (ko if name.startswith("KO_") else ki)[:, node] |= flag
    state = net.initial_state(n, rng)
    net.advance(state, float(horizon), rng, knockout=ko, knockin=ki)
    a = state[:, net.index("Apoptosis")] != 0
    nec = state[:, net.index("NonACD")] != 0
    sur = state[:, net.index("Survival")] != 0
    fate = np.where(a, 0, np.where(nec, 1, np.where(sur, 2, 3)))
    counts = np.zeros((n_c, 4))
    np.add.at(counts, (rep, fate), 1.0)
    return (counts / trajectories).astype(np.float32)


def agreement(pred: np.ndarray, ref: np.ndarray, trajectories: int) -> dict[str, float]:
    """Agreement metrics between predicted and reference fate probabilities (see module doc)."""
    am = pred.argmax(1) == ref.argmax(1)
    srt = np.sort(ref, axis=1)
    p1, p2 = srt[:, -1], srt[:, -2]
    se = np.sqrt((p1 * (1 - p1) + p2 * (1 - p2) + 2 * p1 * p2) / trajectories)  # SE of p1 - p2
    decided = (p1 - p2) > 2 * se
    err = np.abs(pred - ref).max(1)
    return {
        "n": len(ref),
        "argmax_agreement": float(am.mean()),
        "n_decided": int(decided.sum()),
        "argmax_agreement_decided": float(am[decided].mean()) if decided.any() else float("nan"),
        "within_0.05": float((err <= 0.05).mean()),
        "within_0.1": float((err <= 0.1).mean()),
        "mean_abs_error": float(np.abs(pred - ref).mean()),
    }


def distill_tnf(
    bnd: str | Path,
    cfg: str | Path,
    out: str | Path | None,
    *,
    trajectories: int = 400,
    horizon: float | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    epochs: int = 2000,
    threads: int | None = 1,
    quiet: bool = True,
) -> dict[str, Any]:
    """Simulate, train, evaluate on held-out conditions, and (if ``out``) save the artifact.

    Returns a report dict with ``summary`` (agreement metrics, timings) and, when saved, the
    artifact path. The artifact's outputs are the fate probabilities, named :data:`FATES`.
    """
    from surrogates.artifact import save_artifact
    from surrogates.data import Dataset
    from surrogates.train import TrainConfig, build_model, fit, predict
    from tme_sim.intracellular.boolean import load_network

    net = load_network(bnd, cfg)
    T = float(horizon if horizon is not None else net.settings.get("max_time", 100.0))
    names = input_names(list(net.node_names))
    conds = conditions(names)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    probs = simulate_fates(net, conds, names, trajectories, T, rng)
    sim_s = time.perf_counter() - t0
    n = len(conds)
    perm = np.random.default_rng(seed + 1).permutation(n)
    n_te = round(test_fraction * n)
    te, tr = np.sort(perm[:n_te]), np.sort(perm[n_te:])
    # a second, independent Boolean estimate of the held-out conditions: the noise ceiling
    probs2 = simulate_fates(net, conds[te], names, trajectories, T, np.random.default_rng(seed + 2))
    tcfg = TrainConfig(
        model="mlp",
        hidden=64,
        layers=2,
        dropout=0.0,
        lr=3e-3,
        epochs=epochs,
        patience=epochs,
        weight_decay=1e-5,
        seed=seed,
        head="softmax",
        threads=threads,
        eval_every=50,
    )
    data = Dataset(conds, probs, names, list(FATES), [f"c{i}" for i in range(n)], [str(bnd), str(cfg)])
    t1 = time.perf_counter()
    model = build_model(tcfg, data, None)
    res = fit(model, conds[tr], probs[tr], tcfg)
    train_s = time.perf_counter() - t1
    pred_te = predict(model, conds[te])
    summary = {
        "conditions": n,
        "held_out": int(n_te),
        "trajectories_per_condition": trajectories,
        "horizon": T,
        "surrogate_vs_engine": agreement(pred_te, probs[te], trajectories),
        "engine_vs_engine": agreement(probs2, probs[te], trajectories),
        "train_fit": agreement(predict(model, conds[tr]), probs[tr], trajectories),
        "simulation_seconds": sim_s,
        "training_seconds": train_s,
        "epochs": res.epochs,
    }
    report: dict[str, Any] = {"summary": summary}
    if out is not None:
        # final artifact: retrain on all conditions with the same settings
        final = build_model(tcfg, data, None)
        fit(final, conds, probs, tcfg)
        save_artifact(
            out,
            final,
            input_names=names,
            output_names=list(FATES),
            data_sha256=data.sha256(),
            names={},
            output_labels="probability",
            training={"command": "tme train distill", "config": tcfg.model_dump(), "summary": summary},
        )
        Path(out).with_suffix(".json").write_text(json.dumps(summary, indent=1))
        report["artifact"] = str(out)
    return report
