"""Distillation: train a surrogate on the Boolean engine's simulated cell-fate behaviour.

The TNF cell-fate network (``scenarios/networks/tnf_cellfate.bnd/.cfg``) decides between
Apoptosis, NonACD (necrosis), Survival and none of them ("Naive"). Here the Boolean engine
(:mod:`tme_sim.intracellular.boolean`) is run for many input *conditions* and the surrogate learns
the map condition → fate probabilities.

Conditions (the surrogate's inputs, all in [0, 1]) — every input is the *probability* that a
cell has it: for ``TNF``/``FASL`` that the ligand node is clamped on (as the PhysiBoSS "hill"
coupling does), for ``KO_<node>``/``KI_<node>`` that the node is knocked out / in for the whole
run (:data:`KNOCKOUTS`, :data:`KNOCKINS`; a drug's occupancy reaches the surrogate this way with
``drug_sampling = "expected"``). A knock-out wins over a knock-in of the same node.

Outputs: the probabilities of the four fates at ``horizon`` network time units (default: the
.cfg's ``max_time``), each estimated from ``trajectories`` independent exact-Gillespie
trajectories. A trajectory's fate is, by priority, Apoptosis (node on), NonACD, Survival, else
Naive.

The recipe (:func:`design`): the surrogate must *interpolate*, so it is trained on conditions
sampled across the input space and judged on conditions absent from training, fixed in advance:

* training: ligand levels drawn from 0 (20 %), 1 (10 %) or uniform in [0, 1] (70 %), except
  within ±:data:`BAND` of the held-out levels :data:`TEST_LEVELS`; a mutation set of 0–3
  knock-outs/knock-ins (a knock-in never with a knock-out of the same node), each at level 1
  (70 %) or a fractional level drawn like the ligands; mutation sets are drawn from all singles
  and the pairs and triples *not* held out;
* held out (:data:`HELD_OUT_SET_FRACTION` of all pairs and of all triples, chosen at random once),
  in three groups of equal size: ``levels`` (training mutation sets, and at least one ligand or
  fractional flag at a held-out level), ``combos`` (held-out mutation sets at training-like
  levels) and ``both``.

The shipped artifact is the model trained on the training conditions only and scored on the held-out
ones — the reported agreement is that of the exact artifact (stored in it as
``meta["training"]["summary"]``; :func:`evaluate_artifact` recomputes it from the file):

* ``argmax_agreement``: fraction of held-out conditions where the surrogate's most likely fate is
  the Boolean estimate's most likely fate;
* ``argmax_agreement_decided``: the same over the conditions whose Boolean top-two fates differ by
  more than 2 binomial standard errors (elsewhere "the" fate is a coin toss even for the engine);
* ``within_0.05`` / ``within_0.1``: fraction of held-out conditions whose four probabilities are
  all within 0.05 / 0.1 of the Boolean estimate; ``mean_abs_error``; ``max_abs_error``;
* ``engine_vs_engine``: the same between two independent Boolean estimates of the held-out
  conditions — the ceiling set by sampling noise.

Architecture (defaults of :func:`distill_tnf` and ``tme train distill``, ``DEFAULT_*``): 16 inputs →
32 SiLU → 32 SiLU → 4 (softmax), AdamW lr 0.01, 4000 full-batch epochs, chosen by 4-fold
cross-validation over the 6000 *training* conditions only (:func:`cross_validate`; held-out
conditions not used; seed-0 data, 400 trajectories, training seed 0, lr 0.01, 4000 epochs).
Reproduce with ``tme train distill --cv 8x1,16x1,32x1,32x2 --lr 0.01 --cv-seeds 1``:

=========  ========  ==========  =======
network     argmax    within 0.1   MAE
=========  ========  ==========  =======
8×1         0.978     0.892       0.0250   (the previous default, trained on a grid)
16×1        0.985     0.942       0.0226
32×1        0.984     0.957       0.0183
32×2        0.984     0.985       0.0119   (chosen: argmax tied within noise, lowest error)
=========  ========  ==========  =======

Argmax agreement is tied within its sampling noise (±0.004) from 16 hidden units on; the
probabilities themselves (which set the fate rates in a simulation) are twice as accurate with
two layers of 32. That is 1664 multiply-adds per cell instead of 160.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tme_sim.errors import ConfigError
from tme_sim.intracellular.boolean import load_network

FATES = ("Apoptosis", "NonACD", "Survival", "Naive")
KNOCKOUTS = ("CASP8", "RIP1", "cFLIP", "cIAP", "NFkB", "BCL2", "XIAP", "BAX", "MPT", "FADD")
KNOCKINS = ("cFLIP", "BCL2", "NFkB", "XIAP")
#: held-out input levels (ligands and fractional flags); training levels keep BAND away from them
TEST_LEVELS = (0.1, 0.3, 0.45, 0.65, 0.85)
BAND = 0.03
#: fraction of all mutation pairs and of all triples held out of training
HELD_OUT_SET_FRACTION = 0.25
#: default network and training schedule of the distilled surrogate (see the module docstring)
DEFAULT_HIDDEN = 32
DEFAULT_LAYERS = 2
DEFAULT_LR = 0.01
DEFAULT_EPOCHS = 4000
DEFAULT_TRAIN_CONDITIONS = 6000
DEFAULT_TEST_CONDITIONS = 1200


def input_names(network_nodes: list[str]) -> list[str]:
    ko = [n for n in KNOCKOUTS if n in network_nodes]
    ki = [n for n in KNOCKINS if n in network_nodes]
    return ["TNF", "FASL"] + [f"KO_{n}" for n in ko] + [f"KI_{n}" for n in ki]


def mutation_sets(names: list[str]) -> list[tuple[str, ...]]:
    """Every set of 1–3 flags of ``names`` (``KO_*``/``KI_*``) with at most one knock-in and no
    knock-in of a knocked-out node."""
    flags = [n for n in names if n.startswith(("KO_", "KI_"))]
    out: list[tuple[str, ...]] = []
    for size in (1, 2, 3):
        for combo in itertools.combinations(flags, size):
            ki = [c[3:] for c in combo if c.startswith("KI_")]
            ko = {c[3:] for c in combo if c.startswith("KO_")}
            if len(ki) <= 1 and not (set(ki) & ko):
                out.append(combo)
    return out


@dataclass
class Design:
    """Training and held-out conditions of the recipe (see the module docstring)."""

    names: list[str]
    train: np.ndarray  # (n_train, n_inputs) float32
    test: np.ndarray  # (n_test, n_inputs) float32
    group: np.ndarray  # (n_test,) str: levels, combos or both
    held_out_sets: list[tuple[str, ...]]


def _train_levels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ligand-like levels: 0 (20 %), 1 (10 %), else uniform in [0, 1] away from TEST_LEVELS."""
    u = rng.random(n)
    x = np.where(u < 0.2, 0.0, 1.0)
    frac = u >= 0.3
    draw = rng.random(n)
    test = np.asarray(TEST_LEVELS)
    bad = np.abs(draw[:, None] - test[None, :]).min(1) <= BAND
    while bad.any():  # redraw the few that fall in a held-out band
        draw[bad] = rng.random(int(bad.sum()))
        bad = np.abs(draw[:, None] - test[None, :]).min(1) <= BAND
    return np.where(frac, draw, x)


