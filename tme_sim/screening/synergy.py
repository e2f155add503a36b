"""Synergy scores of a two-drug dose–response matrix: Bliss, HSA, Loewe and ZIP.

Own implementation (MIT; the ``synergy`` PyPI package is GPL-3). Conventions, as SynergyFinder:

* ``d1`` (m,) doses of drug 1 along rows, ``d2`` (k,) doses of drug 2 along columns, both
  ascending with ``d1[0] == d2[0] == 0`` (the single-agent margins).
* ``E`` (m, k) responses as *inhibition* (effect grows with dose; e.g. fraction killed in
  [0, 1] or percent). Scores come back in the unit of ``E`` (fractions → multiply by 100 to
  compare with SynergyFinder's percent scores).
* Each method returns the reference (expected non-interaction) surface, the excess
  ``delta = observed − reference`` (ZIP: fitted − reference) and the summary ``score``: the mean
  of ``delta`` over the combination cells (both doses > 0). > 0 synergy, < 0 antagonism.

Reference models:

* Bliss independence: ``E1 + E2 − E1·E2`` with the observed single-agent margins (``E1·E2/100``
  for percent data: pass ``top=100``).
* HSA (highest single agent): ``max(E1, E2)``.
* Loewe additivity: the ``y`` solving ``d1/D1(y) + d2/D2(y) = 1`` where ``Di`` is the inverse of
  drug i's fitted four-parameter log-logistic (4PL) curve; a drug that cannot reach ``y`` alone
  contributes 0. Solved per cell with :func:`scipy.optimize.brentq` in log space.
* ZIP (Yadav et al. 2015): single agents and every row/column are fitted with 4PL curves; a
  row curve (drug 1 at a fixed dose of drug 2) has its bottom fixed at drug 2's fitted effect at
  that dose and its top at ``top`` (1 for fractions, 100 for percent); delta is the mean of the
  row- and column-fitted surfaces minus the ZIP reference ``y1 + y2 − y1·y2/top`` of the fitted
  single agents.

4PL curve: ``y(x) = bottom + (top − bottom) / (1 + (m/x)^λ)`` (``y(0) = bottom``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

METHODS = ("bliss", "hsa", "loewe", "zip")


@dataclass(frozen=True)
class Curve:
    """A fitted 4PL curve: ``bottom``, ``top`` (response units), ``m`` (dose units), ``slope`` λ."""

    bottom: float
    top: float
    m: float
    slope: float

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(divide="ignore", over="ignore"):
            r = np.power(np.divide(self.m, x), self.slope)
        return self.bottom + (self.top - self.bottom) / (1.0 + r)

    @property
    def flat(self) -> bool:
        return not abs(self.top - self.bottom) > 1e-9 * max(1.0, abs(self.top), abs(self.bottom))

    def log_inverse(self, y: float) -> float:
        """log of the dose giving ``y`` alone; −inf at/below bottom, +inf at/beyond top."""
        if self.flat or self.top < self.bottom:
            return np.inf
        f = (y - self.bottom) / (self.top - self.bottom)
        if f <= 0.0:
            return -np.inf
        if f >= 1.0:
            return np.inf
        return math.log(self.m) + (math.log(f) - math.log1p(-f)) / self.slope


@dataclass(frozen=True)
class SynergyResult:
    """``reference`` and ``delta`` (m, k) in response units; ``score`` = mean delta over combos."""

    method: str
    reference: np.ndarray
    delta: np.ndarray
    score: float


def _check(d1: np.ndarray, d2: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d1 = np.asarray(d1, dtype=np.float64)
    d2 = np.asarray(d2, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    if d1.ndim != 1 or d2.ndim != 1 or e.shape != (d1.size, d2.size):
        raise ValueError(f"E must be (len(d1), len(d2)) = ({d1.size}, {d2.size}), got {e.shape}")
    if d1.size < 2 or d2.size < 2:
        raise ValueError("need at least one nonzero dose of each drug")
    for name, d in (("d1", d1), ("d2", d2)):
        if d[0] != 0 or np.any(np.diff(d) <= 0) or not np.all(np.isfinite(d)):
            raise ValueError(f"{name} must start at 0 and increase strictly")
    if not np.all(np.isfinite(e)):
        raise ValueError("E holds NaN or inf")
    return d1, d2, e


def _score(delta: np.ndarray) -> float:
    return float(delta[1:, 1:].mean())


def _design(x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """4PL values and Jacobian for a batch: x (B, n), p (B, 4) = (bottom, top, log m, slope).

    Returns y (B, n) and J (B, n, 4).
    """
    b, t, logm, s = p[:, 0:1], p[:, 1:2], p[:, 2:3], p[:, 3:4]
    pos = x > 0
    lx = np.log(np.where(pos, x, 1.0))
    z = np.clip(s * (lx - logm), -700.0, 700.0)
    sig = np.where(pos, 1.0 / (1.0 + np.exp(-z)), 0.0)
    y = b + (t - b) * sig
    ds = (t - b) * sig * (1.0 - sig)
    jac = np.stack([1.0 - sig, sig, -s * ds, (lx - logm) * ds], axis=-1)
    return y, jac


def _lm(
    x: np.ndarray,
    y: np.ndarray,
    p0: np.ndarray,
    free: np.ndarray,
    lb: np.ndarray,
    ub: np.ndarray,
    iters: int = 80,
) -> tuple[np.ndarray, np.ndarray]:
    """Batched, bound-projected Levenberg–Marquardt on the 4PL model.

    ``x``, ``y`` (B, n); ``p0`` (B, 4); ``free`` (4,) bool (fixed parameters keep their ``p0``);
    ``lb``/``ub`` (B, 4). Returns the parameters (B, 4) and the residual sums of squares (B,).
    Vectorised over the batch: all rows/columns of a matrix and all starting points are fitted
    in the same numpy calls.
    """
    p = np.clip(p0.astype(np.float64), lb, ub)
    fi = np.flatnonzero(free)
    lam = np.full(p.shape[0], 1e-3)
    yh, jac = _design(x, p)
    r = yh - y
    cost = np.einsum("bn,bn->b", r, r)
    eye = np.eye(fi.size)
    done = np.zeros(p.shape[0], dtype=bool)
    for _ in range(iters):
        jf = jac[:, :, fi]
        jtj = np.einsum("bni,bnj->bij", jf, jf)
        g = np.einsum("bni,bn->bi", jf, r)
        diag = np.einsum("bii->bi", jtj)
        a = jtj + (lam[:, None, None] * (diag[:, :, None] * eye + 1e-12 * eye))
        try:
            step = np.linalg.solve(a, -g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -g * 1e-3
        done |= np.max(np.abs(step) / (1.0 + np.abs(p[:, fi])), axis=1) < 1e-11
        trial = p.copy()
        trial[:, fi] = p[:, fi] + step
        trial = np.clip(trial, lb, ub)
        yt, jt = _design(x, trial)
        rt = yt - y
        ct = np.einsum("bn,bn->b", rt, rt)
        ok = ct < cost
        p[ok], r[ok], jac[ok] = trial[ok], rt[ok], jt[ok]
        rel = np.where(ok, (cost - ct) / np.maximum(cost, 1e-300), 0.0)
        cost = np.where(ok, ct, cost)
        lam = np.where(ok, np.maximum(lam / 3.0, 1e-7), lam * 10.0)
        done |= (ok & (rel < 1e-10)) | (cost < 1e-28) | (lam > 1e6)
        if done.all():
            break
    return p, cost


def fit_4pl_batch(
    x: np.ndarray,
    y: np.ndarray,
    *,
    bottom: np.ndarray | None = None,
    top: np.ndarray | None = None,
) -> list[Curve]:
    """Least-squares 4PL fits of the rows of ``y`` (B, n) against doses ``x`` (n,) ≥ 0.

    ``bottom``/``top`` (B,) fix those parameters when given. ``m`` is searched in log space within
    [min positive dose / 1e4, max dose · 1e4] and the slope in [0.05, 20]. Four starting points
    per row are fitted together and the best kept. A row without spread (and free bottom/top)
    gives a flat curve; a row equal to its fixed bottom too.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    nb, _ = y.shape
    pos = x[x > 0]
    lo_m, hi_m = np.log(pos.min()) - np.log(1e4), np.log(pos.max()) + np.log(1e4)
    scale = np.maximum(np.max(np.abs(y), axis=1), 1e-12)
    big = 10.0 * np.maximum(1.0, scale)
    free = np.array([bottom is None, top is None, True, True])
    b0 = y[:, int(np.argmin(x))] if bottom is None else np.asarray(bottom, dtype=np.float64)
    t0 = y.max(axis=1) if top is None else np.asarray(top, dtype=np.float64)
    if top is None:
        t0 = np.where(t0 > b0, t0, b0 + 1e-3 * np.maximum(1.0, scale))
    # starting log m: dose nearest to the half-way response, plus the ends of the dose range
    half = b0 + 0.5 * (t0 - b0)
    lx = np.log(np.where(x > 0, x, pos.min()))
    near = lx[np.argmin(np.abs(y - half[:, None]) + np.where(x > 0, 0.0, np.inf)[None, :], axis=1)]
    starts = [(near, 1.0), (near, 3.0), (np.full(nb, lx.min()), 1.0), (np.full(nb, lx.max()), 1.0)]
    p0 = np.concatenate([np.stack([b0, t0, lm, np.full(nb, s0)], axis=1) for lm, s0 in starts])
    lb = np.tile(np.stack([-big, -big, np.full(nb, lo_m), np.full(nb, 0.05)], axis=1), (len(starts), 1))
    ub = np.tile(np.stack([big, big, np.full(nb, hi_m), np.full(nb, 20.0)], axis=1), (len(starts), 1))
    if bottom is None and top is None:
        flat = np.ptp(y, axis=1) <= 1e-9 * scale
    elif bottom is not None:
        flat = np.all(np.abs(y - b0[:, None]) <= 1e-12 * np.maximum(1.0, scale)[:, None], axis=1)
    else:
        flat = np.zeros(nb, dtype=bool)
    fit = np.tile(~flat, len(starts))
    p = p0.copy()
    cost = np.full(p0.shape[0], np.inf)
    if fit.any():
        xx = np.broadcast_to(x, (int(fit.sum()), x.size))
        p[fit], cost[fit] = _lm(xx, np.tile(y, (len(starts), 1))[fit], p0[fit], free, lb[fit], ub[fit])
    best = np.argmin(cost.reshape(len(starts), nb), axis=0)
    pb = p.reshape(len(starts), nb, 4)[best, np.arange(nb)]
    curves = []
    for i in range(nb):
        if flat[i]:  # no spread (or nothing beyond the fixed bottom): a flat curve
            v = float(b0[i]) if bottom is not None else float(y[i].mean())
            curves.append(Curve(v, v, float(np.exp(0.5 * (lo_m + hi_m))), 1.0))
        else:
            curves.append(Curve(*(float(v) for v in pb[i, :2]), float(np.exp(pb[i, 2])), float(pb[i, 3])))
    return curves


