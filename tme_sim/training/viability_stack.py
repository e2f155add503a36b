"""The linear part of the viability recipe and how it is stacked with the drug-target ensemble.

**Dose-shape ridge** (:func:`dose_shape_ridge`): per drug, each training line's residual curve —
its viability at every dose minus the drug × dose mean over the training lines, a vector of
``n_doses`` — is projected on the first ``rank`` principal dose shapes of the training lines'
curves (``rank = 0`` keeps every dose); a ridge regression predicts the line's scores on those
shapes from its omics features (expression principal components and mutation flags, optionally the
expression of the target and read-out genes), and the prediction is the drug × dose mean plus the
scores times the shapes. A low rank pools the 8 doses of a line into one sensitivity (the line's
shift of the dose-response curve) instead of fitting each dose separately.

Every setting — rank (:data:`RANKS`), feature set (:data:`FEATURE_SETS`), penalty
(:data:`ALPHAS`) — is chosen per drug by an inner cross-validation over the training lines only
(``inner_folds`` folds of whole lines), which also gives the out-of-fold predictions of the
training rows that the stack uses.

**Stack** (:func:`blend_weight`): the recipe's prediction is ``w · drug-target + (1 - w) · linear``,
``w`` in [0, 1] fitted by least squares on the training rows' out-of-fold predictions (drug-target:
its members' out-of-bag lines; linear: the inner folds above), so no held-out line enters it.

Shapes: masks ``tr``/``te`` (n_conditions,); predictions (n_te,) and (n_tr,).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tme_sim.training.viability import OmicsFeatures, ViabilityData

#: ridge penalties of the dose-shape ridge (features are standardised: per-feature scale)
ALPHAS = tuple(float(a) for a in np.logspace(-1, 4, 11))
#: numbers of principal dose shapes tried (0 = every dose level its own output)
RANKS = (1, 2, 0)
#: feature sets tried: "omics" = expression components + mutation flags; "omics+genes" adds the
#: expression of the model's target and read-out genes
FEATURE_SETS = ("omics", "omics+genes")


def _drug_rows(data: ViabilityData) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per drug: its rows (m,), the dose levels (n_levels,) and each row's level column (m,)."""
    drug = data.dose.argmax(1)
    lvl = np.round(data.dose.max(1), 6)
    out = []
    for g in range(len(data.drug_names)):
        rows = np.flatnonzero(drug == g)
        levels = np.unique(lvl[rows])
        out.append((rows, levels, np.searchsorted(levels, lvl[rows])))
    return out


def _fit(
    y: np.ndarray,
    line: np.ndarray,
    rows: np.ndarray,
    col: np.ndarray,
    n_levels: int,
    F: np.ndarray,
    fit_lines: np.ndarray,
    rank: int,
    alpha: float,
) -> dict[str, np.ndarray]:
    """One drug's fit on the lines ``fit_lines``: dose-level means ``mean`` (n_levels,), dose shapes
    ``shapes`` (k, n_levels), and the ridge ``mu`` (f,), ``W`` (f, k), ``tm`` (k,) on ``F`` (n_lines, f)."""
    fit = np.isin(line[rows], fit_lines)
    sums = np.bincount(col[fit], weights=y[rows[fit]], minlength=n_levels)
    cnt = np.bincount(col[fit], minlength=n_levels)
    mean = np.where(cnt > 0, sums / np.maximum(cnt, 1), float(y[rows[fit]].mean()) if fit.any() else 1.0)
    pos = {int(v): i for i, v in enumerate(fit_lines)}
    R = np.zeros((len(fit_lines), n_levels))  # a missing dose of a line: no deviation from the mean
    rf = rows[fit]
    R[[pos[int(v)] for v in line[rf]], col[fit]] = y[rf] - mean[col[fit]]
    if 0 < rank < n_levels:
        shapes = np.linalg.svd(R, full_matrices=False)[2][:rank]
    else:
        shapes = np.eye(n_levels)
    T = R @ shapes.T
    X = F[fit_lines]
    mu, tm = X.mean(0), T.mean(0)
    W = np.linalg.solve((X - mu).T @ (X - mu) + alpha * np.eye(X.shape[1]), (X - mu).T @ (T - tm))
    return {"mean": mean, "shapes": shapes, "mu": mu, "W": W, "tm": tm}


def _predict(p: dict[str, np.ndarray], F_rows: np.ndarray, col: np.ndarray) -> np.ndarray:
    """(m,) predictions of rows with features ``F_rows`` (m, f) at level columns ``col`` (m,)."""
    scores = (F_rows - p["mu"]) @ p["W"] + p["tm"]
    return p["mean"][col] + np.einsum("mk,km->m", scores, p["shapes"][:, col])


