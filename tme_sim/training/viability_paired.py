"""Paired comparison of two viability models over held-out cell lines (is a gain real?).

Every held-out line is one paired unit (its conditions share the line's omics, so they are not
independent): :func:`paired_over_lines` compares model ``a`` with a baseline ``b`` on the same
held-out predictions by

* each line's mean squared error: lines where ``a`` is better, and the two-sided Wilcoxon
  signed-rank p of the per-line differences;
* the difference of pooled r and of line-specific r (after subtracting each condition's drug × dose
  mean ``base`` over its fold's training rows), with a 95 % interval from a bootstrap over lines
  (lines resampled with replacement, ``n_boot`` times, seeded);
* the same differences per fold.

Shapes: every array (n_conditions,) over the held-out predictions of all folds.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _r_from_sums(s: np.ndarray) -> np.ndarray:
    """Pearson r from sums (..., 6): n, Σx, Σy, Σx², Σy², Σxy."""
    n, sx, sy, sxx, syy, sxy = (s[..., i] for i in range(6))
    cov = sxy - sx * sy / n
    vx, vy = sxx - sx * sx / n, syy - sy * sy / n
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(vx * vy)


def _line_sums(x: np.ndarray, y: np.ndarray, inv: np.ndarray, n_lines: int) -> np.ndarray:
    """(n_lines, 6) sums of one line's rows for :func:`_r_from_sums`."""
    cols = [np.ones_like(x), x, y, x * x, y * y, x * y]
    return np.stack([np.bincount(inv, weights=c, minlength=n_lines) for c in cols], 1)


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 1 and np.std(a) > 0 and np.std(b) > 0 else float("nan")


def paired_over_lines(
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    base: np.ndarray,
    line: np.ndarray,
    fold: np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Model ``a`` against baseline ``b`` (module docstring). Returns a JSON-ready dict:
    ``n_lines``, ``lines_a_better``, ``wilcoxon_p``, ``mean_mse_a``/``_b``, ``delta_pooled_r`` and
    ``delta_specific_r`` (a − b) with ``..._ci95`` from the line bootstrap, and ``per_fold`` rows
    (fold, n_lines, lines_a_better, delta_pooled_r, delta_specific_r)."""
    from scipy.stats import wilcoxon

    ok = np.isfinite(y) & np.isfinite(a) & np.isfinite(b) & np.isfinite(base)
    y, a, b, base, line, fold = y[ok], a[ok], b[ok], base[ok], line[ok], fold[ok]
    lines, inv = np.unique(line, return_inverse=True)
    n_l = len(lines)
    cnt = np.bincount(inv, minlength=n_l)
    mse_a = np.bincount(inv, weights=(a - y) ** 2, minlength=n_l) / cnt
    mse_b = np.bincount(inv, weights=(b - y) ** 2, minlength=n_l) / cnt
    diff = mse_b - mse_a  # > 0: a better on that line
    p = float(wilcoxon(diff).pvalue) if n_l > 1 and np.any(diff != 0) else float("nan")
    sums = {
        "pa": _line_sums(a, y, inv, n_l),
        "pb": _line_sums(b, y, inv, n_l),
        "sa": _line_sums(a - base, y - base, inv, n_l),
        "sb": _line_sums(b - base, y - base, inv, n_l),
    }
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n_l, np.full(n_l, 1.0 / n_l), size=n_boot).astype(float)  # (n_boot, n_lines)
    boot = {k: _r_from_sums(w @ v) for k, v in sums.items()}
    d_pooled, d_spec = boot["pa"] - boot["pb"], boot["sa"] - boot["sb"]
    line_fold = np.zeros(n_l, dtype=np.int64)
    line_fold[inv] = fold
    per_fold = []
    for f in np.unique(fold):
        m = fold == f
        per_fold.append(
            {
                "fold": int(f),
                "n_lines": int((line_fold == f).sum()),
                "lines_a_better": int((diff[line_fold == f] > 0).sum()),
                "delta_pooled_r": _r(a[m], y[m]) - _r(b[m], y[m]),
                "delta_specific_r": _r(a[m] - base[m], y[m] - base[m]) - _r(b[m] - base[m], y[m] - base[m]),
            }
        )
    q = lambda v: [float(x) for x in np.nanquantile(v, [0.025, 0.975])]  # noqa: E731
    return {
        "n_lines": int(n_l),
        "lines_a_better": int((diff > 0).sum()),
        "wilcoxon_p": p,
        "mean_mse_a": float(mse_a.mean()),
        "mean_mse_b": float(mse_b.mean()),
        "delta_pooled_r": _r(a, y) - _r(b, y),
        "delta_pooled_r_ci95": q(d_pooled),
        "delta_specific_r": _r(a - base, y - base) - _r(b - base, y - base),
        "delta_specific_r_ci95": q(d_spec),
        "n_boot": n_boot,
        "per_fold": per_fold,
    }


def format_paired(name: str, d: dict[str, Any]) -> list[str]:
    """Lines of the table printed under the CV table for one comparison."""
    lo, hi = d["delta_pooled_r_ci95"]
    slo, shi = d["delta_specific_r_ci95"]
    out = [
        f"  {name}: better on {d['lines_a_better']}/{d['n_lines']} lines (Wilcoxon p {d['wilcoxon_p']:.3g}); "
        f"pooled r {d['delta_pooled_r']:+.4f} [{lo:+.4f}, {hi:+.4f}], line-specific r {d['delta_specific_r']:+.4f} "
        f"[{slo:+.4f}, {shi:+.4f}] (95 % line bootstrap)"
    ]
    out.append(
        "    per fold (lines better / Δ pooled r / Δ line-specific r): "
        + "  ".join(
            f"{r['lines_a_better']}/{r['n_lines']} {r['delta_pooled_r']:+.3f} {r['delta_specific_r']:+.3f}"
            for r in d["per_fold"]
        )
    )
    return out
