"""Analysis of a finished sweep folder: sensitivity indices (SALib) and response plots.

Per design:

* ``salib-sobol``: first-order, total (and second-order) Sobol indices with bootstrap
  confidence intervals → ``sobol_indices.csv``, ``sobol_s2.csv``, ``sobol_<metric>.png``.
* ``morris``: elementary-effect statistics μ, μ*, σ → ``morris_indices.csv``,
  ``morris_<metric>.png`` (μ* against σ).
* ``lhs`` / ``sobol`` (quasi-random samples): RBD-FAST first-order indices (SALib) →
  ``rbd_fast_indices.csv``, and scatter plots ``scatter_<metric>.png``.
* ``grid``: main-effect response curves (mean ± sd over every run at a level) →
  ``response.csv``, ``response_<metric>.png``; with exactly two parameters also a heat map
  ``response_<metric>_heatmap.png``.
* ``list``: scatter plots.

Every design also gets ``rank_correlation.csv`` (Spearman, parameters × metrics). Replicates are
averaged per design point before the SALib analyses; failed runs are left out, and a metric
with a missing point or no variance is skipped with a note (``notes.txt``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tme_sim.errors import OutputError
from tme_sim.sweep.execute import META_COLUMNS, SUMMARY, TAIL_COLUMNS, read_manifest

OK_STATUS = ("done", "skipped")


@dataclass
class Analysis:
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def load_results(sweep_dir: str | Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """The manifest and the summary table of a sweep folder."""
    sweep_dir = Path(sweep_dir)
    manifest = read_manifest(sweep_dir)
    path = sweep_dir / SUMMARY
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise OutputError(f"{path}: no such file (has the sweep run?)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise OutputError(f"{path}: not a readable summary table") from None
    return manifest, df


def metric_columns(df: pd.DataFrame, params: list[str]) -> list[str]:
    skip = set(META_COLUMNS) | set(TAIL_COLUMNS) | set(params)
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]


def point_means(df: pd.DataFrame, n_points: int, metrics: list[str]) -> pd.DataFrame:
    """Mean over the successful replicates of each design point (NaN where none succeeded)."""
    ok = df[df["status"].isin(OK_STATUS)]
    means = ok.groupby("point")[metrics].mean()
    return means.reindex(range(n_points))


def _usable(y: np.ndarray, metric: str, notes: list[str]) -> bool:
    if np.isnan(y).any():
        notes.append(f"{metric}: skipped ({int(np.isnan(y).sum())} design points have no successful run)")
        return False
    if np.ptp(y) == 0.0:
        notes.append(f"{metric}: skipped (constant over the sweep)")
        return False
    return True


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _sobol(manifest, means, metrics, res: Analysis, num_resamples: int, seed: int) -> None:
    from SALib.analyze import sobol

    problem = manifest["problem"]
    names = problem["names"]
    second = bool(manifest["options"]["calc_second_order"])
    rows, rows2 = [], []
    plt = _plt()
    for m in metrics:
        y = means[m].to_numpy(dtype=np.float64)
        if not _usable(y, m, res.notes):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            si = sobol.analyze(
                problem,
                y,
                calc_second_order=second,
                num_resamples=num_resamples,
                seed=seed,
                print_to_console=False,
            )
        for j, p in enumerate(names):
            rows.append(
                {
                    "metric": m,
                    "parameter": p,
                    "S1": si["S1"][j],
                    "S1_conf": si["S1_conf"][j],
                    "ST": si["ST"][j],
                    "ST_conf": si["ST_conf"][j],
                }
            )
        if second:
            for a in range(len(names)):
                for b in range(a + 1, len(names)):
                    rows2.append(
                        {
                            "metric": m,
                            "parameter_1": names[a],
                            "parameter_2": names[b],
                            "S2": si["S2"][a, b],
                            "S2_conf": si["S2_conf"][a, b],
                        }
                    )
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 3.2))
        x = np.arange(len(names))
        ax.bar(x - 0.18, si["S1"], 0.36, yerr=si["S1_conf"], label="S1 (first order)", capsize=3)
        ax.bar(x + 0.18, si["ST"], 0.36, yerr=si["ST_conf"], label="ST (total)", capsize=3)
        ax.set_xticks(x, [n.split(".")[-1] for n in names], rotation=30, ha="right")
        ax.set_ylabel("Sobol index")
        ax.set_title(m)
        ax.legend(fontsize="small")
        fig.tight_layout()
        path = res.out_dir / f"sobol_{_safe(m)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        res.files.append(path)
    _write(res, "sobol_indices.csv", pd.DataFrame(rows))
    if second:
        _write(res, "sobol_s2.csv", pd.DataFrame(rows2))


def _morris(manifest, means, metrics, res: Analysis, num_resamples: int, seed: int) -> None:
    from SALib.analyze import morris

    problem = manifest["problem"]
    names = problem["names"]
    x = np.asarray(manifest["unit_samples"], dtype=np.float64)
    rows = []
    plt = _plt()
    for m in metrics:
        y = means[m].to_numpy(dtype=np.float64)
        if not _usable(y, m, res.notes):
            continue
        si = morris.analyze(
            problem,
            x,
            y,
            num_resamples=num_resamples,
            num_levels=int(manifest["options"]["num_levels"]),
            seed=seed,
            print_to_console=False,
        )
        for j, p in enumerate(names):
            rows.append(
                {
                    "metric": m,
                    "parameter": p,
                    "mu": si["mu"][j],
                    "mu_star": si["mu_star"][j],
                    "sigma": si["sigma"][j],
                    "mu_star_conf": si["mu_star_conf"][j],
                }
            )
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        ax.errorbar(si["mu_star"], si["sigma"], xerr=si["mu_star_conf"], fmt="o", capsize=3)
        for j, p in enumerate(names):
            ax.annotate(
                p.split(".")[-1],
                (si["mu_star"][j], si["sigma"][j]),
                fontsize="small",
                xytext=(4, 4),
                textcoords="offset points",
            )
        ax.set_xlabel("μ* (mean |elementary effect|, per unit of normalised range)")
        ax.set_ylabel("σ")
        ax.set_title(m)
        fig.tight_layout()
        path = res.out_dir / f"morris_{_safe(m)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        res.files.append(path)
    _write(res, "morris_indices.csv", pd.DataFrame(rows))


def _rbd_fast(manifest, means, metrics, res: Analysis, num_resamples: int, seed: int) -> None:
    from SALib.analyze import rbd_fast

    names = [p["key"] for p in manifest["parameters"]]
    x = np.asarray(manifest["unit_samples"], dtype=np.float64)
    problem = {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}
    m_harmonics = 10
    if x.shape[0] <= 2 * m_harmonics:
        res.notes.append(f"RBD-FAST skipped: needs more than {2 * m_harmonics} design points (have {x.shape[0]})")
        return
    rows = []
    for m in metrics:
        y = means[m].to_numpy(dtype=np.float64)
        if not _usable(y, m, res.notes):
            continue
        si = rbd_fast.analyze(
            problem, x, y, M=m_harmonics, num_resamples=num_resamples, seed=seed, print_to_console=False
        )
        for j, p in enumerate(names):
            rows.append({"metric": m, "parameter": p, "S1": si["S1"][j], "S1_conf": si["S1_conf"][j]})
    _write(res, "rbd_fast_indices.csv", pd.DataFrame(rows))


def _scatter(manifest, df, metrics, res: Analysis) -> None:
    names = [p["key"] for p in manifest["parameters"]]
    units = {p["key"]: p["unit"] for p in manifest["parameters"]}
    ok = df[df["status"].isin(OK_STATUS)]
    plt = _plt()
    for m in metrics:
        fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 2.8), squeeze=False, sharey=True)
        for ax, p in zip(axes[0], names, strict=True):
            ax.scatter(ok[p], ok[m], s=10, alpha=0.7)
            ax.set_xlabel(f"{p.split('.')[-1]} [{units[p] or '1'}]")
        axes[0][0].set_ylabel(m)
        fig.tight_layout()
        path = res.out_dir / f"scatter_{_safe(m)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        res.files.append(path)


def _grid(manifest, df, metrics, res: Analysis) -> None:
    params = manifest["parameters"]
    names = [p["key"] for p in params]
    ok = df[df["status"].isin(OK_STATUS)]
    rows = []
    plt = _plt()
    for m in metrics:
        fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.9), squeeze=False, sharey=True)
        for ax, p in zip(axes[0], params, strict=True):
            g = ok.groupby(p["key"])[m].agg(["mean", "std", "count"]).reset_index()
            for _, r in g.iterrows():
                rows.append(
                    {
                        "metric": m,
                        "parameter": p["key"],
                        "level": r[p["key"]],
                        "mean": r["mean"],
                        "std": r["std"],
                        "n": int(r["count"]),
                    }
                )
            ax.errorbar(g[p["key"]], g["mean"], yerr=g["std"].fillna(0.0), fmt="o-", capsize=3)
            if p.get("scale") == "log":
                ax.set_xscale("log")
            ax.set_xlabel(f"{p['key'].split('.')[-1]} [{p['unit'] or '1'}]")
        axes[0][0].set_ylabel(f"{m} (mean ± sd)")
        fig.tight_layout()
        path = res.out_dir / f"response_{_safe(m)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        res.files.append(path)
        if len(names) == 2:
            table = ok.groupby([names[0], names[1]])[m].mean().unstack(names[1])
            fig, ax = plt.subplots(figsize=(4.6, 3.8))
            im = ax.imshow(table.to_numpy(dtype=np.float64), origin="lower", aspect="auto", cmap="viridis")
            ax.set_yticks(range(len(table.index)), [f"{v:.3g}" for v in table.index])
            ax.set_xticks(range(len(table.columns)), [f"{v:.3g}" for v in table.columns], rotation=30)
            ax.set_ylabel(names[0].split(".")[-1])
            ax.set_xlabel(names[1].split(".")[-1])
            fig.colorbar(im, ax=ax, label=m)
            fig.tight_layout()
            path = res.out_dir / f"response_{_safe(m)}_heatmap.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            res.files.append(path)
    _write(res, "response.csv", pd.DataFrame(rows))


def _write(res: Analysis, name: str, table: pd.DataFrame) -> None:
    path = res.out_dir / name
    table.to_csv(path, index=False)
    res.tables[name] = table
    res.files.append(path)


def analyze_sweep(
    sweep_dir: str | Path,
    out: str | Path | None = None,
    *,
    metrics: list[str] | None = None,
    num_resamples: int = 100,
    seed: int = 0,
) -> Analysis:
    """Analyse the sweep in ``sweep_dir``; write tables and plots to ``out`` (default ``<dir>/analysis``)."""
    sweep_dir = Path(sweep_dir)
    manifest, df = load_results(sweep_dir)
    params = [p["key"] for p in manifest["parameters"]]
    all_metrics = metric_columns(df, params)
    if metrics:
        unknown = [m for m in metrics if m not in all_metrics]
        if unknown:
            raise OutputError(f"{sweep_dir / SUMMARY}: no metric column {unknown[0]!r} (have {', '.join(all_metrics)})")
        all_metrics = list(metrics)
    ok = df["status"].isin(OK_STATUS)
    if not ok.any():
        raise OutputError(f"{sweep_dir / SUMMARY}: no successful runs to analyse")
    out_dir = Path(out) if out is not None else sweep_dir / "analysis"
    out_dir.mkdir(parents=True, exist_ok=True)
    res = Analysis(out_dir)
    if (~ok).any():
        res.notes.append(f"{int((~ok).sum())} runs not successful; left out")
    means = point_means(df, int(manifest["n_points"]), all_metrics)
    kind = manifest["design"]
    if kind == "salib-sobol":
        _sobol(manifest, means, all_metrics, res, num_resamples, seed)
    elif kind == "morris":
        _morris(manifest, means, all_metrics, res, num_resamples, seed)
    elif kind == "grid":
        _grid(manifest, df, all_metrics, res)
    if kind in ("lhs", "sobol"):
        _rbd_fast(manifest, means, all_metrics, res, num_resamples, seed)
    if kind in ("lhs", "sobol", "list"):
        _scatter(manifest, df, all_metrics, res)
    sub = df.loc[ok, params + all_metrics]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        corr = sub.corr(method="spearman").loc[params, all_metrics] if all_metrics else pd.DataFrame()
    corr.index.name = "parameter"
    path = out_dir / "rank_correlation.csv"
    corr.to_csv(path)
    res.tables["rank_correlation.csv"] = corr
    res.files.append(path)
    if res.notes:
        notes = out_dir / "notes.txt"
        notes.write_text("\n".join(res.notes) + "\n", encoding="utf-8")
        res.files.append(notes)
    return res
