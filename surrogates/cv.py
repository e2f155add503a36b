"""Cross-validation holding out whole conditions, with a ridge baseline and a scrambled control.

Protocol (:func:`cross_validate`): for each seed, the conditions are permuted with
``numpy.random.default_rng(seed)`` and split into ``k`` folds (``numpy.array_split``); each fold is
predicted by a model trained on the other folds. The held-out predictions of all folds form one
full (conditions × outputs) matrix per seed and model, from which

* **pooled r** — Pearson r over all entries (every condition × output) — and
* **per-output median r** — the median over outputs of the Pearson r across conditions

are computed; the table reports the mean over seeds. The **scrambled** control trains the same
model on training targets whose rows were permuted (conditions shuffled) and evaluates it against
the true held-out targets. The ridge baseline (``alpha`` = 0.3) runs on the same folds.

Run: ``python -m surrogates.cv`` (see ``--help``) or ``tme train cv``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from surrogates.data import Dataset, PriorNetwork
from surrogates.train import RidgeModel, TrainConfig, build_model, fit, predict

ProgressFn = Callable[[str, int, int], None]


def condition_folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    """``k`` disjoint folds of condition indices ``0..n-1`` (a seeded permutation, split evenly)."""
    if not 2 <= k <= n:
        raise ValueError(f"need 2 <= k <= n, got k={k}, n={n}")
    return [np.sort(f) for f in np.array_split(np.random.default_rng(seed).permutation(n), k)]


def pooled_r(pred: np.ndarray, true: np.ndarray) -> float:
    """Pearson r over all entries."""
    return float(np.corrcoef(np.ravel(pred), np.ravel(true))[0, 1])


def per_output_r(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Pearson r across conditions for each output column (NaN where a column is constant)."""
    p = pred - pred.mean(0)
    t = true - true.mean(0)
    den = np.sqrt((p**2).sum(0) * (t**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (p * t).sum(0) / den, np.nan)


@dataclass
class ModelScores:
    """Scores of one model over seeds (lists have one entry per seed)."""

    name: str
    pooled_r: list[float] = field(default_factory=list)
    median_r: list[float] = field(default_factory=list)
    scrambled_pooled_r: list[float] = field(default_factory=list)
    fold_seconds: list[float] = field(default_factory=list)
    fold_epochs: list[int] = field(default_factory=list)
    per_output_r: list[list[float]] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        def m(v: list[float]) -> float:
            return float(np.mean(v)) if v else float("nan")

        def s(v: list[float]) -> float:
            return float(np.std(v)) if len(v) > 1 else 0.0

        return {
            "model": self.name,
            "pooled_r": m(self.pooled_r),
            "pooled_r_sd": s(self.pooled_r),
            "median_r": m(self.median_r),
            "median_r_sd": s(self.median_r),
            "scrambled_r": m(self.scrambled_pooled_r),
            "seconds_per_fold": m(self.fold_seconds),
            "max_seconds_per_fold": float(np.max(self.fold_seconds)) if self.fold_seconds else float("nan"),
        }


@dataclass
class CVReport:
    k: int
    seeds: list[int]
    n_conditions: int
    output_names: list[str]
    models: dict[str, ModelScores]
    threads: int
    data_sha256: str
    seconds: float = 0.0
    jobs: int = 1
    predictions: dict[str, list[list[list[float]]]] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [m.row() for m in self.models.values()]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["table"] = self.rows()
        return d


def _fit_predict(
    name: str,
    cfg: TrainConfig | None,
    data: Dataset,
    network: PriorNetwork | None,
    tr: np.ndarray,
    te: np.ndarray,
    y_train: np.ndarray,
) -> tuple[np.ndarray, float, int]:
    t0 = time.perf_counter()
    if name == "ridge":
        m = RidgeModel().fit(data.inputs[tr], y_train)
        return m.predict(data.inputs[te]), time.perf_counter() - t0, 0
    assert cfg is not None
    model = build_model(cfg, data.subset(tr), network)
    res = fit(model, data.inputs[tr], y_train, cfg)
    return predict(model, data.inputs[te]), time.perf_counter() - t0, res.epochs


def _job(args: tuple) -> tuple[tuple, np.ndarray, float, int]:
    """One fit: (key, predictions for the held-out rows, seconds, epochs). Runs in a worker."""
    key, name, cfg, data, network, tr, te, y_train = args
    if cfg is not None:
        from surrogates.train import set_threads

        set_threads(cfg.threads)
    pred, sec, ep = _fit_predict(name, cfg, data, network, tr, te, y_train)
    return key, pred, sec, ep


def cross_validate(
    data: Dataset,
    network: PriorNetwork | None,
    configs: dict[str, TrainConfig],
    *,
    k: int = 5,
    seeds: tuple[int, ...] | list[int] = (0, 1, 2),
    ridge: bool = True,
    scramble: bool = True,
    scramble_seeds: int | None = 1,
    progress: ProgressFn | None = None,
    keep_predictions: bool = False,
    jobs: int = 1,
) -> CVReport:
    """Cross-validate each model in ``configs`` (name → config) plus ridge, on the same folds.

    ``scramble_seeds``: on how many of the seeds (the first ones) to run the scrambled control
    for the trained models (``None`` = all); ridge always runs it on every seed (it is free).
    ``jobs`` > 1 fits folds in that many worker processes (each with ``config.threads``
    threads); results do not depend on ``jobs``. ``progress(label, done, total)`` is called
    after each fitted fold.
    """
    names = (["ridge"] if ridge else []) + list(configs)
    scores = {n: ModelScores(n) for n in names}
    preds: dict[str, list[list[list[float]]]] = {n: [] for n in names}
    n = data.n
    n_scr = len(seeds) if scramble_seeds is None else min(scramble_seeds, len(seeds))
    from surrogates.train import set_threads

    threads = set_threads(next(iter(configs.values())).threads if configs else None)
    t_all = time.perf_counter()
    # the job list: (model, seed index, fold, scrambled?) in a fixed order
    job_args = []
    for si, seed in enumerate(seeds):
        folds = condition_folds(n, k, seed)
        scr_rng = np.random.default_rng(10_000 + seed)
        perms = []
        for te in folds:
            perms.append(scr_rng.permutation(n - len(te)))
        for nm in names:
            cfg = configs.get(nm)
            if cfg is not None:
                cfg = cfg.model_copy(update={"seed": seed})
            do_scr = scramble and (nm == "ridge" or si < n_scr)
            for fi, te in enumerate(folds):
                tr = np.setdiff1d(np.arange(n), te)
                job_args.append(((nm, si, fi, False), nm, cfg, data, network, tr, te, data.outputs[tr]))
                if do_scr:
                    job_args.append(((nm, si, fi, True), nm, cfg, data, network, tr, te, data.outputs[tr][perms[fi]]))
    # slow models first so that parallel workers finish together
    job_args.sort(key=lambda a: (a[1] == "ridge", a[1] == "mlp"))
    results: dict[tuple, tuple[np.ndarray, float, int]] = {}
    total = len(job_args)
    if jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(_job, a) for a in job_args]
            for f in as_completed(futs):
                key, pred, sec, ep = f.result()
                results[key] = (pred, sec, ep)
                if progress:
                    progress(f"{key[0]}{' scrambled' if key[3] else ''} seed {seeds[key[1]]}", len(results), total)
    else:
        for a in job_args:
            key, pred, sec, ep = _job(a)
            results[key] = (pred, sec, ep)
            if progress:
                progress(f"{key[0]}{' scrambled' if key[3] else ''} seed {seeds[key[1]]}", len(results), total)
    for si, seed in enumerate(seeds):
        folds = condition_folds(n, k, seed)
        for nm in names:
            P = np.zeros(data.outputs.shape)
            Ps = np.zeros(data.outputs.shape)
            has_scr = False
            for fi, te in enumerate(folds):
                pred, sec, ep = results[(nm, si, fi, False)]
                P[te] = pred
                scores[nm].fold_seconds.append(sec)
                scores[nm].fold_epochs.append(ep)
                if (nm, si, fi, True) in results:
                    Ps[te] = results[(nm, si, fi, True)][0]
                    has_scr = True
            scores[nm].pooled_r.append(pooled_r(P, data.outputs))
            r = per_output_r(P, data.outputs)
            scores[nm].median_r.append(float(np.nanmedian(r)))
            scores[nm].per_output_r.append([float(v) for v in r])
            if has_scr:
                scores[nm].scrambled_pooled_r.append(pooled_r(Ps, data.outputs))
            if keep_predictions:
                preds[nm].append(P.tolist())
    return CVReport(
        k=k,
        seeds=list(seeds),
        n_conditions=n,
        output_names=list(data.output_names),
        models=scores,
        threads=threads,
        data_sha256=data.sha256(),
        seconds=time.perf_counter() - t_all,
        predictions=preds if keep_predictions else {},
        jobs=jobs,
    )


