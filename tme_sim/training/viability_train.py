"""Train the drug-target viability ensemble on all conditions and save it with its CV report.

The artifact (``torch.save`` of a plain dict, loaded with ``weights_only=True``) holds the
ensemble (:meth:`~tme_sim.training.drug_models.DrugEnsemble.state_dict`), the fitted omics
features, the drug, line and gene names, the training data's SHA-256 and the cross-validation
report of the same data and settings (``tme train cv``), so that every artifact ships with its
held-out scores. ``tme info model.pt`` prints :func:`describe_drug_artifact`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tme_sim.errors import DataError, OutputError
from tme_sim.training.drug_models import DrugEnsemble, DrugFitConfig
from tme_sim.training.viability import OmicsFeatures, ViabilityData
from tme_sim.training.viability_cv import (
    cross_validate_viability,
    fit_drug_target,
    format_viability_table,
    model_genes,
    viability_config,
)
from tme_sim.training.viability_stack import (
    DoseShapeRidge,
    MeanCurveCorrection,
    blend_weight,
    conformal_halfwidth,
)

FORMAT = "tme-sim drug-response ensemble v2"  # v2: the stack (drug-target + dose-shape ridge)


def _plain(x: Any) -> Any:
    """Numpy arrays and scalars → lists and floats (the artifact loads with ``weights_only``)."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def train_viability(
    data: ViabilityData,
    out: str | os.PathLike,
    cfg: DrugFitConfig | None = None,
    *,
    cv_report: dict[str, Any] | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Fit the ensemble on all of ``data`` and write ``out`` (.pt) plus ``out`` .json (the summary).

    ``cv_report``: a ``cv_report.json`` of the same data (checked by SHA-256); ``None`` runs the
    cross-validation first.
    """
    import torch

    cfg = cfg or viability_config()
    if cv_report is None:
        rep = cross_validate_viability(data, cfg, progress=progress)
        cv_report = rep.to_json()
    elif cv_report.get("data_sha256") != data.sha256():
        raise DataError("the CV report is of other data (data_sha256 differs); run 'tme train cv' on this data")
    torch.set_num_threads(cfg.threads or 1)
    t0, c0 = time.perf_counter(), time.process_time()
    n_comp = int(cv_report.get("config", {}).get("n_components", 20))
    every = np.ones(data.n, dtype=bool)
    # the recipe of the CV's "drug-target stack" row, its choices made on all lines the same way
    ens, feats, oob, l2, _, corr = fit_drug_target(data, every, cfg, n_comp)
    linear = DoseShapeRidge(model_genes(data), n_comp).fit(data, every)
    weight = blend_weight(data.y, oob, linear.oof)
    f = feats.transform(data)
    dt = ens.predict(data.conc, f[data.line])[0][:, 0] + (corr.offset(data) if corr is not None else 0.0)
    fit_r = float(np.corrcoef(weight * dt + (1 - weight) * linear.predict(data), data.y)[0, 1])
    intervals = _level_halfwidths(data, data.y - (weight * oob + (1 - weight) * linear.oof))
    summary = {
        "format": FORMAT,
        "kind": "viability",
        "drugs": data.drug_names,
        "cell_lines": data.line_names,
        "n_conditions": data.n,
        "data_sha256": data.sha256(),
        "sources": data.sources,
        "config": {**asdict(cfg), "l2_omics": l2},
        "stack_weight": weight,
        "mean_curve_correction": corr is not None,
        "fit_pooled_r": fit_r,
        "fit_seconds": time.perf_counter() - t0,
        "fit_cpu_seconds": time.process_time() - c0,
        "cv_report": cv_report,
    }
    blob = {
        **summary,
        "ensemble": ens.state_dict(),
        "features": {"n_components": feats.n_components, "genes": feats.genes, "state": _plain(feats.state)},
        "linear": _plain(linear.state_dict()),
        "mean_curve": None if corr is None else _plain(corr.state_dict()),
        "interval_halfwidth": _plain(intervals),
    }
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    torch.save(_plain_blob(blob), tmp)
    os.replace(tmp, p)
    p.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    return summary


def _level_halfwidths(data: ViabilityData, resid: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Per drug: dose levels and the split-conformal 90 % half-width at each (from out-of-fold
    residuals ``resid`` (n,), :func:`~tme_sim.training.viability_stack.conformal_halfwidth`)."""
    key = data.drug_dose_key()
    half = conformal_halfwidth(key, resid, key)
    drug, lvl = data.dose.argmax(1), np.round(data.dose.max(1), 6)
    out = {}
    for g, name in enumerate(data.drug_names):
        rows = np.flatnonzero(drug == g)
        levels, first = np.unique(lvl[rows], return_index=True)
        out[name] = {"levels": levels, "half": half[rows][first]}
    return out