def fit_4pl(x: np.ndarray, y: np.ndarray, *, bottom: float | None = None, top: float | None = None) -> Curve:
    """Least-squares 4PL fit of one dose–response ``y`` against doses ``x`` (see :func:`fit_4pl_batch`)."""
    return fit_4pl_batch(
        x,
        np.asarray(y, dtype=np.float64)[None, :],
        bottom=None if bottom is None else np.array([bottom]),
        top=None if top is None else np.array([top]),
    )[0]


def bliss(d1: np.ndarray, d2: np.ndarray, e: np.ndarray, top: float = 1.0) -> SynergyResult:
    """Bliss independence excess (observed margins); ``top``: full effect (1, or 100 for %)."""
    d1, d2, e = _check(d1, d2, e)
    e1 = e[:, :1]
    e2 = e[:1, :]
    ref = e1 + e2 - e1 * e2 / top
    delta = e - ref
    return SynergyResult("bliss", ref, delta, _score(delta))


def hsa(d1: np.ndarray, d2: np.ndarray, e: np.ndarray) -> SynergyResult:
    """Highest-single-agent excess (observed margins)."""
    d1, d2, e = _check(d1, d2, e)
    ref = np.maximum(e[:, :1], e[:1, :])
    delta = e - ref
    return SynergyResult("hsa", ref, delta, _score(delta))


