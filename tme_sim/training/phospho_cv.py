"""Cross-validation of phosphoprotein models on MIDAS data, holding out whole treatments.

Protocols (each held-out group is removed from *every* cell type's training data, so nothing
about it is seen):

* ``combination`` — leave one inhibitor combination out: each inhibitor set with ≥ 2 inhibitors
  is held out in turn (all its stimulus conditions); the models are fitted on the rest.
* ``ligand`` — leave one ligand out: every condition containing the ligand is held out.

Scores, per cell type over its held-out conditions (all groups of a protocol pooled):

* ``pooled_r`` — Pearson r over all held-out entries (conditions × read-outs) of the log2 fold
  changes;
* ``effect_r`` — Pearson r of the *treatment-specific part*: prediction and measurement minus
  the measured value of the same cell type and stimulus without inhibitor (``combination``) or
  without the ligand (``ligand``, the condition with the ligand removed), so what the shared
  baseline explains does not count;
* ``median_r`` — median over read-outs of the per-read-out r;
* ``coverage90`` — for the ensemble model, the fraction of held-out entries inside its 90 %
  prediction interval: the ensemble mean ± a half-width per cell type calibrated on held-out
  residuals *inside the training conditions* (:func:`conformal_halfwidth`: the protocol's other
  groups held out in turn, one-member refits), so the held-out group never sets its own width.

Every model runs on the same groups in one run (``mean``, ``additive``, ``ridge``, ``floor``,
``floor-pooled``); settings are fixed in advance (``FloorConfig``) or chosen inside the training
data (ridge ``alpha``). Run: ``tme train cv --data ../shared/data/hepatocytes-cno``.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tme_sim.training.midas import ConditionTable, MidasData, condition_table
from tme_sim.training.phospho import AdditiveModel, FloorConfig, FloorModel, MeanModel, RidgeModel

PROTOCOLS = ("combination", "ligand")
MODELS = ("mean", "additive", "ridge", "floor", "floor-pooled")


def holdout_groups(tab: ConditionTable, protocol: str, names: list[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """(label, held-out condition mask) per group of ``protocol``."""
    if protocol == "combination":
        keys = [k for k in np.unique(tab.inhib_key) if bin(int(k)).count("1") >= 2]
        return [(_label(tab.inhib[tab.inhib_key == k][0], names), tab.inhib_key == k) for k in keys]
    if protocol == "ligand":
        return [(f"ligand {j}", tab.stim[:, j]) for j in range(tab.stim.shape[1]) if tab.stim[:, j].any()]
    raise ValueError(f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")


def _label(mask: np.ndarray, names: list[str] | None) -> str:
    idx = np.flatnonzero(mask)
    return "+".join(names[i] for i in idx) if names else "+".join(map(str, idx))


def _reference(tab: ConditionTable, protocol: str, group: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Index of each held-out condition's reference (same cell type, treatment removed); -1 if absent."""
    key = {
        (int(c), int(s), int(i)): n
        for n, (c, s, i) in enumerate(zip(tab.cell, tab.stim_key, tab.inhib_key, strict=True))
    }
    out = np.full(len(idx), -1)
    for k, n in enumerate(idx):
        if protocol == "combination":
            ref = (int(tab.cell[n]), int(tab.stim_key[n]), 0)
        else:
            s = tab.stim[n] & ~group
            ref = (int(tab.cell[n]), int((s * (1 << np.arange(len(s)))).sum()), int(tab.inhib_key[n]))
        out[k] = key.get(ref, -1)
    return out


def _make(name: str, members: int, seed: int) -> Any:
    if name == "mean":
        return MeanModel()
    if name == "additive":
        return AdditiveModel()
    if name == "ridge":
        return RidgeModel()
    if name in ("floor", "floor-pooled"):
        return FloorModel(FloorConfig(shared_floor=name == "floor-pooled", members=members, seed=seed))
    raise ValueError(f"unknown model {name!r} (known: {', '.join(MODELS)})")


