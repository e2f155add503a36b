"""The drug-target network boosted on the dose-shape ridge: the network learns what the linear model misses.

:func:`boosted_predict` (one fold; the ``drug-target boosted`` row of ``tme train cv``):

1. the dose-shape ridge (:class:`~tme_sim.training.viability_stack.DoseShapeRidge`, every setting by
   inner CV over the training lines) gives each training row an **out-of-fold** prediction — its line
   was held out of the inner fit — and the held-out rows a prediction from all training lines;
2. the drug-target ensemble (the drug-target row's settings and its out-of-bag omics L2) is fitted on
   the training rows' out-of-fold residuals ``y - ridge_oof``: what the linear model misses on lines
   it has not seen (centered for single-drug data, so the average line gets no correction);
3. the prediction is ``ridge + v · network``, ``v`` in [0, 1] the least-squares weight of the
   residuals on the members' out-of-bag predictions (one boosting step's shrinkage, chosen on
   training lines only: 0 when the network adds nothing there).

Shapes: masks ``tr``/``te`` (n_conditions,); predictions (n_te,) and (n_tr,).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from tme_sim.training.drug_models import DrugEnsemble, DrugFitConfig
from tme_sim.training.viability import OmicsFeatures, ViabilityData


@dataclass
class BoostedFold:
    """One fold of the boosted model: held-out prediction (n_te,), the training rows' out-of-fold
    prediction ``ridge_oof + v · network_oob`` (n_tr,; the ridge's alone where no member left the line
    out), the weight ``v``, wall and CPU seconds of the network fit (the ridge's are the caller's)."""

    mean: np.ndarray
    oob: np.ndarray
    weight: float
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def shrinkage_weight(resid: np.ndarray, pred: np.ndarray) -> float:
    """``v`` in [0, 1] minimising ``Σ (resid - v · pred)²`` over rows where both are finite (0 when
    none qualifies or ``pred`` is 0 there)."""
    ok = np.isfinite(resid) & np.isfinite(pred)
    den = float(pred[ok] @ pred[ok])
    if den <= 0:
        return 0.0
    return float(np.clip(resid[ok] @ pred[ok] / den, 0.0, 1.0))


def boosted_predict(
    data: ViabilityData,
    tr: np.ndarray,
    te: np.ndarray,
    cfg: DrugFitConfig,
    features: OmicsFeatures,
    ridge_te: np.ndarray,
    ridge_oof: np.ndarray,
    *,
    centered: bool,
) -> BoostedFold:
    """Fit the network on the ridge's out-of-fold residuals of the rows ``tr`` and predict ``te``.

    ``features``: the drug-target omics features fitted on the training lines; ``ridge_te`` (n_te,)
    and ``ridge_oof`` (n_tr,) the dose-shape ridge's held-out and out-of-fold predictions; ``cfg``
    the drug-target settings (its ``l2_omics`` is used as given); ``centered``: fit the centered
    model (single-drug conditions)."""
    t0, c0 = time.perf_counter(), time.process_time()
    f = features.transform(data)
    x_tr, f_tr, g_tr = data.conc[tr], f[data.line[tr]], data.line[tr]
    base_oof = np.where(np.isfinite(ridge_oof), ridge_oof, float(np.nanmean(ridge_oof)))
    resid = data.y[tr] - base_oof
    ens = DrugEnsemble(data.spec(), replace(cfg, centered=centered)).fit(x_tr, f_tr, resid[:, None], g_tr)
    net_oob = ens.predict_out_of_bag(x_tr, f_tr, g_tr)[:, 0]
    v = shrinkage_weight(resid, net_oob)
    net_te = ens.predict(data.conc[te], f[data.line[te]])[0][:, 0]
    oob = base_oof + v * np.where(np.isfinite(net_oob), net_oob, 0.0)
    return BoostedFold(ridge_te + v * net_te, oob, v, time.perf_counter() - t0, time.process_time() - c0)