def _test_levels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Held-out levels (60 %) or the end points 0/1."""
    lv = rng.choice(np.asarray(TEST_LEVELS), n)
    return np.where(rng.random(n) < 0.6, lv, rng.choice([0.0, 1.0], n))


def _nonzero(rng: np.random.Generator, levels: Any) -> float:
    """A level > 0 from ``levels`` (a flag in a mutation set is never 0)."""
    while True:
        v = float(levels(rng, 1)[0])
        if v > 0:
            return v


def design(names: list[str], seed: int, n_train: int, n_test: int) -> Design:
    """The recipe's training and held-out conditions (module docstring); deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    col = {n: i for i, n in enumerate(names)}
    sets = mutation_sets(names)
    multi = [s for s in sets if len(s) > 1]
    held_idx = rng.permutation(len(multi))[: round(HELD_OUT_SET_FRACTION * len(multi))]
    held = [multi[i] for i in sorted(held_idx)]
    held_keys = set(held)
    seen = [s for s in sets if s not in held_keys]
    by_size = {k: [s for s in seen if len(s) == k] for k in (1, 2, 3)}

    def rows(count: int, pick_set, levels) -> np.ndarray:
        x = np.zeros((count, len(names)), dtype=np.float32)
        x[:, col["TNF"]] = levels(rng, count)
        x[:, col["FASL"]] = levels(rng, count)
        for r in range(count):
            for flag in pick_set(r):
                x[r, col[flag]] = 1.0 if rng.random() < 0.7 else _nonzero(rng, levels)
        return x

    def seen_set(_: int) -> tuple[str, ...]:
        k = rng.choice(4, p=[0.15, 0.35, 0.3, 0.2])
        return () if k == 0 else by_size[int(k)][rng.integers(len(by_size[int(k)]))]

    def held_set(_: int) -> tuple[str, ...]:
        return held[rng.integers(len(held))]

    train = rows(int(n_train), seen_set, _train_levels)
    n_g = int(n_test) // 3
    lev = rows(n_g, seen_set, _test_levels)
    # every 'levels' row has at least one held-out level (a ligand, or a flag it carries)
    for r in range(n_g):
        on = np.isin(lev[r], np.asarray(TEST_LEVELS, dtype=np.float32))
        if not on.any():
            lev[r, col["TNF"]] = rng.choice(np.asarray(TEST_LEVELS))
    combos = rows(n_g, held_set, _train_levels)
    both = rows(int(n_test) - 2 * n_g, held_set, _test_levels)
    test = np.concatenate([lev, combos, both])
    group = np.array(["levels"] * n_g + ["combos"] * n_g + ["both"] * (len(test) - 2 * n_g))
    return Design(list(names), train, test, group, held)


