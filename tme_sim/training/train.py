"""Training surrogates: configuration, model construction, the training loop with early stopping.

Full-batch Adam (the data sets are conditions, not cells: ~100 rows) with a warm-up + cosine
learning-rate schedule. Opt-in, unvalidated (issue #17, docs/omics.md "Optimisation schedule"):
mini-batches (``batch_size``), a per-step one-cycle schedule, Adam resets, L2 toward the prior weights.
Early stopping watches the loss on a validation subset of the training conditions
(``val_fraction``; whole conditions) and keeps the best weights; with
``val_fraction = 0`` it watches the training loss instead (stop when it has not improved by
``min_delta`` for ``patience`` epochs).
"""

from __future__ import annotations

import math
import os
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tme_sim.errors import ConfigError, DataError
from tme_sim.intracellular.neural.ensemble import SignalingEnsemble, member_seed
from tme_sim.intracellular.neural.networks import (
    DenseMLP,
    HybridSignaling,
    SignalingNetwork,
    check_unit_interval,
    in_unit_interval,
    reduced_rank_ridge_fit,
    state_spread_penalty,
    to_logit,
)
from tme_sim.training.data import Dataset, PriorNetwork, check_fits_network, expand_path
from tme_sim.training.readout import fit_graph_readout


class TrainConfig(BaseModel):
    """Hyper-parameters of one training run (also the ``[train]`` table of a TOML config)."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["signaling", "mlp", "hybrid"] = Field(
        "signaling",
        description="signaling: the prior-knowledge recurrent network; mlp: dense baseline; hybrid: "
        "a fixed-weight mix of a reduced-rank ridge path, the recurrent network and a dense MLP "
        "(HybridSignaling; options linear_*, hybrid_mode, rnn_weight, mlp_*)",
    )
    epochs: int = Field(
        3000,
        ge=1,
        description="maximum number of epochs (the signaling network still improves its training fit at "
        "3000 full-batch epochs on the ligand screen; 500 left it underfitted: train r 0.77 vs 0.90)",
    )
    lr: float = Field(0.02, gt=0)
    warmup: float = Field(0.05, ge=0, lt=1, description="fraction of epochs of linear LR warm-up")
    final_lr_fraction: float = Field(0.1, gt=0, le=1)
    patience: int = Field(1000, ge=1, description="stop when the monitored loss has not improved for this many epochs")
    min_delta: float = Field(1e-5, ge=0)
    val_fraction: float = Field(0.0, ge=0, lt=0.5)
    eval_every: int = Field(10, ge=1)
    batch_size: int | None = Field(None, ge=1, description="conditions per step; None = full batch")
    lr_schedule: Literal["cosine", "one_cycle"] = Field(
        "cosine",
        description="cosine: linear warm-up then cosine decay to final_lr_fraction x lr, set once per epoch; "
        "one_cycle (opt-in, unvalidated): set at every optimiser step, cosine rise from "
        "one_cycle_floor x lr to lr over the first one_cycle_peak of the steps, cosine fall back to the "
        "floor by 95 % of the steps, then flat (the shape of LEMBAS's bionetwork.oneCycle, Nilsson et al. 2022)",
    )
    one_cycle_peak: float = Field(
        0.1, gt=0, lt=0.95, description="one_cycle: fraction of all steps at which the LR peaks (assumption)"
    )
    one_cycle_floor: float = Field(
        0.01,
        gt=0,
        le=1,
        description="one_cycle: start and end LR as a fraction of lr (LEMBAS: 1e-5 against a peak of 1e-3)",
    )
    adam_reset_every: int | None = Field(
        None,
        ge=1,
        description="signaling network (opt-in, unvalidated): clear Adam's moment estimates every this many "
        "epochs (LEMBAS's ligand-screen CV resets them every 200 epochs); None = never",
    )
    prior_l2: float = Field(
        0.0,
        ge=0,
        description="signaling network (opt-in, unvalidated): weight of the L2 penalty pulling the edge weights "
        "toward their initial (prior-scaffold) values, sum((w - w0)^2); 0 = off",
    )
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch threads (None = 1)")
    selection_note: str | None = Field(
        None,
        description="how these settings were chosen, in words (e.g. on which data or folds); shown as the "
        "row's selection statement in CV reports, so a table says when settings were not fixed in advance",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # signaling network
    max_iter: int = Field(150, ge=5)
    tol: float = Field(1e-4, gt=0)
    init_weight: float = 0.1
    prescale: float = Field(0.7, gt=0, lt=1)
    spectral_bound: float = Field(0.95, gt=0, lt=1)
    spectral_mode: Literal["jacobian", "global"] = Field(
        "jacobian",
        description="bound ρ(diag(f'(z*))|W|) at the training steady states (jacobian) or ρ(|W|) (global)",
    )
    input_amplitude: float = 3.0
    train_input_weight: bool = Field(
        True,
        description="learn each input's scale onto its node (False: keep input_amplitude, as LEMBAS does)",
    )
    output_link: Literal["affine", "logit"] = Field(
        "affine",
        description="signaling network outputs: affine (scale·x + offset of each TF node's state) or logit "
        "(sigmoid of it: activities in (0, 1) that saturate; needs targets in [0, 1])",
    )
    baseline_state: float | None = Field(0.25, description="initial biases put every node at this state")
    l2: float = Field(1e-5, ge=0)
    bias_l2: float = Field(1e-5, ge=0)
    sign_penalty: float = Field(1e-4, ge=0)
    spectral_penalty: float = Field(1.0, ge=0)
    state_penalty: float = Field(
        0.0,
        ge=0,
        description="weight of the penalty that keeps each node's steady state spread over [0, state_max] "
        "across the batch's conditions (networks.state_spread_penalty; LEMBAS uses 1e-5); 0 = off",
    )
    state_max: float = Field(1 / 1.2, gt=0, le=1, description="upper end of the state_penalty interval")
    spectral_iterations: int = Field(
        10, ge=1, description="power iterations per step of the spectral-radius estimate (warm-started)"
    )
    unseen_inputs: Literal["keep", "impute", "substitute"] | None = Field(
        None,
        description="after training, what a signaling or hybrid model does with inputs never active in "
        "its training data: keep (a signaling model's untrained path; a hybrid predicts no effect "
        "from its linear and MLP parts), impute (signaling network only: typical trained weights, "
        "SignalingNetwork.impute_unseen_inputs) or substitute (act like the seen inputs that share "
        "receptors/downstream nodes in the graph, SignalingNetwork/HybridSignaling."
        "substitute_unseen_inputs); None = the model's default (keep for signaling, substitute for "
        "hybrid: see unseen_strategy); no effect when every input was seen",
    )
    unseen_hops: int | None = Field(
        None,
        ge=1,
        description="'substitute': graph steps of the input similarity (None = the model's default: "
        "1 for signaling, 3 for hybrid)",
    )
    unseen_weighting: Literal["soft", "top"] | None = Field(
        None,
        description="'substitute': similarity-weighted average (soft) or most similar only (top) "
        "(None = the model's default: soft for signaling, top for hybrid)",
    )
    unseen_shrink: float | None = Field(
        None,
        ge=0,
        le=1,
        description="'substitute': scale of a substituted input (None = the model's default: 1 for "
        "signaling, 0.5 for hybrid)",
    )
    members: int = Field(
        1,
        ge=1,
        description="signaling model: train this many networks on the same data, each from its own "
        "initialisation (seed + k * 7919: the signs of the unknown-sign edges differ), and predict their mean "
        "(SignalingEnsemble); 1 = one network. Costs members x the training time of one",
    )
    readout: Literal["tf", "graph"] = Field(
        "tf",
        description="signaling model's output layer: tf (each output is scale x its TF node's state + offset, "
        "trained with the network) or graph (after training, each output is refitted in closed form as a ridge "
        "readout of its TF node's and its graph regulators' steady states, hops and penalty chosen per output "
        "by inner CV on the training conditions: tme_sim.training.readout)",
    )
    readout_hops: list[int] = Field(
        [5],
        min_length=1,
        description="graph readout: upstream steps (several: searched per output by inner CV; 0 = the TF node "
        "alone). Default 5, fixed on development seed 9 of the ligand screen, where 5 steps at penalty 1 beat "
        "3 or 4 steps and the inner-CV search over 0-5 steps (the training states are in-sample, so inner CV "
        "picks too few steps and too small a penalty)",
    )
    readout_alphas: list[float] = Field(
        [1.0],
        min_length=1,
        description="graph readout: ridge penalty (several: searched per output by inner CV), relative to the "
        "number of training conditions (features scaled to unit mean variance); default 1, fixed with readout_hops",
    )
    readout_folds: int = Field(5, ge=2, description="graph readout: inner CV folds over the training conditions")
    warm_start: bool = Field(
        False,
        description="start each epoch's steady-state and adjoint solves from the previous epoch's "
        "(faster; needs a tight tol: at tol=1e-4 the states lag the weights and training stalls); with "
        "batch_size mini-batches each condition starts from its own last solve (cold in the first epoch)",
    )
    # hybrid (HybridSignaling): reduced-rank linear path + the signaling network above (+ a dense MLP)
    linear_alpha: float = Field(0.1, gt=0, description="ridge penalty of the hybrid's linear path")
    linear_rank: int | None = Field(
        3, ge=1, description="rank of the hybrid's linear path (reduced-rank ridge; None = full ridge)"
    )
    hybrid_mode: Literal["blend", "residual"] = Field(
        "blend",
        description="blend: every part fitted to the targets, output = (1 - rnn_weight - mlp_weight) "
        "linear + rnn_weight network + mlp_weight MLP; residual: the network is trained on what the "
        "linear path leaves, output = (1 - mlp_weight) (linear + rnn_weight network) + mlp_weight MLP",
    )
    rnn_weight: float = Field(0.1, ge=0, le=1, description="weight of the hybrid's network part")
    mlp_weight: float = Field(
        0.4, ge=0, le=1, description="weight of the hybrid's dense MLP part (0 = no MLP part is built)"
    )
    hybrid_logit_eps: float = Field(
        0.05,
        ge=0,
        lt=0.5,
        description="the hybrid's linear path and MLP part are fitted to the squeezed log-odds "
        "logit(eps + (1 - 2 eps) y) of the targets and map their outputs back, when every training target "
        "lies in [0, 1] (activities); otherwise, or with 0, they are fitted to the targets themselves",
    )
    mlp_gate: bool = Field(
        True,
        description="the hybrid's MLP part hands its weight to the linear path for inputs never active "
        "in training, in proportion to their activity (HybridSignaling.mlp_share)",
    )
    mlp_lr: float = Field(3e-3, gt=0, description="learning rate of the hybrid's MLP part")
    mlp_epochs: int = Field(2000, ge=1, description="epochs of the hybrid's MLP part")
    # mlp
    hidden: int = Field(128, ge=1)
    layers: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    head: Literal["linear", "softmax"] = "linear"
    weight_decay: float = Field(1e-4, ge=0)

    @property
    def unseen_strategy(self) -> str:
        """The ``unseen_inputs`` strategy in effect: the set one, else ``substitute`` for a hybrid
        (chosen on tuning seeds: k-fold CV 0.790 → 0.804 pooled r) and ``keep`` otherwise."""
        if self.unseen_inputs is not None:
            return self.unseen_inputs
        return "substitute" if self.model == "hybrid" else "keep"


class DataConfig(BaseModel):
    """The ``[data]`` table of a training TOML: where the data and network are."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="LEMBAS folder, inputs TSV, .h5ad or .csv")
    outputs: str | None = None
    network: str | None = None
    annotation: str | None = None
    input_columns: list[str] | None = None