class DoseShapeRidge:
    """The dose-shape ridge (module docstring): fitted on some cell lines, predicts any line from its
    omics. ``drugs[name]`` holds the chosen settings and fitted arrays; ``oof`` (n,) the inner
    out-of-fold predictions of the training rows (NaN elsewhere) after :meth:`fit`."""

    def __init__(self, genes: list[str], n_components: int = 20, inner_folds: int = 4, seed: int = 0) -> None:
        self.genes, self.n_components, self.inner_folds, self.seed = list(genes), n_components, inner_folds, seed
        self.features = OmicsFeatures(n_components, self.genes)
        self.drugs: dict[str, dict[str, Any]] = {}
        self.oof = np.zeros(0)

    def _sets(self, data: ViabilityData) -> dict[str, np.ndarray]:
        F = self.features.transform(data)
        n_gene_cols = sum(1 for g in self.genes if g in set(data.gene_names))
        return {"omics": F[:, : F.shape[1] - n_gene_cols], "omics+genes": F}

    def fit(self, data: ViabilityData, tr: np.ndarray) -> DoseShapeRidge:
        """Fit on the rows ``tr`` (mask); every setting chosen by inner CV over their lines."""
        trl = np.unique(data.line[tr])
        # features (components, standardisation) are fitted once on all training lines, also for the
        # inner folds: they use no viability, and refitting per inner fold costs 5x for little change
        self.features.fit(data, trl)
        sets = self._sets(data)
        inner = np.array_split(np.random.default_rng(self.seed).permutation(trl), self.inner_folds)
        self.oof = np.full(data.n, np.nan)
        self.drugs = {}
        for g, (rows, levels, col) in enumerate(_drug_rows(data)):
            in_tr = tr[rows]
            if not in_tr.any():
                continue
            best: tuple[float, tuple[str, int, float]] = (np.inf, ("omics", 1, ALPHAS[0]))
            best_oof = np.full(len(rows), np.nan)
            for fs in FEATURE_SETS:
                F = sets[fs]
                for rank in RANKS:
                    for alpha in ALPHAS:
                        p = np.full(len(rows), np.nan)
                        for part in inner:
                            ho = np.isin(data.line[rows], part)
                            if not ho.any():
                                continue
                            fit = _fit(
                                data.y, data.line, rows, col, len(levels), F, np.setdiff1d(trl, part), rank, alpha
                            )
                            p[ho] = _predict(fit, F[data.line[rows[ho]]], col[ho])
                        err = float(np.nanmean((p[in_tr] - data.y[rows[in_tr]]) ** 2))
                        if err < best[0]:
                            best, best_oof = (err, (fs, rank, alpha)), p
            fs, rank, alpha = best[1]
            fit = _fit(data.y, data.line, rows, col, len(levels), sets[fs], trl, rank, alpha)
            self.drugs[data.drug_names[g]] = {"features": fs, "rank": rank, "alpha": alpha, "levels": levels, **fit}
            self.oof[rows[in_tr]] = best_oof[in_tr]
        return self

    def predict(self, data: ViabilityData) -> np.ndarray:
        """(n,) prediction of every condition of ``data`` (its drugs must be the fitted ones; a dose
        between two fitted levels is interpolated linearly in log dose, beyond them held constant)."""
        sets = self._sets(data)
        out = np.full(data.n, np.nan)
        x = np.round(data.dose.max(1), 6)
        for g, name in enumerate(data.drug_names):
            rows = np.flatnonzero(data.dose.argmax(1) == g)
            d = self.drugs.get(name)
            if d is None or not len(rows):
                continue
            levels = np.asarray(d["levels"])
            pos = np.interp(x[rows], levels, np.arange(len(levels)))  # fractional level index
            lo = np.floor(pos).astype(int)
            hi = np.minimum(lo + 1, len(levels) - 1)
            F = sets[d["features"]][data.line[rows]]
            t = pos - lo
            out[rows] = (1 - t) * _predict(d, F, lo) + t * _predict(d, F, hi)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "genes": self.genes,
            "n_components": self.n_components,
            "features_state": dict(self.features.state),
            "drugs": {k: dict(v) for k, v in self.drugs.items()},
        }

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> DoseShapeRidge:
        m = cls(list(d["genes"]), int(d["n_components"]))
        m.features.state = {k: np.asarray(v, dtype=np.float64) for k, v in d["features_state"].items()}
        m.drugs = {
            k: {
                kk: (
                    vv
                    if kk == "features"
                    else int(vv)
                    if kk == "rank"
                    else float(vv)
                    if kk == "alpha"
                    else np.asarray(vv, float)
                )
                for kk, vv in v.items()
            }
            for k, v in d["drugs"].items()
        }
        return m


