"""Screen reports: summary tables, heatmaps (matplotlib PNG) and HDF5 output (h5py).

HDF5 layout (``screen.h5``; concentrations in nM, kills as fractions)::

    /                      attrs: format="tme-sim drug screen", version, drugs, cell_types, roles,
                                  tumor_kill, healthy_kill, config
    /pairs/<A>+<B>/        attrs: drug_row, drug_col, window_fraction
        doses_row (m,)     doses of drug A (rows), attrs unit="nM"
        doses_col (k,)     doses of drug B (columns)
        death/<type>       (m, k) fraction dead at the end of the exposure
        kill/<type>        (m, k) drug-induced kill (baseline-corrected)
        efficacy, toxicity_max, selective (m, k); window (m, k) uint8
        synergy/<type>/<method>/delta, reference (m, k), attrs score (and score_ci: lo, hi)
        ci/efficacy, ci/toxicity_max, ci/kill/<type> (2, m, k): central interval (lo, hi) over
                           replicates (bootstrap over cells / ensemble members), when there are any
        window_support (m, k): fraction of replicates in which the point is inside the window
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tme_sim import __version__
from tme_sim.errors import OutputError
from tme_sim.screening.screen import PairResult, ScreenResult

FORMAT = "tme-sim drug screen"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- tables


def iso_efficacy(pair: PairResult, level: float) -> dict[str, Any] | None:
    """The dose point reaching tumor kill ≥ ``level`` with the lowest worst-case toxicity.

    Returns ``{"row": i, "col": j, "doses": (a, b), "efficacy": e, "toxicity": {type: kill}}``
    or None when no dose of the grid reaches ``level``.
    """
    ok = pair.efficacy >= level
    if not ok.any():
        return None
    tox = np.where(ok, pair.toxicity_max, np.inf)
    # ties (e.g. no toxicity anywhere): prefer the lowest total dose relative to the grid max
    rel = pair.doses[0][:, None] / pair.doses[0][-1] + pair.doses[1][None, :] / pair.doses[1][-1]
    order = np.lexsort((rel.ravel(), tox.ravel()))
    i, j = divmod(int(order[0]), pair.efficacy.shape[1])
    return {
        "row": i,
        "col": j,
        "doses": (float(pair.doses[0][i]), float(pair.doses[1][j])),
        "efficacy": float(pair.efficacy[i, j]),
        "toxicity": {h: float(k[i, j]) for h, k in pair.toxicity.items()},
        "ci": {name: (float(lo[i, j]), float(hi[i, j])) for name, (lo, hi) in pair.ci.items()},
        "window_support": None if pair.window_support is None else float(pair.window_support[i, j]),
    }


def summary_rows(result: ScreenResult) -> list[dict[str, Any]]:
    """One dict per pair: window, best selective efficacy, iso-efficacy toxicity, synergy scores."""
    tumor_kill, _ = result.thresholds
    tumors = [n for n, r in result.cell_types if r == "tumor"]
    healthy = [n for n, r in result.cell_types if r == "healthy"]
    rows = []
    for p in result.pairs:
        i, j = p.best()
        iso = iso_efficacy(p, tumor_kill)
        row: dict[str, Any] = {
            "pair": p.label,
            "grid": f"{p.efficacy.shape[0]}x{p.efficacy.shape[1]}",
            "max_efficacy": float(p.efficacy.max()),
            "window": p.window_fraction,
            "best_selective": float(p.selective[i, j]),
            "best_doses": (float(p.doses[0][i]), float(p.doses[1][j])),
            "best_efficacy": float(p.efficacy[i, j]),
            "best_toxicity": float(p.toxicity_max[i, j]),
            "best_ci": {name: (float(lo[i, j]), float(hi[i, j])) for name, (lo, hi) in p.ci.items()},
            "best_window_support": None if p.window_support is None else float(p.window_support[i, j]),
            "iso": iso,
        }
        for m in next(iter(p.synergy.values()), {}):
            row[f"{m}_tumor"] = float(np.mean([p.synergy[t][m].score for t in tumors]))
            if len(tumors) == 1 and tumors[0] in p.synergy_ci:
                row[f"{m}_tumor_ci"] = p.synergy_ci[tumors[0]][m]
            if healthy:
                worst = max(healthy, key=lambda h: p.synergy[h][m].score)
                row[f"{m}_tox"] = float(p.synergy[worst][m].score)
                if worst in p.synergy_ci:
                    row[f"{m}_tox_ci"] = p.synergy_ci[worst][m]
        rows.append(row)
    return rows


def print_summary(result: ScreenResult, console: Any = None) -> None:
    """Rich tables: per-pair summary and the toxicity of each healthy type at iso-efficacy."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    tk, hk = result.thresholds
    rows = summary_rows(result)
    methods = [k[: -len("_tumor")] for k in rows[0] if k.endswith("_tumor")] if rows else []
    t = Table(title=f"Drug pairs (window: tumor kill ≥ {tk:.0%} and every healthy kill ≤ {hk:.0%})")
    cols = ["pair", "max efficacy", "window", "best selective", "at doses (nM)"]
    with_ci = any(r["best_ci"] for r in rows)
    if with_ci:
        cols += ["tumor kill there", "worst healthy kill there", "in window (replicates)"]
    for col in cols:
        t.add_column(col, justify="left" if col == "pair" else "right", no_wrap=col == "pair")
    for r in rows:
        cells = [
            r["pair"],
            f"{r['max_efficacy']:.2f}",
            f"{r['window']:.2f}",
            f"{r['best_selective']:+.2f}",
            f"{r['best_doses'][0]:.3g} / {r['best_doses'][1]:.3g}",
        ]
        if with_ci:
            ci = r["best_ci"]
            cells += [
                f"{r['best_efficacy']:.2f}{_ci(ci.get('efficacy'), 1)}",
                f"{r['best_toxicity']:.2f}{_ci(ci.get('toxicity_max'), 1)}",
                "-" if r["best_window_support"] is None else f"{r['best_window_support']:.0%}",
            ]
        t.add_row(*cells)
    console.print(t)
    if methods:
        ts = Table(title="Synergy (percentage points; tumor / worst healthy type)")
        ts.add_column("pair", no_wrap=True)
        for m in methods:
            ts.add_column(m, justify="right")
        for r in rows:
            cells = [r["pair"]]
            for m in methods:
                tox = f" / {100 * r[f'{m}_tox']:+.1f}{_ci(r.get(f'{m}_tox_ci'))}" if f"{m}_tox" in r else ""
                cells.append(f"{100 * r[f'{m}_tumor']:+.1f}{_ci(r.get(f'{m}_tumor_ci'))}{tox}")
            ts.add_row(*cells)
        console.print(ts)
    healthy = [n for n, role in result.cell_types if role == "healthy"]
    if healthy:
        t2 = Table(title=f"Toxicity at iso-efficacy (least toxic dose with tumor kill ≥ {tk:.0%})")
        t2.add_column("pair", no_wrap=True)
        t2.add_column("doses (nM)", justify="right")
        t2.add_column("tumor kill", justify="right")
        for h in healthy:
            t2.add_column(f"{h} kill", justify="right")
        for r in rows:
            iso = r["iso"]
            if iso is None:
                t2.add_row(r["pair"], "not reached", "-", *["-"] * len(healthy))
                continue
            ci = iso.get("ci", {})
            t2.add_row(
                r["pair"],
                f"{iso['doses'][0]:.3g} / {iso['doses'][1]:.3g}",
                f"{iso['efficacy']:.2f}{_ci(ci.get('efficacy'), 1)}",
                *[f"{iso['toxicity'][h]:.2f}{_ci(ci.get(f'kill/{h}'), 1)}" for h in healthy],
            )
        console.print(t2)
    console.print("synergy = mean excess over the reference on combination doses (> 0: synergy)")
    if any(p.ci for p in result.pairs):
        console.print(
            "\\[lo, hi]: central interval over replicates (bootstrap over cells, or ensemble members); "
            "a synergy score differs from 0 only where its interval excludes 0"
        )


