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

Architecture (defaults of :func:`distill_tnf` and ``tme train distill``): 16 inputs → 8 SiLU →
4 (softmax), AdamW lr 0.03, 4000 full-batch epochs (``DEFAULT_*``). Chosen by 4-fold
cross-validation on the *training* conditions only (:func:`cross_validate`; the 192 held-out
conditions were not used; seed-0 data, 400 trajectories; argmax agreement / mean abs error of
the out-of-fold predictions over the 768 training conditions, mean over training seeds 0, 1, 2).
Reproduce a row with e.g. ``tme train distill --cv 8x1,6x1 --lr 0.01`` (~1-2 min per row):

=========================  ========  =======
network, schedule           argmax    MAE
=========================  ========  =======
64×2, 2000 ep, lr 3e-3      0.970    0.0194   (the previous default)
16×1, 4000 ep, lr 0.01      0.967    0.0183
8×1, 4000 ep, lr 0.01       0.970    0.0172
8×1, 4000 ep, lr 0.03       0.971    0.0169   (chosen)
6×1, 4000 ep, lr 0.01       0.974    0.0185
=========================  ========  =======

Single seed (0): 4×1 (4000 ep, lr 0.01) 0.961 / 0.0225 (too small); no gain from a second
layer: 8×2 (4000 ep, lr 0.01) 0.967 / 0.0199, 16×2 (4000 ep, lr 3e-3) 0.969 / 0.0181, 32×2
(2000 ep, lr 3e-3) 0.969 / 0.0182; 64×2 at 4000 ep, lr 0.01: 0.961 / 0.0144 (lower error, not
lower argmax agreement, at 34× the multiply-adds).
Argmax agreement differs by less than its sampling noise (±0.006) down to 6 hidden units; small
networks need the longer, faster schedule (8×1 at 2000 epochs, lr 3e-3: 0.969 / 0.0227). 8 hidden
units in one layer are ~34× fewer multiply-adds than 64×2 (160 vs 5376), which the fused CPU kernel
(:class:`tme_sim.intracellular.neural.inference.FastMLP`) turns into ≥ 100× fewer seconds per cell than MaBoSS
spends per trajectory (``benchmarks/surrogates.py``).
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from tme_sim.errors import ConfigError
from tme_sim.intracellular.boolean import load_network

FATES = ("Apoptosis", "NonACD", "Survival", "Naive")
KNOCKOUTS = ("CASP8", "RIP1", "cFLIP", "cIAP", "NFkB", "BCL2", "XIAP", "BAX", "MPT", "FADD")
KNOCKINS = ("cFLIP", "BCL2", "NFkB", "XIAP")
TNF_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
FASL_LEVELS = (0.0, 1.0)
#: default network and training schedule of the distilled surrogate (see the module docstring)
DEFAULT_HIDDEN = 8
DEFAULT_LAYERS = 1
DEFAULT_LR = 0.03
DEFAULT_EPOCHS = 4000


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


def _check_settings(**values: float) -> None:
    for key, val in values.items():
        if key == "lr":
            if not val > 0:
                raise ConfigError(f"distill: lr must be > 0, got {val}")
        elif int(val) < 1:
            raise ConfigError(f"distill: {key} must be >= 1, got {val}")


def _train_config(hidden: int, layers: int, lr: float, epochs: int, seed: int, threads: int | None) -> Any:
    from tme_sim.training.train import TrainConfig

    return TrainConfig(
        model="mlp",
        hidden=int(hidden),
        layers=int(layers),
        dropout=0.0,
        lr=float(lr),
        epochs=int(epochs),
        patience=int(epochs),
        weight_decay=1e-5,
        seed=seed,
        head="softmax",
        threads=threads,
        eval_every=50,
    )