def loewe_reference(c1: Curve, c2: Curve, x1: float, x2: float) -> float:
    """Loewe-additive response at doses (x1, x2) of two drugs with fitted curves c1, c2."""
    active = [(c, x) for c, x in ((c1, x1), (c2, x2)) if x > 0]
    if not active:
        return max(c1.bottom, c2.bottom)
    effective = [(c, x) for c, x in active if not c.flat and c.top > c.bottom]
    if not effective:  # nothing reaches beyond its baseline: highest single-agent fitted value
        return float(max(float(c(x)) for c, x in active))
    if len(effective) == 1:
        c, x = effective[0]
        return float(c(x))
    lo = max(c.bottom for c, _ in effective)
    hi = max(c.top for c, _ in effective)
    logd = [math.log(x) for _, x in effective]

    def g(y: float) -> float:
        """log(Σ dᵢ / Dᵢ(y)): decreasing in y, zero on the isobole."""
        terms = [ld - c.log_inverse(y) for (c, _), ld in zip(effective, logd, strict=True)]
        if any(t == math.inf for t in terms):
            return math.inf
        terms = [t for t in terms if t != -math.inf]
        if not terms:
            return -math.inf
        top = max(terms)
        return top + math.log(sum(math.exp(t - top) for t in terms))

    span = hi - lo
    a, b = lo + 1e-13 * span, hi - 1e-13 * span
    ga, gb = g(a), g(b)
    if not ga > 0:  # doses so small that the combination stays at baseline within precision
        return a
    if not gb < 0:
        return b
    return float(brentq(g, a, b, xtol=1e-14 * max(1.0, abs(span)), rtol=1e-12, maxiter=200))