class TrainFile(BaseModel):
    """A training TOML file: ``[data]``, ``[train]`` and optionally ``out``."""

    model_config = ConfigDict(extra="forbid")

    data: DataConfig
    train: TrainConfig = TrainConfig()
    out: str | None = None


def load_train_toml(path: str | os.PathLike) -> TrainFile:
    """Read a training TOML; relative data paths are resolved against the file's folder."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: training config not found")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    try:
        tf = TrainFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"{p}: {loc}: {err['msg']}") from None
    d = tf.data
    for key in ("path", "outputs", "network", "annotation"):
        v = getattr(d, key)
        if v is not None:
            v = expand_path(v)
            setattr(d, key, v)
        if v is not None and not Path(v).is_absolute():
            setattr(d, key, str((p.parent / v).resolve()))
    if tf.out is not None:
        tf.out = expand_path(tf.out)
    if tf.out is not None and not Path(tf.out).is_absolute():
        tf.out = str((p.parent / tf.out).resolve())
    return tf


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' requested but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (default 1: the fits are small and run beside other work; more
    cores are used by running jobs in parallel, ``--jobs``, not by threads that oversubscribe them)."""
    n = threads or 1
    torch.set_num_threads(n)
    return n


def build_network(cfg: TrainConfig, data: Dataset, network: PriorNetwork | None) -> torch.nn.Module:
    """A fresh model for ``data`` (signaling needs ``network``; inputs/outputs must be its nodes)."""
    torch.manual_seed(cfg.seed)
    if cfg.model == "mlp":
        return _mlp(cfg, data)
    if network is None:
        raise DataError(f"a {cfg.model} model needs a network file (--network)")
    check_fits_network(data, network)
    if cfg.model == "signaling" and cfg.members > 1:
        nets = [
            build_network(cfg.model_copy(update={"members": 1, "seed": member_seed(cfg.seed, k)}), data, network)
            for k in range(cfg.members)
        ]
        torch.manual_seed(cfg.seed)
        return SignalingEnsemble.from_networks(nets)  # type: ignore[arg-type]
    idx = network.index()
    rnn = SignalingNetwork(
        network.node_names,
        network.src,
        network.dst,
        network.sign,
        np.array([idx[n] for n in data.input_names]),
        np.array([idx[n] for n in data.output_names]),
        max_iter=cfg.max_iter,
        tol=cfg.tol,
        init_weight=cfg.init_weight,
        spectral_bound=cfg.spectral_bound,
        input_amplitude=cfg.input_amplitude,
        prescale=cfg.prescale,
        baseline_state=cfg.baseline_state,
        seed=cfg.seed,
        output_link=cfg.output_link if cfg.model == "signaling" else "affine",
    )
    if cfg.model == "signaling":
        return rnn
    m = cfg.mlp_weight
    if cfg.hybrid_mode == "blend":
        if cfg.rnn_weight + m > 1:
            raise ConfigError(f"train: rnn_weight + mlp_weight = {cfg.rnn_weight + m:g} > 1 (hybrid_mode blend)")
        w_lin, w_rnn = round(1.0 - cfg.rnn_weight - m, 12), cfg.rnn_weight
    else:
        w_lin, w_rnn = 1.0 - m, (1.0 - m) * cfg.rnn_weight
    eps = cfg.hybrid_logit_eps if data.outputs.size and in_unit_interval(data.outputs) else 0.0
    mlp = None
    if m > 0:
        torch.manual_seed(cfg.seed)  # the MLP part starts like a stand-alone MLP of this seed
        mlp = _mlp(cfg, data, logit_eps=eps).config()
    hyb = HybridSignaling(
        {**rnn.config(), "prescale": None, "baseline_state": None},
        rank=cfg.linear_rank,
        rnn_weight=w_rnn,
        linear_weight=w_lin,
        mlp_weight=m,
        mlp=mlp,
        logit_eps=eps,
    )
    hyb.rnn.load_state_dict(rnn.state_dict())  # the initialisation (prescale, baseline biases) of rnn
    if hyb.mlp is not None:
        torch.manual_seed(cfg.seed)
        hyb.mlp.load_state_dict(_mlp(cfg, data).state_dict())
    return hyb