def conformal_halfwidth(
    tab: ConditionTable, train: np.ndarray, inner: list[np.ndarray], name: str, seed: int, q: float = 0.9
) -> np.ndarray:
    """(n_cell_types,) half-width of a ``q`` prediction interval per cell type, from held-out
    residuals inside the training conditions (split-conformal over groups): the model (one member)
    is refitted without each inner group — the protocol's other groups, training rows only — and
    the ``ceil(q (n + 1))``-th smallest absolute residual of each cell type's held-out entries is
    the half-width. A cell type without inner residuals gets the largest half-width of the others."""
    resid: list[list[np.ndarray]] = [[] for _ in range(int(tab.cell.max()) + 1)]
    in_train = np.zeros(len(tab.y), dtype=bool)
    in_train[train] = True
    for g in inner:
        fit = np.flatnonzero(in_train & ~g)
        ho = np.flatnonzero(in_train & g)
        if len(ho) == 0 or len(fit) == 0:
            continue
        r = np.abs(_make(name, 1, seed).fit(tab, fit).predict(tab, ho) - tab.y[ho])
        for c in np.unique(tab.cell[ho]):
            resid[int(c)].append(r[tab.cell[ho] == c].ravel())
    half = np.full(len(resid), np.nan)
    for c, parts in enumerate(resid):
        v = np.sort(np.concatenate(parts)) if parts else np.zeros(0)
        v = v[np.isfinite(v)]
        if len(v):
            half[c] = v[min(len(v) - 1, int(np.ceil(q * (len(v) + 1))) - 1)]
    return np.where(np.isfinite(half), half, np.nanmax(half) if np.isfinite(half).any() else np.inf)