def loewe(d1: np.ndarray, d2: np.ndarray, e: np.ndarray, curves: tuple[Curve, Curve] | None = None) -> SynergyResult:
    """Loewe additivity excess; single-agent curves are fitted unless ``curves`` is given."""
    d1, d2, e = _check(d1, d2, e)
    c1, c2 = curves if curves is not None else (fit_4pl(d1, e[:, 0]), fit_4pl(d2, e[0, :]))
    ref = np.empty_like(e)
    for i, x1 in enumerate(d1):
        for j, x2 in enumerate(d2):
            ref[i, j] = loewe_reference(c1, c2, float(x1), float(x2))
    delta = e - ref
    return SynergyResult("loewe", ref, delta, _score(delta))


def zip_(d1: np.ndarray, d2: np.ndarray, e: np.ndarray, top: float = 1.0) -> SynergyResult:
    """ZIP delta (Yadav et al. 2015); ``top`` is the maximal response (1 for fractions, 100 %)."""
    d1, d2, e = _check(d1, d2, e)
    c1, c2 = fit_4pl_batch(d1, e[:, 0]), fit_4pl_batch(d2, e[0, :])
    c1, c2 = c1[0], c2[0]
    y1 = c1(d1)[:, None]
    y2 = c2(d2)[None, :]
    ref = y1 + y2 - y1 * y2 / top
    # rows: drug 1 varies at each fixed dose j > 0 of drug 2 (bottom = drug 2's fitted effect)
    rows = e[:, 1:].T.copy()
    rows[:, 0] = y2[0, 1:]
    row_fit = _fixed_fits(d1, rows, y2[0, 1:], top).T  # (m, k-1)
    cols = e[1:, :].copy()
    cols[:, 0] = y1[1:, 0]
    col_fit = _fixed_fits(d2, cols, y1[1:, 0], top)  # (m-1, k)
    fitted = 0.5 * (row_fit[1:, :] + col_fit[:, 1:])
    delta = np.zeros_like(e)
    delta[1:, 1:] = fitted - ref[1:, 1:]
    return SynergyResult("zip", ref, delta, _score(delta))


def _fixed_fits(x: np.ndarray, y: np.ndarray, bottom: np.ndarray, top: float) -> np.ndarray:
    """Fitted values (B, n) of rows ``y`` with bottom (B,) and top fixed; observed values where
    ``bottom >= top`` (no room for a curve)."""
    out = y.copy()
    ok = bottom < top
    if ok.any():
        curves = fit_4pl_batch(x, y[ok], bottom=bottom[ok], top=np.full(int(ok.sum()), top))
        out[ok] = np.stack([c(x) for c in curves])
    return out


def synergy(d1: np.ndarray, d2: np.ndarray, e: np.ndarray, method: str, *, top: float = 1.0) -> SynergyResult:
    """Dispatch on ``method`` in :data:`METHODS`."""
    if method == "bliss":
        return bliss(d1, d2, e, top=top)
    if method == "hsa":
        return hsa(d1, d2, e)
    if method == "loewe":
        return loewe(d1, d2, e)
    if method == "zip":
        return zip_(d1, d2, e, top=top)
    raise ValueError(f"unknown synergy method {method!r}; known: {', '.join(METHODS)}")