def _mlp(cfg: TrainConfig, data: Dataset, logit_eps: float = 0.0) -> DenseMLP:
    return DenseMLP(
        len(data.input_names),
        len(data.output_names),
        hidden=cfg.hidden,
        layers=cfg.layers,
        dropout=cfg.dropout,
        head=cfg.head,
        logit_eps=logit_eps,
    )


@dataclass
class FitResult:
    """What :func:`fit` did: epochs run, best epoch, losses, seconds."""

    epochs: int
    best_epoch: int
    best_loss: float
    train_loss: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    #: settings chosen inside this fit by nested selection (e.g. the graph readout's), for CV reports
    chosen: dict[str, Any] = field(default_factory=dict)
    #: signaling network: how exact the training steps' steady-state solves were (:class:`SolveLog`)
    solves: dict[str, float] = field(default_factory=dict)


@dataclass
class SolveLog:
    """Counts of a signaling network's training solves (forward fixed point and adjoint), one
    :meth:`add` per optimiser step. A solve that ends at ``max_iter`` with its residual still above
    ``tol`` is *capped*: its states (forward) or gradient (adjoint) are not the converged ones."""

    max_iter: int
    tol: float
    steps: int = 0
    forward_iterations: int = 0
    backward_iterations: int = 0
    capped_forward: int = 0
    capped_backward: int = 0

    def add(self, stats: Any) -> None:
        """Record one step from a network's ``stats`` (:class:`~tme_sim.intracellular.neural.networks.SolveStats`)."""
        self.steps += 1
        self.forward_iterations += stats.forward_iterations
        self.backward_iterations += stats.backward_iterations
        self.capped_forward += stats.forward_iterations >= self.max_iter and stats.forward_residual >= self.tol
        self.capped_backward += stats.backward_iterations >= self.max_iter and stats.backward_residual >= self.tol

    def summary(self) -> dict[str, float]:
        """Mean iterations per step and the fraction of capped solves (forward, adjoint)."""
        n = max(self.steps, 1)
        return {
            "steps": self.steps,
            "mean_forward_iterations": self.forward_iterations / n,
            "mean_backward_iterations": self.backward_iterations / n,
            "capped_forward_fraction": self.capped_forward / n,
            "capped_backward_fraction": self.capped_backward / n,
        }


