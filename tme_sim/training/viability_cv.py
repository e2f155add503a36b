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
* ``drug-target`` — :class:`~tme_sim.training.drug_models.DrugEnsemble` (drug → known targets and
  off-targets → network → read-out layer, cell line through its omics), settings fixed in advance
  (:class:`~tme_sim.training.drug_models.DrugFitConfig` defaults);
* ``published`` — where the folder holds the published model's held-out predictions
  (``CV/prediction_<fold>.tsv``) and times (``CV/time.tsv``), they are scored the same way.

Scores: **pooled r** (Pearson r over all held-out conditions), the mean of per-fold r, and the
**cell-line-specific r**: r between prediction and measurement after subtracting, from both, each
condition's drug × dose mean over that fold's training conditions (what the omics must explain).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tme_sim.training.drug_models import DrugEnsemble, DrugFitConfig
from tme_sim.training.viability import OmicsFeatures, ViabilityData

#: ridge penalties tried by the inner cross-validation of the ridge baseline
RIDGE_ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
MODELS = ("drug-dose mean", "ridge", "drug-target")


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


def drug_target_predict(
    data: ViabilityData, tr: np.ndarray, te: np.ndarray, cfg: DrugFitConfig, n_components: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Fit the ensemble on ``tr`` and predict ``te``: mean (n_te,) and 90 % interval (2, n_te)."""
    feats = drug_target_features(data, np.unique(data.line[tr]), n_components).transform(data)
    ens = DrugEnsemble(data.spec(), cfg).fit(data.conc[tr], feats[data.line[tr]], data.y[tr, None], data.line[tr])
    mean, iv = ens.predict(data.conc[te], feats[data.line[te]])
    return mean[:, 0], iv[:, :, 0]


def _drug_target_job(args: tuple) -> tuple[np.ndarray, np.ndarray, float, float]:
    """One fold in a worker process: predictions, interval, wall and CPU seconds of the fit."""
    import torch

    data, tr, te, cfg, n_components = args
    torch.set_num_threads(cfg.threads or 1)
    t0, c0 = time.perf_counter(), time.process_time()
    mean, iv = drug_target_predict(data, tr, te, cfg, n_components)
    return mean, iv, time.perf_counter() - t0, time.process_time() - c0


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
    models: tuple[str, ...] = MODELS,
    n_components: int = 20,
    k: int = 5,
    progress: Any = None,
    jobs: int = 1,
) -> ViabilityCVReport:
    """Cross-validate ``models`` on whole held-out cell lines (see the module docstring).

    ``jobs`` > 1 fits the drug-target model's folds in that many worker processes (results do not
    depend on it; each fold's CPU seconds are measured in its worker)."""
    import torch

    cfg = cfg or DrugFitConfig()
    torch.set_num_threads(cfg.threads or 1)
    folds = line_folds(data, k)
    fold_ids = [int(f) for f in np.unique(folds)]
    key = data.drug_dose_key()
    preds = {m: np.full(data.n, np.nan) for m in models}
    iv = np.full((2, data.n), np.nan)
    scores = {m: FoldScores(m) for m in models}
    base_all = np.zeros(data.n)
    t_all = time.perf_counter()
    pre: dict[int, tuple[np.ndarray, np.ndarray, float, float]] = {}
    if jobs > 1 and "drug-target" in models:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        args = [(data, folds != f, folds == f, cfg, n_components) for f in fold_ids]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
            for f, res in zip(fold_ids, ex.map(_drug_target_job, args), strict=True):
                pre[f] = res
    for fi, f in enumerate(fold_ids):
        te = folds == f
        tr = ~te
        base = drug_dose_means(key, data.y, tr)
        base_all[te] = base[te]
        for m in models:
            t0, c0 = time.perf_counter(), time.process_time()
            if m == "drug-dose mean":
                preds[m][te] = base[te]
            elif m == "ridge":
                preds[m][te], alphas = ridge_predict(data, tr, te, n_components)
                scores[m].note += f"fold {f} alphas {alphas}; "
            elif m == "drug-target" and f in pre:
                preds[m][te], iv[:, te], sec, cpu = pre[f]
            elif m == "drug-target":
                preds[m][te], iv[:, te] = drug_target_predict(data, tr, te, cfg, n_components)
            else:
                raise ValueError(f"unknown model {m!r}")
            if m == "drug-target" and f in pre:
                scores[m].fold_seconds.append(sec)
                scores[m].fold_cpu_seconds.append(cpu)
            else:
                scores[m].fold_seconds.append(time.perf_counter() - t0)
                scores[m].fold_cpu_seconds.append(time.process_time() - c0)
            p, y, b = preds[m][te], data.y[te], base[te]
            scores[m].fold_r.append(_r(p, y))
            scores[m].fold_specific_r.append(_r(p - b, y - b))
            if progress:
                progress(
                    f"fold {f}: {m} r {scores[m].fold_r[-1]:.3f}",
                    fi * len(models) + models.index(m) + 1,
                    len(fold_ids) * len(models),
                )
    if "drug-target" in models and "ridge" in models:  # the two omics models averaged (weights fixed: 1/2)
        name = "drug-target + ridge"
        preds[name] = 0.5 * (preds["drug-target"] + preds["ridge"])
        s = FoldScores(name, note="mean of the drug-target and ridge predictions of the same folds (no extra fit)")
        s.fold_seconds = [
            a + b for a, b in zip(scores["drug-target"].fold_seconds, scores["ridge"].fold_seconds, strict=True)
        ]
        s.fold_cpu_seconds = [
            a + b for a, b in zip(scores["drug-target"].fold_cpu_seconds, scores["ridge"].fold_cpu_seconds, strict=True)
        ]
        for f in fold_ids:
            te = folds == f
            p, y, b = preds[name][te], data.y[te], base_all[te]
            s.fold_r.append(_r(p, y))
            s.fold_specific_r.append(_r(p - b, y - b))
        scores[name] = s
    for m in scores:
        if m not in preds:
            continue
        scores[m].pooled_r = _r(preds[m], data.y)
        scores[m].specific_r = _r(preds[m] - base_all, data.y - base_all)
    if "drug-target" in models:
        scores["drug-target"].coverage_90 = float(np.mean((data.y >= iv[0]) & (data.y <= iv[1])))
        scores["drug-target"].note = (
            f"ensemble of {cfg.members} (bootstrap over lines: {cfg.bootstrap}); coverage_90: share of held-out "
            "measurements inside the members' 5-95 % range (model spread only, no noise term)"
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
        config={"drug_target": asdict(cfg), "n_components": n_components, "ridge_alphas": list(RIDGE_ALPHAS)},
        threads=cfg.threads or 1,
        seconds=time.perf_counter() - t_all,
        jobs=jobs,
    )


def format_viability_table(rep: ViabilityCVReport) -> str:
    """The table printed by ``tme train cv`` for a viability data set."""
    head = f"{'model':<20} {'pooled r':>8} {'fold r':>7} {'line-specific r':>15} {'s/fold':>7} {'cpu s/fold':>10}"
    lines = [head, "-" * len(head)]
    for r in rep.rows():
        lines.append(
            f"{r['model']:<20} {r['pooled_r']:>8.3f} {r['mean_fold_r']:>7.3f} {r['specific_r']:>15.3f} "
            f"{r['seconds_per_fold']:>7.1f} {r['cpu_seconds_per_fold']:>10.1f}"
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
    return "\n".join(lines)
