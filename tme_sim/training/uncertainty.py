"""Prediction intervals from bootstrap ensembles, and their coverage on held-out conditions.

For each cross-validation fold (whole conditions held out, :func:`~tme_sim.training.cv.condition_folds`),
``members`` models are fitted on bootstrap resamples of the fold's training conditions. Two
intervals at ``level`` (default 80 %) per held-out condition and output:

* ``ensemble``: the members' own spread (their ``(1 − level)/2`` and ``(1 + level)/2``
  quantiles). It holds only the models' disagreement, not the measurement noise, and usually
  covers far less than ``level``;
* ``calibrated`` (jackknife+-after-bootstrap, Kim, Xu & Barber, NeurIPS 2020, in its simple
  symmetric form): the ensemble mean ± the ``level`` quantile (finite-sample corrected) of the
  *out-of-bag* absolute residuals of that output on the fold's training conditions — each
  training condition predicted by the members whose resample missed it. Nothing of the held-out
  fold is used, so its coverage is an honest estimate.

:func:`interval_cv` returns coverage (fraction of held-out values inside the interval, pooled over
conditions and outputs, and the per-output median/min/max) and the mean width of both intervals,
next to the pooled r of the ensemble mean. ``tme train intervals`` prints it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from tme_sim.errors import ConfigError
from tme_sim.training.cv import condition_folds, pooled_r
from tme_sim.training.data import Dataset, PriorNetwork
from tme_sim.training.train import RidgeModel, TrainConfig, build_network, fit, handle_unseen_inputs, predict

ProgressFn = Callable[[str, int, int], None]


def _fit_member(
    kind: str, cfg: TrainConfig | None, data: Dataset, net: PriorNetwork | None, rows: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Fit one member on ``rows`` (with repeats) of ``data``; return its predictor."""
    x, y = data.inputs[rows], data.outputs[rows]
    if kind == "ridge":
        m = RidgeModel().fit(x, y)
        return m.predict
    assert cfg is not None
    model = build_network(cfg, data.subset(np.unique(rows)), net)
    fit(model, x, y, cfg)
    handle_unseen_inputs(model, x, cfg)
    return lambda u: predict(model, u)


def conformal_quantile(residuals: np.ndarray, level: float) -> np.ndarray:
    """Per-column ``level`` quantile of ``residuals`` (n, m) with the finite-sample correction: the
    ``ceil((n + 1) level)``-th smallest (capped at the largest residual)."""
    n = residuals.shape[0]
    k = min(n, int(np.ceil((n + 1) * level)))  # the k-th smallest residual
    return np.sort(residuals, axis=0)[k - 1]