def one_cycle_lr(step: int, total: int, cfg: TrainConfig) -> float:
    """LR of optimiser step ``step`` (0-based) of ``total`` under ``lr_schedule = "one_cycle"``.

    Cosine rise from ``one_cycle_floor * lr`` (step 0) to ``lr`` (step ``one_cycle_peak * total``),
    cosine fall back to the floor at step ``0.95 * total``, then flat at the floor."""
    lo = cfg.lr * cfg.one_cycle_floor
    peak = max(1.0, cfg.one_cycle_peak * total)
    end = max(peak + 1.0, 0.95 * total)
    if step <= peak:
        t = step / peak
        return lo + (cfg.lr - lo) * 0.5 * (1 - math.cos(math.pi * t))
    if step <= end:
        t = (step - peak) / (end - peak)
        return lo + (cfg.lr - lo) * 0.5 * (1 + math.cos(math.pi * t))
    return lo


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split one epoch's permutation ``order`` (n,) of the training rows into consecutive mini-batches
    of ``batch_size`` (the last may be smaller): every row exactly once per epoch."""
    return [order[a : a + batch_size] for a in range(0, len(order), batch_size)]


def _lr_at(epoch: int, cfg: TrainConfig) -> float:
    w = max(1, int(cfg.warmup * cfg.epochs))
    if epoch < w:
        return cfg.lr * (epoch + 1) / w
    t = (epoch - w) / max(1, cfg.epochs - w)
    lo = cfg.final_lr_fraction
    return cfg.lr * (lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * t)))


def fit(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    cfg: TrainConfig,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Train ``model`` on inputs ``x`` (n, n_in) and targets ``y`` (n, n_out), in place.

    Returns when ``cfg.epochs`` are done or early stopping triggers; the model ends with the
    weights of the best monitored loss. ``on_epoch(epoch, loss)`` is called after each epoch.
    A :class:`~tme_sim.intracellular.neural.networks.HybridSignaling` first gets its linear path in closed form
    (:meth:`~tme_sim.intracellular.neural.networks.HybridSignaling.fit_linear`), then its network is trained on
    the residual ``y - linear`` (``hybrid_mode = "residual"``) or on ``y`` (``"blend"``), then its
    MLP part (if any) on ``y`` with ``mlp_lr``/``mlp_epochs`` (the CV's stand-alone MLP settings).
    The result describes the network's training. A
    :class:`~tme_sim.intracellular.neural.ensemble.SignalingEnsemble` trains its members one after the
    other (member k with seed :func:`~tme_sim.intracellular.neural.ensemble.member_seed`); the result
    sums their seconds and keeps the last member's epochs and losses.
    """
    if isinstance(model, SignalingEnsemble):
        results = [
            fit(m, x, y, cfg.model_copy(update={"members": 1, "seed": member_seed(cfg.seed, k)}), on_epoch=on_epoch)
            for k, m in enumerate(model.members)
        ]
        model.eval()
        last = results[-1]
        last.seconds = sum(r.seconds for r in results)
        if any(r.chosen for r in results):
            last.chosen = {"members": [r.chosen for r in results]}
        return last
    if isinstance(model, HybridSignaling):
        model.to(pick_device(cfg.device))
        if model.logit_eps > 0:
            _check_logit_targets(y)
        model.fit_linear(x, y, cfg.linear_alpha)
        if cfg.mlp_gate:
            model.set_training_support(x)
        else:
            model.set_gated_inputs(None)
        target = np.asarray(y, np.float32)
        if cfg.hybrid_mode == "residual":
            with torch.no_grad():
                lin = model.linear(torch.as_tensor(x, dtype=torch.float32, device=model.lin_coef.device))
            target = (target - lin.cpu().numpy()).astype(np.float32)
        res = fit(model.rnn, x, target, cfg, on_epoch=on_epoch)
        if model.mlp is not None:
            mcfg = cfg.model_copy(
                update={"model": "mlp", "lr": cfg.mlp_lr, "epochs": cfg.mlp_epochs, "patience": cfg.mlp_epochs}
            )
            fit(model.mlp, x, y, mcfg)
        model.eval()
        return res
    set_threads(cfg.threads)
    dev = pick_device(cfg.device)
    model.to(dev)
    out_fn: Callable[[torch.Tensor], torch.Tensor] = model
    if isinstance(model, DenseMLP) and model.logit_eps > 0:  # fit its log-odds output
        _check_logit_targets(y)
        y = to_logit(np.asarray(y, np.float64), model.logit_eps)
        out_fn = model.raw
    gen = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    n = x.shape[0]
    rows = gen.permutation(n)
    n_val = round(cfg.val_fraction * n)
    val, tr = rows[:n_val], rows[n_val:]
    xt = torch.as_tensor(x[tr], dtype=torch.float32, device=dev)
    yt = torch.as_tensor(y[tr], dtype=torch.float32, device=dev)
    xv = torch.as_tensor(x[val], dtype=torch.float32, device=dev)
    yv = torch.as_tensor(y[val], dtype=torch.float32, device=dev)
    if isinstance(model, SignalingNetwork):
        with torch.no_grad():
            xo = model.steady_state(xt)[model.output_nodes].T.mean(0)
            target = yt.mean(0)
            if model.output_link == "logit":
                _check_logit_targets(y)
                target = torch.logit(target.clamp(0.01, 0.99))
            model.output_offset.copy_(target - model.output_scale * xo)
        model.input_weight.requires_grad_(cfg.train_input_weight)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best = (float("inf"), -1)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    last_improve = 0
    stopped = False
    loss_v = float("nan")
    epoch = 0
    n_tr = xt.shape[0]
    bs = n_tr if cfg.batch_size is None else min(cfg.batch_size, n_tr)
    solve_log = SolveLog(model.max_iter, model.tol) if isinstance(model, SignalingNetwork) else None
    is_net = isinstance(model, SignalingNetwork)
    if is_net:
        model.warm_start(cfg.warm_start)
    steps_per_epoch = -(-n_tr // bs)
    total_steps = cfg.epochs * steps_per_epoch
    # mini-batch warm starts: each condition's last states / adjoint, (n_nodes, n_tr)
    warm_x: torch.Tensor | None = None
    warm_v: torch.Tensor | None = None
    w0 = model.edge_weight.detach().clone() if is_net and cfg.prior_l2 > 0 else None
    step = 0
    for epoch in range(cfg.epochs):
        if is_net and cfg.adam_reset_every and epoch > 0 and epoch % cfg.adam_reset_every == 0:
            opt.state.clear()
        if cfg.lr_schedule == "cosine":
            for g in opt.param_groups:
                g["lr"] = _lr_at(epoch, cfg)
        model.train()
        order = gen.permutation(n_tr) if bs < n_tr else None
        losses = []
        for idx_np in [None] if order is None else batches(order, bs):
            if idx_np is None:
                xb, yb = xt, yt
            else:
                idx = torch.as_tensor(idx_np, device=dev)
                xb, yb = xt[idx], yt[idx]
            if cfg.lr_schedule == "one_cycle":
                for g in opt.param_groups:
                    g["lr"] = one_cycle_lr(step, total_steps, cfg)
            step += 1
            mb_warm = is_net and cfg.warm_start and idx_np is not None
            if mb_warm:
                # cold in the first epoch (every condition is visited once), then from its own last solve
                model._warm = {} if epoch == 0 or warm_x is None else {"x": warm_x[:, idx], "v": warm_v[:, idx]}  # type: ignore[index]
            opt.zero_grad(set_to_none=True)
            if isinstance(model, SignalingNetwork):
                states = model.steady_state(xb)
                pred = model.output_map(states)
            else:
                pred = out_fn(xb)
            loss = torch.mean((pred - yb) ** 2)
            if isinstance(model, SignalingNetwork):
                gain = model.last_gain() if cfg.spectral_mode == "jacobian" else None
                reg = model.regularization(
                    l2=cfg.l2,
                    sign=cfg.sign_penalty,
                    spectral=cfg.spectral_penalty,
                    bias_l2=cfg.bias_l2,
                    gain=gain,
                    spectral_iterations=cfg.spectral_iterations,
                )
                if cfg.state_penalty > 0:
                    reg = reg + cfg.state_penalty * state_spread_penalty(states, cfg.state_max)
                if w0 is not None:
                    reg = reg + cfg.prior_l2 * ((model.edge_weight - w0) ** 2).sum()
            else:
                reg = torch.zeros((), device=dev)
            (loss + reg).backward()
            if mb_warm:
                wx, wv = model._warm.get("x"), model._warm.get("v")  # type: ignore[union-attr]
                if warm_x is None and wx is not None and wv is not None:
                    warm_x = torch.zeros(wx.shape[0], n_tr, dtype=wx.dtype, device=dev)
                    warm_v = torch.zeros_like(warm_x)
                if warm_x is not None and wx is not None and wv is not None:
                    warm_x[:, idx] = wx.detach()
                    warm_v[:, idx] = wv.detach()  # type: ignore[index]
            if solve_log is not None:
                solve_log.add(model.stats)
            opt.step()
            losses.append(float(loss.detach()) * xb.shape[0])
        loss = torch.tensor(sum(losses) / n_tr)
        loss_v = float(loss)
        if on_epoch is not None:
            on_epoch(epoch, loss_v)
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs - 1:
            if n_val:
                model.eval()
                with torch.no_grad():
                    monitored = float(torch.mean((out_fn(xv) - yv) ** 2))
            else:
                monitored = loss_v
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": loss_v,
                    "monitored": monitored,
                    "rho": float(getattr(model, "last_rho", float("nan"))),
                }
            )
            if monitored < best[0] - cfg.min_delta:
                best = (monitored, epoch)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                last_improve = epoch
            elif epoch - last_improve >= cfg.patience:
                stopped = True
                break
    if isinstance(model, SignalingNetwork):
        model.warm_start(False)
    model.load_state_dict(best_state)
    model.eval()
    chosen: dict[str, Any] = {}
    if isinstance(model, SignalingNetwork) and cfg.readout == "graph":
        chosen = fit_readout(model, xt, yt, cfg)
    return FitResult(
        epochs=epoch + 1,
        best_epoch=best[1],
        best_loss=best[0],
        train_loss=loss_v,
        seconds=time.perf_counter() - t0,
        history=history,
        stopped_early=stopped,
        chosen=chosen,
        solves=solve_log.summary() if solve_log is not None else {},
    )