def dose_shape_ridge(
    data: ViabilityData,
    tr: np.ndarray,
    te: np.ndarray,
    genes: list[str],
    n_components: int = 20,
    inner_folds: int = 4,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fit on the rows ``tr`` (mask), predict ``te``. Returns predictions (n_te,), out-of-fold
    predictions of the training rows (n_tr,) at the chosen settings, and the choice per drug."""
    m = DoseShapeRidge(genes, n_components, inner_folds, seed).fit(data, tr)
    pred = m.predict(data)
    pred = np.where(np.isfinite(pred), pred, float(data.y[tr].mean()))
    choice = {k: {"features": v["features"], "rank": v["rank"], "alpha": v["alpha"]} for k, v in m.drugs.items()}
    return pred[te], m.oof[tr], choice


def blend_weight(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """``w`` in [0, 1] minimising ``Σ (y - w a - (1 - w) b)²`` over the rows where ``a`` and ``b`` are
    finite (0.5 when they are identical or no row qualifies)."""
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    den = float(d @ d)
    if den <= 0:
        return 0.5
    return float(np.clip((y[ok] - b[ok]) @ d / den, 0.0, 1.0))


class MeanCurveCorrection:
    """Per drug and dose level, the mean of ``y - prediction`` over training rows: added to a
    model's predictions it replaces the model's average dose-response curve by the measured one and
    keeps the model's line-to-line differences (a mechanistic curve that misses the mean shape would
    otherwise add the same error to every line). Doses between levels are interpolated in log dose."""

    def __init__(self) -> None:
        self.drugs: dict[str, dict[str, np.ndarray]] = {}

    def fit(self, data: ViabilityData, tr: np.ndarray, pred: np.ndarray) -> MeanCurveCorrection:
        """``tr`` (n,) mask of training rows, ``pred`` (n,) the model's predictions of them."""
        self.drugs = {}
        for g, (rows, levels, col) in enumerate(_drug_rows(data)):
            m = tr[rows]
            if not m.any():
                continue
            r = data.y[rows[m]] - pred[rows[m]]
            cnt = np.bincount(col[m], minlength=len(levels))
            off = np.bincount(col[m], weights=r, minlength=len(levels)) / np.maximum(cnt, 1)
            self.drugs[data.drug_names[g]] = {"levels": levels[cnt > 0], "offset": off[cnt > 0]}
        return self

    def offset(self, data: ViabilityData) -> np.ndarray:
        """(n,) the correction of every condition of ``data`` (0 for a drug without one)."""
        out = np.zeros(data.n)
        x = np.round(data.dose.max(1), 6)
        for g, name in enumerate(data.drug_names):
            d = self.drugs.get(name)
            rows = np.flatnonzero(data.dose.argmax(1) == g)
            if d is not None and len(rows) and len(d["levels"]):
                out[rows] = np.interp(x[rows], d["levels"], d["offset"])
        return out

    def state_dict(self) -> dict[str, Any]:
        return {k: dict(v) for k, v in self.drugs.items()}

    @classmethod
    def from_state_dict(cls, d: dict[str, Any]) -> MeanCurveCorrection:
        m = cls()
        m.drugs = {k: {kk: np.asarray(vv, float) for kk, vv in v.items()} for k, v in d.items()}
        return m


def conformal_halfwidth(key_fit: np.ndarray, resid: np.ndarray, key: np.ndarray, q: float = 0.9) -> np.ndarray:
    """Half-width of a ``q`` prediction interval for each row of ``key`` (n,): the
    ``ceil(q (m + 1))``-th smallest of the out-of-fold absolute residuals ``resid`` (m,; NaN = none)
    of training rows with the same drug × dose ``key_fit`` (m,) — residuals grow with dose, so each
    level gets its own — or of all training rows where a level has fewer than 10 (split-conformal)."""

    def quant(v: np.ndarray) -> float:
        v = np.sort(v[np.isfinite(v)])
        return float(v[min(len(v) - 1, int(np.ceil(q * (len(v) + 1))) - 1)]) if len(v) else float("inf")

    pooled = quant(np.abs(resid))
    out = np.full(len(key), pooled)
    for k in np.unique(key):
        v = np.abs(resid[key_fit == k])
        if np.isfinite(v).sum() >= 10:
            out[key == k] = quant(v)
    return out
