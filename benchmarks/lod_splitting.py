"""Can a different LOD sequence bring its vessel error within 5 % at dt 0.01 min? (issue #20)

The case of ``tests/test_grid_vessels.py``: a 200 µm cube (dx 20 µm) of packed tissue taking up O2
at 10/min (90 % cells: 9/min per voxel), decay 0.1/min, D = 1e5 µm²/min, a vessel line along z or a
single vessel voxel at 38 mmHg, all voxels held inside every 1-D solve. Each variant is run 3 min
(300 steps of 0.01 min, converged) in plain NumPy (batched Thomas solves along every line) and its
O2 20 µm from the vessel is compared with the exact discrete steady state (sparse direct solve):

* ``lie``: the shipped LOD — x, y, z implicit solves (decay λ/3 each), then the uptake
  ``c / (1 + dt·B)``; reproduces ``tme_sim``'s −32.7 % / −62.8 %;
* ``inline``: the uptake put into the 1-D solves, ``(λ + B)/3`` on each diagonal;
* ``strang``: half the uptake, the three solves, half the uptake;
* ``symmetric``: x y z z y x, each dt/2, uptake inline;
* ``delta``: the same three 1-D factors applied to the increment,
  ``Π(I + dt·A_a') δ = dt·(D∇²c − (λ + B) c)``, ``c += δ`` (Douglas' approximate factorisation —
  the ADI scheme's form; its fixed point is the unsplit steady state).

Run: ``python benchmarks/lod_splitting.py`` (~1 min, one core).
Finding (measured): no sequence of the LOD solves gets there — lie −32.7 / −62.8 %, inline
−31.2 / −61.4 %, strang −30.3 / −61.6 %, symmetric +1.5 / +37.4 % (line / point); what biases LOD is
the product of the 1-D factors (``dt²·A_x·A_y`` with ``D·dt/dx² = 2.5``), not the split of the
uptake. The increment (delta) form is exact (< 0.01 %) with the same 1-D solves, but it is a
different scheme (the 3D Douglas ADI, which has no converged state at dt 1 min; docs/diffusion.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_grid_vessels import LAM, VESSEL, D, _at_20um, _tissue, exact_steady_state  # noqa: E402

UPTAKE = 9.0  # 1/min per voxel: 90 % cells × 10/min


def solve_lines(u: np.ndarray, r: float, diag_extra: float, fixed: np.ndarray, axis: int) -> np.ndarray:
    """Solve ``(1 + 2r + diag_extra) u_i − r (u_{i−1} + u_{i+1}) = rhs_i`` along ``axis`` on every line at
    once (zero-flux ends; rows of ``fixed`` voxels are identity rows, so they keep their value)."""
    rhs = np.moveaxis(u, axis, -1)
    fx = np.moveaxis(fixed, axis, -1)
    n = rhs.shape[-1]
    a = np.where(fx, 0.0, -r)
    c = np.where(fx, 0.0, -r)
    b = np.full(rhs.shape, 1.0 + 2.0 * r + diag_extra)
    b[..., 0] -= r
    b[..., -1] -= r
    b = np.where(fx, 1.0, b)
    a[..., 0] = 0.0
    c[..., -1] = 0.0
    cp, dp = np.empty_like(rhs), np.empty_like(rhs)
    cp[..., 0], dp[..., 0] = c[..., 0] / b[..., 0], rhs[..., 0] / b[..., 0]
    for i in range(1, n):
        m = b[..., i] - a[..., i] * cp[..., i - 1]
        cp[..., i] = c[..., i] / m
        dp[..., i] = (rhs[..., i] - a[..., i] * dp[..., i - 1]) / m
    x = np.empty_like(rhs)
    x[..., -1] = dp[..., -1]
    for i in range(n - 2, -1, -1):
        x[..., i] = dp[..., i] - cp[..., i] * x[..., i + 1]
    return np.moveaxis(x, -1, axis)


def laplacian(u: np.ndarray, dx: float) -> np.ndarray:
    """7-point Laplacian with zero-flux faces."""
    out = np.zeros_like(u)
    for ax in range(3):
        lo = np.concatenate([u.take([0], axis=ax), u], axis=ax)
        hi = np.concatenate([u, u.take([-1], axis=ax)], axis=ax)
        out += np.diff(hi, axis=ax) - np.diff(lo, axis=ax)
    return out / dx**2


def step(u: np.ndarray, variant: str, dt: float, dx: float, fixed: np.ndarray) -> np.ndarray:
    r = D * dt / dx**2
    if variant == "lie":
        for ax in (2, 1, 0):
            u = solve_lines(u, r, dt * LAM / 3, fixed, ax)
        u = np.where(fixed, u, u / (1 + dt * UPTAKE))
    elif variant == "inline":
        for ax in (2, 1, 0):
            u = solve_lines(u, r, dt * (LAM + UPTAKE) / 3, fixed, ax)
    elif variant == "strang":
        u = np.where(fixed, u, u / (1 + dt * UPTAKE / 2))
        for ax in (2, 1, 0):
            u = solve_lines(u, r, dt * LAM / 3, fixed, ax)
        u = np.where(fixed, u, u / (1 + dt * UPTAKE / 2))
    elif variant == "symmetric":
        for ax in (2, 1, 0, 0, 1, 2):
            u = solve_lines(u, r / 2, dt / 2 * (LAM + UPTAKE) / 3, fixed, ax)
    elif variant == "delta":
        d = np.where(fixed, 0.0, dt * (D * laplacian(u, dx) - (LAM + UPTAKE) * u))
        for ax in (2, 1, 0):
            d = solve_lines(d, r, dt * (LAM + UPTAKE) / 3, fixed, ax)
        u = u + d
    else:
        raise ValueError(variant)
    u[fixed] = VESSEL
    return u


def error(point: bool, variant: str, dt: float = 0.01, minutes: float = 3.0) -> float:
    """Relative error of O2 20 µm from the vessel after ``minutes`` against the exact steady state."""
    m = _tissue("lod", point=point)
    exact = exact_steady_state(m)
    fixed = np.zeros(m.shape, bool)
    fixed.reshape(-1)[m._masks[0][0]] = True
    u = np.where(fixed, VESSEL, 0.0)
    for _ in range(round(minutes / dt)):
        u = step(u, variant, dt, m.dx, fixed)
    return _at_20um(m, u) / _at_20um(m, exact) - 1


def main() -> int:
    print("| variant (dt 0.01 min) | vessel line | point vessel |")
    print("|---|---|---|")
    for variant in ("lie", "inline", "strang", "symmetric", "delta"):
        line, point = error(False, variant), error(True, variant)
        print(f"| {variant} | {100 * line:+.2f} % | {100 * point:+.2f} % |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