def load_report(path: str | Path) -> CVReport:
    """Read a report written by :func:`write_report`."""
    d = json.loads(Path(path).read_text())
    models = {k: ModelScores(**v) for k, v in d["models"].items()}
    return CVReport(
        k=d["k"],
        seeds=d["seeds"],
        n_conditions=d["n_conditions"],
        output_names=d["output_names"],
        models=models,
        threads=d["threads"],
        data_sha256=d["data_sha256"],
        seconds=d["seconds"],
    )


def merge_reports(reports: list[CVReport]) -> CVReport:
    """Combine reports of the same data and folds run for different seeds (e.g. in parallel)."""
    if not reports:
        raise ValueError("no reports to merge")
    first = reports[0]
    for r in reports[1:]:
        if r.data_sha256 != first.data_sha256 or r.k != first.k:
            raise ValueError("reports differ in data or number of folds")
    models: dict[str, ModelScores] = {}
    for r in reports:
        for name, sc in r.models.items():
            m = models.setdefault(name, ModelScores(name))
            for f in ("pooled_r", "median_r", "scrambled_pooled_r", "fold_seconds", "fold_epochs", "per_output_r"):
                getattr(m, f).extend(getattr(sc, f))
    return CVReport(
        k=first.k,
        seeds=[s for r in reports for s in r.seeds],
        n_conditions=first.n_conditions,
        output_names=first.output_names,
        models=models,
        threads=first.threads,
        data_sha256=first.data_sha256,
        seconds=sum(r.seconds for r in reports),
    )