def _ci(ci: tuple[float, float] | None, scale: float = 100.0) -> str:
    """`` [lo, hi]`` (in percentage points unless ``scale`` = 1), or nothing."""
    if ci is None:
        return ""
    if scale == 1:
        return f" \\[{ci[0]:.2f}, {ci[1]:.2f}]"
    return f" \\[{scale * ci[0]:+.1f}, {scale * ci[1]:+.1f}]"


# --------------------------------------------------------------------------- HDF5


def write_hdf5(result: ScreenResult, path: str | Path, *, force: bool = False, config: str = "") -> Path:
    """Write the screen to ``path`` (refuses to overwrite unless ``force``)."""
    import h5py

    p = Path(path)
    if p.exists() and not force:
        raise OutputError(f"{p}: exists (use --force to overwrite)")
    p.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(p, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["tme_sim_version"] = __version__
        f.attrs["drugs"] = result.drugs
        f.attrs["cell_types"] = [n for n, _ in result.cell_types]
        f.attrs["roles"] = [r for _, r in result.cell_types]
        f.attrs["tumor_kill"], f.attrs["healthy_kill"] = result.thresholds
        f.attrs["config"] = config
        for pr in result.pairs:
            g = f.create_group(f"pairs/{pr.label}")
            g.attrs["drug_row"], g.attrs["drug_col"] = pr.drugs
            g.attrs["window_fraction"] = pr.window_fraction
            for name, d in (("doses_row", pr.doses[0]), ("doses_col", pr.doses[1])):
                g.create_dataset(name, data=d).attrs["unit"] = "nM"
            for key in ("death", "kill", "toxicity"):
                for ct, m in getattr(pr, key).items():
                    g.create_dataset(f"{key}/{ct}", data=m)
            g.create_dataset("efficacy", data=pr.efficacy)
            g.create_dataset("toxicity_max", data=pr.toxicity_max)
            g.create_dataset("selective", data=pr.selective)
            g.create_dataset("window", data=pr.window.astype(np.uint8))
            for ct, by_method in pr.synergy.items():
                for meth, res in by_method.items():
                    sg = g.create_group(f"synergy/{ct}/{meth}")
                    sg.attrs["score"] = res.score
                    sg.create_dataset("delta", data=res.delta)
                    sg.create_dataset("reference", data=res.reference)
                    if ct in pr.synergy_ci:
                        sg.attrs["score_ci"] = pr.synergy_ci[ct][meth]
            for name, (lo, hi) in pr.ci.items():
                g.create_dataset(f"ci/{name}", data=np.stack([lo, hi]))
            if pr.window_support is not None:
                g.create_dataset("window_support", data=pr.window_support)
    return p


def read_hdf5(path: str | Path) -> dict[str, Any]:
    """Read a screen file back into nested dicts of numpy arrays (for tests and notebooks)."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise OutputError(f"{p}: no such file")
    try:
        f = h5py.File(p, "r")
    except OSError:
        raise OutputError(f"{p}: not an HDF5 file") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise OutputError(f"{p}: not a tme-sim drug screen file")

        def walk(g: Any) -> dict[str, Any]:
            out: dict[str, Any] = {k: v for k, v in g.attrs.items()}
            for k, v in g.items():
                out[k] = walk(v) if isinstance(v, h5py.Group) else v[()]
            return out

        return walk(f)


# --------------------------------------------------------------------------- figures


def _dose_labels(d: np.ndarray) -> list[str]:
    return [f"{x:.2g}" for x in d]


def _heat(ax: Any, m: np.ndarray, pr: PairResult, title: str, cmap: str, vmin: float, vmax: float) -> Any:
    im = ax.imshow(m, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(m.shape[1]), _dose_labels(pr.doses[1]), rotation=90, fontsize=6)
    ax.set_yticks(range(m.shape[0]), _dose_labels(pr.doses[0]), fontsize=6)
    ax.set_xlabel(f"{pr.drugs[1]} (nM)", fontsize=8)
    ax.set_ylabel(f"{pr.drugs[0]} (nM)", fontsize=8)
    return im


def plot_pair(pr: PairResult, path: str | Path, thresholds: tuple[float, float], method: str = "bliss") -> Path:
    """Heatmaps of one pair: efficacy, each healthy type's kill, selective efficacy, therapeutic
    window and the tumor synergy excess (``method``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, np.ndarray, str, float, float]] = [
        ("efficacy (tumor kill)", pr.efficacy, "viridis", 0.0, 1.0)
    ]
    panels += [(f"toxicity: {h} kill", k, "magma", 0.0, 1.0) for h, k in pr.toxicity.items()]
    panels.append(("selective efficacy", pr.selective, "RdBu_r", -1.0, 1.0))
    tk, hk = thresholds
    panels.append((f"window (tumor ≥ {tk:.0%}, healthy ≤ {hk:.0%})", pr.window.astype(float), "Greens", 0, 1))
    tumors = [ct for ct in pr.synergy if ct not in pr.toxicity]
    if tumors and method in pr.synergy[tumors[0]]:
        res = pr.synergy[tumors[0]][method]
        lim = max(0.05, float(np.abs(res.delta).max()))
        panels.append((f"{method} excess, {tumors[0]} ({100 * res.score:+.1f})", res.delta, "PuOr_r", -lim, lim))
    healthy_syn = [(h, pr.synergy[h][method]) for h in pr.toxicity if method in pr.synergy.get(h, {})]
    if healthy_syn:
        h, res = max(healthy_syn, key=lambda hr: hr[1].score)
        lim = max(0.05, float(np.abs(res.delta).max()))
        panels.append((f"{method} excess, {h} ({100 * res.score:+.1f})", res.delta, "PuOr_r", -lim, lim))
    n = len(panels)
    cols = min(4, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax, (title, m, cmap, lo, hi) in zip(axes.ravel(), panels, strict=False):
        im = _heat(ax, m, pr, title, cmap, lo, hi)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"{pr.label}: window {pr.window_fraction:.0%} of the dose grid", fontsize=11)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def plot_iso_efficacy(result: ScreenResult, path: str | Path, level: float | None = None) -> Path:
    """Grouped bars: each healthy type's kill at the least toxic dose of each pair that reaches
    tumor kill ≥ ``level`` — equal tumor kill, different toxicity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    level = result.thresholds[0] if level is None else level
    healthy = [n for n, r in result.cell_types if r == "healthy"]
    pairs = [(p, iso_efficacy(p, level)) for p in result.pairs]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(pairs), 3.6))
    width = 0.8 / max(1, len(healthy) + 1)
    x = np.arange(len(pairs))
    eff = [iso["efficacy"] if iso else np.nan for _, iso in pairs]
    ax.bar(x - 0.4 + width / 2, eff, width, label="tumor kill", color="0.3")
    for k, h in enumerate(healthy):
        vals = [iso["toxicity"][h] if iso else np.nan for _, iso in pairs]
        ax.bar(x - 0.4 + width * (k + 1.5), vals, width, label=f"{h} kill")
    labels = []
    for p, iso in pairs:
        if iso is None:
            labels.append(f"{p.label}\n(not reached)")
        else:
            labels.append(f"{p.drugs[0]} {iso['doses'][0]:.2g} nM\n+ {p.drugs[1]} {iso['doses'][1]:.2g} nM")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.axhline(level, color="0.5", lw=0.8, ls="--")
    ax.set_ylabel("kill fraction")
    ax.set_title(f"Toxicity at iso-efficacy (tumor kill ≥ {level:.0%}, least toxic dose)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def plot_diagonal(result: ScreenResult, path: str | Path) -> Path:
    """Kill of every cell type along the dose diagonal of each pair (both drugs at grid step k).

    With the default grids (the same multiples of each drug's IC50), pairs whose drugs are
    equipotent on the tumor give the same tumor curve; the healthy panels then show how toxicity
    follows the targets each healthy type depends on.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _ in result.cell_types]
    fig, axes = plt.subplots(1, len(names), figsize=(3.1 * len(names), 3.2), sharey=True, squeeze=False)
    for ax, (name, role) in zip(axes[0], result.cell_types, strict=True):
        for pr in result.pairs:
            n = min(pr.efficacy.shape)
            k = np.arange(n)
            ax.plot(k, pr.kill[name][k, k], marker="o", ms=3, label=pr.label)
        ax.set_title(f"{name} ({role})", fontsize=9)
        ax.set_xlabel("dose step on the diagonal", fontsize=8)
        ax.set_ylim(-0.03, 1.03)
    axes[0, 0].set_ylabel("drug-induced kill")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle("Equal tumor kill, different toxicity: kill along the dose diagonal", fontsize=10)
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def write_all(
    result: ScreenResult, out: str | Path, *, force: bool = False, plots: bool = True, config: str = ""
) -> dict[str, Path]:
    """HDF5 + heatmaps (one PNG per pair) + the iso-efficacy figure under directory ``out``."""
    d = Path(out)
    h5 = d / "screen.h5"
    if h5.exists() and not force:
        raise OutputError(f"{h5}: exists (use --force to overwrite)")
    files = {"hdf5": write_hdf5(result, h5, force=force, config=config)}
    if plots:
        for pr in result.pairs:
            files[pr.label] = plot_pair(pr, d / f"heatmap_{pr.label}.png", result.thresholds)
        files["iso_efficacy"] = plot_iso_efficacy(result, d / "iso_efficacy.png")
        files["diagonal"] = plot_diagonal(result, d / "diagonal.png")
    return files