def simulate_fates(
    net: Any,
    conds: np.ndarray,
    names: list[str],
    trajectories: int,
    horizon: float,
    rng: np.random.Generator,
    chunk: int = 500,
) -> np.ndarray:
    """Fate probabilities (n_conditions, 4) estimated with the Boolean engine.

    Each input is a probability (module docstring): every trajectory draws whether its ligand is
    on and whether each knock-out/knock-in applies. Conditions run ``chunk`` at a time, each
    chunk's trajectories in one batched ``advance`` call with per-cell knock-out/knock-in masks
    (ligands are clamped through those masks too).
    """
    out = np.zeros((conds.shape[0], 4), dtype=np.float32)
    for a in range(0, conds.shape[0], chunk):
        out[a : a + chunk] = _simulate_chunk(net, conds[a : a + chunk], names, trajectories, horizon, rng)
    return out


def _simulate_chunk(
    net: Any, conds: np.ndarray, names: list[str], trajectories: int, horizon: float, rng: np.random.Generator
) -> np.ndarray:
    n_c, m = conds.shape[0], net.n_nodes
    n = n_c * trajectories
    ko = np.zeros((n, m), dtype=bool)
    ki = np.zeros((n, m), dtype=bool)
    rep = np.repeat(np.arange(n_c), trajectories)
    for j, name in enumerate(names):
        on = rng.random(n) < conds[rep, j]
        if name in ("TNF", "FASL"):
            ki[:, net.index(name)] = on
            ko[:, net.index(name)] = ~on
        else:
            (ko if name.startswith("KO_") else ki)[:, net.index(name[3:])] |= on
    ki &= ~ko  # a knock-out wins over a knock-in of the same node
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
        "max_abs_error": float(err.max()),
    }


def agreement_by_group(pred: np.ndarray, ref: np.ndarray, group: np.ndarray, trajectories: int) -> dict[str, Any]:
    """:func:`agreement` over all rows (``all``) and per held-out group."""
    out: dict[str, Any] = {"all": agreement(pred, ref, trajectories)}
    for g in dict.fromkeys(group.tolist()):
        rows = group == g
        out[g] = agreement(pred[rows], ref[rows], trajectories)
    return out


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


@dataclass
class FateData:
    """The recipe's conditions and their Boolean fate probabilities (see :func:`fate_data`)."""

    design: Design
    train_probs: np.ndarray  # (n_train, 4)
    test_probs: np.ndarray  # (n_test, 4)
    horizon: float
    simulation_seconds: float
    net: Any