def format_table(report: CVReport) -> str:
    """The CV table as plain text (also what the CLI prints)."""
    head = f"{'model':<12} {'pooled r':>14} {'median TF r':>14} {'scrambled r':>12} {'s/fold':>8} {'max s':>8}"
    lines = [head, "-" * len(head)]
    for r in report.rows():
        lines.append(
            f"{r['model']:<12} {r['pooled_r']:>8.3f} ±{r['pooled_r_sd']:.3f} {r['median_r']:>8.3f} ±"
            f"{r['median_r_sd']:.3f} {r['scrambled_r']:>12.3f} {r['seconds_per_fold']:>8.1f} "
            f"{r['max_seconds_per_fold']:>8.1f}"
        )
    lines.append(
        f"{report.k} folds holding out whole conditions, seeds {report.seeds}, {report.n_conditions} "
        f"conditions, torch threads {report.threads} x {report.jobs} worker(s), wall total {report.seconds:.0f} s "
        "(s/fold = wall seconds of one fit)"
    )
    return "\n".join(lines)


def write_report(report: CVReport, json_path: str | Path, png_path: str | Path | None = None) -> None:
    """Write the report as JSON and (optionally) a PNG of per-output r by model."""
    jp = Path(json_path)
    jp.parent.mkdir(parents=True, exist_ok=True)
    jp.write_text(json.dumps(report.to_json(), indent=1))
    if png_path is not None:
        plot_report(report, png_path)


def plot_report(report: CVReport, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    rows = report.rows()
    names = [r["model"] for r in rows]
    x = np.arange(len(names))
    axes[0].bar(x - 0.2, [r["pooled_r"] for r in rows], 0.4, label="pooled r")
    axes[0].bar(x + 0.2, [r["median_r"] for r in rows], 0.4, label="median per-output r")
    axes[0].scatter(x, [r["scrambled_r"] for r in rows], color="k", marker="x", label="scrambled", zorder=3)
    axes[0].set_xticks(x, names)
    axes[0].set_ylabel("Pearson r (held-out conditions)")
    axes[0].legend(frameon=False, fontsize=8)
    for nm, sc in report.models.items():
        if sc.per_output_r:
            r = np.nanmean(np.array(sc.per_output_r), axis=0)
            axes[1].plot(np.sort(r)[::-1], label=nm)
    axes[1].set_xlabel("outputs (sorted)")
    axes[1].set_ylabel("per-output r (mean over seeds)")
    axes[1].legend(frameon=False, fontsize=8)
    fig.suptitle(f"{report.k}-fold CV by condition, seeds {report.seeds}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:  # pragma: no cover - thin wrapper
    from surrogates.cli import train_app

    train_app(["cv", *__import__("sys").argv[1:]])


if __name__ == "__main__":  # pragma: no cover
    main()