def interval_cv(
    data: Dataset,
    net: PriorNetwork | None,
    kind: str,
    cfg: TrainConfig | None,
    *,
    members: int = 8,
    folds: int = 5,
    seed: int = 0,
    level: float = 0.8,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Coverage of ensemble and calibrated ``level`` intervals on held-out conditions (module doc)."""
    if members < 2:
        raise ConfigError(f"--members must be >= 2, got {members}")
    if not 0 < level < 1:
        raise ConfigError(f"--level must be in (0, 1), got {level}")
    if folds < 2 or folds > data.n:
        raise ConfigError(f"--folds must be in [2, {data.n}], got {folds}")
    rng = np.random.default_rng(seed)
    n, m = data.outputs.shape
    mean = np.zeros((n, m))
    lo_e, hi_e, half_c = np.zeros((n, m)), np.zeros((n, m)), np.zeros((n, m))
    t0, c0 = time.perf_counter(), time.process_time()
    fold_rows = condition_folds(n, folds, seed)
    done, total = 0, folds * members
    for te in fold_rows:
        tr = np.setdiff1d(np.arange(n), te)
        preds_te = np.zeros((members, len(te), m))
        preds_tr = np.zeros((members, len(tr), m))
        inbag = np.zeros((members, len(tr)), dtype=bool)
        for b in range(members):
            pick = rng.integers(len(tr), size=len(tr))
            inbag[b, pick] = True
            member_cfg = cfg.model_copy(update={"seed": int(seed) * 1000 + b}) if cfg is not None else None
            f = _fit_member(kind, member_cfg, data, net, tr[pick])
            preds_te[b] = f(data.inputs[te])
            preds_tr[b] = f(data.inputs[tr])
            done += 1
            if progress:
                progress(f"{kind} ensemble", done, total)
        oob = ~inbag  # (members, n_tr)
        has = oob.any(0)
        oob_mean = (preds_tr * oob[:, :, None]).sum(0)[has] / oob.sum(0)[has][:, None]
        res = np.abs(data.outputs[tr][has] - oob_mean)
        q = conformal_quantile(res, level)
        mean[te] = preds_te.mean(0)
        lo_e[te] = np.quantile(preds_te, (1 - level) / 2, axis=0)
        hi_e[te] = np.quantile(preds_te, (1 + level) / 2, axis=0)
        half_c[te] = q[None, :]
    y = data.outputs.astype(np.float64)
    inside_e = (y >= lo_e) & (y <= hi_e)
    inside_c = np.abs(y - mean) <= half_c

    def summary(inside: np.ndarray, width: np.ndarray) -> dict[str, float]:
        per_out = inside.mean(0)
        return {
            "coverage": float(inside.mean()),
            "coverage_per_output_median": float(np.median(per_out)),
            "coverage_per_output_min": float(per_out.min()),
            "coverage_per_output_max": float(per_out.max()),
            "mean_width": float(width.mean()),
        }

    return {
        "model": kind,
        "members": int(members),
        "folds": int(folds),
        "seed": int(seed),
        "level": float(level),
        "n_conditions": int(n),
        "n_outputs": int(m),
        "data_sha256": data.sha256(),
        "pooled_r_of_mean": pooled_r(mean, y),
        "ensemble": summary(inside_e, hi_e - lo_e),
        "calibrated": summary(inside_c, 2 * half_c),
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
    }


def ensemble_interval(
    data: Dataset,
    net: PriorNetwork | None,
    kind: str,
    cfg: TrainConfig | None,
    u: np.ndarray,
    *,
    members: int = 8,
    seed: int = 0,
    level: float = 0.8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibrated ``level`` interval at new inputs ``u`` (B, n_in) from a bootstrap ensemble
    fitted on all of ``data``: (mean, low, high), each (B, n_out). The half-width per output is
    the conformal quantile of the out-of-bag absolute residuals (as in :func:`interval_cv`, whose
    held-out coverage says how far to trust it)."""
    if members < 2:
        raise ConfigError(f"--members must be >= 2, got {members}")
    rng = np.random.default_rng(seed)
    n, m = data.outputs.shape
    u = np.atleast_2d(np.asarray(u, dtype=np.float32))
    preds = np.zeros((members, u.shape[0], m))
    preds_tr = np.zeros((members, n, m))
    inbag = np.zeros((members, n), dtype=bool)
    for b in range(members):
        pick = rng.integers(n, size=n)
        inbag[b, pick] = True
        member_cfg = cfg.model_copy(update={"seed": int(seed) * 1000 + b}) if cfg is not None else None
        f = _fit_member(kind, member_cfg, data, net, pick)
        preds[b] = f(u)
        preds_tr[b] = f(data.inputs)
    oob = ~inbag
    has = oob.any(0)
    oob_mean = (preds_tr * oob[:, :, None]).sum(0)[has] / oob.sum(0)[has][:, None]
    q = conformal_quantile(np.abs(data.outputs[has] - oob_mean), level)
    mean = preds.mean(0)
    return mean, mean - q, mean + q


def format_intervals(rep: dict[str, Any]) -> str:
    """The coverage table of :func:`interval_cv`'s report."""
    lv = 100 * rep["level"]
    lines = [
        f"{rep['model']}: {rep['members']} bootstrap members, {rep['folds']} folds holding out whole conditions "
        f"(seed {rep['seed']}), {rep['n_conditions']} conditions x {rep['n_outputs']} outputs; "
        f"pooled r of the ensemble mean {rep['pooled_r_of_mean']:.3f}",
        f"{lv:.0f} % intervals     coverage  per-output median [min, max]  mean width",
    ]
    for key, label in (("ensemble", "ensemble spread"), ("calibrated", "calibrated (J+aB)")):
        s = rep[key]
        lines.append(
            f"{label:<20} {s['coverage']:>8.3f}  {s['coverage_per_output_median']:>8.3f} "
            f"[{s['coverage_per_output_min']:.2f}, {s['coverage_per_output_max']:.2f}]     {s['mean_width']:>9.3f}"
        )
    lines.append(f"wall {rep['wall_s']:.0f} s, CPU {rep['cpu_s']:.0f} s (this process)")
    return "\n".join(lines)