def fate_data(
    bnd: str | Path,
    cfg: str | Path,
    *,
    trajectories: int,
    seed: int,
    n_train: int = DEFAULT_TRAIN_CONDITIONS,
    n_test: int = DEFAULT_TEST_CONDITIONS,
    horizon: float | None = None,
    with_train: bool = True,
    with_test: bool = True,
) -> FateData:
    """Design (seed ``seed``) and simulate the training (seed ``seed + 1``) and held-out (seed
    ``seed + 3``) conditions: the same data for :func:`distill_tnf`, :func:`cross_validate` and
    :func:`evaluate_artifact`; a part not asked for is left empty."""
    net = load_network(bnd, cfg)
    T = float(horizon if horizon is not None else net.settings.get("max_time", 100.0))
    d = design(input_names(list(net.node_names)), seed, n_train, n_test)
    t0 = time.perf_counter()
    empty = np.zeros((0, len(FATES)), dtype=np.float32)
    train_probs = (
        simulate_fates(net, d.train, d.names, trajectories, T, np.random.default_rng(seed + 1)) if with_train else empty
    )
    test_probs = (
        simulate_fates(net, d.test, d.names, trajectories, T, np.random.default_rng(seed + 3)) if with_test else empty
    )
    return FateData(d, train_probs, test_probs, T, time.perf_counter() - t0, net)


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
    n_train: int = DEFAULT_TRAIN_CONDITIONS,
    epochs: int = DEFAULT_EPOCHS,
    lr: float = DEFAULT_LR,
    threads: int | None = 1,
) -> list[dict[str, Any]]:
    """Choose an architecture without touching the held-out conditions: ``folds``-fold
    cross-validation over the *training* conditions of :func:`distill_tnf` (same data for the
    same ``seed``/``trajectories``/``n_train``), for each (hidden, layers) in ``architectures``
    and training seeds 0 … ``seeds``-1.

    Returns one row per architecture: ``hidden``, ``layers``, ``epochs``, ``lr``, the mean over
    seeds of ``argmax_agreement``, ``argmax_agreement_decided``, ``within_0.1`` and
    ``mean_abs_error`` of the out-of-fold predictions (see :func:`agreement`), and ``seconds``.
    """
    from tme_sim.training.train import build_network, fit, predict

    _check_settings(epochs=epochs, trajectories=trajectories, folds=folds, seeds=seeds, lr=lr, n_train=n_train)
    for h, L in architectures:
        _check_settings(hidden=h, layers=L)
    fd = fate_data(bnd, cfg, trajectories=trajectories, seed=seed, n_train=n_train, horizon=horizon, with_test=False)
    conds, probs, names = fd.design.train, fd.train_probs, fd.design.names
    parts = np.array_split(np.random.default_rng(seed + 7).permutation(len(conds)), int(folds))
    rows = []
    keys = ("argmax_agreement", "argmax_agreement_decided", "within_0.1", "mean_abs_error")
    for h, L in architectures:
        t0 = time.perf_counter()
        per_seed = []
        for s in range(int(seeds)):
            tcfg = _train_config(h, L, lr, epochs, s, threads)
            pred = np.zeros_like(probs)
            for va in parts:
                fit_rows = np.setdiff1d(np.arange(len(conds)), va)
                model = build_network(tcfg, _dataset(conds, probs, names, bnd, cfg), None)
                fit(model, conds[fit_rows], probs[fit_rows], tcfg)
                pred[va] = predict(model, conds[va])
            per_seed.append(agreement(pred, probs, trajectories))
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
    n_train: int = DEFAULT_TRAIN_CONDITIONS,
    n_test: int = DEFAULT_TEST_CONDITIONS,
    epochs: int = DEFAULT_EPOCHS,
    hidden: int = DEFAULT_HIDDEN,
    layers: int = DEFAULT_LAYERS,
    lr: float = DEFAULT_LR,
    threads: int | None = 1,
    quiet: bool = True,
) -> dict[str, Any]:
    """Simulate, train on the training conditions, score on the held-out ones, and (if ``out``)
    save *that* model — the scored one — with its report.

    The surrogate is a dense MLP: ``layers`` hidden layers of ``hidden`` SiLU units, softmax
    outputs, AdamW at learning rate ``lr`` for ``epochs`` full-batch epochs (defaults:
    ``DEFAULT_*``, chosen with :func:`cross_validate`). Returns a report dict with ``summary``
    (agreement overall and per held-out group, the engine-vs-engine ceiling, the recipe, timings)
    and, when saved, the artifact path. The artifact's outputs are the fate probabilities, named
    :data:`FATES`; its ``meta["training"]`` holds the recipe and the summary.
    """
    from tme_sim.intracellular.neural.artifact import save_artifact
    from tme_sim.training.train import build_network, fit, predict

    _check_settings(
        hidden=hidden, layers=layers, epochs=epochs, trajectories=trajectories, lr=lr, n_train=n_train, n_test=n_test
    )
    if n_test < 3:
        raise ConfigError(f"distill: n_test must be >= 3 (three held-out groups), got {n_test}")
    fd = fate_data(bnd, cfg, trajectories=trajectories, seed=seed, n_train=n_train, n_test=n_test, horizon=horizon)
    d = fd.design
    # a second, independent Boolean estimate of the held-out conditions: the noise ceiling
    probs2 = simulate_fates(fd.net, d.test, d.names, trajectories, fd.horizon, np.random.default_rng(seed + 2))
    tcfg = _train_config(hidden, layers, lr, epochs, seed, threads)
    data = _dataset(d.train, fd.train_probs, d.names, bnd, cfg)
    t1 = time.perf_counter()
    model = build_network(tcfg, data, None)
    res = fit(model, d.train, fd.train_probs, tcfg)
    train_s = time.perf_counter() - t1
    pred_te = predict(model, d.test)
    recipe = {
        "bnd": Path(bnd).name,
        "cfg": Path(cfg).name,
        "seed": int(seed),
        "trajectories": int(trajectories),
        "train_conditions": int(n_train),
        "test_conditions": int(n_test),
        "horizon": fd.horizon,
        "test_levels": list(TEST_LEVELS),
        "band": BAND,
        "held_out_sets": ["+".join(s) for s in d.held_out_sets],
    }
    summary = {
        "recipe": recipe,
        "network": {"hidden": int(hidden), "layers": int(layers), "activation": "silu", "lr": float(lr)},
        "surrogate_vs_engine": agreement_by_group(pred_te, fd.test_probs, d.group, trajectories),
        "engine_vs_engine": agreement_by_group(probs2, fd.test_probs, d.group, trajectories),
        "train_fit": agreement(predict(model, d.train), fd.train_probs, trajectories),
        "simulation_seconds": fd.simulation_seconds,
        "training_seconds": train_s,
        "epochs": res.epochs,
    }
    report: dict[str, Any] = {"summary": summary}
    if out is not None:
        save_artifact(
            out,
            model,
            input_names=d.names,
            output_names=list(FATES),
            data_sha256=data.sha256(),
            names={},
            output_labels="probability",
            training={"command": "tme train distill", "config": tcfg.model_dump(), "summary": summary},
        )
        Path(out).with_suffix(".json").write_text(json.dumps(summary, indent=1))
        report["artifact"] = str(out)
    return report


def evaluate_artifact(path: str | Path, bnd: str | Path, cfg: str | Path) -> dict[str, Any]:
    """Re-score a saved distilled artifact on its recipe's held-out conditions (rebuilt and
    re-simulated from the recipe stored in it): the agreement of exactly that file."""
    from tme_sim.intracellular.neural.artifact import load_artifact

    sur = load_artifact(path, device="cpu")
    rec = sur.meta["training"]["summary"]["recipe"]
    fd = fate_data(
        bnd,
        cfg,
        trajectories=rec["trajectories"],
        seed=rec["seed"],
        n_train=rec["train_conditions"],
        n_test=rec["test_conditions"],
        horizon=rec["horizon"],
        with_train=False,
    )
    pred = sur.predict(fd.design.test)
    return agreement_by_group(pred, fd.test_probs, fd.design.group, rec["trajectories"])