def _r(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def cross_validate_phospho(
    data: MidasData,
    *,
    protocols: tuple[str, ...] = PROTOCOLS,
    models: tuple[str, ...] = MODELS,
    members: int = 5,
    seed: int = 0,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Run every model on every protocol's groups; return the report (``table``: one row per
    protocol × model × cell type, plus pooled ``healthy`` and ``cancer`` rows)."""
    tab = condition_table(data)
    rows: list[dict[str, Any]] = []
    groups_out: dict[str, list[str]] = {}
    total = sum(len(holdout_groups(tab, p, data.inhibitors)) for p in protocols) * len(models)
    done = 0
    for protocol in protocols:
        groups = holdout_groups(tab, protocol, data.inhibitors)
        if protocol == "ligand":
            groups = [(f"ligand {data.stimuli[int(g.split()[1])]}", m) for g, m in groups]
        groups_out[protocol] = [g for g, _ in groups]
        held = np.zeros(len(tab.y), dtype=bool)
        ref = np.full(len(tab.y), -1)
        for _, m in groups:
            held |= m
            idx = np.flatnonzero(m)
            ref[idx] = _reference(tab, protocol, m if protocol == "combination" else _ligand_mask(tab, m), idx)
        for name in models:
            pred = np.full_like(tab.y, np.nan)
            lo = np.full_like(tab.y, np.nan)
            hi = np.full_like(tab.y, np.nan)
            cpu = wall = 0.0
            for label, m in groups:
                tr, te = np.flatnonzero(~m), np.flatnonzero(m)
                c0, w0 = time.process_time(), time.perf_counter()
                model = _make(name, members, seed).fit(tab, tr)
                if isinstance(model, FloorModel):
                    mem = model.predict_members(tab, te)
                    pred[te] = mem.mean(0)
                    inner = [g & ~m for _, g in groups if (g & ~m).any()]
                    half = conformal_halfwidth(tab, tr, inner, name, seed, q=0.9)
                    lo[te] = pred[te] - half[tab.cell[te]][:, None]
                    hi[te] = pred[te] + half[tab.cell[te]][:, None]
                else:
                    pred[te] = model.predict(tab, te)
                cpu += time.process_time() - c0
                wall += time.perf_counter() - w0
                done += 1
                if progress:
                    progress(f"{protocol}: {name} ({label})", done, total)
            scopes = [(data.cell_types[c], tab.cell == c) for c in range(len(data.cell_types))]
            healthy = np.isin(tab.cell, [data.cell_types.index(h) for h in data.healthy])
            scopes += [("healthy (all)", healthy), ("cancer (all)", ~healthy)]
            for scope, cm in scopes:
                sel = np.flatnonzero(held & cm)
                if len(sel) == 0:
                    continue
                p, t = pred[sel], tab.y[sel]
                if not np.isfinite(p).any():  # the model does not apply to this protocol (additive on ligands)
                    continue
                rsel = ref[sel]
                okref = rsel >= 0
                base = tab.y[rsel[okref]]
                per = [_r(p[:, j], t[:, j]) for j in range(t.shape[1])]
                row = {
                    "protocol": protocol,
                    "model": name,
                    "cell_type": scope,
                    "role": "healthy" if scope in data.healthy or scope == "healthy (all)" else "cancer",
                    "pooled_r": _r(p, t),
                    "effect_r": _r(p[okref] - base, t[okref] - base),
                    "median_r": float(np.nanmedian(per)) if np.isfinite(per).any() else float("nan"),
                    "n_conditions": len(sel),
                    "n_predicted": int(np.isfinite(p).all(1).sum()),
                    "cpu_seconds": cpu,
                    "wall_seconds": wall,
                }
                if np.isfinite(lo[sel]).any():
                    row["coverage90"] = float(((t >= lo[sel]) & (t <= hi[sel])).mean())
                rows.append(row)
    return {
        "data": data.path,
        "data_sha256": data.sha256,
        "cell_types": data.cell_types,
        "healthy": data.healthy,
        "stimuli": data.stimuli,
        "inhibitors": data.inhibitors,
        "readouts": data.readouts,
        "time": tab.time,
        "normalisation": "log2 fold change against the cell type's untreated time-0 rows",
        "groups": groups_out,
        "members": members,
        "seed": seed,
        "cpu_seconds_total": resource.getrusage(resource.RUSAGE_SELF).ru_utime,
        "table": rows,
    }


def _ligand_mask(tab: ConditionTable, held: np.ndarray) -> np.ndarray:
    """The ligand column(s) present in every held-out condition of a ligand group."""
    return tab.stim[held].all(0)


def format_phospho_table(report: dict[str, Any]) -> str:
    """Plain-text table (what the CLI prints)."""
    head = (
        f"{'protocol':<12} {'cell type':<14} {'role':<8} {'model':<13} {'pooled r':>8} {'effect r':>8} "
        f"{'median r':>8} {'cov90':>6} {'n':>4} {'cpu s':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in report["table"]:
        cov = f"{r['coverage90']:.2f}" if "coverage90" in r else "-"
        lines.append(
            f"{r['protocol']:<12} {r['cell_type']:<14} {r['role']:<8} {r['model']:<13} {r['pooled_r']:>8.3f} "
            f"{r['effect_r']:>8.3f} {r['median_r']:>8.3f} {cov:>6} {r['n_predicted']:>4} {r['cpu_seconds']:>7.1f}"
        )
    lines.append(
        "held-out groups: "
        + "; ".join(f"{p}: {', '.join(g)}" for p, g in report["groups"].items())
        + f". effect r: after removing the measured untreated-by-the-held-out-treatment condition. "
        f"floor ensembles of {report['members']} members; cpu s = CPU seconds of all fits of that model"
    )
    return "\n".join(lines)


def write_phospho_report(report: dict[str, Any], out_dir: Path) -> Path:
    """Write ``cv_report.json`` (and ``cv_report.png``: pooled r per cell type and model)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "cv_report.json"
    path.write_text(json.dumps(report, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protos = list(report["groups"])
    fig, axes = plt.subplots(1, len(protos), figsize=(6 * len(protos), 4), squeeze=False)
    for ax, proto in zip(axes[0], protos, strict=True):
        rows = [r for r in report["table"] if r["protocol"] == proto]
        scopes = list(dict.fromkeys(r["cell_type"] for r in rows))
        models = list(dict.fromkeys(r["model"] for r in rows))
        w = 0.8 / len(models)
        for j, m in enumerate(models):
            vals = [
                next((r["pooled_r"] for r in rows if r["cell_type"] == s and r["model"] == m), np.nan) for s in scopes
            ]
            ax.bar(np.arange(len(scopes)) + j * w, vals, w, label=m)
        ax.set_xticks(np.arange(len(scopes)) + 0.4 - w / 2, scopes, rotation=30, fontsize=8)
        ax.set_ylabel("pooled r, held-out conditions")
        ax.set_title(f"leave one {proto} out")
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "cv_report.png", dpi=100)
    plt.close(fig)
    return path