@torch.no_grad()
def fit_readout(model: SignalingNetwork, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig) -> dict[str, Any]:
    """Replace ``model``'s output layer by the graph readout (:mod:`tme_sim.training.readout`) fitted on
    the steady states of the training inputs ``x`` (B, n_in) and targets ``y`` (B, n_out); returns
    what its inner CV chose (summary)."""
    if model.output_link != "affine":
        raise ConfigError("train.readout = 'graph' needs output_link = 'affine'")
    model.eval()
    states = model.steady_state(x).T.cpu().numpy()
    ro = fit_graph_readout(
        states,
        y.cpu().numpy(),
        model.src.cpu().numpy(),
        model.dst.cpu().numpy(),
        model.output_nodes.cpu().numpy(),
        model.input_nodes.cpu().numpy(),
        hops=cfg.readout_hops,
        alphas=cfg.readout_alphas,
        folds=cfg.readout_folds,
        seed=cfg.seed,
    )
    model.set_readout(ro.nodes, ro.weight, ro.offset)
    return ro.summary()


def _check_logit_targets(y: np.ndarray) -> None:
    try:
        check_unit_interval(y, "fitting log-odds (train.hybrid_logit_eps > 0)")
    except ValueError as exc:
        raise DataError(f"{exc}; set train.hybrid_logit_eps = 0 to fit the targets themselves") from None