def _fate_data(
    bnd: str | Path, cfg: str | Path, trajectories: int, horizon: float | None, seed: int, test_fraction: float
) -> tuple[Any, list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(network, input names, conditions, fate probabilities, held-out rows, training rows,
    horizon, simulation seconds): the same data and split for :func:`distill_tnf` and
    :func:`cross_validate`."""
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
    return net, names, conds, probs, te, tr, T, sim_s


def cross_validate(
    bnd: str | Path,
    cfg: str | Path,
    architectures: list[tuple[int, int]],
    *,
    folds: int = 4,
    seeds: int = 3,
    trajectories: int = 400,
    horizon: float | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    threads: int | None = 1,
) -> list[dict[str, Any]]:
    """Choose an architecture without touching the held-out conditions: ``folds``-fold
    cross-validation over the *training* conditions of :func:`distill_tnf` (same data, same
    split for the same ``seed``/``trajectories``/``test_fraction``), for each (hidden, layers)
    in ``architectures`` and training seeds 0 … ``seeds``-1.

    Returns one row per architecture: ``hidden``, ``layers``, ``epochs``, ``lr``, the mean over
    seeds of ``argmax_agreement``, ``argmax_agreement_decided``, ``within_0.1`` and
    ``mean_abs_error`` of the out-of-fold predictions (see :func:`agreement`), and ``seconds``.
    """
    from tme_sim.training.train import build_network, fit, predict

    _check_settings(epochs=epochs, trajectories=trajectories, folds=folds, seeds=seeds, lr=lr)
    for h, L in architectures:
        _check_settings(hidden=h, layers=L)
    _, names, conds, probs, _, tr, _, _ = _fate_data(bnd, cfg, trajectories, horizon, seed, test_fraction)
    parts = np.array_split(np.random.default_rng(seed + 7).permutation(tr), int(folds))
    rows = []
    keys = ("argmax_agreement", "argmax_agreement_decided", "within_0.1", "mean_abs_error")
    for h, L in architectures:
        t0 = time.perf_counter()
        per_seed = []
        for s in range(int(seeds)):
            tcfg = _train_config(h, L, lr, epochs, s, threads)
            pred = np.zeros_like(probs)
            for va in parts:
                fit_rows = np.setdiff1d(tr, va)
                model = build_network(tcfg, _dataset(conds, probs, names, bnd, cfg), None)
                fit(model, conds[fit_rows], probs[fit_rows], tcfg)
                pred[va] = predict(model, conds[va])
            per_seed.append(agreement(pred[tr], probs[tr], trajectories))
        row: dict[str, Any] = {"hidden": int(h), "layers": int(L), "epochs": int(epochs), "lr": float(lr)}
        row.update({k: float(np.mean([a[k] for a in per_seed])) for k in keys})
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
    return rows


def _dataset(conds: np.ndarray, probs: np.ndarray, names: list[str], bnd: str | Path, cfg: str | Path) -> Any:
    from tme_sim.training.data import Dataset

    return Dataset(conds, probs, names, list(FATES), [f"c{i}" for i in range(len(conds))], [str(bnd), str(cfg)])


def distill_tnf(
    bnd: str | Path,
    cfg: str | Path,
    out: str | Path | None,
    *,
    trajectories: int = 400,
    horizon: float | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    epochs: int = DEFAULT_EPOCHS,
    hidden: int = DEFAULT_HIDDEN,
    layers: int = DEFAULT_LAYERS,
    lr: float = DEFAULT_LR,
    threads: int | None = 1,
    quiet: bool = True,
) -> dict[str, Any]:
    """Simulate, train, evaluate on held-out conditions, and (if ``out``) save the artifact.

    The surrogate is a dense MLP: ``layers`` hidden layers of ``hidden`` SiLU units, softmax
    outputs, AdamW at learning rate ``lr`` for ``epochs`` full-batch epochs (defaults:
    ``DEFAULT_*``, chosen with :func:`cross_validate`). Returns a report dict with ``summary``
    (agreement metrics, timings, the network) and, when saved, the artifact path. The
    artifact's outputs are the fate probabilities, named :data:`FATES`.
    """
    from tme_sim.intracellular.neural.artifact import save_artifact
    from tme_sim.training.train import build_network, fit, predict

    _check_settings(hidden=hidden, layers=layers, epochs=epochs, trajectories=trajectories, lr=lr)
    net, names, conds, probs, te, tr, T, sim_s = _fate_data(bnd, cfg, trajectories, horizon, seed, test_fraction)
    n, n_te = len(conds), len(te)
    # a second, independent Boolean estimate of the held-out conditions: the noise ceiling
    probs2 = simulate_fates(net, conds[te], names, trajectories, T, np.random.default_rng(seed + 2))
    tcfg = _train_config(hidden, layers, lr, epochs, seed, threads)
    data = _dataset(conds, probs, names, bnd, cfg)
    t1 = time.perf_counter()
    model = build_network(tcfg, data, None)
    res = fit(model, conds[tr], probs[tr], tcfg)
    train_s = time.perf_counter() - t1
    pred_te = predict(model, conds[te])
    summary = {
        "conditions": n,
        "held_out": int(n_te),
        "trajectories_per_condition": trajectories,
        "horizon": T,
        "network": {"hidden": int(hidden), "layers": int(layers), "activation": "silu", "lr": float(lr)},
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
        final = build_network(tcfg, data, None)
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