def _plain_blob(blob: dict[str, Any]) -> dict[str, Any]:
    ens = blob["ensemble"]
    rest = {k: _plain(v) for k, v in blob.items() if k != "ensemble"}
    return {**rest, "ensemble": {**_plain({k: v for k, v in ens.items() if k != "members"}), "members": ens["members"]}}


def load_drug_artifact(path: str | os.PathLike) -> dict[str, Any]:
    """The artifact's dict (``ensemble`` rebuilt as a :class:`DrugEnsemble` under ``model``)."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise OutputError(f"{p}: artifact not found")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-artifact file
        raise DataError(f"{p}: not a readable artifact ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise DataError(f"{p}: not a tme-sim drug-response artifact")
    blob["model"] = DrugEnsemble.from_state_dict(blob["ensemble"])
    blob["linear_model"] = DoseShapeRidge.from_state_dict(blob["linear"])
    mc = blob.get("mean_curve")
    blob["mean_curve_model"] = None if mc is None else MeanCurveCorrection.from_state_dict(mc)
    return blob


def predict_viability(artifact: dict[str, Any], data: ViabilityData) -> tuple[np.ndarray, np.ndarray]:
    """Predict every condition of ``data`` (any cell lines with the same omics genes, including lines
    never trained on) with a loaded artifact (:func:`load_drug_artifact`): the recipe's prediction
    ``w · drug-target + (1 - w) · dose-shape ridge`` (n,) and its split-conformal 90 % interval
    (2, n; half-width per drug × dose from the training rows' out-of-fold residuals)."""
    if list(data.drug_names) != list(artifact["drugs"]):
        raise DataError(f"drugs {data.drug_names} differ from the artifact's {artifact['drugs']}")
    fs = artifact["features"]
    feats = OmicsFeatures(int(fs["n_components"]), list(fs["genes"]))
    feats.state = {k: np.asarray(v, dtype=np.float64) for k, v in fs["state"].items()}
    f = feats.transform(data)
    mean, iv = artifact["model"].predict(data.conc, f[data.line])
    if artifact.get("mean_curve_model") is not None:
        off = artifact["mean_curve_model"].offset(data)
        mean, iv = mean + off[:, None], iv + off[None, :, None]
    w = float(artifact["stack_weight"])
    pred = w * mean[:, 0] + (1 - w) * artifact["linear_model"].predict(data)
    half = np.full(data.n, np.nan)
    x, drug = np.round(data.dose.max(1), 6), data.dose.argmax(1)
    for g, name in enumerate(data.drug_names):
        t = artifact["interval_halfwidth"].get(name)
        if t is not None:
            half[drug == g] = np.interp(x[drug == g], np.asarray(t["levels"], float), np.asarray(t["half"], float))
    return pred, np.stack([pred - half, pred + half])


def is_drug_artifact(path: str | os.PathLike) -> bool:
    try:
        load_drug_artifact(path)
    except (DataError, OutputError):
        return False
    return True


def describe_drug_artifact(path: str | os.PathLike) -> str:
    """Human summary (``tme info``): what it was trained on and its cross-validation table."""
    b = load_drug_artifact(path)
    cfg = b["config"]
    lines = [
        f"file:       {path}",
        f"artifact:   {b['format']} ({b['kind']})",
        f"trained on: {b['n_conditions']} conditions, {len(b['drugs'])} drugs, {len(b['cell_lines'])} cell lines; "
        f"data sha256 {b['data_sha256'][:12]}",
        f"model:      {b['stack_weight']:.2f} x drug-target ({cfg['members']} members, {cfg['epochs']} epochs max, "
        f"network steps {cfg['steps']}, omics L2 {cfg['l2_omics']:g}) + {1 - b['stack_weight']:.2f} x dose-shape "
        f"ridge; fit r {b['fit_pooled_r']:.3f}",
        "cross-validation (held-out cell lines):",
    ]
    rep = b["cv_report"]
    for r in rep.get("table", []):
        lines.append(
            f"  {r['model']:<20} pooled r {r['pooled_r']:.3f}  "
            f"line-specific r {r.get('specific_r', float('nan')):.3f}  cpu s/fold {r['cpu_seconds_per_fold']:.1f}"
        )
    return "\n".join(lines)


__all__ = ["describe_drug_artifact", "format_viability_table", "load_drug_artifact", "train_viability"]
