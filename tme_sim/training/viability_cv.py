"""Cross-validation of viability models holding out whole cell lines, with baselines in the same run.

Protocol (:func:`cross_validate_viability`): the folds are the data set's own (``folds`` file; the
published LEMBAS split holds out 24 whole cell lines per fold) or, without one, ``k`` seeded folds of
whole cell lines. For each fold every model is fitted on the other folds' conditions only —
omics features (expression components, standardisation) included — and predicts the held-out lines.

Models (rows of the table):

* ``drug-dose mean`` — each condition's drug × dose mean over the training conditions;
* ``ridge`` — per drug, ridge regression on the dose level (one-hot) and the first
  ``n_components`` expression principal components and their products with the dose; the
  penalty is chosen per fold by an inner cross-validation over the training lines only
  (:data:`RIDGE_ALPHAS`, inner folds of whole lines);
* ``dose-shape ridge`` — the recipe's linear part alone
  (:func:`~tme_sim.training.viability_stack.dose_shape_ridge`: per drug, each line's deviation from
  the drug × dose mean projected on principal dose shapes, predicted from omics by ridge; rank,
  feature set and penalty by inner CV over the training lines);
* ``drug-target`` — :class:`~tme_sim.training.drug_models.DrugEnsemble` (drug → known targets and
  off-targets → network → read-out layer, cell line through its omics); by default
  (:func:`viability_config`) centered — the measured drug × dose mean curve of the training rows plus
  the network's prediction of each line's deviation from the average line — with its bootstrap
  members refitted on every training line; the omics L2 is chosen per fold among
  :data:`L2_OMICS_CHOICES` by the members' out-of-bag error on training lines, each member stops at
  its best epoch on its out-of-bag lines, the other settings are
  :class:`~tme_sim.training.drug_models.DrugFitConfig` defaults fixed in advance;
* ``drug-target stack`` — **the recipe**: ``w · drug-target + (1 - w) · dose-shape ridge``, ``w``
  fitted per fold on the training rows' out-of-fold predictions
  (:func:`~tme_sim.training.viability_stack.blend_weight`);
* ``drug-target boosted`` — the dose-shape ridge plus ``v ×`` the drug-target network fitted on the
  ridge's out-of-fold residuals (:mod:`~tme_sim.training.viability_boost`; ``v`` by least squares
  on the members' out-of-bag predictions; reported, not shipped);
* ``published`` — where the folder holds the published model's held-out predictions
  (``CV/prediction_<fold>.tsv``) and times (``CV/time.tsv``), they are scored the same way.

Scores: **pooled r** (Pearson r over all held-out conditions), the mean of per-fold r, and the
**cell-line-specific r**: r between prediction and measurement after subtracting, from both, each
condition's drug × dose mean over that fold's training conditions (what the omics must explain).
``paired`` (:data:`PAIRED`): each network model against the dose-shape ridge over the held-out
lines (lines better, Wilcoxon p, line-bootstrap intervals of the r differences, per fold;
:func:`~tme_sim.training.viability_paired.paired_over_lines`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tme_sim.training.drug_models import DrugEnsemble, DrugFitConfig
from tme_sim.training.viability import OmicsFeatures, ViabilityData
from tme_sim.training.viability_boost import BoostedFold, boosted_predict
from tme_sim.training.viability_paired import format_paired, paired_over_lines
from tme_sim.training.viability_stack import ALPHAS as SHAPE_ALPHAS
from tme_sim.training.viability_stack import (
    FEATURE_SETS,
    RANKS,
    MeanCurveCorrection,
    blend_weight,
    conformal_halfwidth,
    dose_shape_ridge,
)

#: ridge penalties tried by the inner cross-validation of the ridge baseline
RIDGE_ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
#: omics L2 penalties of the drug-target model, chosen per fold on out-of-bag training lines
L2_OMICS_CHOICES = (1e-3, 1e-2)
STACK = "drug-target stack"
BOOSTED = "drug-target boosted"
MODELS = ("drug-dose mean", "ridge", "dose-shape ridge", "drug-target", STACK, BOOSTED)
#: what ``tme train cv`` runs unless asked: the boosted row is opt-in (``--models``): on the published
#: folds its weight came out 0 in every fold (its members stopped at epoch 0) for +32 CPU s per fold
DEFAULT_MODELS = tuple(m for m in MODELS if m != BOOSTED)
#: bootstrap members of the viability recipe's drug-target ensemble (see :func:`viability_config`)
VIABILITY_MEMBERS = 5
#: the comparisons of ``cv_report.json``'s ``paired`` section: (model, baseline), over held-out lines
PAIRED = (("drug-target", "dose-shape ridge"), (STACK, "dose-shape ridge"), (BOOSTED, "dose-shape ridge"))


def viability_config(**kw: Any) -> DrugFitConfig:
    """The drug-target settings of the viability recipe: :class:`DrugFitConfig` with a centered
    model (the measured drug × dose mean curve plus the network's line deviations) whose
    :data:`VIABILITY_MEMBERS` bootstrap members are refitted on every training line (``kw``
    overrides any field). Five members rather than three: with three, a quarter of the training
    lines (0.63³) are in every member's resample, so no out-of-bag prediction informs the omics L2,
    the stack weight and the stopping epochs for them; with five, a tenth (0.63⁵). Fixed in advance,
    sized to the 2-minute fold budget."""
    return DrugFitConfig(**{"centered": True, "refit_full": True, "members": VIABILITY_MEMBERS, **kw})


def single_drug_conditions(data: ViabilityData) -> bool:
    """True when no condition combines two drugs (the centered model's mean curve is per drug × dose)."""
    return bool(((data.conc > 0).sum(1) <= 1).all())


def line_folds(data: ViabilityData, k: int = 5, seed: int = 0) -> np.ndarray:
    """(n,) fold label per condition: the data's own folds, else ``k`` seeded folds of whole lines."""
    if data.folds is not None:
        return np.asarray(data.folds)
    perm = np.random.default_rng(seed).permutation(len(data.line_names))
    fold_of_line = np.empty(len(perm), dtype=np.int64)
    for i, part in enumerate(np.array_split(perm, k)):
        fold_of_line[part] = i + 1
    return fold_of_line[data.line]


def drug_dose_means(key: np.ndarray, y: np.ndarray, tr: np.ndarray) -> np.ndarray:
    """(n,) mean of ``y`` over the training rows ``tr`` (mask) with the same ``key``; the training
    mean for a key absent from training."""
    out = np.full(len(y), float(y[tr].mean()))
    sums = np.bincount(key[tr], weights=y[tr], minlength=key.max() + 1)
    cnt = np.bincount(key[tr], minlength=key.max() + 1)
    ok = cnt[key] > 0
    out[ok] = sums[key[ok]] / cnt[key[ok]]
    return out


def model_genes(data: ViabilityData) -> list[str]:
    """Gene symbols of the known targets and read-out nodes (their expression is a feature)."""
    names = data.network.names
    genes = [names.get(t, t) for _, t in data.targets] + [names.get(r, r) for r, _, _ in data.readouts]
    return list(dict.fromkeys(genes))


def _ridge_design(data: ViabilityData, pcs: np.ndarray, rows: np.ndarray, levels: np.ndarray) -> np.ndarray:
    x = data.dose[rows].max(1)
    lvl = (np.round(x, 6)[:, None] == levels[None, :]).astype(float)
    z = pcs[data.line[rows]]
    return np.column_stack([lvl, z, z * x[:, None]])


def _ridge_solve(X: np.ndarray, y: np.ndarray, alpha: float, n_free: int) -> np.ndarray:
    reg = np.full(X.shape[1], alpha)
    reg[:n_free] = 1e-6  # the dose levels are not penalised
    return np.linalg.solve(X.T @ X + np.diag(reg), X.T @ y)


def ridge_predict(
    data: ViabilityData, tr: np.ndarray, te: np.ndarray, n_components: int = 20, inner_folds: int = 4
) -> tuple[np.ndarray, dict[str, float]]:
    """Per-drug ridge (dose levels + PCs + PCs × dose) fitted on ``tr``, predicting ``te`` (masks);
    the penalty per drug by inner CV over whole training lines. Returns predictions and alphas."""
    trl = np.unique(data.line[tr])
    feats = OmicsFeatures(n_components, []).fit(data, trl)
    pcs = feats.transform(data)[:, :n_components]
    drug = data.dose.argmax(1)
    pred = np.zeros(int(te.sum()))
    alphas: dict[str, float] = {}
    rng = np.random.default_rng(0)
    inner = np.array_split(rng.permutation(trl), inner_folds)
    for g, name in enumerate(data.drug_names):
        a, b = np.flatnonzero(tr & (drug == g)), np.flatnonzero(te & (drug == g))
        if len(a) == 0:
            pred[(drug[te] == g)] = float(data.y[tr].mean())
            continue
        levels = np.unique(np.round(data.dose[a].max(1), 6))
        Xa = _ridge_design(data, pcs, a, levels)
        errs = []
        for al in RIDGE_ALPHAS:
            e = 0.0
            for part in inner:
                ho = np.isin(data.line[a], part)
                if ho.all() or not ho.any():
                    continue
                w = _ridge_solve(Xa[~ho], data.y[a][~ho], al, len(levels))
                e += float(((Xa[ho] @ w - data.y[a][ho]) ** 2).sum())
            errs.append(e)
        al = RIDGE_ALPHAS[int(np.argmin(errs))]
        alphas[name] = al
        w = _ridge_solve(Xa, data.y[a], al, len(levels))
        if len(b):
            pred[np.flatnonzero(drug[te] == g)] = _ridge_design(data, pcs, b, levels) @ w
    return pred, alphas


def drug_target_features(data: ViabilityData, train_lines: np.ndarray, n_components: int = 20) -> OmicsFeatures:
    """The omics features of the drug-target model, fitted on ``train_lines``."""
    return OmicsFeatures(n_components, model_genes(data)).fit(data, train_lines)


@dataclass
class DrugTargetFold:
    """One fold's drug-target fit: held-out mean (n_te,) and 90 % interval (2, n_te), out-of-bag
    predictions of the training rows (n_tr,; NaN where every member saw the line), the omics L2
    chosen and every candidate's out-of-bag mean squared error, wall and CPU seconds."""

    mean: np.ndarray
    interval: np.ndarray
    oob: np.ndarray
    l2_omics: float
    oob_mse: dict[Any, float]
    mean_curve: bool = False
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    #: the dose-shape ridge of the fold (held-out, out-of-fold predictions, wall, CPU s) when the job
    #: computed it (for the boosted model), and the boosted model's fold
    shape: tuple[np.ndarray, np.ndarray, float, float] | None = None
    shape_choice: dict[str, Any] | None = None
    boosted: BoostedFold | None = None
    #: the bootstrap members' out-of-bag stopping epochs; share of training rows with an out-of-bag prediction
    stop_epochs: list[int] = field(default_factory=list)
    oob_coverage: float = float("nan")


def fit_drug_target(
    data: ViabilityData,
    tr: np.ndarray,
    cfg: DrugFitConfig,
    n_components: int = 20,
    l2_choices: tuple[float, ...] = L2_OMICS_CHOICES,
) -> tuple[DrugEnsemble, OmicsFeatures, np.ndarray, float, dict[Any, float], MeanCurveCorrection | None]:
    """Fit the ensemble on the rows ``tr`` (mask). With several ``l2_choices`` (omics L2), one ensemble
    per value is fitted and the one with the lowest error on its members' out-of-bag training lines is
    kept (the same bootstrap resamples for every value), so the choice is nested. Returns the ensemble,
    its omics features, the out-of-bag predictions of the training rows (n_tr,), the L2 kept, every
    candidate's out-of-bag mean squared error, and the mean-curve correction when it lowers that
    error (else ``None``; the predictions then are the ensemble's alone). With ``cfg.centered`` (and
    single-drug conditions only; else the model is fitted uncentered) the correction is the measured
    mean curve itself and the ensemble is fitted on the deviations from it (:func:`_fit_centered`)."""
    features = drug_target_features(data, np.unique(data.line[tr]), n_components)
    feats = features.transform(data)
    x_tr, f_tr, y_tr, g_tr = data.conc[tr], feats[data.line[tr]], data.y[tr, None], data.line[tr]
    if cfg.centered and single_drug_conditions(data):
        return _fit_centered(data, tr, cfg, features, feats, l2_choices)
    best: tuple[float, DrugEnsemble | None, np.ndarray | None, float] = (np.inf, None, None, cfg.l2_omics)
    mse: dict[float, float] = {}
    for l2 in l2_choices or (cfg.l2_omics,):
        ens = DrugEnsemble(data.spec(), replace(cfg, l2_omics=float(l2), centered=False))
        ens.fit(x_tr, f_tr, y_tr, g_tr, refit=False)
        oob = ens.predict_out_of_bag(x_tr, f_tr, g_tr)[:, 0]
        ok = np.isfinite(oob)
        mse[float(l2)] = float(np.mean((oob[ok] - y_tr[ok, 0]) ** 2)) if ok.any() else float("nan")
        if best[1] is None or mse[float(l2)] < best[0]:
            best = (mse[float(l2)], ens, oob, float(l2))
    _, ens, oob, l2 = best
    assert ens is not None and oob is not None
    ens.refit_members(x_tr, f_tr, y_tr)  # only the ensemble kept is refitted on every line
    # the measured mean dose-response curve in place of the model's own, kept if it lowers the
    # out-of-bag error (offsets from the in-sample fit, judged on out-of-bag lines)
    fit_pred = np.full(data.n, np.nan)
    fit_pred[tr] = ens.predict(x_tr, f_tr)[0][:, 0]
    corr = MeanCurveCorrection().fit(data, tr, fit_pred)
    oob_c = oob + corr.offset(data)[tr]
    ok = np.isfinite(oob)
    if ok.any() and np.mean((oob_c[ok] - y_tr[ok, 0]) ** 2) < np.mean((oob[ok] - y_tr[ok, 0]) ** 2):
        mse["mean curve"] = float(np.mean((oob_c[ok] - y_tr[ok, 0]) ** 2))
        return ens, features, oob_c, l2, mse, corr
    return ens, features, oob, l2, mse, None


def _fit_centered(
    data: ViabilityData,
    tr: np.ndarray,
    cfg: DrugFitConfig,
    features: OmicsFeatures,
    feats: np.ndarray,
    l2_choices: tuple[float, ...],
) -> tuple[DrugEnsemble, OmicsFeatures, np.ndarray, float, dict[Any, float], MeanCurveCorrection]:
    """:func:`fit_drug_target` for a centered model (``cfg.centered``): the measured drug × dose mean
    curve of the training rows is the prediction of the average line, and the ensemble is fitted on
    each row's deviation from it (it predicts line differences only)."""
    corr = MeanCurveCorrection().fit(data, tr, np.zeros(data.n))  # offsets = drug x dose means
    m_tr = corr.offset(data)[tr]
    x_tr, f_tr, g_tr = data.conc[tr], feats[data.line[tr]], data.line[tr]
    d_tr = (data.y[tr] - m_tr)[:, None]
    best: tuple[float, DrugEnsemble | None, np.ndarray | None, float] = (np.inf, None, None, cfg.l2_omics)
    mse: dict[Any, float] = {}
    for l2 in l2_choices or (cfg.l2_omics,):
        ens = DrugEnsemble(data.spec(), replace(cfg, l2_omics=float(l2))).fit(x_tr, f_tr, d_tr, g_tr, refit=False)
        oob = ens.predict_out_of_bag(x_tr, f_tr, g_tr)[:, 0]
        ok = np.isfinite(oob)
        mse[float(l2)] = float(np.mean((oob[ok] - d_tr[ok, 0]) ** 2)) if ok.any() else float("nan")
        if best[1] is None or mse[float(l2)] < best[0]:
            best = (mse[float(l2)], ens, oob, float(l2))
    _, ens, oob, l2 = best
    assert ens is not None and oob is not None
    ens.refit_members(x_tr, f_tr, d_tr)  # only the ensemble kept is refitted on every line
    return ens, features, oob + m_tr, l2, mse, corr


def drug_target_predict(
    data: ViabilityData,
    tr: np.ndarray,
    te: np.ndarray,
    cfg: DrugFitConfig,
    n_components: int = 20,
    l2_choices: tuple[float, ...] = L2_OMICS_CHOICES,
) -> DrugTargetFold:
    """:func:`fit_drug_target` on ``tr``, predicting ``te`` (member mean and 5–95 % range)."""
    ens, features, oob, l2, mse, corr = fit_drug_target(data, tr, cfg, n_components, l2_choices)
    f = features.transform(data)
    mean, iv = ens.predict(data.conc[te], f[data.line[te]])
    off = corr.offset(data)[te] if corr is not None else np.zeros(int(te.sum()))
    res = DrugTargetFold(mean[:, 0] + off, iv[:, :, 0] + off[None, :], oob, l2, mse, corr is not None)
    res.stop_epochs = [int(m.stopped_epoch) for m in ens.bag_members]
    res.oob_coverage = float(np.isfinite(oob).mean())
    return res


def _drug_target_job(args: tuple) -> DrugTargetFold:
    """One fold in a worker process, with the wall and CPU seconds of the fit. With ``boost``, also
    the fold's dose-shape ridge and the network boosted on it (:mod:`~tme_sim.training.viability_boost`;
    omics L2 = the drug-target row's out-of-bag choice in this fold)."""
    import torch

    data, tr, te, cfg, n_components, boost = args
    torch.set_num_threads(cfg.threads or 1)
    t0, c0 = time.perf_counter(), time.process_time()
    res = drug_target_predict(data, tr, te, cfg, n_components)
    res.seconds, res.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    if boost:
        t0, c0 = time.perf_counter(), time.process_time()
        sp, soof, ch = dose_shape_ridge(data, tr, te, model_genes(data), n_components)
        res.shape, res.shape_choice = (sp, soof, time.perf_counter() - t0, time.process_time() - c0), ch
        features = drug_target_features(data, np.unique(data.line[tr]), n_components)
        centered = cfg.centered and single_drug_conditions(data)
        res.boosted = boosted_predict(
            data, tr, te, replace(cfg, l2_omics=res.l2_omics), features, sp, soof, centered=centered
        )
    return res


def published_predictions(data: ViabilityData, folds: np.ndarray) -> tuple[np.ndarray, list[float]] | None:
    """The published model's held-out predictions (``CV/prediction_<fold>.tsv`` next to the viability
    file) and per-fold seconds (``CV/time.tsv``), or ``None`` when absent or incomplete."""
    root = Path(data.sources.get("viability", ".")).parent / "CV"
    pred = np.full(data.n, np.nan)
    pos = {c: i for i, c in enumerate(data.condition_names)}
    for f in np.unique(folds):
        p = root / f"prediction_{f}.tsv"
        if not p.is_file():
            return None
        df = pd.read_csv(p, sep="\t", index_col=0)
        for c, v in zip(df.index.astype(str), df.iloc[:, 0].to_numpy(float), strict=True):
            if c in pos:
                pred[pos[c]] = v
    if np.isnan(pred).any():
        return None
    secs: list[float] = []
    tp = root / "time.tsv"
    if tp.is_file():
        secs = [float(v) for v in pd.read_csv(tp, sep="\t", index_col=0).iloc[:, 0]]
    return pred, secs


@dataclass
class FoldScores:
    """Scores of one model: one entry per fold, plus the pooled scores."""

    name: str
    fold_r: list[float] = field(default_factory=list)
    fold_specific_r: list[float] = field(default_factory=list)
    fold_seconds: list[float] = field(default_factory=list)
    fold_cpu_seconds: list[float] = field(default_factory=list)
    pooled_r: float = float("nan")
    specific_r: float = float("nan")
    coverage_90: float = float("nan")
    note: str = ""

    def row(self) -> dict[str, Any]:
        """A row with the ligand-screen table's keys (``model``, ``pooled_r``, ...) plus
        ``specific_r`` and per-fold lists. One output, so ``median_r`` (median per-output r) equals
        ``pooled_r``; every held-out line is unseen, so ``seen_r`` is NaN."""
        m = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
        return {
            "model": self.name,
            "pooled_r": self.pooled_r,
            "pooled_r_sd": float(np.std(self.fold_r)) if len(self.fold_r) > 1 else 0.0,
            "median_r": self.pooled_r,
            "median_r_sd": 0.0,
            "scrambled_r": float("nan"),
            "seen_r": float("nan"),
            "unseen_r": self.pooled_r,
            "cpu_seconds_per_fold": m(self.fold_cpu_seconds),
            "seconds_per_fold": m(self.fold_seconds),
            "max_seconds_per_fold": float(np.max(self.fold_seconds)) if self.fold_seconds else float("nan"),
            "specific_r": self.specific_r,
            "mean_fold_r": m(self.fold_r),
            "mean_fold_specific_r": m(self.fold_specific_r),
            "fold_r": self.fold_r,
            "fold_specific_r": self.fold_specific_r,
            "fold_cpu_seconds": self.fold_cpu_seconds,
            "coverage_90": self.coverage_90,
            "note": self.note,
        }


@dataclass
class ViabilityCVReport:
    folds: list[int]
    n_conditions: int
    n_lines: int
    models: dict[str, FoldScores]
    data_sha256: str
    config: dict[str, Any]
    threads: int = 1
    seconds: float = 0.0
    jobs: int = 1
    kind: str = "viability"
    protocol: str = "published folds, whole cell lines held out"
    #: model vs baseline over held-out lines (:func:`~tme_sim.training.viability_paired.paired_over_lines`)
    paired: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [m.row() for m in self.models.values()]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["models"] = {k: v.row() for k, v in self.models.items()}
        d["table"] = self.rows()
        return d


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 and np.std(a) > 0 and np.std(b) > 0 else float("nan")


def cross_validate_viability(
    data: ViabilityData,
    cfg: DrugFitConfig | None = None,
    *,
    models: tuple[str, ...] = DEFAULT_MODELS,
    n_components: int = 20,
    k: int = 5,
    progress: Any = None,
    jobs: int = 1,
) -> ViabilityCVReport:
    """Cross-validate ``models`` on whole held-out cell lines (see the module docstring).

    ``jobs`` > 1 fits the drug-target model's folds in that many worker processes (results do not
    depend on it; each fold's CPU seconds are measured in its worker)."""
    import torch

    cfg = cfg or viability_config()
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r} (known: {', '.join(MODELS)})")
    torch.set_num_threads(cfg.threads or 1)
    folds = line_folds(data, k)
    fold_ids = [int(f) for f in np.unique(folds)]
    key = data.drug_dose_key()
    genes = model_genes(data)
    preds = {m: np.full(data.n, np.nan) for m in models}
    iv = np.full((2, data.n), np.nan)
    stack_iv = np.full((2, data.n), np.nan)
    scores = {m: FoldScores(m) for m in models}
    base_all = np.zeros(data.n)
    t_all = time.perf_counter()
    need_dt = "drug-target" in models or STACK in models or BOOSTED in models
    need_shape = "dose-shape ridge" in models or STACK in models or BOOSTED in models
    boost = BOOSTED in models
    pre: dict[int, DrugTargetFold] = {}
    if jobs > 1 and need_dt:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        args = [(data, folds != f, folds == f, cfg, n_components, boost) for f in fold_ids]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
            for f, res in zip(fold_ids, ex.map(_drug_target_job, args), strict=True):
                pre[f] = res
    choices: dict[str, dict[int, Any]] = {
        "l2_omics": {},
        "mean_curve": {},
        "dose_shape": {},
        "stack_weight": {},
        "boost_weight": {},
        "oob_mse": {},
        "stop_epochs": {},
        "oob_coverage": {},
    }
    for fi, f in enumerate(fold_ids):
        te = folds == f
        tr = ~te
        base = drug_dose_means(key, data.y, tr)
        base_all[te] = base[te]
        dt = pre.get(f)
        if dt is None and need_dt:
            dt = _drug_target_job((data, tr, te, cfg, n_components, boost))
        if dt is not None:
            choices["l2_omics"][f], choices["oob_mse"][f] = dt.l2_omics, dt.oob_mse
            choices["mean_curve"][f] = dt.mean_curve
            choices["stop_epochs"][f], choices["oob_coverage"][f] = dt.stop_epochs, dt.oob_coverage
        shape: tuple[np.ndarray, np.ndarray, float, float] | None = None
        if need_shape and dt is not None and dt.shape is not None:  # computed by the job (boosted model)
            shape, choices["dose_shape"][f] = dt.shape, dt.shape_choice
        elif need_shape:
            t0, c0 = time.perf_counter(), time.process_time()
            sp, soof, ch = dose_shape_ridge(data, tr, te, genes, n_components)
            shape = (sp, soof, time.perf_counter() - t0, time.process_time() - c0)
            choices["dose_shape"][f] = ch
        for m in models:
            t0, c0 = time.perf_counter(), time.process_time()
            sec = cpu = None
            if m == "drug-dose mean":
                preds[m][te] = base[te]
            elif m == "ridge":
                preds[m][te], alphas = ridge_predict(data, tr, te, n_components)
                scores[m].note += f"fold {f} alphas {alphas}; "
            elif m == "dose-shape ridge":
                assert shape is not None
                preds[m][te], sec, cpu = shape[0], shape[2], shape[3]
            elif m == "drug-target":
                assert dt is not None
                preds[m][te], iv[:, te], sec, cpu = dt.mean, dt.interval, dt.seconds, dt.cpu_seconds
            elif m == BOOSTED:
                assert dt is not None and dt.boosted is not None and shape is not None
                preds[m][te], choices["boost_weight"][f] = dt.boosted.mean, dt.boosted.weight
                sec, cpu = dt.boosted.seconds + shape[2], dt.boosted.cpu_seconds + shape[3]
            else:  # the stack: weight fitted on the training rows' out-of-fold predictions
                assert dt is not None and shape is not None
                w = blend_weight(data.y[tr], dt.oob, shape[1])
                choices["stack_weight"][f] = w
                preds[m][te] = w * dt.mean + (1 - w) * shape[0]
                half = conformal_halfwidth(key[tr], data.y[tr] - (w * dt.oob + (1 - w) * shape[1]), key[te])
                stack_iv[:, te] = preds[m][te] - half, preds[m][te] + half
                sec, cpu = dt.seconds + shape[2], dt.cpu_seconds + shape[3]
            scores[m].fold_seconds.append(time.perf_counter() - t0 if sec is None else sec)
            scores[m].fold_cpu_seconds.append(time.process_time() - c0 if cpu is None else cpu)
            p, y, b = preds[m][te], data.y[te], base[te]
            scores[m].fold_r.append(_r(p, y))
            scores[m].fold_specific_r.append(_r(p - b, y - b))
            if progress:
                progress(
                    f"fold {f}: {m} r {scores[m].fold_r[-1]:.3f}",
                    fi * len(models) + models.index(m) + 1,
                    len(fold_ids) * len(models),
                )
    for m in models:
        scores[m].pooled_r = _r(preds[m], data.y)
        scores[m].specific_r = _r(preds[m] - base_all, data.y - base_all)
    if "drug-target" in models:
        scores["drug-target"].coverage_90 = float(np.mean((data.y >= iv[0]) & (data.y <= iv[1])))
        curve = (
            "centered: the measured drug x dose mean curve of the training lines plus the network's prediction of "
            "each line's deviation from the average line (trained on those deviations)"
            if cfg.centered
            else f"measured mean curve in place of the model's own per fold {choices['mean_curve']} (when it lowers "
            "the out-of-bag error)"
        )
        refit = (
            "; each member refitted on every training line for the epochs its out-of-bag lines chose"
            if cfg.refit_full
            else ""
        )
        scores["drug-target"].note = (
            f"ensemble of {cfg.members} (bootstrap over lines: {cfg.bootstrap}{refit}); omics L2 per fold "
            f"{choices['l2_omics']} (lowest out-of-bag error among {list(L2_OMICS_CHOICES)}); {curve}; "
            "coverage_90: share "
            "of held-out measurements inside the members' 5-95 % range (model spread only, no noise term)"
        )
    if "dose-shape ridge" in models:
        scores["dose-shape ridge"].note = (
            "the recipe's linear part alone: per drug, ridge of each line's dose-response deviation "
            "(projected on principal dose shapes) on omics; rank, features, penalty by inner CV over training lines"
        )
    if BOOSTED in models:
        scores[BOOSTED].note = (
            "dose-shape ridge + v x drug-target network fitted on the ridge's out-of-fold residuals of the "
            f"training rows (omics L2 = the drug-target row's out-of-bag choice), v per fold in [0, 1] by least "
            f"squares on the members' out-of-bag predictions: {choices['boost_weight']}; seconds: the network fit "
            "plus the ridge (the L2 choice is the drug-target row's)"
        )
    paired = {
        f"{a} vs {b}": paired_over_lines(data.y, preds[a], preds[b], base_all, data.line, folds)
        for a, b in PAIRED
        if a in models and b in models
    }
    if STACK in models:
        scores[STACK].coverage_90 = float(np.mean((data.y >= stack_iv[0]) & (data.y <= stack_iv[1])))
        scores[STACK].note = (
            "THE RECIPE: w * drug-target + (1 - w) * dose-shape ridge, w fitted per fold on the training rows' "
            f"out-of-fold predictions (out-of-bag members; inner folds): {choices['stack_weight']}; coverage_90: "
            "share of held-out measurements inside prediction +- the split-conformal 90 % half-width of the "
            "training rows' out-of-fold residuals (per drug x dose)"
        )
    pub = published_predictions(data, folds) if data.folds is not None else None
    if pub is not None:
        p_all, secs = pub
        s = FoldScores("published (LEMBAS)", fold_seconds=secs, note="the published model's held-out predictions")
        for f in fold_ids:
            te = folds == f
            s.fold_r.append(_r(p_all[te], data.y[te]))
            s.fold_specific_r.append(_r(p_all[te] - base_all[te], data.y[te] - base_all[te]))
        s.pooled_r = _r(p_all, data.y)
        s.specific_r = _r(p_all - base_all, data.y - base_all)
        scores[s.name] = s
    return ViabilityCVReport(
        folds=fold_ids,
        n_conditions=data.n,
        n_lines=len(data.line_names),
        models=scores,
        data_sha256=data.sha256(),
        config={
            "drug_target": asdict(cfg),
            "n_components": n_components,
            "ridge_alphas": list(RIDGE_ALPHAS),
            "how_chosen": {
                "nested (per fold, training lines only)": {
                    "ridge penalty": f"inner 4-fold CV over lines among {list(RIDGE_ALPHAS)}",
                    "drug-target omics L2": f"out-of-bag error of the members among {list(L2_OMICS_CHOICES)}",
                    "drug-target mean curve": (
                        "centered: the measured drug x dose mean curve of the training lines, the network fitted "
                        "on the deviations from it (fixed in advance)"
                        if cfg.centered
                        else "the measured drug x dose mean curve replaces the model's own (offsets from the "
                        "training fit) when that lowers the out-of-bag error"
                    ),
                    "drug-target epochs": "each member stops at its best epoch on its out-of-bag lines (cap: epochs)"
                    + ("; refitted on every training line for that many epochs" if cfg.refit_full else ""),
                    "dose-shape ridge": f"inner 4-fold CV over lines: rank {list(RANKS)} x features "
                    f"{list(FEATURE_SETS)} x penalty {[round(a, 3) for a in SHAPE_ALPHAS]}, per drug",
                    "stack weight": "least squares on the training rows' out-of-fold predictions, in [0, 1]",
                    "boosted weight v": "least squares of the ridge's out-of-fold residuals on the boosted "
                    "network's out-of-bag predictions, in [0, 1]",
                    "stack 90 % interval": "split-conformal on the training rows' out-of-fold residuals",
                },
                "fixed in advance": {
                    "n_components": n_components,
                    "drug-target": "members (5), lr, steps, edge_init, L1/L2 of edges and off-targets, patience, cap",
                },
            },
            "choices": {k: {str(f): v for f, v in d.items()} for k, d in choices.items()},
        },
        threads=cfg.threads or 1,
        seconds=time.perf_counter() - t_all,
        jobs=jobs,
        paired=paired,
    )


def format_viability_table(rep: ViabilityCVReport) -> str:
    """The table printed by ``tme train cv`` for a viability data set."""
    head = (
        f"{'model':<20} {'pooled r':>8} {'fold r':>7} {'line-specific r':>15} {'s/fold':>7} {'cpu s/fold':>10} "
        f"{'cover90':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rep.rows():
        lines.append(
            f"{r['model']:<20} {r['pooled_r']:>8.3f} {r['mean_fold_r']:>7.3f} {r['specific_r']:>15.3f} "
            f"{r['seconds_per_fold']:>7.1f} {r['cpu_seconds_per_fold']:>10.1f} {r['coverage_90']:>7.2f}"
        )
    lines.append("per fold (r / line-specific r / cpu s):")
    for r in rep.rows():
        cells = [
            f"{a:.3f}/{b:.3f}/{c:.0f}"
            for a, b, c in zip(
                r["fold_r"], r["fold_specific_r"], r["fold_cpu_seconds"] or [np.nan] * len(r["fold_r"]), strict=True
            )
        ]
        lines.append(f"  {r['model']:<18} " + "  ".join(cells))
    lines.append(
        f"{len(rep.folds)} folds of whole cell lines ({rep.n_lines} lines, {rep.n_conditions} conditions), "
        f"{rep.threads} torch thread(s) x {rep.jobs} worker(s), wall total {rep.seconds:.0f} s; "
        "line-specific r: after subtracting each condition's drug × dose mean over the fold's training conditions"
    )
    if rep.paired:
        lines.append("paired over held-out lines (per-line mean squared error; r differences a - b):")
        for name, d in rep.paired.items():
            lines += format_paired(name, d)
    return "\n".join(lines)