def handle_unseen_inputs(model: torch.nn.Module, x_train: np.ndarray, cfg: TrainConfig) -> int:
    """Apply ``cfg.unseen_strategy`` to a trained signaling or hybrid model whose training inputs
    were ``x_train`` (n, n_in); returns the number of inputs changed (0 for other models).

    ``substitute`` on a hybrid mixes the inputs of all its parts
    (:meth:`~tme_sim.intracellular.neural.networks.HybridSignaling.substitute_unseen_inputs`); ``impute`` only
    concerns its network part. Unset ``unseen_hops``/``unseen_weighting``/``unseen_shrink`` take
    the model's defaults (the method's keyword defaults)."""
    strategy = cfg.unseen_strategy
    if strategy == "keep" or not isinstance(model, (SignalingNetwork, HybridSignaling, SignalingEnsemble)):
        return 0
    seen = np.asarray(x_train).max(0) > 0
    if strategy == "impute":
        net = model.rnn if isinstance(model, HybridSignaling) else model
        return net.impute_unseen_inputs(seen)
    kw = {
        k: v
        for k, v in (("hops", cfg.unseen_hops), ("weighting", cfg.unseen_weighting), ("shrink", cfg.unseen_shrink))
        if v is not None
    }
    return model.substitute_unseen_inputs(seen, **kw)


@torch.inference_mode()
def predict(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Model outputs (n, n_out) float64 for inputs (n, n_in)."""
    model.eval()
    dev = next(model.parameters()).device
    return model(torch.as_tensor(x, dtype=torch.float32, device=dev)).double().cpu().numpy()


class RidgeModel:
    """Ridge-regression baseline with the same fit/predict shape as the torch models
    (``rank``: reduced-rank ridge, :func:`~tme_sim.intracellular.neural.networks.reduced_rank_ridge_fit`)."""

    def __init__(self, alpha: float = 0.3, rank: int | None = None) -> None:
        self.alpha = alpha
        self.rank = rank
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> RidgeModel:
        self.coef, self.intercept = reduced_rank_ridge_fit(
            np.asarray(x, float), np.asarray(y, float), self.alpha, self.rank
        )
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert self.coef is not None and self.intercept is not None
        return np.asarray(x, float) @ self.coef + self.intercept


def train_summary(cfg: TrainConfig, result: FitResult) -> dict[str, Any]:
    return {
        "config": cfg.model_dump(),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "best_loss": result.best_loss,
        "train_loss": result.train_loss,
        "seconds": result.seconds,
        "stopped_early": result.stopped_early,
        "solves": result.solves,
    }
